package broker

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// signalHandler discards records but signals each warning: the broker logs
// one when a connection it accepted ends before CONNECT.
type signalHandler struct {
	slog.Handler
	warned chan struct{}
}

func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		select {
		case h.warned <- struct{}{}:
		default:
		}
	}
	return nil
}

func (h signalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h signalHandler) WithGroup(string) slog.Handler                { return h }

func TestStartListensOnLoopback(t *testing.T) {
	warned := make(chan struct{}, 1)
	b, err := Start("127.0.0.1:0", slog.New(signalHandler{slog.DiscardHandler, warned}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.URL(), "mqtt://127.0.0.1:") || strings.HasSuffix(b.URL(), ":0") {
		t.Fatalf("URL %q; want a loopback URL with the real port", b.URL())
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(b.URL(), "mqtt://"))
	if err != nil {
		t.Fatalf("dial the broker: %v", err)
	}
	c.Close()
	// Wait for the broker to be done with that connection before closing
	// it: in mochi-mqtt v2.7.9 a connection being established calls
	// ClientsWg.Add while Server.Close may be in ClientsWg.Wait, a race the
	// detector reports (github.com/mochi-mqtt/server/issues/541).
	select {
	case <-warned:
	case <-time.After(5 * time.Second):
		t.Fatal("the broker did not log the connection closed before CONNECT")
	}
	if err := b.Publish("plant/x", []byte("{}"), 0); err != nil {
		t.Errorf("inline publish: %v", err)
	}
}

func TestStartBadAddress(t *testing.T) {
	if _, err := Start("256.1.1.1:1", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
}
