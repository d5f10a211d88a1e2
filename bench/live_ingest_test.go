package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
	"github.com/vigil-iot/vigil/pipeline/output"
)

var (
	liveRates   = flag.String("live.rates", "15000,50000,100000,150000,200000,250000,300000", "BenchmarkLiveIngest: offered rates (msgs/s), ascending")
	liveSeconds = flag.Float64("live.seconds", 4, "BenchmarkLiveIngest: seconds of publishing per step")
	liveKinds   = flag.String("live.kinds", "raw,paho,vigil", "BenchmarkLiveIngest: subscribers to measure (raw, paho, vigil)")
	liveQoS     = flag.String("live.qos", "0,1", "BenchmarkLiveIngest: QoS levels")
	liveLinger  = flag.Duration("live.linger", mqtt.DefaultLinger, "BenchmarkLiveIngest: the source's linger (source.linger)")
	liveFake    = flag.Bool("live.fake", false, "BenchmarkLiveIngest: the child process plays the broker (no Mosquitto in the path): one connection's ceiling")
	liveProfile = flag.String("live.profile", "", "BenchmarkLiveIngest: write CPU, block and mutex profiles of the Vigil steps to this prefix")
)

// BenchmarkLiveIngest is issue 15's measurement. A child process (this test
// binary, TestLivePublisherChild) publishes 1,000 devices' ~115-byte
// messages to a fresh Mosquitto at a fixed rate, in 1 ms ticks, for
// -live.seconds; at each rate of -live.rates, one after the other in the same
// run, three subscribers receive them on a new connection:
//
//   - raw: mqtttest.RawClient, which only counts (and acknowledges) packets:
//     what the broker can deliver to one connection;
//   - paho: a bare paho.golang client counting in its callback;
//   - vigil: "vigil run"'s live path: mqtt.Source, the pipeline with every
//     detector, the journal as sink, acknowledging after the batch.
//
// A step is loss-free when every published message was received (vigil:
// judged), no later than 1 s after the last one was published (a subscriber
// 25 % too slow falls 1 s behind in 4 s). Reported
// per QoS: each subscriber's highest loss-free rate, the ratios to raw and
// to paho, and Vigil's CPU per message (user+system time of this process,
// which runs only Vigil during its steps) at each rate, with its
// publish → decision p99.
func BenchmarkLiveIngest(b *testing.B) {
	mqtttest.Require(b)
	rates := parseInts(b, *liveRates)
	kinds := strings.Split(*liveKinds, ",")
	for _, q := range parseInts(b, *liveQoS) {
		b.Run(fmt.Sprintf("qos=%d", q), func(b *testing.B) {
			for b.Loop() {
				liveIngest(b, byte(q), rates, kinds)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func liveIngest(b *testing.B, qos byte, rates []int, kinds []string) {
	br := mqtttest.Start(b, mqtttest.Options{Plaintext: true})
	limit := map[string]int{}
	failed := map[string]bool{}
	for _, rate := range rates {
		for _, kind := range kinds {
			if failed[kind] {
				continue
			}
			res := liveStep(b, br, kind, qos, rate)
			b.Logf("qos=%d rate=%d %-5s sent=%d got=%d dropped=%d lag=%v cpu=%.2fµs/msg p50=%.2fms p99=%.2fms broker-cpu=%.0f%% load=%s",
				qos, rate, kind, res.sent, res.got, res.dropped, res.lag.Round(time.Millisecond), res.cpuPerMsg(),
				res.p50, res.p99, res.brokerCPU*100, loadAvg())
			if !res.lossFree() {
				failed[kind] = true
				continue
			}
			limit[kind] = rate
			if kind == "vigil" {
				if rate == 15000 || rate == 50000 {
					b.ReportMetric(res.cpuPerMsg(), fmt.Sprintf("cpu-µs/msg@%dk", rate/1000))
					b.ReportMetric(res.p99, fmt.Sprintf("p99-ms@%dk", rate/1000))
				}
				b.ReportMetric(res.cpuPerMsg(), "cpu-µs/msg@limit")
			}
		}
	}
	for _, kind := range kinds {
		b.ReportMetric(float64(limit[kind]), kind+"-msgs/s")
	}
	if limit["raw"] > 0 {
		b.ReportMetric(float64(limit["vigil"])/float64(limit["raw"]), "vigil/raw")
	}
	if limit["paho"] > 0 {
		b.ReportMetric(float64(limit["vigil"])/float64(limit["paho"]), "vigil/paho")
	}
}

// stepResult is one subscriber at one rate.
type stepResult struct {
	sent, got, dropped int64
	lag                time.Duration    // from the end of publishing to the last message
	cpu                time.Duration    // this process, during the step
	brokerCPU          float64          // Mosquitto's share of one core during the step
	p50, p99           float64          // publish → decision (vigil) or receipt, ms
	injected           int64            // overpressure spikes published
	alerts             map[string]int64 // vigil: firing alerts by detector
}

func (r stepResult) lossFree() bool {
	return r.got >= r.sent && r.dropped == 0 && r.lag <= time.Second
}

func (r stepResult) cpuPerMsg() float64 {
	if r.got == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.got)
}

// subscriber is a receiver under test: count is what it has received
// (vigil: judged), stop ends it and returns the latencies.
type subscriber struct {
	count   func() int64
	dropped func() int64
	alerts  func() map[string]int64 // firing alerts by detector (vigil)
	lat     *latHist
	stop    func()
}

func liveStep(b *testing.B, br *mqtttest.Broker, kind string, qos byte, rate int) stepResult {
	prefix := fmt.Sprintf("plant/%s%d", kind, rate)
	addr := br.PlainAddr()
	var pub *publisher
	if *liveFake {
		pub = startPublisher(b, br, "serve", prefix, qos, rate)
		addr = pub.addr
	}
	var sub subscriber
	switch kind {
	case "raw":
		sub = rawSubscriber(b, br, addr, prefix, qos)
	case "paho":
		sub = pahoSubscriber(b, br, addr, prefix, qos)
	case "vigil":
		sub = vigilSubscriber(b, br, addr, prefix, qos)
	default:
		b.Fatalf("unknown subscriber %q", kind)
	}
	var stopProfile func()
	if kind == "vigil" && *liveProfile != "" {
		stopProfile = startProfiles(b, fmt.Sprintf("%s-qos%d-%d", *liveProfile, qos, rate))
	}
	cpu0, bcpu0, t0 := cpuTime(), procCPU(br.Pid()), time.Now()
	if pub == nil {
		pub = startPublisher(b, br, addr, prefix, qos, rate)
	}
	sent, end := pub.wait(b)
	// Wait for the rest, up to 3 s without progress.
	last, lastAt := sub.count(), time.Now()
	for sub.count() < sent {
		time.Sleep(2 * time.Millisecond)
		if n := sub.count(); n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > 3*time.Second {
			break
		}
	}
	done := time.Now()
	res := stepResult{sent: sent, got: sub.count(), cpu: cpuTime() - cpu0, lag: max(done.Sub(end), 0)}
	if res.got < sent {
		res.lag = time.Hour
	}
	res.brokerCPU = (procCPU(br.Pid()) - bcpu0).Seconds() / done.Sub(t0).Seconds()
	if stopProfile != nil {
		stopProfile()
	}
	sub.stop()
	if sub.dropped != nil {
		res.dropped = sub.dropped()
	}
	if sub.lat != nil {
		res.p50, res.p99 = sub.lat.quantile(0.5), sub.lat.quantile(0.99)
	}
	res.injected = pub.injected
	if sub.alerts != nil {
		res.alerts = sub.alerts()
		b.Logf("%s QoS %d at %d msgs/s: %d overpressure spikes injected; firing alerts by cause %v", kind, qos, rate, res.injected, res.alerts)
	}
	return res
}

// publisher is a running TestLivePublisherChild.
type publisher struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	addr string // its listening address, when it plays the broker
	qos  byte
	// injected is the number of overpressure spikes it published.
	injected int64
}

// The publisher injects a one-message overpressure spike every spikeEvery
// messages once every device has sent spikeAfter (past the 30 samples the
// warm-up check needs); the Vigil subscriber counts its alerts by cause.
const spikeEvery, spikeAfter = 997, 40

// startPublisher starts TestLivePublisherChild publishing to addr, or, with
// addr "serve", playing the broker for one subscriber.
func startPublisher(b *testing.B, br *mqtttest.Broker, addr, prefix string, qos byte, rate int) *publisher {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLivePublisherChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VIGIL_LIVE_PUBLISH="+strings.Join([]string{
		addr, br.Password("device"), prefix, strconv.Itoa(int(qos)), strconv.Itoa(rate),
		strconv.FormatFloat(*liveSeconds, 'f', -1, 64)}, " "))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &publisher{cmd: cmd, out: bufio.NewScanner(stdout), qos: qos}
	if addr == "serve" {
		for p.out.Scan() {
			if a, ok := strings.CutPrefix(p.out.Text(), "listening "); ok {
				p.addr = a
				break
			}
		}
		if p.addr == "" {
			b.Fatal("the publisher did not listen")
		}
	}
	return p
}

