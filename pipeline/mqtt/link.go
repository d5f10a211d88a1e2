package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// link is one autopaho connection with Vigil's policies: credentials read at
// connect time, TLS with a session cache shared across reconnects, the
// buffered connection, backoff, state logging and metrics, and a start that
// fails fast on permanent errors. The Source and the Publisher each own one.
type link struct {
	role     string // "source" or "publisher", in logs and metric labels
	cfg      Config // defaults applied, validated
	clientID string
	b        broker
	log      *slog.Logger
	cache    tls.ClientSessionCache
	m        linkMetrics
	hooks    linkHooks
	paholog  pahoLogger
	wg       sync.WaitGroup // prepare goroutines

	startMu sync.Mutex // serialises start and close
	closing chan struct{}
	closeMu sync.Once

	ready atomic.Bool // the first connection was fully set up: later failures are retried
	up    atomic.Bool

	mu              sync.Mutex // guards the fields below
	run             *linkRun   // the running connection manager, nil when stopped
	attempt         attemptInfo
	failures        int // failed attempts since the last connection
	handshakeCloses int // consecutive attempts closed during the TLS handshake
	connects        int
	gen             uint64 // connection number, for the prepare goroutines
	upAt            time.Time
	flaps           int // connections that dropped soon after coming up, in a row
	tlsState        *tls.ConnectionState
	lastErr         *ConnectError
	connectLog      bool // "connecting" was logged for the current outage
	lostLogged      bool // "connection lost" was logged for the current connection
	refused         bool // the last attempt reached the broker, which refused it
	downSince       time.Time
	failLogged      string    // the reason of the last "connect failed" logged
	failLogAt       time.Time // when a failure was last logged
	summaryEvery    time.Duration
}

// linkHooks are the role's parts of the connection.
type linkHooks struct {
	// onPublish receives PUBLISH packets; it must not block.
	onPublish func(paho.PublishReceived) (bool, error)
	// prepare runs after every connect, in its own goroutine (subscribing).
	// The link is ready once it succeeds on the first connection; a
	// *ConnectError it returns then fails start if Permanent.
	prepare func(ctx context.Context, cm *autopaho.ConnectionManager, ca *paho.Connack) error
	// down runs after a connection is lost and its client has shut down,
	// before the next attempt.
	down func()
	// manualAck enables manual acknowledgement of received messages.
	manualAck bool
	// maxPacket, when positive, is announced as the Maximum Packet Size.
	maxPacket uint32
	// inbound, when set, takes the QoS 0 and 1 PUBLISH packets out of the
	// stream before paho sees them (see newSourceConn), with linger.
	inbound inbound
	linger  time.Duration
}

// linkRun is one run of the connection manager, from start to stop.
type linkRun struct {
	ctx    context.Context
	cancel context.CancelFunc
	cm     *autopaho.ConnectionManager
	ready  chan struct{} // closed when the first connection is prepared
	fatal  chan error    // the first permanent error before that (buffered)
	once   sync.Once
}

type linkMetrics struct {
	up                                *metrics.Gauge
	connects, reconnects, connectErrs *metrics.Counter
	tlsHandshakes, tlsResumed         *metrics.Counter
}

const (
	flapWindow = 5 * time.Second // a connection lost sooner counts as a flap
	// downSummaryEvery is how often an outage is summarised in the log
	// between state changes (a failed attempt is logged only when its
	// reason changes).
	downSummaryEvery = 30 * time.Second
	// ackFlushInterval is how often paho sends the acknowledgements marked
	// by Ack (in receive order). The flow-control window refills at this
	// pace, so it bounds throughput at ReceiveMaximum per interval.
	ackFlushInterval = 5 * time.Millisecond
)

func newLink(role, clientID string, cfg Config, log *slog.Logger, set *metrics.Set, hooks linkHooks) (*link, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt: invalid config: %w", err)
	}
	b, err := parseBroker(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	l := &link{
		role:     role,
		cfg:      cfg,
		clientID: clientID,
		b:        b,
		log:      log.With("role", role, "broker", b.origin, "client_id", clientID),
		cache:    tls.NewLRUClientSessionCache(64),
		hooks:    hooks,
		closing:  make(chan struct{}),

		summaryEvery: downSummaryEvery,
	}
	l.paholog = pahoLogger{l.log}
	label := fmt.Sprintf(`{role=%q}`, role)
	l.m = linkMetrics{
		up:            set.GetOrCreateGauge("vigil_mqtt_connected"+label, nil),
		connects:      set.GetOrCreateCounter("vigil_mqtt_connects_total" + label),
		reconnects:    set.GetOrCreateCounter("vigil_mqtt_reconnects_total" + label),
		connectErrs:   set.GetOrCreateCounter("vigil_mqtt_connect_errors_total" + label),
		tlsHandshakes: set.GetOrCreateCounter("vigil_mqtt_tls_handshakes_total" + label),
		tlsResumed:    set.GetOrCreateCounter("vigil_mqtt_tls_resumed_total" + label),
	}
	// Check the files now, so a typo fails at construction, not at connect.
	if _, err := cfg.password(); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if b.tls {
		var requested bool
		if _, err := cfg.tlsConfig(b.host, nil, &requested); err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
	}
	return l, nil
}

