package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	set := metrics.NewSet()
	set.NewCounter(`vigil_test_total`).Add(3)
	var ready atomic.Bool
	s, err := New(Config{Listen: "127.0.0.1:0"}, func() error {
		if !ready.Load() {
			return errors.New("broker not connected")
		}
		return nil
	}, slog.New(slog.DiscardHandler), set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "vigil_test_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d %q; want 200 with the set's and the process metrics", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d; want 200", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "broker not connected") {
		t.Errorf("/readyz before ready = %d %q; want 503 with the reason", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d; want 200", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v; want nil", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestListenError(t *testing.T) {
	if _, err := New(Config{Listen: "256.0.0.1:99999"}, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "metrics listener") {
		t.Errorf("New on a bad address = %v; want a metrics listener error", err)
	}
}
