package jetstream

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error, "" for none
	}{
		{"defaults", Config{}, ""},
		{"production", Config{Stream: "PLANT-A", Partitions: 24, Replicas: 3, MaxAge: 24 * time.Hour}, ""},
		{"stream name", Config{Stream: "vigil.telemetry"}, "stream:"},
		{"partitions", Config{Partitions: -1}, "partitions:"},
		{"too many partitions", Config{Partitions: 5000}, "partitions:"},
		{"replicas", Config{Replicas: 7}, "replicas:"},
		{"short lease", Config{Lease: 100 * time.Millisecond}, "lease:"},
		{"short max age", Config{MaxAge: time.Second}, "max_age:"},
		{"bucket", Config{ClusterBucket: "a b"}, "cluster_bucket:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v; want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v; want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"2.15.3", true}, {"v2.11.0", true}, {"2.11.0-RC.2", true}, {"3.0.0", true},
		{"2.10.29", false}, {"2.9.10", false}, {"", false}, {"junk", false},
	} {
		if got := VersionAtLeast(tc.v, MinServerVersion); got != tc.want {
			t.Errorf("VersionAtLeast(%q) = %t; want %t", tc.v, got, tc.want)
		}
	}
}

// connect starts a nats-server >= 2.11 and returns a JetStream context.
func connect(t *testing.T) (*natstest.Server, jetstream.JetStream) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs nats-server")
	}
	srv := natstest.Start(t)
	return srv, natstest.JetStream(t, srv.URL())
}

// TestSetup: Setup makes the stream and the buckets; it is idempotent and refuses another partition count.
func TestSetup(t *testing.T) {
	_, js := connect(t)
	ctx := t.Context()
	cfg := Config{Partitions: 4, MaxAge: time.Hour}
	for range 2 {
		if err := Setup(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Discard != jetstream.DiscardNew || info.Config.Retention != jetstream.LimitsPolicy || info.Config.MaxAge != time.Hour {
		t.Errorf("stream config %+v; want limits, discard new, max age 1h", info.Config)
	}
	if n := len(info.Config.Subjects); n == 0 || s.CachedInfo().State.Consumers != 0 {
		t.Errorf("stream subjects %v, %d consumers; want subjects and no durable consumer (workers read with ordered consumers)", info.Config.Subjects, s.CachedInfo().State.Consumers)
	}
	kv, err := js.KeyValue(ctx, DefaultMembers)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.TTL() != DefaultLease {
		t.Errorf("members bucket TTL %v, %v; want %s", st.TTL(), err, DefaultLease)
	}
	if _, err := js.KeyValue(ctx, DefaultCluster); err != nil {
		t.Error(err)
	}
	if _, err := js.ObjectStore(ctx, DefaultCheckpoints); err != nil {
		t.Error(err)
	}
	cfg.Partitions = 6
	if err := Setup(ctx, js, cfg); !errors.Is(err, ErrPartitionsChanged) {
		t.Errorf("Setup with 6 partitions over 4: %v; want ErrPartitionsChanged", err)
	}
	if err := Setup(ctx, js, Config{Lease: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("Setup with an invalid config: %v", err)
	}
}

// TestPartitionMatchesServer: a device publishing vigil.in.<token> lands,
// through the stream's subject transform, on the partition and token the
// bridge computes (PartitionOf, Escape), for 1,000 IDs of every kind.
func TestPartitionMatchesServer(t *testing.T) {
	_, js := connect(t)
	ctx := t.Context()
	const n = 12
	if err := Setup(ctx, js, Config{Partitions: n, DirectIngest: true}); err != nil {
		t.Fatal(err)
	}
	var devices []string
	for i := range 1000 {
		var d string
		switch i % 8 {
		case 0:
			d = fmt.Sprintf("sensor-node-%02d", i)
		case 1:
			d = fmt.Sprintf("%08x", uint32(i)*2654435761)
		case 2:
			d = fmt.Sprintf("pump_%d", i)
		case 3:
			d = fmt.Sprintf("sensör-é-%d", i)
		case 4:
			d = fmt.Sprintf("line.a.pump.%d", i) // escaped
		case 5:
			d = fmt.Sprintf("_reserved%d", i) // leading _ escaped
		case 6:
			d = fmt.Sprintf("100%% dry %d", i) // % and space escaped
		case 7:
			d = fmt.Sprintf("站点-%d-*", i)
		}
		devices = append(devices, d)
	}
	for _, d := range devices {
		if _, err := js.Publish(ctx, InPrefix+"."+Escape(d), []byte(d)); err != nil {
			t.Fatalf("publish %q: %v", d, err)
		}
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	mismatches := 0
	for seq := uint64(1); seq <= uint64(len(devices)); seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		d := string(m.Data)
		p, tok, err := ParseSubject(m.Subject)
		if err != nil {
			t.Fatalf("device %q stored as %q: %v", d, m.Subject, err)
		}
		if want := Subject(d, n); m.Subject != want || p != PartitionOf(d, n) || tok != Escape(d) {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("device %q: server stored %q; Vigil computes %q", d, m.Subject, want)
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d devices on another partition than the server's", mismatches, len(devices))
	}
}
