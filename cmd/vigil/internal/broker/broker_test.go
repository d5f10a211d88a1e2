package broker

import (
	"log/slog"
	"net"
	"strings"
	"testing"
)

func TestStartListensOnLoopback(t *testing.T) {
	b, err := Start("127.0.0.1:0", slog.New(slog.DiscardHandler))
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
	if err := b.Publish("plant/x", []byte("{}"), 0); err != nil {
		t.Errorf("inline publish: %v", err)
	}
}

func TestStartBadAddress(t *testing.T) {
	if _, err := Start("256.1.1.1:1", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
}
