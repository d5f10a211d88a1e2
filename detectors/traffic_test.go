package detectors_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// wire is a traffic test rig: it sends one device's messages to an engine
// with explicit arrival and event times, topics, sizes and payload hashes,
// ticks the engine as the pipeline would (after every message, with the
// stream clock), and records the alerts.
type wire struct {
	t      testing.TB
	eng    *detectors.Engine
	dev    string
	topic  string
	start  int64 // stream start
	clock  int64 // stream clock: the latest arrival
	seq    uint64
	nz     *rand.Rand
	alerts []pipeline.Alert
}

func newWire(t testing.TB, edit func(*detectors.Config)) *wire {
	return &wire{t: t, eng: newSet(t, edit).NewEngine(), dev: "sensor-node-03",
		topic: "plant/line-a/sensor-node-03/telemetry", start: t0, clock: t0, nz: rand.New(rand.NewPCG(1, 2))}
}

// msg is one message of the rig's device.
type msg struct {
	dev, topic string
	arrival    int64 // 0: the rig's clock
	skew       int64 // event time minus arrival
	size       int32 // 0: about 115 bytes
	hash       uint64
	vals       []pipeline.Value
	noStatus   bool
}

// send processes one message, then ticks.
func (g *wire) send(m msg) []pipeline.Alert {
	if m.dev == "" {
		m.dev = g.dev
	}
	if m.topic == "" {
		m.topic = g.topic
	}
	if m.arrival == 0 {
		m.arrival = g.clock
	}
	g.clock = max(g.clock, m.arrival)
	if m.size == 0 {
		m.size = 113 + int32(g.nz.IntN(5))
	}
	if m.hash == 0 {
		m.hash = g.nz.Uint64() | 1
	}
	if m.vals == nil {
		m.vals = []pipeline.Value{pressure(p0 + g.nz.NormFloat64()*pSigma), temperature(t0C), vibration(v0)}
	}
	status := int8(0)
	if m.noStatus {
		status = pipeline.NoStatus
	}
	r := pipeline.Reading{Seq: g.seq, Time: m.arrival + m.skew, Arrival: m.arrival, Device: m.dev, Topic: m.topic,
		Status: status, Size: m.size, Hash: m.hash, Values: m.vals}
	g.seq++
	n := len(g.alerts)
	g.alerts = g.eng.Process(&r, g.alerts)
	g.alerts = g.eng.Tick(g.start, g.clock, g.alerts)
	return g.alerts[n:]
}

// tick advances the stream clock by d without a message from the device.
func (g *wire) tick(d time.Duration) []pipeline.Alert {
	g.clock += int64(d)
	n := len(g.alerts)
	g.alerts = g.eng.Tick(g.start, g.clock, g.alerts)
	return g.alerts[n:]
}

// every sends n messages one interval apart, each arriving with up to
// ±jitter (a fraction of the interval) of timing noise.
func (g *wire) every(n int, interval time.Duration, jitter float64) {
	base := g.clock
	for i := range n {
		j := (2*g.nz.Float64() - 1) * jitter * float64(interval)
		g.send(msg{arrival: base + int64(i+1)*int64(interval) + int64(j)})
	}
	g.clock = base + int64(n)*int64(interval)
}

func (g *wire) traffic() []pipeline.Alert {
	var out []pipeline.Alert
	for _, a := range g.alerts {
		if strings.HasPrefix(a.Kind, "traffic.") {
			out = append(out, a)
		}
	}
	return out
}

// firing returns the first firing alert of kind, if any.
func (g *wire) firing(kind string) (pipeline.Alert, bool) {
	for _, a := range g.alerts {
		if a.Kind == kind && a.State == pipeline.Firing {
			return a, true
		}
	}
	return pipeline.Alert{}, false
}

func fmtTraffic(as []pipeline.Alert) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n  %s %s %s %v: %s", time.Unix(0, a.Time).UTC().Format("15:04:05.000"), a.Device, a.Kind, a.State, a.Message)
	}
	if b.Len() == 0 {
		return "no alerts"
	}
	return b.String()
}

