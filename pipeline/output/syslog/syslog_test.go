package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// collector is an in-process syslog receiver over TCP or TLS: it keeps
// what each connection sent.
type collector struct {
	t        *testing.T
	ln       net.Listener
	accepted chan net.Conn // the server side of each connection
	mu       sync.Mutex
	data     [][]byte // per connection
	errs     []error  // how each connection ended
	wg       sync.WaitGroup
}

func newCollector(t *testing.T, tlsConfig *tls.Config) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	c := &collector{t: t, ln: ln, accepted: make(chan net.Conn, 16)}
	var conns []net.Conn
	c.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			i := len(c.data)
			c.data = append(c.data, nil)
			c.errs = append(c.errs, nil)
			conns = append(conns, conn)
			c.mu.Unlock()
			c.accepted <- conn
			c.wg.Go(func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := conn.Read(buf)
					c.mu.Lock()
					c.data[i] = append(c.data[i], buf[:n]...)
					if err != nil {
						c.errs[i] = err
					}
					c.mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, conn := range conns {
			conn.Close()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return c
}

func (c *collector) addr() string { return c.ln.Addr().String() }

// messages returns the octet-counted messages received, connection after
// connection.
func (c *collector) messages() []message {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []message
	for _, d := range c.data {
		frames, _, err := splitOctetCounted(d)
		if err != nil {
			c.t.Fatalf("received %q: %v", d, err)
		}
		for _, f := range frames {
			m, err := parseMessage(f)
			if err != nil {
				c.t.Fatalf("received %q: %v", f, err)
			}
			ms = append(ms, m)
		}
	}
	return ms
}

// waitMessages waits until n messages have arrived.
func (c *collector) waitMessages(n int) []message {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms := c.messages()
		if len(ms) >= n || time.Now().After(deadline) {
			if len(ms) != n {
				c.t.Fatalf("received %d messages; want %d", len(ms), n)
			}
			return ms
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *collector) connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.data)
}

func serverTLS(p *pki, version uint16) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: version, MaxVersion: version,
	}
}

func batchOf(n, from int) []pipeline.Alert {
	b := make([]pipeline.Alert, n)
	for i := range b {
		b[i] = testAlert()
		b[i].ID = fmt.Sprintf("ep-%d", from+i)
		b[i].Message = fmt.Sprintf(`alert %d: "quoted" \ ] ü`, from+i)
	}
	return b
}

func ids(ms []message) []string {
	s := make([]string, len(ms))
	for i := range ms {
		s[i], _ = ms[i].param(DefaultSDID, "id")
	}
	return s
}

func wantIDs(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("ep-%d", i)
	}
	return s
}

func newOutput(t *testing.T, cfg Config) *Output {
	t.Helper()
	o, err := New(cfg, rawMessage, output.Meta{Hostname: "plant-a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(context.Background()) })
	return o
}

func tlsClient(p *pki) output.TLS {
	return output.TLS{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}
}

func TestTLS(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := newPKI(t, t.TempDir())
			c := newCollector(t, serverTLS(p, version))
			o := newOutput(t, Config{Address: c.addr(), TLS: tlsClient(p)})
			ctx := context.Background()
			if err := o.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := o.Write(ctx, batchOf(10, 10*i)); err != nil {
					t.Fatal(err)
				}
			}
			ms := c.waitMessages(30)
			if got, want := strings.Join(ids(ms), ","), strings.Join(wantIDs(30), ","); got != want {
				t.Errorf("ids %s; want %s", got, want)
			}
			if m := ms[3]; m.Hostname != "plant-a" || m.AppName != "vigil" || m.MsgID != "overpressure" || string(m.Msg) != `alert 3: "quoted" \ ] ü` || !m.BOM {
				t.Errorf("message %+v", m)
			}
			// A second connection resumes the session.
			if err := o.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if !o.conn.(*tls.Conn).ConnectionState().DidResume {
				t.Error("second connection did not resume the TLS session")
			}
			if err := o.Write(ctx, batchOf(1, 30)); err != nil {
				t.Fatal(err)
			}
			c.waitMessages(31)
			if err := o.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := o.Close(ctx); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestTLSRefused(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := newPKI(t, t.TempDir())
			c := newCollector(t, serverTLS(p, version))
			ctx := context.Background()

			// No client certificate: the server refuses it, and Connect says so
			// (after the handshake, over TLS 1.3).
			o := newOutput(t, Config{Address: c.addr(), TLS: output.TLS{CAFile: p.CAFile}})
			err := o.Connect(ctx)
			if err == nil {
				t.Fatal("Connect without a client certificate succeeded")
			}
			t.Logf("no client certificate: %v", err)
			if err := o.Write(ctx, batchOf(1, 0)); !errors.Is(err, ErrNotConnected) {
				t.Errorf("Write after a failed Connect: %v; want ErrNotConnected", err)
			}

			// A server the CA did not sign.
			other := newPKI(t, t.TempDir())
			o = newOutput(t, Config{Address: c.addr(), TLS: output.TLS{CAFile: other.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}})
			if err := o.Connect(ctx); err == nil {
				t.Fatal("Connect to an untrusted server succeeded")
			}
			// A client certificate the server's CA did not sign.
			o = newOutput(t, Config{Address: c.addr(), TLS: output.TLS{CAFile: p.CAFile, CertFile: other.ClientCert, KeyFile: other.ClientKey}})
			if err := o.Connect(ctx); err == nil {
				t.Fatal("Connect with an unknown client certificate succeeded")
			}
			if n := len(c.messages()); n != 0 {
				t.Errorf("%d messages received", n)
			}
		})
	}
}

