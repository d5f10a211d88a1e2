package natstest

import (
	"net"
	"strings"
	"testing"
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