// TestTraffic checks each traffic reason: caught when it happens, with the
// right kind and an explaining message, and not flagged on the normal
// variations of a device's traffic.
func TestTraffic(t *testing.T) {
	const learn = 120 // messages before the behaviour under test
	for _, tc := range []struct {
		name string
		edit func(*detectors.Config)
		run  func(g *wire)
		kind string // "" when nothing may be flagged
		msg  string // a substring of the firing alert's message
		sev  pipeline.Severity
	}{
		{
			name: "flood", kind: "traffic.flood", sev: pipeline.Critical,
			msg: "it normally sends one every 1.0 s (flood threshold 5× its rate)",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.every(400, 50*time.Millisecond, 0.1) // 20× for 20 s
			},
		},
		{
			name: "jitter ±20% is not a flood or a silence",
			run:  func(g *wire) { g.every(2000, time.Second, 0.2) },
		},
		{
			name: "a burst of three messages is not a flood",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.every(3, 50*time.Millisecond, 0)
				g.every(100, time.Second, 0.2)
			},
		},
		{
			name: "silence", kind: "traffic.silence", sev: pipeline.Warning,
			msg: "has sent nothing for 5.0 s; it normally sends one every 1.0 s (silence threshold 5.0 s)",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for range 60 {
					g.tick(100 * time.Millisecond)
				}
				g.every(10, time.Second, 0.2)
			},
		},
		{
			name: "an occasional gap of 3 intervals is not a silence",
			run: func(g *wire) {
				for range 10 {
					g.every(learn, time.Second, 0.2)
					for range 3 * 10 {
						g.tick(100 * time.Millisecond)
					}
				}
			},
		},
		{
			name: "rogue: a new device after the learning period", kind: "traffic.rogue", sev: pipeline.Warning,
			msg: "is a device never seen before: it appeared 11.0 min after the stream started, after the learning period of 10.0 min",
			run: func(g *wire) {
				g.dev = "sensor-node-99"
				g.tick(11 * time.Minute)
				g.every(learn, time.Second, 0.2)
			},
		},
		{
			name: "a device within the learning period is not rogue",
			run: func(g *wire) {
				g.tick(9 * time.Minute)
				g.every(learn, time.Second, 0.2)
			},
		},
		{
			name: "rogue: off the allow-list", kind: "traffic.rogue", sev: pipeline.Critical,
			msg:  "is not on the allow-list of its class (sensor-node-0?, press-*)",
			edit: func(c *detectors.Config) { c.Params.Traffic.Rogue.Allow = []string{"sensor-node-0?", "press-*"} },
			run: func(g *wire) {
				g.dev = "sensor-node-42"
				g.every(learn, time.Second, 0.2)
			},
		},
		{
			name: "on the allow-list is not rogue",
			edit: func(c *detectors.Config) { c.Params.Traffic.Rogue.Allow = []string{"sensor-node-0?", "press-*"} },
			run:  func(g *wire) { g.every(learn, time.Second, 0.2) },
		},
		{
			name: "identity: another line's topic", kind: "traffic.identity", sev: pipeline.Warning,
			msg: "published on plant/line-b/sensor-node-03/telemetry, a topic it never used while it was learned",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.topic = "plant/line-b/sensor-node-03/telemetry"
				g.every(5, time.Second, 0.2)
			},
		},
		{
			name: "two topics during learning are not an identity problem",
			run: func(g *wire) {
				topics := []string{"plant/line-a/sensor-node-03/telemetry", "plant/line-a/sensor-node-03/status"}
				for i := range 2 * learn {
					g.topic = topics[i%3%2]
					g.every(1, time.Second, 0.2)
				}
			},
		},
		{
			name: "identity: the topic names another device", kind: "traffic.identity", sev: pipeline.Critical,
			msg:  `published on plant/line-a/sensor-node-04/telemetry, a topic of device "sensor-node-04" (topic pattern plant/+/{device}/telemetry)`,
			edit: func(c *detectors.Config) { c.Params.Traffic.Identity.TopicPattern = "plant/+/{device}/telemetry" },
			run: func(g *wire) {
				g.topic = "plant/line-a/sensor-node-04/telemetry"
				g.every(3, time.Second, 0.2)
			},
		},
		{
			name: "identity: two interleaved streams, timestamps back and forth", kind: "traffic.identity", sev: pipeline.Warning,
			msg: "timestamps jump back and forth",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for i := range 60 {
					g.send(msg{arrival: g.clock + int64(500*time.Millisecond), skew: -int64(3700*time.Millisecond) * int64(i%2)})
				}
			},
		},
		{
			name: "identity: two streams in step, the rate doubles", kind: "traffic.identity", sev: pipeline.Warning,
			msg: "two streams may share this node_id",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.every(200, 500*time.Millisecond, 0.05)
			},
		},
		{
			name: "replay: a block of old messages", kind: "traffic.replay", sev: pipeline.Warning,
			msg: "58 s behind its latest timestamp 2025-11-21T10:02:00.158Z (tolerance 20 s): old messages replayed?",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for range 20 {
					g.send(msg{arrival: g.clock + int64(time.Second), skew: -int64(time.Minute)})
				}
				g.every(20, time.Second, 0.2)
			},
		},
		{
			name: "replay: duplicates of recent payloads", kind: "traffic.replay", sev: pipeline.Critical,
			msg: "sent a payload identical to one of its last 4",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for i := range 6 {
					g.send(msg{arrival: g.clock + int64(time.Second), hash: uint64(1000 + i%2)})
				}
			},
		},
		{
			name: "a message 2 s late is not a replay, nor a clock problem",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.send(msg{arrival: g.clock + int64(time.Second), skew: -int64(2 * time.Second)})
				g.every(50, time.Second, 0.2)
			},
		},
		{
			name: "a 55-minute clock step back on 5-minute data is not flagged",
			run: func(g *wire) {
				g.every(learn, 5*time.Minute, 0)
				// NAB machine_temperature: the timestamps step back 3300 s once,
				// and in replay the stream clock waits until they catch up.
				for i := range 11 {
					g.send(msg{arrival: g.clock, skew: -3300e9 + int64(i+1)*300e9})
				}
				g.every(100, 5*time.Minute, 0)
			},
		},
		{
			name: "clock: the device clock jumps 60 s ahead", kind: "traffic.clock", sev: pipeline.Warning,
			msg: "clock is 60 s off arrival time; it is normally 0 ms off (tolerance 5.0 s)",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for range 10 {
					g.send(msg{arrival: g.clock + int64(time.Second), skew: int64(time.Minute)})
				}
			},
		},
		{
			name: "a clock running 20× arrival time (plant time in a demo) is learned, not flagged",
			run: func(g *wire) {
				for range 2 * learn {
					at := g.clock + int64(50*time.Millisecond)
					g.send(msg{arrival: at, skew: 19 * (at - g.start)})
				}
			},
		},
		{
			name: "clock: the device clock stops", kind: "traffic.clock", sev: pipeline.Warning,
			msg: "clock is -8.0 s off arrival time; it is normally -109 ms off (tolerance 5.0 s)",
			run: func(g *wire) {
				g.every(learn, time.Second, 0)
				frozen := g.clock
				for range 10 {
					g.clock += int64(time.Second)
					g.send(msg{skew: frozen - g.clock})
				}
			},
		},
		{
			name: "schema: a field appears", kind: "traffic.schema", sev: pipeline.Warning,
			msg: "fields changed: flow appeared (learned: pressure, temperature, vibration, status)",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for range 3 {
					g.send(msg{arrival: g.clock + int64(time.Second), vals: []pipeline.Value{pressure(p0), temperature(t0C), vibration(v0), flow(f0)}})
				}
			},
		},
		{
			name: "schema: a field disappears", kind: "traffic.schema", sev: pipeline.Warning,
			msg: "fields changed: temperature disappeared",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.send(msg{arrival: g.clock + int64(time.Second), vals: []pipeline.Value{pressure(p0), vibration(v0)}})
			},
		},
		{
			name: "schema: an oversized payload", kind: "traffic.schema", sev: pipeline.Warning,
			msg: "sent a 4096-byte payload; its payloads are normally 113–117 bytes",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.send(msg{arrival: g.clock + int64(time.Second), size: 4096})
			},
		},
		{
			name: "schema: malformed payloads", kind: "traffic.schema", sev: pipeline.Warning,
			msg: "of sensor-node-03's recent payloads were rejected (last: invalid_value); the threshold is 20%",
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				for range 5 {
					g.clock += int64(time.Second)
					r := pipeline.Reading{Device: g.dev, Arrival: g.clock, Seq: g.seq}
					g.alerts = g.eng.Reject(&r, pipeline.ReasonInvalidValue, g.alerts)
				}
			},
		},
		{
			name: "an occasional malformed payload is not a schema change",
			run: func(g *wire) {
				for range 10 {
					g.every(learn, time.Second, 0.2)
					r := pipeline.Reading{Device: g.dev, Arrival: g.clock, Seq: g.seq}
					g.alerts = g.eng.Reject(&r, pipeline.ReasonMalformed, g.alerts)
				}
			},
		},
		{
			name: "traffic.enabled false",
			edit: func(c *detectors.Config) { c.Params.Traffic.Enabled = false },
			run: func(g *wire) {
				g.every(learn, time.Second, 0.2)
				g.every(400, 50*time.Millisecond, 0.1)
				g.tick(time.Minute)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newWire(t, tc.edit)
			g.eng.Tick(g.start, g.start, nil)
			tc.run(g)
			got := g.traffic()
			if tc.kind == "" {
				if len(got) != 0 {
					t.Fatalf("got %s; want no traffic alert", fmtTraffic(got))
				}
				return
			}
			a, ok := g.firing(tc.kind)
			if !ok {
				t.Fatalf("got %s; want %s firing", fmtTraffic(got), tc.kind)
			}
			for _, o := range got {
				if o.Kind != tc.kind {
					t.Errorf("got %s too; want only %s", fmtTraffic([]pipeline.Alert{o}), tc.kind)
				}
			}
			if !strings.Contains(a.Message, tc.msg) || !strings.HasPrefix(a.Message, g.dev) && tc.kind != "traffic.schema" {
				t.Errorf("message %q; want it to name %s and say %q", a.Message, g.dev, tc.msg)
			}
			if a.Detector != tc.kind || a.Device != g.dev || a.ID == "" {
				t.Errorf("got detector %q device %q id %q; want %s, %s and an ID", a.Detector, a.Device, a.ID, tc.kind, g.dev)
			}
			var sev pipeline.Severity
			for _, o := range got {
				if o.State == pipeline.Firing {
					sev = max(sev, o.Severity)
				}
				if o.ID != a.ID {
					t.Errorf("alert %s has ID %s; want every record of the episode to have %s", o.Message, o.ID, a.ID)
				}
			}
			if sev != tc.sev {
				t.Errorf("highest severity %v; want %v", sev, tc.sev)
			}
			t.Logf("%s", fmtTraffic(got))
		})
	}
}