// wait returns the messages published and when the publisher finished.
func (p *publisher) wait(b *testing.B) (int64, time.Time) {
	var sent, acked, behind, injected, maxLate int64 = -1, -1, 0, 0, 0
	var said []string
	for p.out.Scan() {
		line := p.out.Text()
		said = append(said, line)
		if s, ok := strings.CutPrefix(line, "published "); ok {
			if _, err := fmt.Sscan(s, &sent, &acked, &behind, &injected, &maxLate); err != nil {
				b.Fatal(err)
			}
		}
	}
	// A publisher held back (TCP backpressure: the subscriber or the
	// broker did not keep up) finished late: count that as lag too.
	end := time.Now().Add(-time.Duration(behind) * time.Millisecond)
	if err := p.cmd.Wait(); err != nil || sent < 0 {
		b.Fatalf("publisher: %v\n%s", err, strings.Join(said, "\n"))
	}
	if acked != sent {
		b.Logf("the broker acknowledged %d of %d QoS %d messages", acked, sent, p.qos)
	}
	if maxLate >= 5 {
		// What it sent late arrived in bursts, its timestamps on time.
		b.Logf("the publisher fell up to %d ms behind its 1 ms schedule (%d ms at the end)", maxLate, behind)
	}
	p.injected = injected
	return sent, end
}

