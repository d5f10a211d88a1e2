package jetstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// telemetry is a device message carrying its sequence number.
func telemetry(seq int, device string) []byte {
	ts := time.Unix(1_780_000_000+int64(seq), 0).UTC().Format(time.RFC3339Nano)
	return fmt.Appendf(nil, `{"timestamp":%q,"node_id":%q,"seq":%d,"data":{"p":%d}}`, ts, device, seq, seq%7)
}

// seqOf extracts the sequence number of a telemetry payload, or -1.
func seqOf(payload []byte) int {
	_, rest, ok := bytes.Cut(payload, []byte(`"seq":`))
	if !ok {
		return -1
	}
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return -1
	}
	n, err := strconv.Atoi(string(rest[:j]))
	if err != nil {
		return -1
	}
	return n
}

// device connects a plain autopaho client to b's TLS listener as "device".
func device(t *testing.T, b *mqtttest.Broker) *autopaho.ConnectionManager {
	t.Helper()
	u, _ := url.Parse("tls://" + b.URL()[len("mqtts://"):])
	pem, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:            []*url.URL{u},
		TlsCfg:                &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		KeepAlive:             30,
		SessionExpiryInterval: 3600,
		ReconnectBackoff:      autopaho.NewConstantBackoff(50 * time.Millisecond),
		ConnectTimeout:        5 * time.Second,
		ConnectUsername:       "device",
		ConnectPassword:       []byte(b.Password("device")),
		ClientConfig:          paho.ClientConfig{ClientID: "test-device"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = cm.Disconnect(ctx)
		cancel()
	})
	actx, c := context.WithTimeout(t.Context(), 10*time.Second)
	defer c()
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatalf("device: not connected: %v", err)
	}
	return cm
}

