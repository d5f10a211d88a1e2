package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

var (
	bridgeRates    = flag.String("bridge.rates", "20000,50000,100000,200000", "BenchmarkBridge: offered rates (msgs/s); the highest, above what the path carries on 2 cores, is the as-fast-as-possible step")
	bridgeQoS      = flag.String("bridge.qos", "1,0", "BenchmarkBridge: QoS levels")
	bridgeBaseline = flag.String("bridge.baseline", "paho", "BenchmarkBridge: bare subscribers (paho, raw) run at each rate for the ratio; empty: none")
	bridgePack     = flag.String("bridge.pack", "0", "BenchmarkBridge: bridge.pack values to run (0: not set, the bridge's default)")
)

// BenchmarkBridge is issue 14's bridge measurement: "vigil bridge" (the
// built binary, default settings but bridge.pack from -bridge.pack, 12
// partitions) between a real Mosquitto and a JetStream stream on a real
// nats-server, both on loopback.
// At each rate of -bridge.rates, BenchmarkLiveIngest's publisher
// (TestLivePublisherChild: 1,000 devices, ~115-byte JSON readings, 1 ms
// ticks, -live.seconds of publishing) publishes to the broker's plaintext
// listener, and a fresh bridge process moves the messages into a fresh
// stream. Per step it reports:
//
//   - msgs/s: MQTT messages stored over the time from the first publish
//     to the last one stored (the bridge's vigil_bridge_published_total,
//     which counts a message once JetStream acknowledged it, polled every
//     10 ms);
//   - cpu-µs/msg: the bridge process's user+system CPU (/proc) from the
//     publisher's start to the last message stored, per message stored;
//   - lost: published less the MQTT messages the stream holds, read back
//     from the start once the step is over (a pack's messages counted one
//     by one, ticks not counted), after 5 s without progress: an error at
//     QoS 1; at QoS 0 the log line says how many the bridge's source
//     dropped beyond its queue (vigil_mqtt_messages_dropped_total);
//   - vs-<baseline>: msgs/s over the same rate of a bare subscriber
//     (liveStep's paho or raw subscriber, run right after on the same broker),
//     measured the same way: from the first publish to the last received.
//
// The broker queues without limit (max_queued_messages 0) so that the
// highest step measures the path's throughput rather than Mosquitto's
// drops. Run with -benchtime 1x; it needs mosquitto and nats-server >=
// 2.11 (VIGIL_NATS_SERVER).
func BenchmarkBridge(b *testing.B) {
	mqtttest.Require(b)
	natstest.Require(b)
	bin := filepath.Join(b.TempDir(), "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/vigil").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	rates := parseInts(b, *bridgeRates)
	var baselines []string
	if *bridgeBaseline != "" {
		baselines = strings.Split(*bridgeBaseline, ",")
	}
	for _, pack := range parseInts(b, *bridgePack) {
		for _, q := range parseInts(b, *bridgeQoS) {
			name := fmt.Sprintf("pack=%d/qos=%d", pack, q)
			if pack == 0 {
				name = fmt.Sprintf("pack=default/qos=%d", q)
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					bridgeRun(b, bin, byte(q), pack, rates, baselines)
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

func bridgeRun(b *testing.B, bin string, qos byte, pack int, rates []int, baselines []string) {
	srv := natstest.Start(b)
	br := mqtttest.Start(b, mqtttest.Options{Plaintext: true, Extra: []string{"max_queued_messages 0"}})
	js := natstest.JetStream(b, srv.URL())
	seconds := time.Duration(*liveSeconds * float64(time.Second))
	for _, rate := range rates {
		at := fmt.Sprintf("@%dk", rate/1000)
		res := bridgeStep(b, bin, br, srv, js, qos, pack, rate)
		b.Logf("qos=%d rate=%d bridge sent=%d stored=%d (in %d stream messages) lost=%d wall=%v %.0f msgs/s cpu=%.2fµs/msg (%.2f cores) broker-cpu=%.0f%% machine-busy=%.0f%% retries=%g unknown=%g mqtt-dropped=%g (qos0_overflow %g) load=%s",
			qos, rate, res.sent, res.stored, res.streamMsgs, res.sent-res.stored, res.wall.Round(time.Millisecond), res.rate(), res.cpuPerMsg(),
			res.cpu.Seconds()/res.wall.Seconds(), res.brokerCPU*100, res.busy*100, res.retries, res.unknown, res.dropped, res.droppedQoS0, loadAvg())
		b.ReportMetric(res.rate(), "msgs/s"+at)
		b.ReportMetric(res.cpuPerMsg(), "cpu-µs/msg"+at)
		b.ReportMetric(float64(res.sent-res.stored), "lost"+at)
		if qos > 0 && res.stored < res.sent {
			b.Errorf("QoS %d at %d msgs/s: %d of %d messages never reached the stream", qos, rate, res.sent-res.stored, res.sent)
		}
		for _, kind := range baselines {
			sub := liveStep(b, br, kind, qos, rate)
			var subRate float64
			if sub.got >= sub.sent {
				subRate = float64(sub.got) / (seconds + sub.lag).Seconds()
			}
			b.Logf("qos=%d rate=%d %-6s sent=%d got=%d lag=%v %.0f msgs/s broker-cpu=%.0f%% load=%s",
				qos, rate, kind, sub.sent, sub.got, sub.lag.Round(time.Millisecond), subRate, sub.brokerCPU*100, loadAvg())
			b.ReportMetric(subRate, kind+"-msgs/s"+at)
			if subRate > 0 {
				b.ReportMetric(res.rate()/subRate, "vs-"+kind+at)
			}
		}
	}
}

// bridgeResult is the bridge at one rate.
type bridgeResult struct {
	sent      int64
	published int64 // stored, by the bridge's count, at the last progress
	// stored is the MQTT messages the stream holds, streamMsgs the
	// stream messages holding them (ticks not counted).
	stored, streamMsgs int64
	wall               time.Duration // first publish to last stored
	cpu                time.Duration // the bridge process, over wall
	brokerCPU          float64       // Mosquitto's share of one core over wall
	busy               float64       // the machine's busy share of all its cores
	// From the bridge's /metrics at the end: JetStream publishes retried,
	// messages naming no device, MQTT messages the source dropped (all
	// reasons; of them, beyond its QoS 0 queue).
	retries, unknown, dropped, droppedQoS0 float64
}

func (r bridgeResult) rate() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.published) / r.wall.Seconds()
}

func (r bridgeResult) cpuPerMsg() float64 {
	if r.published == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.published)
}

// bridgeStep starts a bridge process on a fresh stream, has the publisher
// send rate msgs/s for -live.seconds and waits until the bridge has stored
// them all, or until it stops making progress for 5 s; then it counts what
// the stream holds.
func bridgeStep(b *testing.B, bin string, br *mqtttest.Broker, srv *natstest.Server, js natsjs.JetStream, qos byte, pack, rate int) bridgeResult {
	ctx := context.Background()
	if err := js.DeleteStream(ctx, jetstream.DefaultStream); err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
		b.Fatal(err)
	}
	prefix := fmt.Sprintf("plant/bridge%d", rate)
	dir := b.TempDir()
	addr := freeAddr(b)
	cfgPath := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("mqtt:\n  broker: %s\n  client_id: bench-bridge-q%d-%d\n  username: vigil\n  password_file: %s\n"+
		"  subscriptions: [{filter: %q, qos: %d}]\ncluster:\n  url: %s\nmetrics:\n  listen: %s\n%s",
		br.PlainURL(), qos, rate, br.PasswordFile("vigil"), prefix+"/#", qos, srv.URL(), addr, packSection(pack))), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "bridge.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "bridge", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	fail := func(format string, args ...any) {
		out, _ := os.ReadFile(logPath)
		b.Fatalf("%s; bridge log:\n%s", fmt.Sprintf(format, args...), out)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("vigil bridge not ready within 30 s")
		}
	}
	stream, err := js.Stream(ctx, jetstream.DefaultStream)
	if err != nil {
		fail("the bridge made no stream: %v", err)
	}

	pid := cmd.Process.Pid
	cpu0, bcpu0 := procCPU(pid), procCPU(br.Pid())
	busy0, total0 := machineCPU()
	pub := startPublisher(b, br, br.PlainAddr(), prefix, qos, rate)
	sent, end := pub.wait(b)
	// Wait until the bridge has stored every message, or for 5 s without
	// progress; the CPU figures are taken at the last progress, so that
	// such a wait does not dilute them.
	type snapshot struct {
		at          time.Time
		published   int64
		cpu, broker time.Duration
		busy, total int64
	}
	take := func(published int64) snapshot {
		s := snapshot{at: time.Now(), published: published, cpu: procCPU(pid), broker: procCPU(br.Pid())}
		s.busy, s.total = machineCPU()
		return s
	}
	last := snapshot{at: time.Now(), published: -1}
	for {
		m, err := scrapeMetrics(client, addr)
		if err != nil {
			fail("metrics: %v", err)
		}
		n := int64(m["vigil_bridge_published_total"])
		if n != last.published || n >= sent {
			last = take(n)
		}
		if n >= sent || time.Since(last.at) > 5*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := bridgeResult{sent: sent, published: last.published, cpu: last.cpu - cpu0}
	res.wall = time.Duration(*liveSeconds*float64(time.Second)) + max(last.at.Sub(end), 0)
	res.brokerCPU = (last.broker - bcpu0).Seconds() / res.wall.Seconds()
	if last.total > total0 {
		res.busy = float64(last.busy-busy0) / float64(last.total-total0)
	}
	m, err := scrapeMetrics(client, addr)
	if err != nil {
		fail("metrics: %v", err)
	}
	res.retries, res.unknown = m["vigil_bridge_publish_retries_total"], m["vigil_bridge_unknown_device_total"]
	for name, v := range m {
		if strings.HasPrefix(name, "vigil_mqtt_messages_dropped_total{") {
			res.dropped += v
		}
	}
	res.droppedQoS0 = m[`vigil_mqtt_messages_dropped_total{reason="qos0_overflow"}`]

	cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	exited = true
	if werr != nil {
		fail("vigil bridge: %v", werr)
	}
	b.Logf("bridge process: %.2f CPU-s from start to exit", (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
	if res.stored, res.streamMsgs, err = streamContents(ctx, stream); err != nil {
		b.Fatal(err)
	}
	if res.stored != int64(m["vigil_bridge_published_total"]) {
		b.Logf("the stream holds %d MQTT messages; the bridge counted %g stored", res.stored, m["vigil_bridge_published_total"])
	}
	return res
}

// packSection is the bridge section setting bridge.pack, or none for 0.
func packSection(pack int) string {
	if pack == 0 {
		return ""
	}
	return fmt.Sprintf("bridge:\n  pack: %d\n", pack)
}

// streamContents reads the stream from its start and returns the MQTT
// messages it holds (those of a pack counted one by one, ticks not
// counted) and the stream messages holding them.
func streamContents(ctx context.Context, s natsjs.Stream) (frames, msgs int64, err error) {
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0, 0, err
	}
	c, err := s.OrderedConsumer(ctx, natsjs.OrderedConsumerConfig{})
	if err != nil {
		return 0, 0, err
	}
	for read := uint64(0); read < info.State.Msgs; {
		batch, err := c.Fetch(4096, natsjs.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, 0, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			_, tok, err := jetstream.ParseSubject(m.Subject())
			if err != nil {
				return 0, 0, err
			}
			switch tok {
			case jetstream.TickToken:
			case jetstream.PackToken:
				msgs++
				if err := jetstream.EachPacked(m.Data(), func([]byte, int64, []byte) error { frames++; return nil }); err != nil {
					return 0, 0, err
				}
			default:
				msgs++
				frames++
			}
		}
		if err := batch.Error(); err != nil {
			return 0, 0, err
		}
		if n == 0 {
			return 0, 0, fmt.Errorf("read %d of the stream's %d messages; no more within 5 s", read, info.State.Msgs)
		}
		read += uint64(n)
	}
	return frames, msgs, nil
}

// scrapeMetrics returns the samples of a /metrics page by their full name,
// labels included.
func scrapeMetrics(client *http.Client, addr string) (map[string]float64, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || line[0] == '#' {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = f
		}
	}
	return m, sc.Err()
}

// machineCPU returns the busy and total jiffies of all CPUs (/proc/stat).
func machineCPU() (busy, total int64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return 0, 0
	}
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is in user already.
	fields := strings.Fields(line)
	for i := 1; i < len(fields) && i <= 8; i++ {
		v, _ := strconv.ParseInt(fields[i], 10, 64)
		total += v
		if i != 4 && i != 5 && i != 8 { // idle, iowait, steal
			busy += v
		}
	}
	return busy, total
}
