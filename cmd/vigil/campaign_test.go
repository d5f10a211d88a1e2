//go:build campaign

// The fault campaign (docs/RELIABILITY.md): the built vigil binary against a
// real Mosquitto, under faults — kill -9 of Vigil and of the broker in the
// middle of a QoS 1 stream, floods of oversized, malformed and spoofed
// messages — with the figures printed as tables and the invariants asserted.
//
//	go test -tags campaign -run Campaign -v -timeout 20m ./cmd/vigil/
//
// Sizes are flags (after the package: -campaign.spoofed=200000 …).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

var (
	cKillMsgs   = flag.Int("campaign.kill-msgs", 30000, "messages published in the kill -9 of Vigil scenario")
	cKills      = flag.Int("campaign.kills", 3, "times Vigil is killed with SIGKILL in that scenario")
	cBrokerMsgs = flag.Int("campaign.broker-msgs", 20000, "messages published in each kill -9 of Mosquitto scenario")
	cBig        = flag.Int("campaign.big", 8, "payloads of -campaign.big-size bytes in the oversized flood")
	cBigSize    = flag.Int("campaign.big-size", 25<<20, "size of the big payloads")
	cMedium     = flag.Int("campaign.medium", 200, "payloads of -campaign.medium-size bytes in the oversized flood")
	cMediumSize = flag.Int("campaign.medium-size", 1<<20, "size of the medium payloads")
	cRSSLimit   = flag.Int("campaign.rss-limit", 256, "MiB: Vigil's peak RSS allowed in the oversized and malformed floods")
	cMalformed  = flag.Int("campaign.malformed", 20000, "messages in the malformed flood (half of them bad)")
	cSpoofed    = flag.Int("campaign.spoofed", 1_000_000, "spoofed device IDs, one message each")
	cMaxDevices = flag.Int("campaign.max-devices", 100_000, "pipeline.max_devices in the spoofed-ID scenario (0: Vigil's default)")
	cWorkers    = flag.Int("campaign.workers", 64, "concurrent QoS 1 publishes")
	cGuard      = flag.Int("campaign.rss-guard", 3072, "MiB: Vigil is killed (and the scenario fails) above this RSS, to spare the machine")
)

// --- the pieces -----------------------------------------------------------

// campaignBroker starts a Mosquitto with a plaintext listener for the
// publishers (Vigil connects over TLS) and room for a big backlog.
func campaignBroker(t *testing.T, opts mqtttest.Options) *mqtttest.Broker {
	t.Helper()
	mqtttest.Require(t)
	opts.Plaintext = true
	opts.Extra = append(opts.Extra, "max_queued_messages 3000000")
	return mqtttest.Start(t, opts)
}

// campaignVigil writes the configuration of a Vigil that reads plant/# from
// b, journals alerts (one segment, so every record stays readable after the
// run) and writes them to a file; extra is appended (YAML).
type campaignVigil struct {
	cfg, metrics, journal, alerts string
}

func newCampaignVigil(t *testing.T, b *mqtttest.Broker, clientID, extra string) campaignVigil {
	t.Helper()
	dir := t.TempDir()
	v := campaignVigil{metrics: freeAddr(t), journal: filepath.Join(dir, "journal"), alerts: filepath.Join(dir, "alerts.jsonl")}
	v.cfg = writeConfig(t, "vigil.yaml", mqttSection(b, clientID)+
		"alerts:\n  journal: {dir: "+v.journal+", segment_size: 1GiB, max_size: 4GiB}\n  mqtt: {enabled: false}\n  file: "+v.alerts+"\n"+
		"metrics:\n  listen: "+v.metrics+"\n"+extra)
	return v
}

// stopVigil stops a vigil run with SIGTERM and waits (30 s at most).
func stopVigil(t *testing.T, cmd *exec.Cmd, logs *syncbuf.Buffer) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("vigil run exited with %v after SIGTERM:\n%s", err, lastLines(logs.String(), 30))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("vigil run did not stop within 30 s of SIGTERM")
	}
}

// rawPub publishes QoS 1 messages with a plain paho client (not Vigil's
// code) over the broker's plaintext listener as user "device", from many
// goroutines, reconnecting and retrying until each message is acknowledged
// (a retry after a lost PUBACK may deliver a message twice).
type rawPub struct {
	t        *testing.T
	addr     string
	id, pass string

	mu   sync.Mutex
	c    *paho.Client
	gen  int
	acks atomic.Int64
	errs atomic.Int64 // failed attempts (then retried)
}

func newRawPub(t *testing.T, b *mqtttest.Broker, id string) *rawPub {
	u, err := url.Parse(b.PlainURL())
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPub{t: t, addr: u.Host, id: id, pass: b.Password("device")}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.c != nil {
			p.c.Disconnect(&paho.Disconnect{})
		}
	})
	return p
}