// TestPeerClosed: a receiver that closed the connection (a restart) is
// noticed before the next Write, which redials instead of writing into the
// dead socket.
func TestPeerClosed(t *testing.T) {
	p := newPKI(t, t.TempDir())
	for _, tc := range []struct {
		name string
		cfg  Config
		srv  *tls.Config
	}{
		{"tls", Config{TLS: tlsClient(p)}, serverTLS(p, tls.VersionTLS13)},
		{"tcp", Config{Network: NetworkTCP}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector(t, tc.srv)
			tc.cfg.Address = c.addr()
			o := newOutput(t, tc.cfg)
			ctx := context.Background()
			if err := o.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := o.Write(ctx, batchOf(5, 0)); err != nil {
				t.Fatal(err)
			}
			c.waitMessages(5)
			(<-c.accepted).Close()
			time.Sleep(20 * time.Millisecond) // the FIN or close_notify arrives
			for i := 1; i < 4; i++ {
				if err := o.Write(ctx, batchOf(5, 5*i)); err != nil {
					t.Fatal(err)
				}
			}
			ms := c.waitMessages(20)
			if got, want := strings.Join(ids(ms), ","), strings.Join(wantIDs(20), ","); got != want {
				t.Errorf("ids %s; want %s", got, want)
			}
			if n := c.connections(); n != 2 {
				t.Errorf("%d connections; want 2", n)
			}
		})
	}
}

// TestReceiverGone: when the receiver is gone for good, Write fails with a
// plain (retryable) error and Connect fails too.
func TestReceiverGone(t *testing.T) {
	c := newCollector(t, nil)
	o := newOutput(t, Config{Address: c.addr(), Network: NetworkTCP, Timeout: time.Second})
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Take the connection before closing the listener: Connect returns
	// once the kernel has queued it, maybe before the collector accepted
	// it, and a closed listener never would (the test hung in CI).
	var conn net.Conn
	select {
	case conn = <-c.accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the collector did not accept the connection")
	}
	c.ln.Close()
	conn.(*net.TCPConn).SetLinger(0) // reset
	conn.Close()
	time.Sleep(20 * time.Millisecond)
	err := o.Write(ctx, batchOf(3, 0))
	if err == nil || output.IsPermanent(err) {
		t.Fatalf("Write to a gone receiver: %v; want a retryable error", err)
	}
	if err := o.Connect(ctx); err == nil {
		t.Fatal("Connect to a gone receiver succeeded")
	}
	if err := o.Write(ctx, batchOf(3, 0)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Write: %v; want ErrNotConnected", err)
	}
}