// TestLivePublisherChild is BenchmarkLiveIngest's publisher; it skips unless
// run by it. 1,000 devices publish in turn to <prefix>/dev-NNNN, rate/1000
// messages every millisecond (each tick's messages in one write, their
// timestamp the tick's time), each ~115 bytes.
func TestLivePublisherChild(t *testing.T) {
	env := os.Getenv("VIGIL_LIVE_PUBLISH")
	if env == "" {
		t.Skip("run by BenchmarkLiveIngest")
	}
	var addr, password, prefix string
	var qos, rate int
	var seconds float64
	if _, err := fmt.Sscan(env, &addr, &password, &prefix, &qos, &rate, &seconds); err != nil {
		t.Fatal(err)
	}
	var c *mqtttest.RawClient
	if addr == "serve" {
		c = serveOne(t)
		qos = 0 // the subscriber's acknowledgements are read and dropped
	} else {
		var err error
		if c, err = mqtttest.DialRaw(addr, "bench-publisher", "device", password, 4096); err != nil {
			t.Fatal(err)
		}
		if qos > 0 {
			go c.Receive(nil) // PUBACKs
		}
	}
	defer c.Close()
	const devices = 1000
	topics := make([]string, devices)
	for i := range topics {
		topics[i] = fmt.Sprintf("%s/dev-%04d", prefix, i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]string, 4096)
	for i := range data {
		data[i] = fmt.Sprintf(`"data":{"p":%.2f,"t":%.2f,"v":%.2f},"status":0}`,
			4+rng.NormFloat64()*0.06, 60+rng.NormFloat64()*0.25, 2+rng.NormFloat64()*0.08)
	}
	perTick := rate / 1000
	ticks := int(seconds * 1000)
	var buf []byte
	sent, injected := 0, 0
	start := time.Now()
	var maxLate time.Duration // the most the publisher fell behind its schedule
	for tick := range ticks {
		if d := time.Until(start.Add(time.Duration(tick) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		} else {
			maxLate = max(maxLate, -d)
		}
		// Stamped with the tick's scheduled time, as a device stamps a
		// measurement when it takes it: a publisher that falls behind
		// sends late, in bursts, but its devices' clocks keep their pace
		// (stamped when sent, the ticks caught up on bunched together and
		// read as devices running at twice their rate).
		ts := start.Add(time.Duration(tick) * time.Millisecond).UTC().Format("2006-01-02T15:04:05.000000Z")
		for range perTick {
			dev := sent % devices
			buf = append(buf[:0], `{"timestamp":"`...)
			buf = append(buf, ts...)
			buf = append(buf, `","node_id":"dev-`...)
			buf = append(buf, topics[dev][len(topics[dev])-4:]...)
			buf = append(buf, `",`...)
			if sent%spikeEvery == spikeEvery/2 && sent/devices >= spikeAfter {
				// An overpressure spike: +2 bar (~33 σ) on one message.
				buf = append(buf, `"data":{"p":6.00,`...)
				buf = append(buf, data[sent%len(data)][len(`"data":{"p":4.00,`):]...)
				injected++
			} else {
				buf = append(buf, data[sent%len(data)]...)
			}
			if err := c.Publish(topics[dev], buf, byte(qos)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if qos > 0 {
		for c.Acked() < int64(sent) && time.Since(start) < time.Duration(seconds*float64(time.Second))+10*time.Second {
			time.Sleep(time.Millisecond)
		}
	}
	acked := int64(sent)
	if qos > 0 {
		acked = c.Acked()
	}
	behind := time.Since(start) - time.Duration(seconds*float64(time.Second))
	fmt.Printf("published %d %d %d %d %d\n", sent, acked, behind.Milliseconds(), injected, maxLate.Milliseconds())
}

// serveOne plays the broker for one subscriber: it accepts a connection,
// answers its CONNECT and SUBSCRIBE, and then reads and drops what the
// client sends.
func serveOne(t *testing.T) *mqtttest.RawClient {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fmt.Printf("listening %s\n", ln.Addr())
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := mqtttest.NewRawConn(conn)
	for {
		flags, body, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if flags>>4 == 1 { // CONNECT
			_, _ = conn.Write([]byte{0x20, 3, 0, 0, 0})
		}
		if flags>>4 == 8 { // SUBSCRIBE: granted QoS 0
			_, _ = conn.Write([]byte{0x90, 4, body[0], body[1], 0, 0})
			break
		}
	}
	go func() {
		for {
			if _, _, err := c.ReadPacket(); err != nil {
				return
			}
		}
	}()
	return c
}

func rawSubscriber(b *testing.B, br *mqtttest.Broker, addr, prefix string, qos byte) subscriber {
	c, err := mqtttest.DialRaw(addr, "bench-raw", "vigil", br.Password("vigil"), 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Subscribe(prefix+"/#", qos); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	lat := &latHist{}
	go func() {
		defer close(done)
		_ = c.Receive(func(_, payload []byte) {
			n.Add(1)
			// {"timestamp":"2006-01-02T15:04:05.000000Z",…
			if len(payload) > 41 {
				if t, err := time.Parse(time.RFC3339Nano, string(payload[14:41])); err == nil {
					lat.record(time.Since(t))
				}
			}
		})
	}()
	return subscriber{count: n.Load, lat: lat, stop: func() { c.Close(); <-done }}
}

func pahoSubscriber(b *testing.B, br *mqtttest.Broker, addr, prefix string, qos byte) subscriber {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	cli := paho.NewClient(paho.ClientConfig{
		ClientID: "bench-paho",
		Conn:     conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) {
			n.Add(1)
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Connect(ctx, &paho.Connect{ClientID: "bench-paho", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "vigil", PasswordFlag: true, Password: []byte(br.Password("vigil"))}); err != nil {
		b.Fatal(err)
	}
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: prefix + "/#", QoS: qos}}}); err != nil {
		b.Fatal(err)
	}
	return subscriber{count: n.Load, stop: func() { _ = cli.Disconnect(&paho.Disconnect{}) }}
}

// vigilSubscriber runs the live path as "vigil run" wires it: the source
// (defaults: 1024 in flight, 8192 QoS 0 messages queued), the pipeline
// with every detector, ticks and the fleet judge, and the journal as sink,
// fsynced per batch with alerts.
func vigilSubscriber(b *testing.B, br *mqtttest.Broker, addr, prefix string, qos byte) subscriber {
	cfg := mqtt.DefaultConfig()
	cfg.Broker, cfg.ClientID, cfg.Username = "mqtt://"+addr, "bench-vigil", "vigil"
	cfg.PasswordFile = br.PasswordFile("vigil")
	cfg.CleanStart = true
	cfg.Subscriptions = []mqtt.Subscription{{Filter: prefix + "/#", QoS: qos}}
	ms := metrics.NewSet()
	src, err := mqtt.NewSource(cfg, mqtt.SourceOptions{Metrics: ms, Linger: *liveLinger, MaxPacketSize: mqtt.PacketSizeFor(pipeline.DefaultDecoderConfig().MaxPayload)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Start(ctx); err != nil {
		b.Fatal(err)
	}
	fo, err := output.New(output.Config{Journal: journal.Config{Dir: filepath.Join(b.TempDir(), "journal")}})
	if err != nil {
		b.Fatal(err)
	}
	fo.Start(ctx)
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var taps []*latTap
	pl, err := pipeline.New(pipeline.Config{
		Decoder:      pipeline.DefaultDecoderConfig(),
		NewProcessor: func(int) pipeline.Processor { return set.NewEngine() },
		Taps: func(int) []pipeline.Tap {
			t := &latTap{}
			mu.Lock()
			taps = append(taps, t)
			mu.Unlock()
			return []pipeline.Tap{t}
		},
		Tick:    time.Second,
		Fleet:   set.FleetFunc(),
		Metrics: ms,
	})
	if err != nil {
		b.Fatal(err)
	}
	cs := &causeSink{Sink: fo, by: map[string]int64{}}
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx, src, cs) }()
	lat := &latHist{}
	overflow := ms.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="qos0_overflow"}`)
	return subscriber{
		count:   func() int64 { return int64(pl.Stats().Processed) },
		dropped: func() int64 { return int64(overflow.Get()) },
		alerts:  cs.counts,
		lat:     lat,
		stop: func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
			if err := fo.Close(); err != nil {
				b.Error(err)
			}
			src.Close()
			for _, t := range taps {
				lat.add(&t.h)
			}
		},
	}
}

// causeSink counts the firing alerts it passes on, by detector.
type causeSink struct {
	pipeline.Sink
	mu sync.Mutex
	by map[string]int64
}

func (c *causeSink) Write(ctx context.Context, batch []pipeline.Alert) error {
	c.mu.Lock()
	for i := range batch {
		if batch[i].State == pipeline.Firing && !batch[i].Escalation {
			c.by[batch[i].Detector]++
		}
	}
	c.mu.Unlock()
	return c.Sink.Write(ctx, batch)
}

func (c *causeSink) counts() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.by)
}

// latTap records, per shard, the time from a reading's timestamp (its
// publish time) to when the shard judges it.
type latTap struct{ h latHist }

func (t *latTap) Observe(r *pipeline.Reading) { t.h.record(time.Since(time.Unix(0, r.Time))) }

// latHist is a histogram of latencies in 10 µs buckets up to 100 ms.
type latHist struct{ n [10001]int64 }

func (h *latHist) record(d time.Duration) { h.n[min(max(d/(10*time.Microsecond), 0), 10000)]++ }

func (h *latHist) add(o *latHist) {
	for i := range h.n {
		h.n[i] += o.n[i]
	}
}

// quantile returns the q-quantile in ms.
func (h *latHist) quantile(q float64) float64 {
	var total int64
	for _, c := range h.n {
		total += c
	}
	want := int64(q * float64(total))
	var seen int64
	for i, c := range h.n {
		seen += c
		if seen > want {
			return float64(i+1) * 0.01
		}
	}
	return 0
}

// startProfiles writes CPU, block and mutex profiles to prefix.{cpu,block,mutex}.
func startProfiles(b *testing.B, prefix string) (stop func()) {
	f, err := os.Create(prefix + ".cpu")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	runtimeSetProfiles(true)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		for _, name := range []string{"block", "mutex"} {
			w, err := os.Create(prefix + "." + name)
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.Lookup(name).WriteTo(w, 0)
			w.Close()
		}
		runtimeSetProfiles(false)
	}
}

// procCPU returns the user+system CPU time of process pid from /proc.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// loadAvg returns the 1-minute load average.
func loadAvg() string {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return "?"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan()
	return strings.Fields(s.Text() + " ?")[0]
}

func parseInts(b *testing.B, s string) []int {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}
