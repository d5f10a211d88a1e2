package mqtt

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// The benchmarks run against a local Mosquitto (plaintext loopback unless
// noted), the clients sharing the CPUs with the broker. They measure in the
// same run what they compare; quote ratios, not absolute rates.

func benchConfig(b *mqtttest.Broker, user, clientID string) Config {
	cfg := testConfig(b, user, clientID)
	cfg.Broker = b.PlainURL()
	cfg.TLS = TLSConfig{}
	return cfg
}

// benchPublisher publishes as fast as the broker acknowledges, through this
// package's buffered connection, with many messages in flight.
type benchPublisher struct {
	l *link
}

func newBenchPublisher(tb testing.TB, b *mqtttest.Broker) *benchPublisher {
	tb.Helper()
	l, err := newLink("bench", "bench-pub", benchConfig(b, "device", "bench-pub"), nil, nil, linkHooks{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.close() })
	return &benchPublisher{l: l}
}

// publish sends n QoS 1 messages of size bytes with workers in flight and
// waits for all acknowledgements. payload, if set, fills in each message.
func (p *benchPublisher) publish(tb testing.TB, topic string, n, size, workers int) {
	tb.Helper()
	cm := p.l.manager()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, size)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				binary.BigEndian.PutUint64(buf, uint64(i))
				pl := slices.Clone(buf)
				if _, err := cm.Publish(context.Background(), &paho.Publish{QoS: 1, Topic: topic, Payload: pl}); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// bareSubscriber is paho.golang as it is: autopaho, its own net.Conn,
// automatic acknowledgements from the callback.
func bareSubscriber(tb testing.TB, b *mqtttest.Broker, clientID, filter string, onPublish func(paho.PublishReceived) (bool, error)) (*autopaho.ConnectionManager, context.CancelFunc) {
	tb.Helper()
	u, _ := url.Parse(b.PlainURL())
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:            []*url.URL{u},
		KeepAlive:             30,
		SessionExpiryInterval: 3600,
		ConnectUsername:       "vigil",
		ConnectPassword:       []byte(b.Password("vigil")),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){onPublish},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return cm, func() {
		dctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = cm.Disconnect(dctx)
		cancel()
	}
}

// BenchmarkIngest measures the highest loss-free QoS 1 rate of the Source
// and of a bare paho.golang subscriber, two ways:
//
//   - backlog: each drains n messages queued in its persistent session; the
//     broker delivers as fast as the subscriber acknowledges, so this is the
//     subscriber's ceiling (nothing is dropped: max_queued_messages 100000);
//   - live: a publisher sends n messages with 256 in flight while the
//     subscriber is connected; the rate is n over the time to the last
//     delivery, with publisher, broker and subscriber sharing the CPUs.
//
// Every message is checked to arrive (loss-free). It reports the rates and
// the Source/bare ratios.
func BenchmarkIngest(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{Plaintext: true})
	pub := newBenchPublisher(b, br)
	const n, size = 50_000, 120
	var src, bare, srcLive, bareLive float64
	for b.Loop() {
		bare = drainBare(b, br, pub, n, size, false)
		src = drainSource(b, br, pub, n, size, false)
		bareLive = drainBare(b, br, pub, n, size, true)
		srcLive = drainSource(b, br, pub, n, size, true)
	}
	b.ReportMetric(src, "source-msgs/s")
	b.ReportMetric(bare, "bare-msgs/s")
	b.ReportMetric(src/bare, "source/bare")
	b.ReportMetric(srcLive, "source-live-msgs/s")
	b.ReportMetric(bareLive, "bare-live-msgs/s")
	b.ReportMetric(srcLive/bareLive, "live-source/bare")
	b.ReportMetric(0, "ns/op")
}