// client returns the current connection, connecting if there is none.
func (p *rawPub) client(ctx context.Context) (*paho.Client, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil {
		return p.c, p.gen, nil
	}
	conn, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
	if err != nil {
		return nil, 0, err
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: p.id, Conn: conn})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ca, err := c.Connect(cctx, &paho.Connect{ClientID: p.id, KeepAlive: 30, CleanStart: true,
		Username: "device", UsernameFlag: true, Password: []byte(p.pass), PasswordFlag: true})
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, 0, fmt.Errorf("connack %d", ca.ReasonCode)
	}
	p.c = c
	p.gen++
	return c, p.gen, nil
}

// broken drops connection gen, if it is still the current one.
func (p *rawPub) broken(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen == gen && p.c != nil {
		p.c.Disconnect(&paho.Disconnect{})
		p.c = nil
	}
}

// publish publishes one message at QoS 1 until the broker acknowledges it
// or ctx ends.
func (p *rawPub) publish(ctx context.Context, topic string, payload []byte) error {
	for {
		c, gen, err := p.client(ctx)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var pr *paho.PublishResponse
			pr, err = c.Publish(actx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
			cancel()
			if err == nil && pr != nil && pr.ReasonCode >= 0x80 {
				err = fmt.Errorf("puback reason %d", pr.ReasonCode)
			}
			if err == nil {
				p.acks.Add(1)
				return nil
			}
			p.broken(gen)
		}
		p.errs.Add(1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishAll publishes msg(0) … msg(n-1) from workers goroutines and
// returns when every one is acknowledged.
func (p *rawPub) publishAll(ctx context.Context, workers, n int, msg func(i int) (string, []byte)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				topic, payload := msg(i)
				if err := p.publish(ctx, topic, payload); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// rss samples a process's resident set every 100 ms. Above guard it kills
// the process (a flood must not take the machine down with it).
type rss struct {
	pid     int
	guard   int64
	mu      sync.Mutex
	peak    int64
	last    int64
	tripped bool
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(pid int, guardMiB int) *rss {
	r := &rss{pid: pid, guard: int64(guardMiB) << 20, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			r.sample()
			select {
			case <-r.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return r
}

func (r *rss) sample() {
	v := readRSS(r.pid)
	if v <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = v
	r.peak = max(r.peak, v)
	if r.guard > 0 && v > r.guard && !r.tripped {
		r.tripped = true
		syscall.Kill(r.pid, syscall.SIGKILL)
	}
}

// Peak, Last (bytes) and whether the guard killed the process.
func (r *rss) Peak() int64 { r.mu.Lock(); defer r.mu.Unlock(); return r.peak }
func (r *rss) Last() int64 { r.mu.Lock(); defer r.mu.Unlock(); return r.last }
func (r *rss) Tripped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tripped
}

// ResetPeak starts a new peak from the current value.
func (r *rss) ResetPeak() { r.mu.Lock(); r.peak = r.last; r.mu.Unlock() }

func (r *rss) Stop() { close(r.stop); <-r.done }

// readRSS is VmRSS of pid in bytes (0 if the process is gone).
func readRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// brokerPID finds the Mosquitto started with b's configuration.
func brokerPID(b *mqtttest.Broker) int {
	conf := filepath.Join(b.Dir(), "mosquitto.conf")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cl, []byte(conf)) {
			return pid
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// scrape reads the metrics into name{labels} → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, l := range strings.Split(httpGet(t, "http://"+addr+"/metrics"), "\n") {
		i := strings.LastIndexByte(l, ' ')
		if i < 0 || strings.HasPrefix(l, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

// waitFor polls cond every 200 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// fileAlerts counts the alerts in a file output by kind and state, and the
// firing status alerts by device.
type alertCounts struct {
	byKind   map[string]int
	statusBy map[string]int // device → firing status alerts
	firingBy map[string]map[string]int
}

func countFileAlerts(path string) alertCounts {
	c := alertCounts{byKind: map[string]int{}, statusBy: map[string]int{}, firingBy: map[string]map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return c
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a struct{ Device, Kind, State string }
		if json.Unmarshal(sc.Bytes(), &a) != nil {
			continue // a line being written
		}
		c.byKind[a.Kind]++
		if a.State == "firing" {
			if a.Kind == "status" {
				c.statusBy[a.Device]++
			}
			if c.firingBy[a.Kind] == nil {
				c.firingBy[a.Kind] = map[string]int{}
			}
			c.firingBy[a.Kind][a.Device]++
		}
	}
	return c
}

// journalStatus reads, from the journal (every alert Vigil appended, in
// every run), the append times of the firing status alerts per device.
func journalStatus(t *testing.T, dir string) (map[string][]int64, int) {
	t.Helper()
	by := map[string][]int64{}
	n := 0
	err := journal.Inspect(dir, 0, func(e journal.Entry) bool {
		n++
		if e.Alert.Kind == "status" && e.Alert.State == pipeline.Firing {
			by[e.Alert.Device] = append(by[e.Alert.Device], e.Appended)
		}
		return true
	})
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	return by, n
}

// figures prints a scenario's figures as a Markdown table.
type figures struct {
	title string
	rows  [][2]string
}

func (f *figures) add(name string, format string, args ...any) {
	f.rows = append(f.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func (f *figures) print(t *testing.T) {
	var w strings.Builder
	fmt.Fprintf(&w, "\n### %s\n\n| figure | value |\n|---|---|\n", f.title)
	for _, r := range f.rows {
		fmt.Fprintf(&w, "| %s | %s |\n", r[0], r[1])
	}
	t.Log(w.String())
	if p := os.Getenv("VIGIL_CAMPAIGN_REPORT"); p != "" {
		if fh, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fh.WriteString(w.String())
			fh.Close()
		}
	}
}

// campaignT0 is the event time of the campaign's readings.
var campaignT0 = time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)

// statusMsg is message i of a stream where each message comes from a new
// device with status 1 (warning): Vigil's status check fires on it at once,
// so each message processed leaves exactly one firing status alert in the
// journal of the run that processed it.
func statusMsg(prefix string) func(i int) (string, []byte) {
	return func(i int) (string, []byte) {
		dev := fmt.Sprintf("%s-%07d", prefix, i)
		return "plant/campaign/" + dev + "/telemetry", fmt.Appendf(nil,
			`{"timestamp":%q,"node_id":%q,"data":{"p":4.2,"t":61.5,"v":2.1},"status":1}`,
			campaignT0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), dev)
	}
}

// reading is a normal (or, with p high, overpressure) reading of a device.
func reading(dev string, i int, p float64) (string, []byte) {
	noise := float64((i*7919)%11-5) / 100
	return "plant/line-a/" + dev + "/telemetry", fmt.Appendf(nil,
		`{"timestamp":%q,"node_id":%q,"data":{"p":%.3f,"t":%.2f,"v":%.2f},"status":0}`,
		campaignT0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), dev, p+noise, 60+noise, 2+noise/10)
}

// noHistory turns off what judges devices by their history, so that each
// run judges each message on its own: state is not kept across runs and a
// redelivered message fires again (duplicates become visible).
const noHistory = "state: {file: \"\"}\ndetectors: {traffic: {enabled: false}}\nfleet: {enabled: false}\n"

// journalCount compares what was published with the firing status alerts
// in the journal: lost are published devices without one, duplicates the
// extra ones. With runs (the wall times at which Vigil was killed), the
// duplicates are also split by run: a message processed twice within one
// run would be a duplicate no kill explains.
type journalCount struct {
	processed, lost, dups, records int
	perKill                        []int // duplicates first processed before kill i and again after it
	sameRun                        int
}

func accountJournal(t *testing.T, dir string, prefix string, n int, kills []time.Time) journalCount {
	t.Helper()
	by, records := journalStatus(t, dir)
	c := journalCount{records: records, perKill: make([]int, len(kills))}
	run := func(ts int64) int {
		i := 0
		for i < len(kills) && ts >= kills[i].UnixNano() {
			i++
		}
		return i
	}
	for i := range n {
		times := by[fmt.Sprintf("%s-%07d", prefix, i)]
		if len(times) == 0 {
			c.lost++
			continue
		}
		c.processed++
		c.dups += len(times) - 1
		for j := 1; j < len(times); j++ {
			a, b := run(times[j-1]), run(times[j])
			if a == b {
				c.sameRun++
			} else if a < len(kills) {
				c.perKill[a]++
			}
		}
	}
	return c
}

// --- a. kill -9 of Vigil --------------------------------------------------

// TestCampaignKillVigil: Vigil is killed with SIGKILL kills times while a
// QoS 1 stream is published, and restarted each time. Every message the
// broker acknowledged is processed at least once; the duplicates (messages
// processed but not yet acknowledged at a kill, redelivered after it) are
// counted, and bounded by the flow-control window per kill.
func TestCampaignKillVigil(t *testing.T) {
	n, kills := *cKillMsgs, *cKills
	b := campaignBroker(t, mqtttest.Options{})
	bin := buildVigil(t)
	v := newCampaignVigil(t, b, "vigil-campaign-kill", noHistory)
	pub := newRawPub(t, b, "campaign-kill-pub")

	start := time.Now()
	cmd, logs := startVigil(t, bin, v.cfg, v.metrics)
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.publishAll(t.Context(), *cWorkers, n, statusMsg("k")) }()
	var restarts []time.Duration
	var processedAtKill []string
	var killedAt []time.Time
	for k := 1; k <= kills; k++ {
		if !waitFor(60*time.Second, func() bool { return pub.acks.Load() >= int64(k*n/(kills+1)) }) {
			t.Fatalf("publisher stuck at %d acknowledged", pub.acks.Load())
		}
		m := scrape(t, v.metrics)
		processedAtKill = append(processedAtKill, fmt.Sprintf("%.0f", m["vigil_readings_processed_total"]))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		killedAt = append(killedAt, time.Now())
		time.Sleep(300 * time.Millisecond) // the stream goes on meanwhile
		t0 := time.Now()
		cmd, logs = startVigil(t, bin, v.cfg, v.metrics)
		restarts = append(restarts, time.Since(t0).Round(10*time.Millisecond))
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	published := int(pub.acks.Load())
	if !waitFor(60*time.Second, func() bool { return len(countFileAlerts(v.alerts).statusBy) >= published }) {
		t.Logf("not every device reached the file output within 60 s (%d of %d); counting from the journal", len(countFileAlerts(v.alerts).statusBy), published)
	}
	elapsed := time.Since(start)
	stopVigil(t, cmd, logs)

	jc := accountJournal(t, v.journal, "k", n, killedAt)
	processed, lost, dups, records := jc.processed, jc.lost, jc.dups, jc.records
	bound := kills * 1024 // at most ReceiveMaximum unacknowledged messages per kill
	f := figures{title: fmt.Sprintf("a. kill -9 of Vigil ×%d mid-stream (QoS 1)", kills)}
	f.add("published (PUBACKed)", "%d", published)
	f.add("processed at least once", "%d", processed)
	f.add("lost", "%d", lost)
	f.add("processed twice or more (duplicates)", "%d (bound %d: %d kills × receive_maximum 1024)", dups, bound, kills)
	f.add("duplicates across each kill / within one run", "%v / %d", jc.perKill, jc.sameRun)
	f.add("journal records", "%d", records)
	f.add("readings processed by the killed run before each kill (scraped)", "%s", strings.Join(processedAtKill, ", "))
	f.add("restart to ready", "%v", restarts)
	f.add("publisher retries", "%d", pub.errs.Load())
	f.add("wall time", "%v", elapsed.Round(100*time.Millisecond))
	f.print(t)

	if published != n {
		t.Errorf("published %d of %d", published, n)
	}
	if lost != 0 {
		t.Errorf("%d messages the broker acknowledged were never processed", lost)
	}
	if dups > bound {
		t.Errorf("%d duplicates; want at most %d", dups, bound)
	}
	if jc.sameRun > 0 {
		t.Errorf("%d messages processed twice within one run (no kill explains them)", jc.sameRun)
	}
}

// --- b. kill -9 of Mosquitto ----------------------------------------------

// TestCampaignKillBroker: Mosquitto is killed with SIGKILL in the middle of
// a QoS 1 stream and restarted on the same persistence: saving its state
// on every change, every 1000 changes (the setting docs/LIVE.md recommends)
// and with its default (every 30 min and at a clean shutdown). Vigil stays up; it must process every message it
// receives (received = processed + stale copies it dropped as redelivered).
// With the state saved on every change, nothing the broker acknowledged is
// lost; without, what the broker loses is counted.
func TestCampaignKillBroker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		autosave int
	}{{"saved on every change", 1}, {"saved every 1000 changes (docs/LIVE.md)", 1000}, {"Mosquitto's default (saved every 30 min)", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			n := *cBrokerMsgs
			b := campaignBroker(t, mqtttest.Options{AutosaveOnChanges: tc.autosave})
			bin := buildVigil(t)
			v := newCampaignVigil(t, b, "vigil-campaign-broker", noHistory)
			pub := newRawPub(t, b, "campaign-broker-pub")
			start := time.Now()
			cmd, logs := startVigil(t, bin, v.cfg, v.metrics)
			pubDone := make(chan error, 1)
			go func() { pubDone <- pub.publishAll(t.Context(), *cWorkers, n, statusMsg("b")) }()
			if !waitFor(60*time.Second, func() bool { return pub.acks.Load() >= int64(n/2) }) {
				t.Fatalf("publisher stuck at %d acknowledged", pub.acks.Load())
			}
			atKill := pub.acks.Load()
			b.Kill()
			time.Sleep(time.Second)
			b.Restart()
			restarted := time.Now()
			reconnect := "never"
			if waitFor(60*time.Second, func() bool { return scrape(t, v.metrics)[`vigil_mqtt_connected{role="source"}`] == 1 }) {
				reconnect = time.Since(restarted).Round(10 * time.Millisecond).String()
			}
			if err := <-pubDone; err != nil {
				t.Fatal(err)
			}
			published := int(pub.acks.Load())
			// Until every message is in, or (the broker having lost some)
			// nothing more arrives for 3 s.
			var m map[string]float64
			last, since := -1.0, time.Now()
			waitFor(60*time.Second, func() bool {
				m = scrape(t, v.metrics)
				if r := m["vigil_readings_processed_total"]; r != last {
					last, since = r, time.Now()
				}
				return len(countFileAlerts(v.alerts).statusBy) >= published || time.Since(since) > 3*time.Second
			})
			m = scrape(t, v.metrics)
			elapsed := time.Since(start)
			stopVigil(t, cmd, logs)

			jc := accountJournal(t, v.journal, "b", n, nil)
			processed, lost, records := jc.processed, jc.lost, jc.records
			received := m["vigil_mqtt_messages_received_total"]
			readings := m["vigil_readings_processed_total"]
			stale := m[`vigil_mqtt_messages_dropped_total{reason="redelivered"}`]
			f := figures{title: "b. kill -9 of Mosquitto mid-stream (QoS 1), " + tc.name}
			f.add("published (PUBACKed by the broker)", "%d (%d before the kill)", published, atKill)
			f.add("processed at least once", "%d", processed)
			f.add("lost by the broker (published, never delivered)", "%d", lost)
			f.add("received by Vigil / processed / stale copies dropped", "%.0f / %.0f / %.0f", received, readings, stale)
			f.add("processed twice or more (duplicates)", "%.0f", readings-float64(processed))
			f.add("journal records", "%d", records)
			f.add("acks skipped (connection gone)", "%.0f", m["vigil_mqtt_acks_skipped_total"])
			f.add("Vigil reconnected after the broker restart", "%s (reconnects %.0f)", reconnect, m[`vigil_mqtt_reconnects_total{role="source"}`])
			f.add("publisher retries", "%d", pub.errs.Load())
			f.add("wall time (after broker restart)", "%v (%v)", elapsed.Round(100*time.Millisecond), time.Since(restarted).Round(100*time.Millisecond))
			f.print(t)

			if published != n {
				t.Errorf("published %d of %d", published, n)
			}
			if received != readings+stale {
				t.Errorf("Vigil received %.0f messages but processed %.0f and dropped %.0f stale copies: it lost some", received, readings, stale)
			}
			if reconnect == "never" {
				t.Errorf("Vigil did not reconnect to the restarted broker")
			}
			if tc.autosave > 0 && lost > 0 {
				t.Errorf("%d acknowledged messages lost although the broker saves every change", lost)
			}
		})
	}
}

// --- c. oversized flood ---------------------------------------------------

// TestCampaignOversized: a raw client floods the subscribed topic with
// payloads far over decoder.max_payload (default 64 KiB): cBig of 25 MB
// and cMedium of 1 MB. Vigil's RSS is sampled every 100 ms; its peak must
// stay under cRSSLimit MiB, it must not crash, and good messages sent after
// the flood are processed.
func TestCampaignOversized(t *testing.T) {
	b := campaignBroker(t, mqtttest.Options{})
	bin := buildVigil(t)
	v := newCampaignVigil(t, b, "vigil-campaign-big", "state: {file: "+filepath.Join(t.TempDir(), "vigil.state")+"}\n")
	cmd, logs := startVigil(t, bin, v.cfg, v.metrics)
	mem := sampleRSS(cmd.Process.Pid, *cGuard)
	defer mem.Stop()
	bmem := sampleRSS(brokerPID(b), 0)
	defer bmem.Stop()
	time.Sleep(300 * time.Millisecond)
	idle := mem.Last()
	pub := newRawPub(t, b, "campaign-big-pub")

	pad := func(size int) []byte {
		head := fmt.Appendf(nil, `{"timestamp":%q,"node_id":"flood","data":{"p":4.2},"pad":"`, campaignT0.Format(time.RFC3339))
		p := bytes.Repeat([]byte{'x'}, size)
		copy(p, head)
		copy(p[len(p)-2:], `"}`)
		return p
	}
	big, medium := pad(*cBigSize), pad(*cMediumSize)
	start := time.Now()
	total := *cBig + *cMedium
	if err := pub.publishAll(t.Context(), 8, total, func(i int) (string, []byte) {
		if i%(total/max(*cBig, 1)+1) == 0 && i/(total/max(*cBig, 1)+1) < *cBig {
			return "plant/flood/big/telemetry", big
		}
		return "plant/flood/medium/telemetry", medium
	}); err != nil {
		t.Fatal(err)
	}
	pubTime := time.Since(start)
	// Then good messages: each must be processed.
	const good = 100
	if err := pub.publishAll(t.Context(), 8, good, statusMsg("ok")); err != nil {
		t.Fatal(err)
	}
	okAll := waitFor(90*time.Second, func() bool { return len(countFileAlerts(v.alerts).statusBy) >= good || mem.Tripped() })
	drain := time.Since(start)
	peak := mem.Peak()
	time.Sleep(2 * time.Second)
	after := mem.Last()
	alive := cmd.ProcessState == nil && readRSS(cmd.Process.Pid) > 0
	var m map[string]float64
	if alive {
		m = scrape(t, v.metrics)
	}
	f := figures{title: fmt.Sprintf("c. oversized flood: %d × %d MB and %d × %d MB (max_payload default 64 KiB)", *cBig, *cBigSize>>20, *cMedium, *cMediumSize>>20)}
	f.add("Vigil RSS idle / peak / 2 s after", "%s / %s / %s", mib(idle), mib(peak), mib(after))
	f.add("Mosquitto RSS peak", "%s", mib(bmem.Peak()))
	f.add("published (PUBACKed)", "%d oversized + %d good in %v", total, good, pubTime.Round(100*time.Millisecond))
	f.add("received by Vigil", "%.0f", m["vigil_mqtt_messages_received_total"])
	f.add("rejected too_large by Vigil", "%.0f", m[`vigil_frames_rejected_total{reason="too_large"}`])
	if m["vigil_mqtt_messages_received_total"] == good {
		f.add("dropped by the broker (over Vigil's Maximum Packet Size)", "%.0f", float64(total)-m[`vigil_frames_rejected_total{reason="too_large"}`])
	}
	f.add("good messages processed", "%d of %d (all by %v)", len(countFileAlerts(v.alerts).statusBy), good, drain.Round(100*time.Millisecond))
	f.add("Vigil alive", "%t (guard %d MiB tripped: %t)", alive, *cGuard, mem.Tripped())
	f.print(t)

	if !alive {
		t.Fatalf("Vigil died in the flood:\n%s", lastLines(logs.String(), 20))
	}
	if !okAll {
		t.Errorf("good messages after the flood were not all processed")
	}
	if dropped := float64(total) - m[`vigil_frames_rejected_total{reason="too_large"}`]; dropped != 0 && m["vigil_mqtt_messages_received_total"] != good {
		t.Errorf("of %d oversized messages Vigil rejected %.0f as too_large and received %.0f messages in all: some are unaccounted for",
			total, m[`vigil_frames_rejected_total{reason="too_large"}`], m["vigil_mqtt_messages_received_total"])
	}
	if peak > int64(*cRSSLimit)<<20 {
		t.Errorf("peak RSS %s; want under %d MiB", mib(peak), *cRSSLimit)
	}
}

// --- d. malformed flood ---------------------------------------------------

// TestCampaignMalformed: half the messages are good, half are bad in known
// ways (truncated JSON, binary garbage, no node_id, a bad timestamp, a
// non-numeric value, no data, a bad status, over max_payload). Vigil
// counts each rejection under its reason, processes every good message,
// and its RSS stays bounded.
func TestCampaignMalformed(t *testing.T) {
	n := *cMalformed
	b := campaignBroker(t, mqtttest.Options{})
	bin := buildVigil(t)
	v := newCampaignVigil(t, b, "vigil-campaign-bad", "state: {file: "+filepath.Join(t.TempDir(), "vigil.state")+"}\n")
	cmd, logs := startVigil(t, bin, v.cfg, v.metrics)
	mem := sampleRSS(cmd.Process.Pid, *cGuard)
	defer mem.Stop()
	time.Sleep(300 * time.Millisecond)
	idle := mem.Last()

	ts := fmt.Sprintf(`"timestamp":%q`, campaignT0.Format(time.RFC3339))
	kinds := []struct {
		reason string
		msg    func(i int, rnd *rand.Rand) []byte
	}{
		{"malformed_json", func(i int, _ *rand.Rand) []byte { return fmt.Appendf(nil, `{%s,"node_id":"bad-%d`, ts, i) }},
		{"malformed_json", func(_ int, rnd *rand.Rand) []byte { // binary garbage
			g := make([]byte, 16+rnd.IntN(2048))
			for j := range g {
				g[j] = byte(rnd.IntN(256))
			}
			g[0] = 0xff
			return g
		}},
		{"missing_node_id", func(int, *rand.Rand) []byte { return fmt.Appendf(nil, `{%s,"data":{"p":1}}`, ts) }},
		{"invalid_timestamp", func(i int, _ *rand.Rand) []byte {
			return fmt.Appendf(nil, `{"timestamp":"yesterday","node_id":"bad-%d","data":{"p":1}}`, i)
		}},
		{"invalid_value", func(i int, _ *rand.Rand) []byte {
			return fmt.Appendf(nil, `{%s,"node_id":"bad-%d","data":{"p":"high"}}`, ts, i)
		}},
		{"no_data", func(i int, _ *rand.Rand) []byte { return fmt.Appendf(nil, `{%s,"node_id":"bad-%d","data":{}}`, ts, i) }},
		{"invalid_status", func(i int, _ *rand.Rand) []byte {
			return fmt.Appendf(nil, `{%s,"node_id":"bad-%d","data":{"p":1},"status":"x"}`, ts, i)
		}},
		{"too_large", func(i int, _ *rand.Rand) []byte {
			return fmt.Appendf(nil, `{%s,"node_id":"bad-%d","data":{"p":1},"pad":"%s"}`, ts, i, strings.Repeat("x", 70000))
		}},
	}
	sent := map[string]int{}
	var sentMu sync.Mutex
	good := 0
	pub := newRawPub(t, b, "campaign-bad-pub")
	start := time.Now()
	ok := statusMsg("g")
	if err := pub.publishAll(t.Context(), *cWorkers, n, func(i int) (string, []byte) {
		if i%2 == 0 {
			return ok(i / 2)
		}
		k := kinds[(i/2)%len(kinds)]
		sentMu.Lock()
		sent[k.reason]++
		sentMu.Unlock()
		return fmt.Sprintf("plant/bad/dev-%d/telemetry", i%97), k.msg(i, rand.New(rand.NewPCG(uint64(i), 7)))
	}); err != nil {
		t.Fatal(err)
	}
	good = (n + 1) / 2
	// Over max_payload, the broker may drop the message itself when Vigil
	// announces a Maximum Packet Size: then Vigil never sees it.
	var m map[string]float64
	expect := float64(n)
	last, since := -1.0, time.Now()
	done := waitFor(60*time.Second, func() bool {
		m = scrape(t, v.metrics)
		r := m["vigil_frames_received_total"]
		if r != last {
			last, since = r, time.Now()
		}
		if r == float64(n-sent["too_large"]) && m[`vigil_frames_rejected_total{reason="too_large"}`] == 0 && time.Since(since) > 2*time.Second {
			expect = r
			return true
		}
		return r >= float64(n) || mem.Tripped()
	})
	brokerDropped := int(float64(n) - expect)
	elapsed := time.Since(start)
	alive := readRSS(cmd.Process.Pid) > 0
	if alive {
		m = scrape(t, v.metrics)
	}
	f := figures{title: fmt.Sprintf("d. malformed flood: %d messages, half bad", n)}
	f.add("Vigil RSS idle / peak / end", "%s / %s / %s", mib(idle), mib(mem.Peak()), mib(mem.Last()))
	f.add("frames received / decoded / processed", "%.0f / %.0f / %.0f (good sent %d)", m["vigil_frames_received_total"], m["vigil_frames_decoded_total"], m["vigil_readings_processed_total"], good)
	var bad []string
	for _, r := range pipeline.Reasons() {
		got := m[fmt.Sprintf(`vigil_frames_rejected_total{reason=%q}`, r)]
		if sent[r.String()] == 0 && got == 0 {
			continue
		}
		want := sent[r.String()]
		if r.String() == "too_large" && brokerDropped > 0 {
			want = 0
			f.add("dropped by the broker (over Vigil's Maximum Packet Size)", "%d (sent %d over max_payload)", brokerDropped, sent["too_large"])
		}
		f.add("rejected "+r.String(), "%.0f (sent %d)", got, sent[r.String()])
		if int(got) != want {
			bad = append(bad, fmt.Sprintf("%s: counted %.0f, sent %d", r, got, sent[r.String()]))
		}
	}
	f.add("Go heap in use / runtime total at the end", "%s / %s", mib(int64(m["go_memstats_heap_inuse_bytes"])), mib(int64(m["go_memstats_sys_bytes"])))
	f.add("wall time", "%v", elapsed.Round(100*time.Millisecond))
	f.add("Vigil alive", "%t", alive)
	f.print(t)

	if !alive {
		t.Fatalf("Vigil died in the flood:\n%s", lastLines(logs.String(), 20))
	}
	if !done {
		t.Errorf("Vigil received %.0f of %d frames", m["vigil_frames_received_total"], n)
	}
	if brokerDropped != 0 && brokerDropped != sent["too_large"] {
		t.Errorf("%d messages never reached Vigil; only the %d over max_payload may be dropped by the broker", brokerDropped, sent["too_large"])
	}
	if len(bad) > 0 {
		t.Errorf("rejections by reason differ from what was sent: %s", strings.Join(bad, "; "))
	}
	if int(m["vigil_readings_processed_total"]) != good {
		t.Errorf("processed %.0f readings; want the %d good messages", m["vigil_readings_processed_total"], good)
	}
	if mem.Peak() > int64(*cRSSLimit)<<20 {
		t.Errorf("peak RSS %s; want under %d MiB", mib(mem.Peak()), *cRSSLimit)
	}
}

// --- e. spoofed device IDs ------------------------------------------------

// TestCampaignSpoofedDevices: cSpoofed messages, each from a new device ID,
// while five real devices keep reporting. Vigil tracks at most
// pipeline.max_devices, forgets the least recently seen (counted), and still
// detects an overpressure on the real devices after the flood.
func TestCampaignSpoofedDevices(t *testing.T) {
	n, capDevices := *cSpoofed, *cMaxDevices
	b := campaignBroker(t, mqtttest.Options{})
	bin := buildVigil(t)
	extra := "state: {file: " + filepath.Join(t.TempDir(), "vigil.state") + "}\n"
	if capDevices > 0 {
		extra += fmt.Sprintf("pipeline: {max_devices: %d}\n", capDevices)
	}
	v := newCampaignVigil(t, b, "vigil-campaign-spoof", extra)
	cmd, logs := startVigil(t, bin, v.cfg, v.metrics)
	mem := sampleRSS(cmd.Process.Pid, *cGuard)
	defer mem.Stop()
	pub := newRawPub(t, b, "campaign-spoof-pub")

	// Five real devices learn their baseline (300 readings warm it up).
	real := []string{"press-1", "press-2", "press-3", "press-4", "press-5"}
	next := map[string]int{}
	const warm = 400
	if err := pub.publishAll(t.Context(), 16, len(real)*warm, func(i int) (string, []byte) {
		return reading(real[i%len(real)], i/len(real), 4)
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range real {
		next[d] = warm
	}
	if !waitFor(30*time.Second, func() bool { return scrape(t, v.metrics)["vigil_readings_processed_total"] >= float64(len(real)*warm) }) {
		t.Fatalf("the real devices' readings were not processed:\n%s", lastLines(logs.String(), 20))
	}
	warmRSS := mem.Last()

	// The flood; the real devices report every 100 ms meanwhile.
	ctx, stopReal := context.WithCancel(t.Context())
	realDone := make(chan struct{})
	go func() {
		defer close(realDone)
		for ctx.Err() == nil {
			for _, d := range real {
				topic, payload := reading(d, next[d], 4)
				next[d]++
				pub.publish(ctx, topic, payload)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	start := time.Now()
	ts := campaignT0.Add(warm * time.Second).Format(time.RFC3339)
	if err := pub.publishAll(t.Context(), *cWorkers, n, func(i int) (string, []byte) {
		dev := fmt.Sprintf("spoof-%07d", i)
		return "plant/x/" + dev + "/telemetry", fmt.Appendf(nil, `{"timestamp":%q,"node_id":%q,"data":{"p":4.1}}`, ts, dev)
	}); err != nil {
		t.Fatal(err)
	}
	pubTime := time.Since(start)
	var m map[string]float64
	caught := waitFor(120*time.Second, func() bool {
		m = scrape(t, v.metrics)
		return m["vigil_frames_received_total"] >= float64(n+len(real)*warm) || mem.Tripped()
	})
	drain := time.Since(start)
	stopReal()
	<-realDone
	floodPeak := mem.Peak()

	// The real devices' pressure jumps: each must be caught.
	for _, d := range real {
		for range 3 {
			topic, payload := reading(d, next[d], 9)
			next[d]++
			if err := pub.publish(t.Context(), topic, payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	var detected []string
	waitFor(30*time.Second, func() bool {
		detected = detected[:0]
		op := countFileAlerts(v.alerts).firingBy["overpressure"]
		for _, d := range real {
			if op[d] > 0 {
				detected = append(detected, d)
			}
		}
		return len(detected) == len(real)
	})
	alive := readRSS(cmd.Process.Pid) > 0
	if alive {
		m = scrape(t, v.metrics)
	}
	kinds := countFileAlerts(v.alerts).byKind
	f := figures{title: fmt.Sprintf("e. %d spoofed device IDs, one message each (max_devices %d)", n, capDevices)}
	f.add("Vigil RSS warm / peak / end", "%s / %s / %s", mib(warmRSS), mib(floodPeak), mib(mem.Last()))
	f.add("published / Vigil throughput", "%d in %v / all processed after %v (%.0f msg/s)", n, pubTime.Round(100*time.Millisecond), drain.Round(100*time.Millisecond), float64(n)/drain.Seconds())
	f.add("Go heap in use / runtime total at the end", "%s / %s", mib(int64(m["go_memstats_heap_inuse_bytes"])), mib(int64(m["go_memstats_sys_bytes"])))
	f.add("vigil_devices_tracked / vigil_devices_limit", "%.0f / %.0f", m["vigil_devices_tracked"], m["vigil_devices_limit"])
	f.add("vigil_devices_evicted_total", "%.0f", m["vigil_devices_evicted_total"])
	f.add("real devices detected after the flood", "%d of %d", len(detected), len(real))
	f.add("alerts by kind", "%v", kinds)
	f.add("Vigil alive", "%t", alive)
	f.print(t)

	if !alive {
		t.Fatalf("Vigil died in the flood:\n%s", lastLines(logs.String(), 20))
	}
	if !caught {
		t.Errorf("Vigil received %.0f of %d messages within 2 min", m["vigil_frames_received_total"], n+len(real)*warm)
	}
	if capDevices > 0 {
		if m["vigil_devices_tracked"] > float64(capDevices) {
			t.Errorf("%.0f devices tracked; want at most max_devices %d", m["vigil_devices_tracked"], capDevices)
		}
		if want := float64(n + len(real) - capDevices); m["vigil_devices_evicted_total"] < want {
			t.Errorf("%.0f devices evicted; want at least %.0f", m["vigil_devices_evicted_total"], want)
		}
	}
	if len(detected) != len(real) {
		t.Errorf("overpressure detected on %v after the flood; want all of %v", detected, real)
	}
}