// TestTrafficResolves: each episode ends when the behaviour does.
func TestTrafficResolves(t *testing.T) {
	g := newWire(t, nil)
	g.every(100, time.Second, 0.2)
	g.every(400, 50*time.Millisecond, 0.1) // flood
	g.every(60, time.Second, 0.2)
	for range 30 {
		g.tick(time.Second) // silence
	}
	g.every(10, time.Second, 0.2)
	want := []struct {
		kind  string
		state pipeline.AlertState
	}{
		{"traffic.flood", pipeline.Firing}, {"traffic.flood", pipeline.Firing}, {"traffic.flood", pipeline.Resolved},
		{"traffic.silence", pipeline.Firing}, {"traffic.silence", pipeline.Resolved},
	}
	got := g.traffic()
	if len(got) != len(want) {
		t.Fatalf("got %s; want flood firing, escalating to critical, resolved; silence firing, resolved", fmtTraffic(got))
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].State != w.state {
			t.Errorf("alert %d: got %s %v; want %s %v", i, got[i].Kind, got[i].State, w.kind, w.state)
		}
		if wantEsc := i == 1; got[i].Escalation != wantEsc {
			t.Errorf("alert %d: got escalation %v; want %v", i, got[i].Escalation, wantEsc)
		}
	}
	if m := got[4].Message; m != "traffic.silence resolved: sensor-node-03 is sending again." {
		t.Errorf("silence resolved: message %q", m)
	}
}