// TestStalledReceiver: a receiver that stops reading makes Write fail
// within the timeout, and cancelling ctx ends it sooner.
func TestStalledReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	big := make([]pipeline.Alert, 300) // 2.4 MB
	for i := range big {
		big[i] = testAlert()
		big[i].Message = strings.Repeat("x", 8000)
	}
	for _, useCtx := range []bool{false, true} {
		o := newOutput(t, Config{Address: ln.Addr().String(), Network: NetworkTCP, Timeout: 300 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		if err := o.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		o.conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
		if useCtx {
			o.cfg.Timeout = time.Minute
			time.AfterFunc(100*time.Millisecond, cancel)
		}
		start := time.Now()
		err := o.Write(ctx, big)
		took := time.Since(start)
		cancel()
		if err == nil || took > 15*time.Second { // a bound on hanging, not a speed target: CI machines are loaded
			t.Fatalf("Write to a stalled receiver: %v after %v", err, took)
		}
		if useCtx && !errors.Is(err, context.Canceled) {
			t.Errorf("Write with a cancelled context: %v; want context.Canceled", err)
		}
		if o.conn != nil {
			t.Error("connection kept after a failed write")
		}
	}
}

func TestNonTransparentTCP(t *testing.T) {
	c := newCollector(t, nil)
	o := newOutput(t, Config{Address: c.addr(), Network: NetworkTCP, Framing: FramingNonTransparent})
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b := batchOf(3, 0)
	b[1].Message = "two\nlines"
	if err := o.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	o.Close(ctx)
	var lines []string
	deadline := time.Now().Add(5 * time.Second)
	for len(lines) < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		c.mu.Lock()
		lines = strings.Split(string(c.data[0]), "\n")
		c.mu.Unlock()
	}
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("received %q", lines)
	}
	for i, l := range lines[:3] {
		m := mustParse(t, []byte(l))
		if want := strings.ReplaceAll(b[i].Message, "\n", " "); string(m.Msg) != want {
			t.Errorf("line %d: MSG %q; want %q", i, m.Msg, want)
		}
	}
}

func TestUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	o := newOutput(t, Config{Address: pc.LocalAddr().String(), Network: NetworkUDP})
	if o.enc.max != DefaultMaxMessageUDP {
		t.Errorf("max %d; want %d", o.enc.max, DefaultMaxMessageUDP)
	}
	ctx := context.Background()
	if err := o.Write(ctx, batchOf(1, 0)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Write before Connect: %v", err)
	}
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b := batchOf(3, 0)
	b[2].Message = strings.Repeat("ü", 2000)
	if err := o.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 3 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := mustParse(t, buf[:n])
		if id, _ := m.param(DefaultSDID, "id"); id != b[i].ID {
			t.Errorf("datagram %d: id %s", i, id)
		}
		if i == 2 && (n > DefaultMaxMessageUDP || !strings.HasPrefix(b[2].Message, string(m.Msg))) {
			t.Errorf("datagram of %d octets, MSG %q", n, m.Msg)
		}
	}
	if o.Truncated() != 1 {
		t.Errorf("Truncated() = %d; want 1", o.Truncated())
	}
}