// start connects and waits until the first connection is prepared, a
// permanent error occurs, or ctx is done. On failure the connection manager
// is stopped; start may be called again. Once started, it returns nil.
func (l *link) start(ctx context.Context) error {
	if l.ready.Load() {
		return nil
	}
	l.startMu.Lock()
	defer l.startMu.Unlock()
	select {
	case <-l.closing:
		return ErrClosed
	default:
	}
	if l.ready.Load() {
		return nil
	}
	run, err := l.launch()
	if err != nil {
		return err
	}
	select {
	case <-run.ready:
		return nil
	case err := <-run.fatal:
		l.stop(run)
		return err
	case <-l.closing:
		l.stop(run)
		return ErrClosed
	case <-ctx.Done():
		l.stop(run)
		l.mu.Lock()
		last := l.lastErr
		l.mu.Unlock()
		if last != nil {
			return fmt.Errorf("mqtt: not connected to %s: %w; last attempt: %w", l.b.origin, ctx.Err(), last)
		}
		return fmt.Errorf("mqtt: not connected to %s: %w", l.b.origin, ctx.Err())
	}
}

// launch starts the connection manager.
func (l *link) launch() (*linkRun, error) {
	ctx, cancel := context.WithCancel(context.Background())
	run := &linkRun{ctx: ctx, cancel: cancel, ready: make(chan struct{}), fatal: make(chan error, 1)}
	u := &url.URL{Scheme: "mqtt", Host: l.b.addr} // only named in autopaho's messages: we dial ourselves
	if l.b.tls {
		u.Scheme = "mqtts"
	}
	var onPublish []func(paho.PublishReceived) (bool, error)
	if l.hooks.onPublish != nil {
		onPublish = append(onPublish, l.hooks.onPublish)
	}
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     uint16(l.cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: l.cfg.CleanStart,
		SessionExpiryInterval:         uint32(l.cfg.SessionExpiry / time.Second),
		ReconnectBackoff:              l.backoff,
		ConnectTimeout:                l.cfg.ConnectTimeout,
		AttemptConnection:             l.dial,
		OnConnectionUp:                func(cm *autopaho.ConnectionManager, ca *paho.Connack) { l.onUp(run, cm, ca) },
		OnConnectionDown:              func() bool { return l.onDown(run) },
		OnConnectError:                func(err error) { l.onConnectError(run, err) },
		ConnectUsername:               l.cfg.Username,
		ConnectPacketBuilder:          l.buildConnect,
		PahoErrors:                    l.paholog,
		Errors:                        l.paholog,
		ClientConfig: paho.ClientConfig{
			ClientID:                   l.clientID,
			OnPublishReceived:          onPublish,
			OnClientError:              func(err error) { l.lost(err.Error()) },
			OnServerDisconnect:         func(d *paho.Disconnect) { l.lost(disconnectReason(d)) },
			EnableManualAcknowledgment: l.hooks.manualAck,
			SendAcksInterval:           ackFlushInterval,
		},
	}
	l.mu.Lock()
	l.failures, l.lastErr, l.connectLog = 0, nil, false
	l.failLogged, l.downSince, l.refused = "", time.Time{}, false
	l.mu.Unlock()
	cm, err := autopaho.NewConnection(ctx, cc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	run.cm = cm
	l.mu.Lock()
	l.run = run
	l.mu.Unlock()
	return run, nil
}

// stop shuts a run down: DISCONNECT (the session is kept) if connected, then
// waits for autopaho and the prepare goroutines.
func (l *link) stop(run *linkRun) error {
	l.mu.Lock()
	if l.run == run {
		l.run = nil
	}
	l.mu.Unlock()
	run.cancel()
	var err error
	select {
	case <-run.cm.Done():
	case <-time.After(l.cfg.ConnectTimeout):
		err = fmt.Errorf("mqtt: %s connection did not shut down within %v", l.role, l.cfg.ConnectTimeout)
	}
	l.wg.Wait()
	l.up.Store(false)
	l.m.up.Set(0)
	return err
}

// close stops the link for good.
func (l *link) close() error {
	l.closeMu.Do(func() { close(l.closing) })
	l.startMu.Lock() // a start in progress sees closing and returns
	defer l.startMu.Unlock()
	l.mu.Lock()
	run := l.run
	l.mu.Unlock()
	if run == nil {
		return nil
	}
	err := l.stop(run)
	l.log.Info("disconnected")
	return err
}

// manager returns the running connection manager, or nil.
func (l *link) manager() *autopaho.ConnectionManager {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.run == nil {
		return nil
	}
	return l.run.cm
}

// buildConnect completes the CONNECT packet of one attempt: it reads the
// password now (so it can be rotated) and sets the flow-control window.
func (l *link) buildConnect(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	l.mu.Lock()
	l.attempt = attemptInfo{tls: l.b.tls, haveCert: l.cfg.TLS.CertFile != ""}
	logConnecting := !l.connectLog
	l.connectLog = true
	l.mu.Unlock()
	if logConnecting {
		l.log.Info("connecting", "clean_start", cp.CleanStart)
	}
	pw, err := l.cfg.password()
	if err != nil {
		return nil, configError{err}
	}
	if pw != nil {
		cp.PasswordFlag, cp.Password = true, pw
	}
	if cp.Properties == nil {
		cp.Properties = &paho.ConnectProperties{}
	}
	rm := uint16(l.cfg.ReceiveMaximum)
	cp.Properties.ReceiveMaximum = &rm
	if l.hooks.maxPacket > 0 {
		mp := l.hooks.maxPacket
		cp.Properties.MaximumPacketSize = &mp
	}
	return cp, nil
}

// dial opens the network connection of one attempt: TCP with TCP_NODELAY,
// TLS with the shared session cache, wrapped in a bufConn.
func (l *link) dial(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", l.b.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true) // Go's default, made explicit: MQTT packets are small
	}
	if !l.b.tls {
		return l.wrap(raw), nil
	}
	var requested bool
	tcfg, err := l.cfg.tlsConfig(l.b.host, l.cache, &requested)
	if err != nil {
		raw.Close()
		return nil, configError{err}
	}
	tconn := tls.Client(raw, tcfg)
	err = tconn.HandshakeContext(ctx)
	l.mu.Lock()
	l.attempt.certRequested = requested
	l.attempt.handshakeDone = err == nil
	l.mu.Unlock()
	if err != nil {
		raw.Close()
		return nil, err
	}
	st := tconn.ConnectionState()
	l.mu.Lock()
	l.tlsState = &st
	l.mu.Unlock()
	l.m.tlsHandshakes.Inc()
	if st.DidResume {
		l.m.tlsResumed.Inc()
	}
	return l.wrap(tconn), nil
}