// TestTrafficPoisoning: a device cannot teach its profile a flood or a
// doubled rate by keeping it up: the learned interval stays, and only
// relearn_after anomalous messages start the profile afresh.
func TestTrafficPoisoning(t *testing.T) {
	g := newWire(t, nil)
	g.every(100, time.Second, 0.2)
	before := g.eng.Device(g.dev).Traffic.Interval
	g.every(1000, 500*time.Millisecond, 0.05)
	ts := g.eng.Device(g.dev).Traffic
	if ts.Interval < 0.95*before {
		t.Errorf("after 1000 messages at twice the rate: learned interval %.3f s; want it kept at %.3f s", ts.Interval, before)
	}
	if _, ok := g.firing("traffic.identity"); !ok {
		t.Errorf("got %s; want traffic.identity for the doubled rate", fmtTraffic(g.traffic()))
	}
	// Kept up for relearn_after (3000) messages, the new rate is learned and
	// the alert resolves.
	g.every(2500, 500*time.Millisecond, 0.05)
	ts = g.eng.Device(g.dev).Traffic
	if ts.Interval > 0.6 {
		t.Errorf("after 3500 messages at twice the rate: learned interval %.3f s; want the new rate learned (0.5 s)", ts.Interval)
	}
	last := g.traffic()[len(g.traffic())-1]
	if last.Kind != "traffic.identity" || last.State != pipeline.Resolved {
		t.Errorf("last traffic alert %s; want traffic.identity resolved", fmtTraffic([]pipeline.Alert{last}))
	}
}

