package mqtt

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// These benchmarks measure Vigil end to end through Mosquitto: the Source,
// decoding, every detector and the alert lifecycle, with each message
// acknowledged only after its batch was processed, as "vigil run" does.

// timedTelemetry is a device message whose timestamp is the publish time, so a
// processor can measure publish → decision.
func timedTelemetry(rng *rand.Rand, i int) []byte {
	return fmt.Appendf(nil, `{"timestamp":"%s","node_id":"dev-%03d","data":{"p":%.2f,"t":%.2f,"v":%.2f},"status":0}`,
		time.Now().UTC().Format(time.RFC3339Nano), i%100, 4+rng.NormFloat64()*0.06, 60+rng.NormFloat64()*0.25, 2+rng.NormFloat64()*0.08)
}

// timedEngine wraps a detectors.Engine, counting readings and recording the
// time from publish (the reading's event time) to the detection decision.
type timedEngine struct {
	e   *detectors.Engine
	n   *atomic.Int64
	lat []time.Duration
}

func (t *timedEngine) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	out = t.e.Process(r, out)
	t.lat = append(t.lat, time.Since(time.Unix(0, r.Time)))
	t.n.Add(1)
	return out
}

func (t *timedEngine) Devices() int { return t.e.Devices() }

type discardSink struct{}

func (discardSink) Write(context.Context, []pipeline.Alert) error { return nil }
func (discardSink) Close() error                                  { return nil }

// runVigil starts the pipeline on a Source and returns the processed-readings
// counter, a function that stops it and returns the latencies, and the
// source (started).
func runVigil(b *testing.B, br *mqtttest.Broker, topic string, clean bool) (*atomic.Int64, func() []time.Duration) {
	cfg := benchConfig(br, "vigil", "bench-vigil")
	cfg.Subscriptions = []Subscription{{Filter: topic, QoS: 1}}
	cfg.CleanStart = clean
	src, err := NewSource(cfg, SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Start(ctx); err != nil {
		b.Fatal(err)
	}
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	var mu sync.Mutex
	var engines []*timedEngine
	pl, err := pipeline.New(pipeline.Config{NewProcessor: func(int) pipeline.Processor {
		t := &timedEngine{e: set.NewEngine(), n: &n}
		mu.Lock()
		engines = append(engines, t)
		mu.Unlock()
		return t
	}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx, src, discardSink{}) }()
	return &n, func() []time.Duration {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		src.Close()
		var all []time.Duration
		for _, t := range engines {
			all = append(all, t.lat...)
		}
		return all
	}
}

// publishTelemetry publishes n device messages at QoS 1 with 64 in flight, at
// most rate per second (0: as fast as possible).
func (p *benchPublisher) publishTelemetry(tb testing.TB, topic string, n, rate int) {
	cm := p.l.manager()
	jobs := make(chan int, 1024)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range jobs {
				if _, err := cm.Publish(context.Background(), &paho.Publish{QoS: 1, Topic: topic, Payload: timedTelemetry(rng, i)}); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

func waitProcessed(b *testing.B, n *atomic.Int64, want int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("processed %d of %d messages", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkVigilIngest: the rate at which Vigil (source + pipeline + all
// detectors, acking after processing) drains a QoS 1 backlog from its
// persistent session, and keeps up with a live publisher, loss-free; compare
// with BenchmarkIngest's bare paho subscriber from the same broker.
func BenchmarkVigilIngest(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{Plaintext: true})
	pub := newBenchPublisher(b, br)
	const n = 50_000
	topic := "plant/bench/vigil"
	var backlog, live float64
	for b.Loop() {
		// Backlog: create the session, leave, queue n messages, come back.
		_, stop := runVigil(b, br, topic, true)
		stop()
		pub.publishTelemetry(b, topic, n, 0)
		start := time.Now()
		count, stop := runVigil(b, br, topic, false)
		waitProcessed(b, count, n, time.Minute)
		backlog = n / time.Since(start).Seconds()
		stop()

		// Live: publisher and Vigil share the CPUs with the broker.
		count, stop = runVigil(b, br, topic, true)
		start = time.Now()
		pub.publishTelemetry(b, topic, n, 0)
		waitProcessed(b, count, n, time.Minute)
		live = n / time.Since(start).Seconds()
		stop()
	}
	b.ReportMetric(backlog, "backlog-msgs/s")
	b.ReportMetric(live, "live-msgs/s")
}

// BenchmarkVigilLatency: publish → detection decision through Mosquitto at
// 10,000 messages/s for 3 s (QoS 1, acks after processing).
func BenchmarkVigilLatency(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{Plaintext: true})
	pub := newBenchPublisher(b, br)
	const rate, n = 10_000, 30_000
	topic := "plant/bench/latency"
	var lat []time.Duration
	for b.Loop() {
		count, stop := runVigil(b, br, topic, true)
		pub.publishTelemetry(b, topic, n, rate)
		waitProcessed(b, count, n, time.Minute)
		lat = stop()
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
}

var _ io.Closer = discardSink{}
