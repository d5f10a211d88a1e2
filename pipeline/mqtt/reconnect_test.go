package mqtt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

func testLink(t *testing.T, log *slog.Logger) *link {
	t.Helper()
	cfg := validConfig()
	cfg.PasswordFile, cfg.Username = "", ""
	l, err := newLink("source", "vigil-test", cfg, log, nil, linkHooks{})
	if err != nil {
		t.Fatal(err)
	}
	l.ready.Store(true) // after the first connection: every failure is retried
	return l
}

var (
	refusedConn = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	serverBusy  = autopaho.NewConnackError(errors.New("connack"), &paho.Connack{ReasonCode: 0x89})
)

// TestBackoffByFailure: while the broker cannot be reached, attempts come at
// least every MaxUnreachable (1 s by default), however long the outage; when
// it answers and refuses (server busy), the backoff grows to Max.
func TestBackoffByFailure(t *testing.T) {
	l := testLink(t, nil)
	run := &linkRun{fatal: make(chan error, 1)}
	longest := func() time.Duration {
		var m time.Duration
		for range 500 {
			m = max(m, l.backoff(12))
		}
		return m
	}
	l.onConnectError(run, refusedConn)
	if m := longest(); m > DefaultBackoffDown || m < DefaultBackoffDown/2 {
		t.Errorf("broker unreachable, attempt 12: longest wait %v; want about %v at most", m, DefaultBackoffDown)
	}
	l.onConnectError(run, serverBusy)
	if m := longest(); m < 5*time.Second {
		t.Errorf("broker busy, attempt 12: longest wait %v; want the full backoff (up to %v)", m, DefaultBackoffMax)
	}
	if d := l.backoff(0); d != 0 {
		t.Errorf("first attempt after a loss waits %v; want 0", d)
	}
}

// TestConnectFailureLogging: an outage logs its first failure, a new reason,
// and a periodic summary, not every attempt; the reconnect says how long it
// was down.
func TestConnectFailureLogging(t *testing.T) {
	var buf syncbuf.Buffer
	l := testLink(t, slog.New(slog.NewTextHandler(&buf, nil)))
	l.summaryEvery = 300 * time.Millisecond
	run := &linkRun{fatal: make(chan error, 1), ready: make(chan struct{}), ctx: context.Background()}
	for range 20 {
		l.onConnectError(run, refusedConn)
	}
	if n := strings.Count(buf.String(), `msg="connect failed"`); n != 1 {
		t.Errorf("20 failures with one reason logged %d \"connect failed\" lines; want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "retrying_within=1s") {
		t.Errorf("the failure does not say how soon it retries:\n%s", buf.String())
	}
	l.onConnectError(run, serverBusy)
	if n := strings.Count(buf.String(), `msg="connect failed"`); n != 2 {
		t.Errorf("a new reason: %d \"connect failed\" lines; want 2:\n%s", n, buf.String())
	}
	time.Sleep(350 * time.Millisecond)
	l.onConnectError(run, serverBusy)
	l.onConnectError(run, serverBusy)
	if n := strings.Count(buf.String(), `msg="still not connected"`); n != 1 {
		t.Errorf("after the summary interval: %d \"still not connected\" lines; want 1:\n%s", n, buf.String())
	}
	l.onUp(run, nil, &paho.Connack{})
	l.wg.Wait()
	if !strings.Contains(buf.String(), "after_attempts=24") || !strings.Contains(buf.String(), "down_for=") {
		t.Errorf("the reconnect does not say how long it was down:\n%s", buf.String())
	}
}

// TestReconnectSoonAfterOutage: after a 10 s outage of a real Mosquitto the
// source is connected again within about a second of the broker's return
// (not after a backoff that grew during the outage), having logged the
// outage in a few lines.
func TestReconnectSoonAfterOutage(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	var buf syncbuf.Buffer
	cfg := testConfig(b, "vigil", "vigil-outage")
	cfg.ReconnectBackoff = DefaultConfig().ReconnectBackoff // what users get
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	src, err := NewSource(cfg, SourceOptions{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	waitFor(t, 5*time.Second, "the loss", func() bool { return !src.Connected() })
	time.Sleep(10 * time.Second)
	back := time.Now()
	b.Restart()
	waitFor(t, 10*time.Second, "the reconnect", src.Connected)
	if d := time.Since(back); d > 1500*time.Millisecond {
		t.Errorf("connected %v after the broker was restarted; want about 1 s at most", d.Round(time.Millisecond))
	}
	if n := strings.Count(buf.String(), "connect failed"); n > 2 {
		t.Errorf("%d \"connect failed\" lines for one outage; want one per reason:\n%s", n, buf.String())
	}
}