// TestTickOrderAndCost: silence alerts of one tick come out in device order,
// and a tick with nothing due does not visit the devices.
func TestTickOrderAndCost(t *testing.T) {
	eng := newSet(t, nil).NewEngine()
	names := []string{"d-7", "d-1", "d-5", "d-3"}
	for i := range 60 {
		for k, n := range names {
			r := pipeline.Reading{Device: n, Time: t0 + int64(i)*sec + int64(k), Status: 0, Values: []pipeline.Value{pressure(p0)}}
			eng.Process(&r, nil)
		}
	}
	last := t0 + 59*sec + 3
	if got := eng.Tick(t0, last+4*sec, nil); len(got) != 0 {
		t.Fatalf("4 s after the last messages: %s; want nothing yet", fmtTraffic(got))
	}
	got := eng.Tick(t0, last+6*sec, nil)
	var devs []string
	for _, a := range got {
		devs = append(devs, a.Device)
	}
	if fmt.Sprint(devs) != "[d-1 d-3 d-5 d-7]" {
		t.Errorf("silence alerts for %v; want [d-1 d-3 d-5 d-7] in device order", devs)
	}
	allocs := testing.AllocsPerRun(100, func() { eng.Tick(t0, last+7*sec, nil) })
	if allocs != 0 {
		t.Errorf("Tick with nothing due: %v allocs; want 0", allocs)
	}
}

// TestNewDevices counts first sightings between calls.
func TestNewDevices(t *testing.T) {
	eng := newSet(t, nil).NewEngine()
	for i, d := range []string{"a", "b", "a", "c"} {
		eng.Process(reading(d, i), nil)
	}
	if n := eng.NewDevices(); n != 3 {
		t.Errorf("NewDevices = %d; want 3", n)
	}
	eng.Process(reading("a", 5), nil)
	if n := eng.NewDevices(); n != 0 {
		t.Errorf("NewDevices after a known device = %d; want 0", n)
	}
}