// publishAll publishes telemetry 0..n-1 at QoS 1, retrying each message
// until the broker acknowledges it, with a pause every 100 messages.
func publishAll(ctx context.Context, cm *autopaho.ConnectionManager, n int, pause time.Duration) error {
	for i := range n {
		msg := &paho.Publish{Topic: fmt.Sprintf("plant/line%d/dev-%d", i%3, i%50), QoS: 1, Payload: telemetry(i, fmt.Sprintf("dev-%d", i%50))}
		for {
			_, err := cm.Publish(ctx, msg)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if i%100 == 99 && pause > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// bridgeRun is one incarnation of the bridge: an MQTT source and a Bridge
// with their own connections, as a process would have.
type bridgeRun struct {
	cancel context.CancelFunc
	done   chan error
	ms     *metrics.Set
	src    *mqtt.Source
	nc     *natsclient.Conn
}

func startBridge(t *testing.T, b *mqtttest.Broker, natsURL string, partitions, pack int, drain time.Duration) *bridgeRun {
	t.Helper()
	cfg := mqtt.DefaultConfig()
	cfg.Broker, cfg.ClientID = b.URL(), "vigil-bridge"
	cfg.Username, cfg.PasswordFile, cfg.TLS.CAFile = "vigil", b.PasswordFile("vigil"), b.CAFile
	cfg.ReconnectBackoff = mqtt.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cfg.Subscriptions = []mqtt.Subscription{{Filter: "plant/#", QoS: 1}}
	ms := metrics.NewSet()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := mqtt.NewSource(cfg, mqtt.SourceOptions{Logger: log, Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := Connect(ConnConfig{URL: natsURL}, "vigil-bridge-test", log)
	if err != nil {
		t.Fatal(err)
	}
	br, err := NewBridge(nc, BridgeConfig{Partitions: partitions, Pack: pack, DrainTimeout: drain, Logger: log, Metrics: ms, RetryMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &bridgeRun{cancel: cancel, done: make(chan error, 1), ms: ms, src: src, nc: nc}
	if err := src.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- br.Run(ctx, src) }()
	return r
}

// stop cancels the run and waits for it; with a drain of ~0 that is a
// crash as far as MQTT is concerned: nothing still waiting for PubAcks is
// acknowledged.
func (r *bridgeRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("bridge: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bridge did not stop")
	}
	r.src.Close()
	r.nc.Close()
}

func (r *bridgeRun) counter(name string) uint64 { return r.ms.GetOrCreateCounter(name).Get() }

// streamSeqs reads every message of the stream and counts each telemetry
// sequence number, packed or not; it also checks every reading is on its
// device's partition (and subject, unpacked) and carries its topic and
// arrival. total is the number of stream messages, ticks included, order
// the readings' sequence numbers in stream order.
func streamSeqs(t *testing.T, js jetstream.JetStream, partitions int) (counts map[int]int, total int, order []int) {
	t.Helper()
	ctx := t.Context()
	c, err := js.OrderedConsumer(ctx, DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{TelemetryPrefix + ".*.*"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts = map[int]int{}
	for total < int(info.State.Msgs) {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			total++
			p, tok, err := ParseSubject(m.Subject())
			if err != nil {
				t.Fatal(err)
			}
			switch tok {
			case TickToken:
			case PackToken:
				err := EachPacked(m.Data(), func(topic []byte, arrival int64, payload []byte) error {
					seq := seqOf(payload)
					dev := fmt.Sprintf("dev-%d", seq%50)
					if want := PartitionOf(dev, partitions); p != want {
						return fmt.Errorf("seq %d packed on partition %d; want %d", seq, p, want)
					}
					if len(topic) == 0 || arrival == 0 {
						return fmt.Errorf("seq %d packed with topic %q, arrival %d; want both", seq, topic, arrival)
					}
					counts[seq]++
					order = append(order, seq)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			default:
				seq := seqOf(m.Data())
				dev := fmt.Sprintf("dev-%d", seq%50)
				if m.Subject() != Subject(dev, partitions) {
					t.Fatalf("seq %d on %q; want %q", seq, m.Subject(), Subject(dev, partitions))
				}
				if m.Headers().Get(TopicHeader) == "" || m.Headers().Get(ArrivalHeader) == "" {
					t.Fatalf("seq %d: headers %v; want topic and arrival", seq, m.Headers())
				}
				counts[seq]++
				order = append(order, seq)
			}
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
		if n == 0 {
			t.Fatalf("stream read stalled after %d of %d messages", total, info.State.Msgs)
		}
	}
	return counts, total, order
}

// Environment of the bridge helper process (TestBridgeProcess).
const (
	envHelper     = "VIGIL_TEST_BRIDGE_HELPER"
	envBroker     = "VIGIL_TEST_BROKER_URL"
	envCA         = "VIGIL_TEST_BROKER_CA"
	envPassFile   = "VIGIL_TEST_BROKER_PASSWORD_FILE"
	envNATS       = "VIGIL_TEST_NATS_URL"
	envPartitions = "VIGIL_TEST_PARTITIONS"
)

// TestBridgeProcess is not a test: it is the bridge process that
// TestBridgeKilledNoLoss starts and kills with SIGKILL.
func TestBridgeProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process of TestBridgeKilledNoLoss")
	}
	cfg := mqtt.DefaultConfig()
	cfg.Broker, cfg.ClientID = os.Getenv(envBroker), "vigil-bridge"
	cfg.Username, cfg.PasswordFile, cfg.TLS.CAFile = "vigil", os.Getenv(envPassFile), os.Getenv(envCA)
	cfg.ReconnectBackoff = mqtt.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cfg.Subscriptions = []mqtt.Subscription{{Filter: "plant/#", QoS: 1}}
	partitions, _ := strconv.Atoi(os.Getenv(envPartitions))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := mqtt.NewSource(cfg, mqtt.SourceOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	nc, err := Connect(ConnConfig{URL: os.Getenv(envNATS)}, "vigil-bridge-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br, err := NewBridge(nc, BridgeConfig{Partitions: partitions, Logger: log, RetryMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
}

// storedReadings is the number of readings in the stream, packed or not,
// duplicates included.
func storedReadings(t *testing.T, js jetstream.JetStream, partitions int) int {
	t.Helper()
	counts, _, _ := streamSeqs(t, js, partitions)
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// TestBridgeKilledNoLoss: messages flow from a real Mosquitto through the
// bridge into a real JetStream stream; the bridge process is killed with
// SIGKILL in the middle (PubAcks outstanding, MQTT acknowledgements not
// flushed) and started again on the same persistent session. Every message
// the device published is in the stream at the end: none lost, since the
// bridge acknowledged to MQTT only what JetStream had stored. Duplicates
// (what was stored but not yet acknowledged at the kill) are allowed and
// counted.
func TestBridgeKilledNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Mosquitto and nats-server")
	}
	const n, partitions = 5000, 4
	srv, js := connect(t)
	if err := EnsureStream(t.Context(), js, Config{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	startProc := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBridgeProcess$", "-test.v")
		cmd.Env = append(os.Environ(), envHelper+"=1", envBroker+"="+b.URL(), envCA+"="+b.CAFile,
			envPassFile+"="+b.PasswordFile("vigil"), envNATS+"="+srv.URL(), envPartitions+"="+strconv.Itoa(partitions))
		cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	// The bridge's persistent session exists before the device publishes,
	// so the broker keeps every message for it.
	run := startBridge(t, b, srv.URL(), partitions, 0, time.Second)
	run.stop(t)
	first := startProc()
	dev := device(t, b)
	pubCtx, stopPub := context.WithTimeout(t.Context(), 2*time.Minute)
	defer stopPub()
	var wg sync.WaitGroup
	var pubErr error
	wg.Go(func() { pubErr = publishAll(pubCtx, dev, n, time.Millisecond) })

	// Kill the first bridge mid-stream, while it is publishing.
	deadline := time.Now().Add(time.Minute)
	for storedReadings(t, js, partitions) < n/3 {
		if time.Now().After(deadline) {
			t.Fatalf("the stream has %d readings after a minute", storedReadings(t, js, partitions))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	atKill := storedReadings(t, js, partitions)

	startProc()
	wg.Wait()
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	// Every message reaches the stream once the second bridge caught up.
	deadline = time.Now().Add(time.Minute)
	for {
		counts, total, _ := streamSeqs(t, js, partitions)
		if len(counts) == n {
			dups := 0
			for _, c := range counts {
				dups += c - 1
			}
			t.Logf("killed with %d readings in the stream; at the end %d stream messages (ticks included), %d distinct readings of %d published, %d duplicates",
				atKill, total, len(counts), n, dups)
			break
		}
		if time.Now().After(deadline) {
			var missing []int
			for i := range n {
				if counts[i] == 0 {
					missing = append(missing, i)
				}
			}
			t.Fatalf("%d of %d published messages missing from the stream (killed at %d stored): %v", len(missing), n, atKill, missing[:min(len(missing), 40)])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBridgeHoldsAcks: while JetStream refuses messages (the stream is
// full, discard new), the bridge acknowledges nothing it could not store
// and keeps retrying; once there is room, every message arrives, and a
// drained stop abandons nothing.
func TestBridgeHoldsAcks(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Mosquitto and nats-server")
	}
	const n, partitions = 600, 3
	srv, js := connect(t)
	ctx := t.Context()
	if err := EnsureStream(ctx, js, Config{Partitions: partitions, MaxBytes: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	run := startBridge(t, b, srv.URL(), partitions, 0, 10*time.Second)
	dev := device(t, b)
	if err := publishAll(ctx, dev, n, 0); err != nil {
		t.Fatal(err)
	}
	// The stream fills up; the bridge retries and acknowledges only what
	// was stored.
	deadline := time.Now().Add(30 * time.Second)
	for run.counter(`vigil_bridge_publish_retries_total`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the bridge never retried against a full stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	stored, acked := uint64(storedReadings(t, js, partitions)), run.counter(`vigil_bridge_acked_total`)
	if acked > stored || stored >= n {
		t.Fatalf("stream full with %d readings, bridge acknowledged %d of %d; want acknowledged <= stored < published", stored, acked, n)
	}
	t.Logf("full stream: %d stored, %d acknowledged, %d retries", stored, acked, run.counter(`vigil_bridge_publish_retries_total`))

	// Room again: everything arrives.
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.MaxBytes = -1
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for run.counter(`vigil_bridge_acked_total`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after the limit was lifted the bridge acknowledged %d of %d", run.counter(`vigil_bridge_acked_total`), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	run.stop(t)
	counts, _, _ := streamSeqs(t, js, partitions)
	if len(counts) != n {
		t.Fatalf("%d distinct messages in the stream; want %d", len(counts), n)
	}
	if got := run.counter(`vigil_bridge_abandoned_total`); got != 0 {
		t.Errorf("a drained stop abandoned %d messages", got)
	}
}

// TestBridgePacks: with Pack 8, the readings of a partition that arrive
// together (a backlog) share stream messages of at most 8, every reading is stored
// once, and each device's readings keep their order in the stream; with
// Pack 1 every reading is a stream message of its own, on its device's
// subject.
func TestBridgePacks(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Mosquitto and nats-server")
	}
	for _, pack := range []int{8, 1} {
		t.Run("pack="+strconv.Itoa(pack), func(t *testing.T) {
			const n, partitions = 2000, 3
			srv, js := connect(t)
			ctx := t.Context()
			if err := EnsureStream(ctx, js, Config{Partitions: partitions}); err != nil {
				t.Fatal(err)
			}
			b := mqtttest.Start(t, mqtttest.Options{})
			// The bridge's session exists, then it is away while the
			// device publishes: the broker delivers the backlog in
			// bursts, as after a restart, so batches hold many readings.
			startBridge(t, b, srv.URL(), partitions, pack, time.Second).stop(t)
			if err := publishAll(ctx, device(t, b), n, 0); err != nil {
				t.Fatal(err)
			}
			run := startBridge(t, b, srv.URL(), partitions, pack, 10*time.Second)
			deadline := time.Now().Add(30 * time.Second)
			for run.counter(`vigil_bridge_acked_total`) < n {
				if time.Now().After(deadline) {
					t.Fatalf("the bridge acknowledged %d of %d", run.counter(`vigil_bridge_acked_total`), n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			streamMsgs := run.counter(`vigil_bridge_stream_messages_total`)
			run.stop(t)
			counts, _, order := streamSeqs(t, js, partitions)
			if len(counts) != n || len(order) != n {
				t.Fatalf("%d distinct readings, %d in all, in the stream; want %d once each", len(counts), len(order), n)
			}
			last := map[int]int{}
			for _, seq := range order {
				dev := seq % 50
				if prev, ok := last[dev]; ok && seq < prev {
					t.Fatalf("device %d: reading %d stored after %d", dev, seq, prev)
				}
				last[dev] = seq
			}
			switch {
			case pack == 1 && streamMsgs != n:
				t.Errorf("pack 1: %d stream messages for %d readings; want one each", streamMsgs, n)
			case pack > 1 && (streamMsgs < uint64(n/pack) || streamMsgs > n/2):
				t.Errorf("pack %d: %d stream messages for %d readings arriving in bursts; want at most half as many as the readings and at least %d", pack, streamMsgs, n, n/pack)
			}
			t.Logf("pack %d: %d readings in %d stream messages", pack, n, streamMsgs)
		})
	}
}
