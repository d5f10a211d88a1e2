package syslog

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// ErrNotConnected is returned by Write before Connect succeeded, or after a
// failed Write dropped the connection.
var ErrNotConnected = errors.New("syslog: not connected")

// Output sends alerts to a syslog receiver as RFC 5424 messages whose MSG
// is the formatter's rendering of the alert. It implements output.Output;
// its methods are called from one goroutine, except Truncated.
type Output struct {
	cfg     Config // with defaults
	addr    string // host:port dialled
	host    string // for the server name
	enc     encoder
	dialer  net.Dialer
	tickets *ticketCache // TLS session resumption; nil unless tls

	conn      net.Conn
	buf       []byte    // the batch's frames, reused
	probe     [256]byte // sink for what a receiver sends (nothing, normally)
	truncated atomic.Uint64
}

var _ output.Output = (*Output)(nil)

// New returns an Output for cfg, rendering each alert's MSG with f; m
// supplies the default HOSTNAME. It validates cfg and, for tls, reads the
// CA and certificate files once so that a mistake shows now rather than at
// every connection attempt. It does not connect: call Connect.
func New(cfg Config, f output.Formatter, m output.Meta) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("syslog: invalid config: %w", err)
	}
	if f == nil {
		return nil, errors.New("syslog: no formatter")
	}
	cfg = cfg.withDefaults()
	host, port, _ := splitAddress(cfg.Address, cfg.Network) // validated
	o := &Output{
		cfg:  cfg,
		addr: net.JoinHostPort(host, port),
		host: host,
		enc: encoder{
			facility: facilities[cfg.Facility],
			hostname: headerField(cmp.Or(cfg.Hostname, m.Hostname), maxHostname),
			appName:  headerField(cfg.AppName, maxAppName),
			procID:   headerField(strconv.Itoa(os.Getpid()), maxProcID),
			msgID:    cfg.MsgID,
			max:      cfg.MaxMessage,
			framing:  cfg.Framing,
			f:        f,
		},
		dialer: net.Dialer{Timeout: cfg.Timeout},
	}
	if *cfg.StructuredData {
		o.enc.sdID = cfg.SDID
	}
	if cfg.Network == NetworkTLS {
		if _, err := cfg.TLS.Client(host, nil); err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		o.tickets = &ticketCache{ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	}
	return o, nil
}

// Truncated returns how many messages were truncated to fit max_message
// since New. It is safe to call concurrently with the other methods.
func (o *Output) Truncated() uint64 { return o.truncated.Load() }

// Connect dials the receiver, dropping the connection held, if any. For
// tls it completes the handshake, presenting the client certificate when
// configured and resuming an earlier session when the receiver allows it;
// it then waits briefly for the receiver's verdict on the client
// certificate (see awaitVerdict). It fails within the timeout.
func (o *Output) Connect(ctx context.Context) error {
	o.drop(true)
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	var (
		c   net.Conn
		err error
	)
	if o.cfg.Network == NetworkTLS {
		c, err = o.dialTLS(ctx)
	} else {
		c, err = o.dialer.DialContext(ctx, o.cfg.Network, o.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog: connect to %s: %w", o.addr, err)
	}
	o.conn = c
	return nil
}

func (o *Output) dialTLS(ctx context.Context) (net.Conn, error) {
	tc, err := o.cfg.TLS.Client(o.host, o.tickets)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{NetDialer: &o.dialer, Config: tc}
	began := time.Now()
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*tls.Conn)
	if err := o.awaitVerdict(ctx, conn, time.Since(began)); err != nil {
		_ = conn.NetConn().Close()
		return nil, err
	}
	return conn, nil
}

// awaitVerdict waits for the receiver to accept the connection. The
// client's side of a handshake can complete before the server has judged
// the client: in TLS 1.3 the server checks the client's certificate after
// the client's last handshake message, and rsyslog (gtls) checks the
// certificate and its name itself once the handshake is over, whatever the
// version, and then just closes the connection. A client that only writes
// never reads that refusal, and everything it writes is lost. So Connect
// reads for a moment: an alert or a close is a refusal; a TLS 1.3 session
// ticket (which servers send once they accept the client), or silence
// until the wait ends (twice the time the handshake took, at least
// minVerdictWait),
// is taken as acceptance.
// minVerdictWait is the shortest wait for the verdict: rsyslog on loopback
// answers within a few milliseconds.
const minVerdictWait = 50 * time.Millisecond

func (o *Output) awaitVerdict(ctx context.Context, conn *tls.Conn, handshake time.Duration) error {
	wait := max(2*handshake, minVerdictWait)
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	o.tickets.onPut = func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) }
	_, err := conn.Read(o.probe[:])
	o.tickets.onPut = nil
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil && !isTimeout(err) {
		return fmt.Errorf("refused after the TLS handshake (client certificate missing or not accepted?): %w", err)
	}
	return nil
}