func TestWriteCancelled(t *testing.T) {
	c := newCollector(t, nil)
	o := newOutput(t, Config{Address: c.addr(), Network: NetworkTCP})
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.Write(ctx, batchOf(1, 0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Write: %v; want context.Canceled", err)
	}
	if err := o.Write(context.Background(), nil); err != nil {
		t.Errorf("empty Write: %v", err)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{Address: "127.0.0.1"}, nil, output.Meta{}); err == nil {
		t.Error("New without a formatter succeeded")
	}
	_, err := New(Config{Address: "127.0.0.1", TLS: output.TLS{CAFile: "/nonexistent/ca.pem"}}, rawMessage, output.Meta{})
	if err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
	o, err := New(Config{Address: "::1", Hostname: "h1", StructuredData: new(bool)}, rawMessage, output.Meta{Hostname: "meta"})
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "[::1]:6514" || o.enc.hostname != "h1" || o.enc.sdID != "" || o.enc.framing != FramingOctetCounting {
		t.Errorf("output %+v", o)
	}
	o, err = New(Config{Address: "localhost", Network: NetworkTCP}, rawMessage, output.Meta{Hostname: "bad host\n" + strings.Repeat("x", 300)})
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "localhost:514" || len(o.enc.hostname) != 255 || !strings.HasPrefix(o.enc.hostname, "bad_host_") {
		t.Errorf("addr %s hostname %q", o.addr, o.enc.hostname)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" for valid
	}{
		{Config{Address: "syslog.plant:6514"}, ""},
		{Config{Address: "syslog.plant"}, ""},
		{Config{Address: "[2001:db8::1]:6514"}, ""},
		{Config{Address: "127.0.0.1", Network: "tcp", Framing: "non-transparent"}, ""},
		{Config{Address: "[::1]:514", Network: "udp"}, ""},
		{Config{Address: "10.0.0.5", Network: "udp", AllowPlaintext: true, MaxMessage: 65507}, ""},
		{Config{Address: "localhost", Network: "tcp", Facility: "security", MsgID: "detector", SDID: "acme@1.2.3"}, ""},
		{Config{}, "address: required"},
		{Config{Address: "h:0"}, "address:"},
		{Config{Address: "h:x"}, "address:"},
		{Config{Address: "a:b:c"}, "address:"},
		// A password written into the address is refused, never echoed.
		{Config{Address: "vigil:s3cret-pw@siem.plant:6514"}, `address: "vigil:xxxxx@siem.plant:6514": credentials must not be part of the address`},
		{Config{Address: "tls://vigil:s3cret-pw@siem.plant:port"}, `address: "tls://vigil:xxxxx@siem.plant:port": credentials`},
		{Config{Address: "siem.plant:6514?token=s3cret-pw"}, `address: "siem.plant:6514?token=xxxxx": bad port`},
		{Config{Address: "h", Network: "sctp"}, "network:"},
		{Config{Address: "10.0.0.5", Network: "tcp"}, "allow_plaintext"},
		{Config{Address: "syslog.plant", Network: "udp"}, "allow_plaintext"},
		{Config{Address: "h", Framing: "non-transparent"}, "framing:"},
		{Config{Address: "localhost", Network: "tcp", Framing: "lf"}, "framing:"},
		{Config{Address: "localhost", Network: "udp", Framing: "octet-counting"}, "framing:"},
		{Config{Address: "localhost", Network: "tcp", TLS: output.TLS{CAFile: "ca.pem"}}, "tls:"},
		{Config{Address: "h", TLS: output.TLS{CertFile: "c.pem"}}, "tls:"},
		{Config{Address: "h", TLS: output.TLS{MinVersion: "1.1"}}, "tls.min_version"},
		{Config{Address: "h", Facility: "local8"}, "facility:"},
		{Config{Address: "h", AppName: "vigil ids"}, "app_name:"},
		{Config{Address: "h", AppName: strings.Repeat("a", 49)}, "app_name:"},
		{Config{Address: "h", Hostname: "héllo"}, "hostname:"},
		{Config{Address: "h", MsgID: "device"}, "msg_id:"},
		{Config{Address: "h", SDID: "vigil"}, "sd_id:"},
		{Config{Address: "h", SDID: "timeQuality"}, "sd_id:"},
		{Config{Address: "h", SDID: "vi gil@32473"}, "sd_id:"},
		{Config{Address: "h", SDID: "vigil@"}, "sd_id:"},
		{Config{Address: "h", SDID: "vigil@x1"}, "sd_id:"},
		{Config{Address: "h", SDID: strings.Repeat("v", 30) + "@123"}, "sd_id:"},
		{Config{Address: "h", Timeout: -time.Second}, "timeout:"},
		{Config{Address: "h", MaxMessage: 100}, "max_message:"},
		{Config{Address: "h", MaxMessage: 2 << 20}, "max_message:"},
		{Config{Address: "localhost", Network: "udp", MaxMessage: 65508}, "max_message:"},
	} {
		err := tc.cfg.Validate()
		switch {
		case err != nil && strings.Contains(err.Error(), "s3cret-pw"):
			t.Errorf("Validate(%+v) = %v repeats the secret", tc.cfg, err)
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v; want nil", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v; want an error with %q", tc.cfg, err, tc.want)
		}
	}
}
