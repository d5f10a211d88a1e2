package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/syslog"
)

// syslogReceiver is a TCP syslog collector (octet counting) that records,
// for each alert, the time from its event time (the publish time of the
// reading that caused it) to its arrival.
type syslogReceiver struct {
	ln  net.Listener
	mu  sync.Mutex
	lat []time.Duration
}

func newSyslogReceiver(b *testing.B) *syslogReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := &syslogReceiver{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return r
}

func (r *syslogReceiver) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		lenStr, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(lenStr))
		if err != nil {
			return
		}
		msg := make([]byte, n)
		if _, err := io_ReadFull(br, msg); err != nil {
			return
		}
		now := time.Now()
		// event="<id>-<state>-<unix ns>-<severity>"
		s := string(msg)
		if !strings.Contains(s, `detector="status"`) {
			continue // only the status alerts the benchmark causes
		}
		i := strings.Index(s, `event="`)
		if i < 0 {
			continue
		}
		parts := strings.Split(s[i+7:i+7+strings.IndexByte(s[i+7:], '"')], "-")
		if len(parts) < 4 {
			continue
		}
		t, _ := strconv.ParseInt(parts[len(parts)-2], 10, 64)
		r.mu.Lock()
		r.lat = append(r.lat, now.Sub(time.Unix(0, t)))
		r.mu.Unlock()
	}
}

func io_ReadFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *syslogReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lat)
}

// BenchmarkLiveSyslogLatency: readings published to Mosquitto (TLS,
// password, ACL) at 10,000 messages/s for 3 s by 100 devices, every other
// reading of one device with status 2 from 0.2 s on (a status alert fires,
// the next reading resolves it: 280 alerts); "vigil run"'s pipeline (every detector), the journal fsynced per
// batch before the input is acknowledged, and a syslog output (CEF, RFC 5425
// octet counting over TCP) to a collector. Reported: publish → alert at the
// collector, p50/p99/p99.9, with the journal fsynced per batch (the default)
// and every 100 ms.
func BenchmarkLiveSyslogLatency(b *testing.B) {
	mqtttest.Require(b)
	br := mqtttest.Start(b, mqtttest.Options{})
	recv := newSyslogReceiver(b)
	for _, p := range []struct {
		name string
		sync time.Duration
	}{{"fsync=batch", 0}, {"fsync=100ms", 100 * time.Millisecond}} {
		b.Run(p.name, func(b *testing.B) { liveSyslog(b, br, recv, p.sync) })
	}
}

func liveSyslog(b *testing.B, br *mqtttest.Broker, recv *syslogReceiver, sync time.Duration) {
	const rate, n = 10_000, 30_000
	topic := "plant/bench/syslog"
	var lat []time.Duration
	for b.Loop() {
		recv.mu.Lock()
		recv.lat = recv.lat[:0]
		recv.mu.Unlock()
		stop := runLive(b, br, topic, recv.ln.Addr().String(), sync)
		alerts := publish(b, br, topic, n, rate)
		deadline := time.Now().Add(30 * time.Second)
		for recv.count() < alerts && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if got := recv.count(); got < alerts {
			b.Fatalf("the collector got %d alerts; want %d", got, alerts)
		}
		recv.mu.Lock()
		lat = slices.Clone(recv.lat)
		recv.mu.Unlock()
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
	b.ReportMetric(float64(len(lat)), "alerts")
}

// runLive starts the live pipeline as "vigil run" wires it, with one syslog
// output; stop drains it.
func runLive(b *testing.B, br *mqtttest.Broker, topic, collector string, sync time.Duration) (stop func()) {
	cfg := mqtt.DefaultConfig()
	cfg.Broker, cfg.ClientID, cfg.Username = br.URL(), "bench-live", "vigil"
	cfg.PasswordFile, cfg.TLS.CAFile = br.PasswordFile("vigil"), br.CAFile
	cfg.CleanStart = true
	cfg.Subscriptions = []mqtt.Subscription{{Filter: topic, QoS: 1}}
	src, err := mqtt.NewSource(cfg, mqtt.SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Start(ctx); err != nil {
		b.Fatal(err)
	}
	meta := output.Meta{Vendor: "Vigil", Product: "Vigil", Version: "bench", Hostname: "bench"}
	cef, _ := format.ByName("cef", meta)
	out, err := syslog.New(syslog.Config{Address: collector, Network: syslog.NetworkTCP}, cef, meta)
	if err != nil {
		b.Fatal(err)
	}
	fo, err := output.New(output.Config{
		Journal: journal.Config{Dir: filepath.Join(b.TempDir(), "journal"), SyncEvery: sync},
		Outputs: []output.Spec{{Name: "siem", Output: out}},
	})
	if err != nil {
		b.Fatal(err)
	}
	fo.Start(ctx)
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	pl, err := pipeline.New(pipeline.Config{
		Decoder:      pipeline.DefaultDecoderConfig(),
		NewProcessor: func(int) pipeline.Processor { return set.NewEngine() },
		Tick:         time.Second,
		Fleet:        set.FleetFunc(),
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx, src, fo) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		fo.Close()
		src.Close()
	}
}

// publish sends n readings at rate per second from 100 devices, each
// 100th with status 2, and returns the number of alerts that causes.
func publish(b *testing.B, br *mqtttest.Broker, topic string, n, rate int) (alerts int) {
	cfg := mqtt.DefaultConfig()
	cfg.Broker, cfg.ClientID, cfg.Username = br.URL(), "bench-live-device", "device"
	cfg.PasswordFile, cfg.TLS.CAFile = br.PasswordFile("device"), br.CAFile
	pub, err := mqtt.NewPublisher(cfg, mqtt.PublisherOptions{ClientID: "bench-live-pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pub.Start(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 1000)
	for sent := 0; sent < n; {
		<-tick.C
		for range rate / 1000 {
			status := 0
			if sent%200 == 50 && sent >= 2000 {
				status = 2
				alerts += 2 // firing, and resolved by the device's next reading
			}
			payload := fmt.Appendf(nil, `{"timestamp":"%s","node_id":"dev-%03d","data":{"p":%.2f,"t":%.2f,"v":%.2f},"status":%d}`,
				time.Now().UTC().Format(time.RFC3339Nano), sent%100, 4+rng.NormFloat64()*0.06, 60+rng.NormFloat64()*0.25, 2+rng.NormFloat64()*0.08, status)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_ = pub.Publish(ctx, topic, payload, 1)
			})
			sent++
		}
	}
	wg.Wait()
	return alerts
}