// ticketCache is a session cache that tells when the server sent a ticket.
type ticketCache struct {
	tls.ClientSessionCache
	onPut func() // called on the goroutine reading the connection
}

func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if c.onPut != nil {
		c.onPut()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Write sends the batch: over a stream, all frames in one write; over udp,
// one datagram per alert. It returns nil when the bytes were handed to the
// kernel, which is all syslog offers (see the package documentation).
//
// Before writing on a stream it checks, without waiting, whether the
// receiver closed the connection since the last Write (a restart, an idle
// timeout) and if so redials, so the batch is not written into a dead
// socket. A write error drops the connection and is returned as is, to be
// retried after Connect: the receiver may have got part of the batch, and
// will get it again.
func (o *Output) Write(ctx context.Context, batch []pipeline.Alert) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.conn == nil {
		return ErrNotConnected
	}
	if o.cfg.Network == NetworkUDP {
		return o.writeDatagrams(ctx, batch)
	}
	if o.peerGone() {
		if err := o.Connect(ctx); err != nil {
			return err
		}
	}
	o.buf = o.buf[:0]
	for i := range batch {
		o.buf = o.enc.appendFrame(o.buf, &batch[i])
	}
	o.truncated.Store(o.enc.truncated)
	stop := o.setDeadline(ctx)
	_, err := o.conn.Write(o.buf)
	stop()
	if err != nil {
		o.drop(false)
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return fmt.Errorf("syslog: write %d alerts to %s: %w", len(batch), o.addr, err)
	}
	return nil
}

// writeDatagrams sends one datagram per alert. When a send fails, the
// alerts before it were sent and the others are reported in a BatchError,
// so only those are retried.
func (o *Output) writeDatagrams(ctx context.Context, batch []pipeline.Alert) error {
	stop := o.setDeadline(ctx)
	defer stop()
	for i := range batch {
		o.buf = o.enc.appendMessage(o.buf[:0], &batch[i])
		o.truncated.Store(o.enc.truncated)
		if _, err := o.conn.Write(o.buf); err != nil {
			o.drop(false)
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			}
			err = fmt.Errorf("syslog: send to %s: %w", o.addr, err)
			if i == 0 {
				return err
			}
			be := &output.BatchError{Failed: make([]output.ItemError, 0, len(batch)-i)}
			for j := i; j < len(batch); j++ {
				be.Failed = append(be.Failed, output.ItemError{Index: j, Err: err})
			}
			return be
		}
	}
	return nil
}

// setDeadline bounds the writes to the timeout and to ctx, and returns the
// function that ends watching ctx.
func (o *Output) setDeadline(ctx context.Context) (stop func() bool) {
	deadline := time.Now().Add(o.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn := o.conn
	_ = conn.SetWriteDeadline(deadline)
	return context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
}

// peerGone reports whether the receiver has closed the stream (or reset
// it, or sent a TLS alert). Receivers send nothing on a syslog stream, so
// anything readable is the end of it; the check does not wait.
func (o *Output) peerGone() bool {
	raw := o.conn
	tc, isTLS := o.conn.(*tls.Conn)
	if isTLS {
		raw = tc.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return false
	}
	readable, err := peek(sc)
	if err != nil {
		return true
	}
	if !readable {
		return false
	}
	// Something arrived: a FIN, a TLS record (close_notify, an alert, a
	// session ticket), stray data. Read it to know which; what is already
	// in the socket is read at once, so the short deadline only matters
	// for a record that is still arriving.
	_ = o.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err = o.conn.Read(o.probe[:])
	_ = o.conn.SetReadDeadline(time.Time{})
	return err != nil && !isTimeout(err)
}

// drop closes the connection held, if any. graceful sends the TLS
// close_notify first (bounded by 5 s in crypto/tls); a connection dropped
// after a failed write is closed at once.
func (o *Output) drop(graceful bool) {
	if o.conn == nil {
		return
	}
	if tc, ok := o.conn.(*tls.Conn); ok && !graceful {
		_ = tc.NetConn().Close()
	} else {
		_ = o.conn.Close()
	}
	o.conn = nil
}

// Close closes the connection; over TLS it first sends close_notify
// (RFC 5425 §4.4), within ctx's deadline when it has one.
func (o *Output) Close(ctx context.Context) error {
	if o.conn == nil {
		return nil
	}
	if d, ok := ctx.Deadline(); ok {
		_ = o.conn.SetDeadline(d)
	}
	err := o.conn.Close()
	o.conn = nil
	if err != nil {
		return fmt.Errorf("syslog: close: %w", err)
	}
	return nil
}