// TestRejectUnknownDevice: a malformed payload of a device the engine does
// not know creates no state.
func TestRejectUnknownDevice(t *testing.T) {
	eng := newSet(t, nil).NewEngine()
	for i := range 1000 {
		r := pipeline.Reading{Device: fmt.Sprint("x-", i), Arrival: t0}
		if out := eng.Reject(&r, pipeline.ReasonMalformed, nil); len(out) != 0 {
			t.Fatalf("Reject: %s; want nothing", fmtTraffic(out))
		}
	}
	if eng.Devices() != 0 {
		t.Errorf("%d devices after rejections of unknown devices; want 0", eng.Devices())
	}
}

// TestFleetSpray: after the learning period, a burst of new device IDs is
// flagged once for the fleet, escalates, and resolves when it ends.
func TestFleetSpray(t *testing.T) {
	set := newSet(t, nil)
	f := set.NewFleet()
	var out []pipeline.Alert
	clock := t0
	step := func(d time.Duration, n int) {
		clock += int64(d)
		out = f.Judge(clock, n, out)
	}
	step(0, 12) // the fleet appears
	for range 600 {
		step(time.Second, 0)
	}
	step(time.Second, 1) // one new device: fine
	for range 70 {
		step(time.Second, 0)
	}
	for range 10 {
		step(time.Second, 30) // 300 new IDs in 10 s
	}
	for range 120 {
		step(time.Second, 0)
	}
	if len(out) != 3 || out[0].State != pipeline.Firing || out[1].Severity != pipeline.Critical || out[2].State != pipeline.Resolved {
		t.Fatalf("got %s; want traffic.spray firing, critical, resolved", fmtTraffic(out))
	}
	for _, a := range out {
		if a.Kind != "traffic.spray" || a.Device != "" || a.ID != out[0].ID {
			t.Errorf("got %s device %q id %s; want traffic.spray for the fleet (device \"\") with one ID", a.Kind, a.Device, a.ID)
		}
	}
	if want := "30 device IDs never seen before appeared in the last 1m0s; at most 20 are expected after the learning period (identity spraying?)."; out[0].Message != want {
		t.Errorf("message %q; want %q", out[0].Message, want)
	}
	cfg := detectors.DefaultConfig()
	cfg.Fleet.Enabled = false
	if s, err := detectors.New(cfg); err != nil || s.NewFleet() != nil || s.FleetFunc() != nil {
		t.Errorf("fleet disabled: NewFleet and FleetFunc should be nil (err %v)", err)
	}
}

// TestIdentitySprayMillion: a million random node IDs through an engine with
// a cap keep its memory under the cap, raise no per-device alert (each ID
// sends once), and the fleet flags the spray.
func TestIdentitySprayMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	set := newSet(t, nil)
	const limit, spray = 10_000, 1_000_000
	eng := set.NewEngine()
	eng.SetMaxDevices(limit)
	fleet := set.NewFleet()
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// A fleet of 100 devices, learned for 11 minutes.
	var out []pipeline.Alert
	clock := t0
	for s := range 660 {
		clock = t0 + int64(s)*sec
		for k := range 100 {
			r := pipeline.Reading{Device: fmt.Sprintf("sensor-node-%03d", k), Time: clock, Arrival: clock, Status: 0,
				Values: []pipeline.Value{pressure(p0)}, Hash: uint64(s*100 + k + 1)}
			out = eng.Process(&r, out)
		}
		out = eng.Tick(t0, clock, out)
		out = fleet.Judge(clock, eng.NewDevices(), out)
	}
	if len(out) != 0 {
		t.Fatalf("learning the fleet: %s; want no alerts", fmtTraffic(out))
	}
	name := make([]byte, 0, 32)
	var r pipeline.Reading
	r.Values = []pipeline.Value{pressure(p0)}
	var before uint64
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range spray {
		if i == limit {
			before = heap()
		}
		name = fmt.Appendf(name[:0], "spray-%016x", rng.Uint64())
		r.Device, r.Time, r.Arrival, r.Hash = string(name), clock, clock, rng.Uint64()
		out = eng.Process(&r, out)
		if i%1000 == 999 { // one batch per millisecond of stream time
			clock += int64(time.Millisecond)
			out = eng.Tick(t0, clock, out)
			out = fleet.Judge(clock, eng.NewDevices(), out)
		}
	}
	after := heap()
	if eng.Devices() > limit {
		t.Errorf("%d devices tracked; want at most the cap %d", eng.Devices(), limit)
	}
	if grew := int64(after) - int64(before); grew > 4<<20 {
		t.Errorf("heap grew by %d bytes while %d more IDs arrived at the cap; want it bounded (< 4 MiB)", grew, spray-limit)
	}
	var kinds []string
	for _, a := range out {
		kinds = append(kinds, a.Kind+"/"+a.State.String()+"/"+a.Severity.String())
	}
	if len(out) == 0 || out[0].Kind != "traffic.spray" || out[0].Device != "" {
		t.Fatalf("alerts %v; want traffic.spray first", kinds)
	}
	for _, a := range out {
		if a.Kind != "traffic.spray" {
			t.Errorf("got %s for %s; want only the fleet-level spray alert", a.Kind, a.Device)
			break
		}
	}
	t.Logf("alerts %v; %d devices, %d evicted, heap %d → %d bytes", kinds, eng.Devices(), eng.Evictions(), before, after)
}

func TestTrafficConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*detectors.TrafficConfig)
		want string
	}{
		{"warmup", func(c *detectors.TrafficConfig) { c.Warmup = 1 }, "traffic: warmup must be between 2"},
		{"relearn", func(c *detectors.TrafficConfig) { c.RelearnAfter = -1 }, "traffic: relearn_after"},
		{"flood factor", func(c *detectors.TrafficConfig) { c.Flood.Factor = 1 }, "traffic: flood: need factor > 1"},
		{"flood hold", func(c *detectors.TrafficConfig) { c.Flood.Hold = 0 }, "traffic: flood: hold and clear"},
		{"silence", func(c *detectors.TrafficConfig) { c.Silence.Intervals = 1 }, "traffic: silence: need intervals > 1"},
		{"rogue learning", func(c *detectors.TrafficConfig) { c.Rogue.Learning = -time.Second }, "traffic: rogue: learning"},
		{"rogue allow", func(c *detectors.TrafficConfig) { c.Rogue.Allow = []string{"press-["} }, `traffic: rogue: allow: bad device pattern "press-["`},
		{"pattern without device", func(c *detectors.TrafficConfig) { c.Identity.TopicPattern = "plant/+/x" }, "traffic: identity: topic_pattern"},
		{"pattern partial level", func(c *detectors.TrafficConfig) { c.Identity.TopicPattern = "plant/x{device}" }, "whole level"},
		{"alternations", func(c *detectors.TrafficConfig) { c.Identity.Alternations = 8 }, "traffic: identity: alternations"},
		{"rate band", func(c *detectors.TrafficConfig) { c.Identity.RateHigh = 1.5 }, "traffic: identity: need 1 < rate_low < rate_high"},
		{"replay", func(c *detectors.TrafficConfig) { c.Replay.Tolerance = 0 }, "traffic: replay: need tolerance > 0"},
		{"clock", func(c *detectors.TrafficConfig) { c.Clock.Tolerance = 0 }, "traffic: clock: tolerance"},
		{"schema", func(c *detectors.TrafficConfig) { c.Schema.Malformed = 2 }, "traffic: schema: need size_ratio > 1 and malformed in (0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := detectors.DefaultConfig()
			tc.edit(&cfg.Params.Traffic)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v; want an error containing %q", err, tc.want)
			}
		})
	}
	cfg := detectors.DefaultConfig()
	cfg.Fleet.MaxNew = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "fleet: need") {
		t.Errorf("max_new 0: Validate() = %v; want a fleet error", err)
	}
	cfg.Params.Traffic.Identity.TopicPattern = "plant/+/{device}/#"
	cfg.Fleet = detectors.FleetConfig{} // disabled: valid
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid pattern, fleet off: Validate() = %v", err)
	}
}