// wrap puts the buffered connection of the link's role around c.
func (l *link) wrap(c net.Conn) *bufConn {
	if l.hooks.inbound != nil {
		return newSourceConn(c, l.hooks.inbound, l.hooks.linger)
	}
	return newBufConn(c)
}

// backoff is autopaho's ReconnectBackoff: no delay before the first attempt
// after a loss, unless connections keep dropping right after coming up
// (a client ID conflict, a broker restarting in a loop); then capped
// exponential backoff with jitter, the cap depending on whether the broker
// refused the last attempt or could not be reached (see Backoff).
func (l *link) backoff(attempt int) time.Duration {
	l.mu.Lock()
	flaps, refused := l.flaps, l.refused
	l.mu.Unlock()
	if attempt == 0 {
		if flaps == 0 {
			return 0
		}
		attempt, refused = flaps, true // it answered, then dropped us
	}
	bo := l.cfg.ReconnectBackoff
	if !refused {
		bo.Max = bo.MaxUnreachable
	}
	return bo.delay(attempt, rand.Int64N)
}

// delay returns the wait before attempt n >= 1 with the cap Max; randN(k)
// returns [0, k).
func (b Backoff) delay(n int, randN func(int64) int64) time.Duration {
	ceil := b.Min
	for i := 1; i < n && ceil < b.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.Max)
	if ceil <= b.Min {
		return b.Min
	}
	return b.Min + time.Duration(randN(int64(ceil-b.Min)+1))
}

func (l *link) onConnectError(run *linkRun, err error) {
	l.m.connectErrs.Inc()
	l.mu.Lock()
	ce := classify(err, &l.cfg, l.b.origin, l.attempt)
	l.failures++
	n := l.failures
	if ce.handshakeClosed {
		l.handshakeCloses++
		// Once could be a broker restarting; every time is a plaintext port.
		ce.Permanent = l.handshakeCloses >= 3
	} else {
		l.handshakeCloses = 0
	}
	l.lastErr = ce
	l.refused = ce.refused()
	now := time.Now()
	if l.downSince.IsZero() {
		l.downSince = now
	}
	down := now.Sub(l.downSince)
	msg := ""
	switch {
	case ce.Reason != l.failLogged:
		msg = "connect failed" // the first failure of an outage, or a new reason
	case now.Sub(l.failLogAt) >= l.summaryEvery:
		msg = "still not connected"
	}
	if msg != "" {
		l.failLogged, l.failLogAt = ce.Reason, now
	}
	l.mu.Unlock()
	if !l.ready.Load() && ce.Permanent {
		select {
		case run.fatal <- ce:
		default:
		}
		l.log.Error("connect failed", "attempt", n, "err", ce.Error())
		return
	}
	switch msg {
	case "":
		l.log.Debug("connect failed", "attempt", n, "err", ce.Error())
	case "connect failed":
		l.log.Warn(msg, "attempt", n, "err", ce.Error(), "retrying_within", l.retryCap(ce).String())
	default:
		l.log.Warn(msg, "attempts", n, "down_for", down.Round(time.Second).String(), "err", ce.Error())
	}
}