func drainSource(b *testing.B, br *mqtttest.Broker, pub *benchPublisher, n, size int, live bool) float64 {
	topic := "plant/bench/source"
	cfg := benchConfig(br, "vigil", "bench-source")
	cfg.Subscriptions = []Subscription{{Filter: topic, QoS: 1}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !live {
		// Create the session and subscription, leave, and queue the backlog.
		src, err := NewSource(cfg, SourceOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Start(ctx); err != nil {
			b.Fatal(err)
		}
		src.Close()
		pub.publish(b, topic, n, size, 256)
	}

	src, err := NewSource(cfg, SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var start time.Time
	if live {
		if err := src.Start(ctx); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		go pub.publish(b, topic, n, size, 256)
	} else {
		start = time.Now() // includes connecting
	}
	seen := make([]bool, n)
	got := 0
	var fb pipeline.FrameBatch
	for got < n {
		fb.Reset()
		if err := src.ReadBatch(ctx, &fb, 512); err != nil {
			b.Fatalf("after %d of %d: %v", got, n, err)
		}
		for i := range fb.Frames {
			k := binary.BigEndian.Uint64(fb.Payload(&fb.Frames[i]))
			if !seen[k] {
				seen[k] = true
				got++
			}
		}
		fb.Ack() // what the pipeline does once the batch is processed
	}
	return float64(n) / time.Since(start).Seconds()
}

func drainBare(b *testing.B, br *mqtttest.Broker, pub *benchPublisher, n, size int, live bool) float64 {
	topic := "plant/bench/bare"
	var got atomic.Int64
	seen := make([]atomic.Bool, n)
	done := make(chan struct{})
	on := func(pr paho.PublishReceived) (bool, error) {
		k := binary.BigEndian.Uint64(pr.Packet.Payload)
		if k < uint64(n) && !seen[k].Swap(true) && got.Add(1) == int64(n) {
			close(done)
		}
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !live {
		cm, stop := bareSubscriber(b, br, "bench-bare", topic, func(paho.PublishReceived) (bool, error) { return true, nil })
		if err := cm.AwaitConnection(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the subscription
		stop()
		pub.publish(b, topic, n, size, 256)
	}

	start := time.Now() // backlog: includes connecting
	cm, stop := bareSubscriber(b, br, "bench-bare", topic, on)
	defer stop()
	if live {
		if err := cm.AwaitConnection(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the subscription
		start = time.Now()
		go pub.publish(b, topic, n, size, 256)
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("bare subscriber: %d of %d", got.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkLatency publishes at about 10,000 QoS 1 messages/s for two
// seconds and reports the publish→receive latency percentiles seen by the
// Source (when ReadBatch returns them) and by a bare paho subscriber.
func BenchmarkLatency(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{Plaintext: true})
	pub := newBenchPublisher(b, br)
	const rate, seconds = 10_000, 2
	for _, kind := range []string{"source", "bare"} {
		b.Run(kind, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				lat = measureLatency(b, br, pub, kind, rate*seconds, rate)
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p99.9-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func measureLatency(b *testing.B, br *mqtttest.Broker, pub *benchPublisher, kind string, n, rate int) []time.Duration {
	topic := "plant/latency/" + kind
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	record := func(payload []byte, now time.Time) {
		sent := int64(binary.BigEndian.Uint64(payload[8:]))
		mu.Lock()
		lat = append(lat, now.Sub(time.Unix(0, sent)))
		mu.Unlock()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(lat)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch kind {
	case "source":
		cfg := benchConfig(br, "vigil", "latency-source")
		cfg.CleanStart = true
		cfg.Subscriptions = []Subscription{{Filter: topic, QoS: 1}}
		src, err := NewSource(cfg, SourceOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		if err := src.Start(ctx); err != nil {
			b.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			var fb pipeline.FrameBatch
			for {
				fb.Reset()
				if err := src.ReadBatch(rctx, &fb, 512); err != nil {
					return
				}
				now := time.Now()
				for i := range fb.Frames {
					record(fb.Payload(&fb.Frames[i]), now)
				}
				fb.Ack()
			}
		}()
	case "bare":
		cm, stop := bareSubscriber(b, br, "latency-bare", topic, func(pr paho.PublishReceived) (bool, error) {
			record(pr.Packet.Payload, time.Now())
			return true, nil
		})
		defer stop()
		if err := cm.AwaitConnection(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the subscription
	}

	// Publish in 1 ms ticks without waiting for each acknowledgement.
	cm := pub.l.manager()
	perTick := rate / 1000
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 1000)
	for sent := 0; sent < n; {
		<-tick.C
		for range perTick {
			payload := make([]byte, 120)
			binary.BigEndian.PutUint64(payload, uint64(sent))
			binary.BigEndian.PutUint64(payload[8:], uint64(time.Now().UnixNano()))
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_, _ = cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
			})
			sent++
		}
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := count(); got < n {
		b.Fatalf("%s received %d of %d", kind, got, n)
	}
	return lat
}

// BenchmarkTLSConnect measures TCP + TLS (client certificate) + CONNECT/CONNACK
// with a full handshake and with a resumed session, for TLS 1.3 and 1.2:
// the median of 50 connects each.
func BenchmarkTLSConnect(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{RequireClientCert: true})
	cfg := testConfig(br, "vigil", "bench-tls")
	cfg.TLS.CertFile, cfg.TLS.KeyFile = br.ClientCertFile, br.ClientKeyFile
	for _, v := range []struct {
		name string
		max  uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		b.Run(v.name, func(b *testing.B) {
			var full, resumed time.Duration
			for b.Loop() {
				full = medianConnect(b, &cfg, v.max, false)
				resumed = medianConnect(b, &cfg, v.max, true)
			}
			b.ReportMetric(float64(full)/1e6, "full-ms")
			b.ReportMetric(float64(resumed)/1e6, "resumed-ms")
			b.ReportMetric(float64(resumed)/float64(full), "resumed/full")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func medianConnect(b *testing.B, cfg *Config, maxVersion uint16, resume bool) time.Duration {
	const connects = 50
	bk, err := parseBroker(cfg.Broker)
	if err != nil {
		b.Fatal(err)
	}
	var requested bool
	base, err := cfg.tlsConfig(bk.host, nil, &requested) // files read once, outside the timing
	if err != nil {
		b.Fatal(err)
	}
	base.MaxVersion = maxVersion
	pw, err := cfg.password()
	if err != nil {
		b.Fatal(err)
	}
	cache := tls.NewLRUClientSessionCache(64)
	var times []time.Duration
	for i := range connects + 1 {
		tc := base.Clone()
		if resume {
			tc.ClientSessionCache = cache
		}
		start := time.Now()
		raw, err := net.Dial("tcp", bk.addr)
		if err != nil {
			b.Fatal(err)
		}
		tconn := tls.Client(raw, tc)
		if err := tconn.Handshake(); err != nil {
			b.Fatal(err)
		}
		if tconn.ConnectionState().DidResume != (resume && i > 0) {
			b.Fatalf("connect %d: resumed %v", i, tconn.ConnectionState().DidResume)
		}
		conn := newBufConn(tconn)
		cli := paho.NewClient(paho.ClientConfig{ClientID: fmt.Sprintf("bench-tls-%d", i), Conn: conn})
		if _, err := cli.Connect(context.Background(), &paho.Connect{ClientID: fmt.Sprintf("bench-tls-%d", i), CleanStart: true,
			KeepAlive: 30, UsernameFlag: true, Username: cfg.Username, PasswordFlag: true, Password: pw}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		_ = cli.Disconnect(&paho.Disconnect{})
		if i > 0 || !resume { // the first resumable connect primes the cache
			times = append(times, took)
		}
	}
	slices.Sort(times)
	return times[len(times)/2]
}
