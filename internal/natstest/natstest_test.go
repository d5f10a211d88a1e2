package natstest

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v, min string
		want   bool
	}{
		{"2.15.3", "2.11.0", true},
		{"2.11.0", "2.11.0", true},
		{"2.10.29", "2.11.0", false},
		{"2.9.10", "2.11.0", false},
		{"3.0.0", "2.11.0", true},
		{"2.11.0-RC.1", "2.11.0", true},
		{"2.2.0", "2.11.0", false},
	} {
		if got := AtLeast(tc.v, tc.min); got != tc.want {
			t.Errorf("AtLeast(%q, %q) = %t; want %t", tc.v, tc.min, got, tc.want)
		}
	}
}

// TestStartKillRestart: the server is reachable, gone after Kill, and back
// on the same port after Restart.
func TestStartKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server")
	}
	s := Start(t)
	v, err := Version(s.bin)
	if err != nil || !AtLeast(v, MinVersion) {
		t.Fatalf("version %q, %v; want >= %s", v, err, MinVersion)
	}
	addr := strings.TrimPrefix(s.URL(), "nats://")
	dial := func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("dial after Start: %v", err)
	}
	s.Kill()
	if err := dial(); err == nil {
		t.Fatal("dial after Kill succeeded")
	}
	s.Restart()
	if err := dial(); err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
}

// TestCluster: a 3-node cluster takes an R3 stream and keeps serving it
// when one node is killed.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var s jetstream.Stream
	for deadline := time.Now().Add(20 * time.Second); ; {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create an R3 stream: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A new R3 stream answers only once its own leader is elected, which
	// can be a moment after CreateStream returns ("no response from
	// stream"); so the first publish retries like the one after the kill.
	publish := func(data, what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; {
			if _, err = js.Publish(ctx, "t.a", []byte(data)); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	publish("1", "to a new R3 stream")
	c.Servers[0].Kill()
	publish("2", "with one node of three down")
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.Config.Replicas != 3 {
		t.Errorf("stream has %d messages, %d replicas; want 2 and 3", info.State.Msgs, info.Config.Replicas)
	}
}