// retryCap is the longest wait between attempts after ce.
func (l *link) retryCap(ce *ConnectError) time.Duration {
	if ce.refused() {
		return l.cfg.ReconnectBackoff.Max
	}
	return l.cfg.ReconnectBackoff.MaxUnreachable
}

func (l *link) onUp(run *linkRun, cm *autopaho.ConnectionManager, ca *paho.Connack) {
	l.mu.Lock()
	l.gen++
	gen := l.gen
	l.upAt = time.Now()
	attempts, downSince := l.failures, l.downSince
	l.failures, l.handshakeCloses, l.lastErr, l.connectLog, l.lostLogged = 0, 0, nil, false, false
	l.refused, l.downSince, l.failLogged = false, time.Time{}, ""
	l.connects++
	reconnect := l.connects > 1
	st := l.tlsState
	l.mu.Unlock()
	l.up.Store(true)
	l.m.up.Set(1)
	l.m.connects.Inc()
	if reconnect {
		l.m.reconnects.Inc()
	}
	attrs := []any{"session_present", ca.SessionPresent}
	if !downSince.IsZero() {
		attrs = append(attrs, "after_attempts", attempts+1, "down_for", l.upAt.Sub(downSince).Round(time.Millisecond).String())
	}
	if l.b.tls && st != nil {
		attrs = append(attrs, "tls", tls.VersionName(st.Version), "tls_resumed", st.DidResume)
	}
	l.log.Info("connected", attrs...)
	l.wg.Go(func() { l.prepare(run, cm, ca, gen) })
}

// prepare runs the role's setup after a connect. Before the link is ready a
// permanent error fails start; afterwards errors are logged and retried
// while the same connection is up.
func (l *link) prepare(run *linkRun, cm *autopaho.ConnectionManager, ca *paho.Connack, gen uint64) {
	for try := 1; ; try++ {
		var err error
		if l.hooks.prepare != nil {
			err = l.hooks.prepare(run.ctx, cm, ca)
		}
		if err == nil {
			run.once.Do(func() {
				l.ready.Store(true)
				close(run.ready)
			})
			return
		}
		var ce *ConnectError
		permanent := errors.As(err, &ce) && ce.Permanent
		if permanent && !l.ready.Load() {
			select {
			case run.fatal <- err:
			default:
			}
			return
		}
		l.log.Error("setting up the connection failed", "err", err.Error(), "attempt", try)
		if permanent {
			return // retried on the next connection
		}
		select {
		case <-run.ctx.Done():
			return
		case <-time.After(l.cfg.ReconnectBackoff.delay(try, rand.Int64N)):
		}
		l.mu.Lock()
		same := l.gen == gen && l.up.Load()
		l.mu.Unlock()
		if !same {
			return
		}
	}
}

func (l *link) onDown(run *linkRun) bool {
	l.up.Store(false)
	l.m.up.Set(0)
	l.mu.Lock()
	l.downSince = time.Now()
	if time.Since(l.upAt) < flapWindow {
		l.flaps++
	} else {
		l.flaps = 0
	}
	l.mu.Unlock()
	if l.hooks.down != nil {
		l.hooks.down()
	}
	return run.ctx.Err() == nil
}

// lost logs a lost connection once; paho reports it through OnClientError
// or OnServerDisconnect.
func (l *link) lost(reason string) {
	l.mu.Lock()
	already := l.lostLogged
	l.lostLogged = true
	l.mu.Unlock()
	if !already {
		l.log.Warn("connection lost", "reason", reason)
	}
}

// tlsConnectionState returns the state of the last TLS handshake.
func (l *link) tlsConnectionState() (tls.ConnectionState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *l.tlsState, true
}

// pahoLogger sends paho's diagnostics to slog at debug level.
type pahoLogger struct{ log *slog.Logger }

func (p pahoLogger) Println(v ...any) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("paho: " + fmt.Sprint(v...))
	}
}

func (p pahoLogger) Printf(format string, v ...any) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("paho: " + fmt.Sprintf(format, v...))
	}
}
