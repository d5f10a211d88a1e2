package sim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

// reading is one parsed message.
type reading struct {
	Time    time.Time
	Device  string
	P, T, V float64
	Status  int
	Payload string
}

// payloadRE is the exact message shape: field order, no spaces, millisecond
// UTC timestamps, numbers with at most two decimals.
var payloadRE = regexp.MustCompile(`^\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","node_id":"sensor-node-\d{2,}",` +
	`"data":\{"p":-?\d+(\.\d\d?)?,"t":-?\d+(\.\d\d?)?,"v":\d+(\.\d\d?)?\},"status":[012]\}$`)

// parse checks m's shape and decodes it with encoding/json.
func parse(m sim.Message) (reading, error) {
	if !payloadRE.Match(m.Payload) {
		return reading{}, fmt.Errorf("payload %s does not have the device format", m.Payload)
	}
	var j struct {
		Timestamp time.Time `json:"timestamp"`
		NodeID    string    `json:"node_id"`
		Data      struct {
			P, T, V *float64
		} `json:"data"`
		Status *int `json:"status"`
	}
	if err := json.Unmarshal(m.Payload, &j); err != nil {
		return reading{}, fmt.Errorf("payload %s: %v", m.Payload, err)
	}
	r := reading{Time: j.Timestamp, Device: j.NodeID, Payload: string(m.Payload)}
	if j.Data.P == nil || j.Data.T == nil || j.Data.V == nil || j.Status == nil {
		return r, fmt.Errorf("payload %s: missing field", m.Payload)
	}
	r.P, r.T, r.V, r.Status = *j.Data.P, *j.Data.T, *j.Data.V, *j.Status
	for _, x := range []float64{r.P, r.T, r.V} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return r, fmt.Errorf("payload %s: value not finite", m.Payload)
		}
	}
	if r.Status < 0 || r.Status > 2 {
		return r, fmt.Errorf("payload %s: status %d not in {0, 1, 2}", m.Payload, r.Status)
	}
	if !r.Time.Equal(m.Time) || r.Device != m.Device {
		return r, fmt.Errorf("payload %s: message says time %v, device %q", m.Payload, m.Time, m.Device)
	}
	if got := m.Time.Format("2006-01-02T15:04:05.000Z07:00"); !strings.Contains(r.Payload, `"`+got+`"`) {
		return r, fmt.Errorf("payload %s: timestamp is not %s", m.Payload, got)
	}
	return r, nil
}

// run generates cfg to the end and parses every message.
func run(t testing.TB, cfg sim.Config) (*sim.Generator, []reading) {
	t.Helper()
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rs []reading
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		r, err := parse(m)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if _, ok := g.Next(); ok {
		t.Fatal("Next returned a message after the end of the stream")
	}
	return g, rs
}

// longRun is a three-hour run of the default fleet, shared by the tests that
// need many injections.
var longRun = sync.OnceValues(func() (*sim.Generator, []reading) {
	cfg := sim.DefaultConfig()
	cfg.Duration = 3 * time.Hour
	return run(panicTB{}, cfg)
})

// panicTB lets run be used outside a test.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func byDevice(rs []reading) map[string][]reading {
	m := make(map[string][]reading)
	for _, r := range rs {
		m[r.Device] = append(m[r.Device], r)
	}
	return m
}

func devices(g *sim.Generator, n int) []sim.DeviceInfo {
	ds := make([]sim.DeviceInfo, n)
	for i := range ds {
		ds[i] = g.Device(i)
	}
	return ds
}

func writeLog(t *testing.T, cfg sim.Config) ([]byte, []sim.Label) {
	t.Helper()
	var buf bytes.Buffer
	labels, err := sim.WriteLog(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), labels
}

func TestDeterministic(t *testing.T) {
	cfg := sim.DefaultConfig()
	a, la := writeLog(t, cfg)
	b, lb := writeLog(t, cfg)
	if !bytes.Equal(a, b) {
		t.Error("two runs of the same config wrote different logs")
	}
	if !slices.Equal(la, lb) {
		t.Error("two runs of the same config returned different labels")
	}
	if len(la) == 0 {
		t.Error("the default config injected nothing")
	}

	cfg.Seed = 2
	c, lc := writeLog(t, cfg)
	if bytes.Equal(a, c) {
		t.Error("seeds 1 and 2 wrote the same log")
	}
	if slices.Equal(la, lc) {
		t.Error("seeds 1 and 2 returned the same labels")
	}
}

// TestPrefix checks that a shorter run is the beginning of a longer one.
func TestPrefix(t *testing.T) {
	cfg := sim.DefaultConfig()
	long, _ := writeLog(t, cfg)
	cfg.Duration = 17 * time.Minute
	short, _ := writeLog(t, cfg)
	if !bytes.HasPrefix(long, short) {
		t.Error("the 17-minute log is not a prefix of the 30-minute log")
	}
}

// TestFleetIndependence checks that a device's series does not depend on the
// size of the fleet.
func TestFleetIndependence(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Anomalous = 0
	cfg.Duration = 5 * time.Minute
	_, small := run(t, cfg)
	cfg.Devices = 40
	_, large := run(t, cfg)
	bs, bl := byDevice(small), byDevice(large)
	if len(bs) != 12 || len(bl) != 40 {
		t.Fatalf("got %d and %d devices; want 12 and 40", len(bs), len(bl))
	}
	for dev, rs := range bs {
		if !slices.Equal(rs, bl[dev]) {
			t.Errorf("%s: series differs between fleets of 12 and 40", dev)
		}
	}
}

func TestOrder(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, 100 * time.Millisecond, 6 * time.Millisecond, time.Millisecond} {
		t.Run(interval.String(), func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.Interval = interval
			cfg.Duration = 2000 * interval
			_, rs := run(t, cfg)
			start, end := cfg.Start, cfg.Start.Add(cfg.Duration)
			jitter := min(20*time.Millisecond, (interval / 4).Truncate(time.Millisecond))
			last := make(map[string]time.Time)
			count := make(map[string]int)
			for i, r := range rs {
				if r.Time.Before(start) || !r.Time.Before(end) {
					t.Fatalf("message %d at %v outside the run [%v, %v)", i, r.Time, start, end)
				}
				if i > 0 && r.Time.Before(rs[i-1].Time) {
					t.Fatalf("message %d at %v before message %d at %v", i, r.Time, i-1, rs[i-1].Time)
				}
				if i > 0 && r.Time.Equal(rs[i-1].Time) && r.Device < rs[i-1].Device {
					t.Fatalf("message %d from %s before message %d from %s at the same time %v", i-1, rs[i-1].Device, i, r.Device, r.Time)
				}
				if prev, ok := last[r.Device]; ok {
					gap := r.Time.Sub(prev)
					if gap < interval-2*jitter || gap > interval+2*jitter || gap <= 0 {
						t.Fatalf("%s: gap %v between messages; want %v ± %v", r.Device, gap, interval, 2*jitter)
					}
				}
				last[r.Device] = r.Time
				count[r.Device]++
			}
			if len(count) != cfg.Devices {
				t.Fatalf("got messages from %d devices; want %d", len(count), cfg.Devices)
			}
			for dev, n := range count {
				if n < 1999 || n > 2001 {
					t.Errorf("%s: got %d messages; want 2000 ± 1", dev, n)
				}
			}
		})
	}
}

// TestFormat runs across midnight, a new year and the Unix epoch, where the
// hand-written timestamps are most likely to go wrong; parse compares them with
// package time.
func TestFormat(t *testing.T) {
	for _, start := range []string{
		"2026-11-21T10:00:00Z",
		"2026-12-31T23:59:30.5Z",
		"1969-12-31T23:59:40Z",
		"2024-02-28T23:59:55Z",
	} {
		t.Run(start, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.Start, _ = time.Parse(time.RFC3339, start)
			cfg.Duration = time.Minute
			_, rs := run(t, cfg)
			first := rs[0].Time
			if want := cfg.Start.Truncate(time.Millisecond); first.Before(want) {
				t.Errorf("first message at %v; want at or after %v", first, want)
			}
			if last := rs[len(rs)-1].Time; last.YearDay() == first.YearDay() && start != "2026-11-21T10:00:00Z" {
				t.Errorf("run did not cross midnight: %v to %v", first, last)
			}
		})
	}
}

func TestExampleMessage(t *testing.T) {
	g, err := sim.New(sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := g.Next()
	want := `{"timestamp":"2026-11-21T10:00:00.028Z","node_id":"sensor-node-10","data":{"p":4.95,"t":46.56,"v":1.77},"status":0}`
	if string(m.Payload) != want {
		t.Errorf("first message %s; want %s", m.Payload, want)
	}
	if m.Topic != "plant/line-b/sensor-node-10/telemetry" {
		t.Errorf("topic %q; want plant/line-b/sensor-node-10/telemetry", m.Topic)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		devices int
		i       int
		name    string
		topic   string
	}{
		{12, 0, "sensor-node-01", "plant/line-a/sensor-node-01/telemetry"},
		{12, 7, "sensor-node-08", "plant/line-a/sensor-node-08/telemetry"},
		{12, 8, "sensor-node-09", "plant/line-b/sensor-node-09/telemetry"},
		{99, 98, "sensor-node-99", "plant/line-m/sensor-node-99/telemetry"},
		{100, 0, "sensor-node-001", "plant/line-a/sensor-node-001/telemetry"},
		{300, 299, "sensor-node-300", "plant/line-al/sensor-node-300/telemetry"},
	} {
		cfg := sim.DefaultConfig()
		cfg.Devices, cfg.Anomalous = tc.devices, 0
		g, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if d := g.Device(tc.i); d.Name != tc.name || d.Topic != tc.topic {
			t.Errorf("%d devices, device %d: got %s on %s; want %s on %s", tc.devices, tc.i, d.Name, d.Topic, tc.name, tc.topic)
		}
	}
}

func TestWriteLogTopics(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Duration = 10 * time.Second
	cfg.Topics = true
	log, _ := writeLog(t, cfg)
	lines := strings.Split(strings.TrimSuffix(string(log), "\n"), "\n")
	if len(lines) != 120 {
		t.Fatalf("got %d lines; want 120", len(lines))
	}
	for _, line := range lines {
		topic, payload, ok := strings.Cut(line, " ")
		if !ok || !payloadRE.MatchString(payload) {
			t.Fatalf("line %q is not \"topic payload\"", line)
		}
		var p struct {
			NodeID string `json:"node_id"`
		}
		json.Unmarshal([]byte(payload), &p)
		line := "a"
		if p.NodeID > "sensor-node-08" {
			line = "b"
		}
		if want := "plant/line-" + line + "/" + p.NodeID + "/telemetry"; topic != want {
			t.Errorf("topic %q; want %q", topic, want)
		}
	}

	cfg.Topics = false
	log, _ = writeLog(t, cfg)
	if !bytes.HasPrefix(log, []byte(`{"timestamp":`)) {
		t.Errorf("without Topics the log starts %.30q; want a payload", log)
	}
}

func TestOperatingPoints(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Devices = 200
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	anomalous := 0
	for i, d := range devices(g, cfg.Devices) {
		if d.P0 < 3 || d.P0 > 6 || d.T0 < 45 || d.T0 > 75 || d.V0 < 1 || d.V0 > 2.8 {
			t.Errorf("device %d: operating point p0=%v t0=%v v0=%v out of range", i, d.P0, d.T0, d.V0)
		}
		if d.SigmaP != 0.015*d.P0 || d.SigmaT != 0.25 || d.SigmaV != 0.04*d.V0 {
			t.Errorf("device %d: noise σ %v %v %v", i, d.SigmaP, d.SigmaT, d.SigmaV)
		}
		if d.Anomalous {
			anomalous++
		}
	}
	if anomalous != cfg.Anomalous {
		t.Errorf("%d anomalous devices; want %d", anomalous, cfg.Anomalous)
	}
}

// within reports whether r is within 6σ of d's operating point on every
// signal (5σ of noise, 1σ of process variation, plus rounding), and names the
// first signal that is not.
func within(d sim.DeviceInfo, r reading) (string, bool) {
	const round = 0.005 + 1e-9
	switch {
	case math.Abs(r.P-d.P0) > 6*d.SigmaP+round:
		return "pressure", false
	case math.Abs(r.T-d.T0) > 6*d.SigmaT+round:
		return "temperature", false
	case math.Abs(r.V-d.V0) > 6*d.SigmaV+round:
		return "vibration", false
	}
	return "", true
}

func TestCleanDevices(t *testing.T) {
	g, rs := longRun()
	labelled := make(map[string]bool)
	for _, l := range g.Labels() {
		labelled[l.Device] = true
	}
	byName := make(map[string]sim.DeviceInfo)
	clean := 0
	for _, d := range devices(g, 12) {
		byName[d.Name] = d
		if !d.Anomalous {
			clean++
			if labelled[d.Name] {
				t.Errorf("clean device %s has labels", d.Name)
			}
		}
	}
	if clean != 4 {
		t.Fatalf("%d clean devices; want 4", clean)
	}
	for _, r := range rs {
		d := byName[r.Device]
		if d.Anomalous {
			continue
		}
		if sig, ok := within(d, r); !ok || r.Status != 0 {
			t.Fatalf("clean device %s (p0=%.2f t0=%.2f v0=%.2f): %s out of its band or status set: %s", d.Name, d.P0, d.T0, d.V0, sig, r.Payload)
		}
	}
}

func TestEveryKind(t *testing.T) {
	g, _ := longRun()
	labels := g.Labels()
	kinds := make(map[string]map[string]int)
	for _, l := range labels {
		if kinds[l.Device] == nil {
			kinds[l.Device] = make(map[string]int)
		}
		kinds[l.Device][l.Kind+"/"+l.Detail]++
	}
	for _, d := range devices(g, 12) {
		if !d.Anomalous {
			continue
		}
		for _, k := range []string{"overpressure/spike", "thermal/fluctuation", "vibration/jump"} {
			if kinds[d.Name][k] < 3 {
				t.Errorf("%s: %d %s injections in 3 hours; want at least 3", d.Name, kinds[d.Name][k], k)
			}
		}
	}
	count := func(kind string) (n int, devs []string) {
		for dev, ks := range kinds {
			if ks[kind] > 0 {
				n += ks[kind]
				devs = append(devs, dev)
			}
		}
		return n, devs
	}
	drift, driftDevs := count("thermal/drift")
	wear, wearDevs := count("vibration/wear")
	fault, _ := count("status/fault")
	if drift != 1 || wear != 1 || fault != 1 {
		t.Fatalf("got %d cooling drifts, %d wear drifts, %d faults; want one of each", drift, wear, fault)
	}
	if driftDevs[0] == wearDevs[0] {
		t.Errorf("both drifts on %s; want two devices", driftDevs[0])
	}
	if !slices.IsSortedFunc(labels, func(a, b sim.Label) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Device, b.Device)
	}) {
		t.Error("labels are not sorted by start, then device")
	}

	// The default 30 minutes already hold both drifts and the fault.
	_, labels = writeLog(t, sim.DefaultConfig())
	var n int
	for _, l := range labels {
		if l.Detail == sim.DetailDrift || l.Detail == sim.DetailWear || l.Detail == sim.DetailFault {
			n++
		}
	}
	if n != 3 {
		t.Errorf("default run has %d drifts and faults; want 3", n)
	}
}

// TestLabelWindows checks that each label's window holds the deviation its
// kind promises, that the other signals stay normal in it, and that every
// sample outside the windows is normal.
func TestLabelWindows(t *testing.T) {
	g, rs := longRun()
	labels := g.Labels()
	cfg := sim.DefaultConfig()
	byName := make(map[string]sim.DeviceInfo)
	for _, d := range devices(g, 12) {
		byName[d.Name] = d
	}
	idx := make(map[string][]int) // message indices by device
	for i, r := range rs {
		idx[r.Device] = append(idx[r.Device], i)
	}
	inside := make([]bool, len(rs))
	for _, l := range labels {
		if !l.Start.After(cfg.Start.Add(cfg.LeadIn)) {
			t.Errorf("label %+v starts in the lead-in", l)
		}
		if l.End.Before(l.Start) {
			t.Errorf("label %+v ends before it starts", l)
		}
		d := byName[l.Device]
		var n, status2 int
		var maxP, maxT, maxV, maxAbsT float64
		for _, i := range idx[l.Device] {
			r := rs[i]
			if r.Time.Before(l.Start) || r.Time.After(l.End) {
				continue
			}
			inside[i] = true
			n++
			maxP, maxT, maxV = max(maxP, r.P), max(maxT, r.T), max(maxV, r.V)
			maxAbsT = max(maxAbsT, math.Abs(r.T-d.T0))
			if r.Status == 2 {
				status2++
			}
			// Only the injected signal deviates.
			other := r
			switch l.Kind {
			case sim.KindOverpressure:
				other.P = d.P0
			case sim.KindThermal:
				other.T = d.T0
			case sim.KindVibration:
				other.V = d.V0
			}
			if sig, ok := within(d, other); !ok {
				t.Errorf("%s %s/%s: %s deviates too: %s", l.Device, l.Kind, l.Detail, sig, r.Payload)
			}
			if l.Kind != sim.KindStatus && r.Status != 0 {
				t.Errorf("%s %s/%s: status set: %s", l.Device, l.Kind, l.Detail, r.Payload)
			}
		}
		if n == 0 {
			t.Errorf("label %+v holds no sample", l)
			continue
		}
		var ok bool
		var got string
		switch l.Kind + "/" + l.Detail {
		case "overpressure/spike":
			ok, got = maxP >= 1.3*d.P0, fmt.Sprintf("max p %.2f = %.2f×p0; want ≥ 1.3×p0", maxP, maxP/d.P0)
		case "thermal/fluctuation":
			ok, got = maxAbsT >= 2, fmt.Sprintf("max |t−t0| %.2f; want ≥ 2", maxAbsT)
		case "vibration/jump":
			ok, got = maxV >= 2*d.V0, fmt.Sprintf("max v %.2f = %.2f×v0; want ≥ 2×v0", maxV, maxV/d.V0)
		case "thermal/drift":
			ok, got = maxT >= d.T0+6 && l.End.Sub(l.Start) > 8*time.Minute,
				fmt.Sprintf("max t−t0 %.2f over %v; want ≥ 6 over more than 8m", maxT-d.T0, l.End.Sub(l.Start))
		case "vibration/wear":
			ok, got = maxV >= 2*d.V0 && l.End.Sub(l.Start) > 10*time.Minute,
				fmt.Sprintf("max v %.2f×v0 over %v; want ≥ 2×v0 over more than 10m", maxV/d.V0, l.End.Sub(l.Start))
		case "status/fault":
			ok, got = status2 == n && n >= 9, fmt.Sprintf("%d of %d samples with status 2; want all, at least 9", status2, n)
		default:
			ok, got = false, "unknown kind"
		}
		if !ok {
			t.Errorf("%s %s/%s at %v: %s", l.Device, l.Kind, l.Detail, l.Start.Format(time.TimeOnly), got)
		}
	}
	for i, r := range rs {
		if inside[i] {
			continue
		}
		if sig, ok := within(byName[r.Device], r); !ok || r.Status != 0 {
			t.Fatalf("unlabelled anomaly (%s) on %s: %s", sig, r.Device, r.Payload)
		}
		if d := byName[r.Device]; r.P >= 1.1*d.P0 {
			t.Fatalf("pressure %.2f ≥ 1.1×p0 outside labels on %s", r.P, r.Device)
		}
	}
}

// TestInjectionsOnlyInLabels compares a run with its clean twin: they must
// differ exactly within the labels.
func TestInjectionsOnlyInLabels(t *testing.T) {
	cfg := sim.DefaultConfig()
	g, rs := run(t, cfg)
	labels := g.Labels()
	cfg.Anomalous = 0
	_, clean := run(t, cfg)
	if len(rs) != len(clean) {
		t.Fatalf("%d messages; the clean twin has %d", len(rs), len(clean))
	}
	changed := make([]bool, len(labels))
	for i, r := range rs {
		in := -1
		for j, l := range labels {
			if l.Device == r.Device && !r.Time.Before(l.Start) && !r.Time.After(l.End) {
				in = j
			}
		}
		same := r.Payload == clean[i].Payload
		if in < 0 && !same {
			t.Fatalf("message %d outside labels differs from the clean twin:\n%s\n%s", i, r.Payload, clean[i].Payload)
		}
		if in >= 0 && !same {
			changed[in] = true
		}
	}
	for j, l := range labels {
		if !changed[j] {
			t.Errorf("label %+v changed no message", l)
		}
	}
}

func TestInjectProb(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Duration = time.Hour
	cfg.Drifts, cfg.Faults = false, false

	cfg.InjectProb = 0
	if _, labels := writeLog(t, cfg); len(labels) != 0 {
		t.Errorf("InjectProb 0: %d labels; want none", len(labels))
	}

	cfg.InjectProb = 1
	_, labels := writeLog(t, cfg)
	cycles := int((cfg.Duration - cfg.LeadIn) / cfg.Cycle)
	if want := cycles * cfg.Anomalous; len(labels) != want {
		t.Errorf("InjectProb 1: %d labels; want %d (every cycle of every anomalous device)", len(labels), want)
	}
	for _, l := range labels {
		if l.Detail == sim.DetailDrift || l.Detail == sim.DetailWear || l.Detail == sim.DetailFault {
			t.Errorf("label %+v with Drifts and Faults off", l)
		}
	}
	// Injections keep apart.
	last := make(map[string]time.Time)
	for _, l := range labels {
		if end, ok := last[l.Device]; ok && l.Start.Sub(end) <= 4*time.Second {
			t.Errorf("%s: injection at %v only %v after the previous one", l.Device, l.Start, l.Start.Sub(end))
		}
		last[l.Device] = l.End
	}
}

func TestLeadIn(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.LeadIn = 25 * time.Minute
	cfg.Duration = 40 * time.Minute
	_, labels := writeLog(t, cfg)
	if len(labels) == 0 {
		t.Fatal("no labels after a 25-minute lead-in")
	}
	for _, l := range labels {
		if l.Start.Before(cfg.Start.Add(cfg.LeadIn)) {
			t.Errorf("label %+v starts before the lead-in ends", l)
		}
	}
}

// TestStreamEndClosesLabels cuts a run in the middle of the cooling drift.
func TestStreamEndClosesLabels(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Duration = 20 * time.Minute
	g, rs := run(t, cfg)
	var drift *sim.Label
	for _, l := range g.Labels() {
		if l.Detail == sim.DetailDrift {
			drift = &l
		}
	}
	if drift == nil {
		t.Fatal("no label for the drift cut by the end of the stream")
	}
	var last time.Time
	for _, r := range rs {
		if r.Device == drift.Device {
			last = r.Time
		}
	}
	if !drift.End.Equal(last) {
		t.Errorf("cut drift ends at %v; want the device's last message at %v", drift.End, last)
	}
}

func TestDrainLabels(t *testing.T) {
	cfg := sim.DefaultConfig()
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var drained []sim.Label
	for i := 0; ; i++ {
		if _, ok := g.Next(); !ok {
			break
		}
		if i%5000 == 0 {
			drained = g.DrainLabels(drained)
		}
	}
	if len(drained) == 0 {
		t.Fatal("nothing drained")
	}
	rest := g.Labels()
	drained = g.DrainLabels(drained)
	if len(g.Labels()) != 0 {
		t.Error("Labels not empty after DrainLabels")
	}
	_, all := writeLog(t, cfg)
	if len(drained) != len(all) {
		t.Fatalf("drained %d labels; want %d", len(drained), len(all))
	}
	for _, l := range rest {
		if !slices.Contains(drained, l) {
			t.Errorf("label %+v from Labels missing from the drained ones", l)
		}
	}
	for _, l := range all {
		if !slices.Contains(drained, l) {
			t.Errorf("label %+v not drained", l)
		}
	}
}

func TestInfiniteStream(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Duration = 0
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m sim.Message
	for range 100_000 {
		var ok bool
		if m, ok = g.Next(); !ok {
			t.Fatal("infinite stream ended")
		}
	}
	if end := cfg.Start.Add(2 * time.Hour); !m.Time.After(end) {
		t.Errorf("100000 messages end at %v; want after %v", m.Time, end)
	}
	if _, err := sim.WriteLog(new(bytes.Buffer), cfg); err == nil {
		t.Error("WriteLog accepted an infinite stream")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestWriteLogError(t *testing.T) {
	_, err := sim.WriteLog(failWriter{}, sim.DefaultConfig())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got %v; want the writer's error", err)
	}
	cfg := sim.DefaultConfig()
	cfg.Devices = 0
	if _, err := sim.WriteLog(new(bytes.Buffer), cfg); err == nil {
		t.Error("WriteLog accepted an invalid config")
	}
}

func TestNextAllocs(t *testing.T) {
	g, err := sim.New(sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for range 20_000 { // through the lead-in and a few injections
		g.Next()
	}
	var labels []sim.Label
	if n := testing.AllocsPerRun(20_000, func() {
		g.Next()
		labels = g.DrainLabels(labels[:0])
	}); n != 0 {
		t.Errorf("Next: %v allocations per call; want 0", n)
	}
}

func TestActiveReportsInjectionsInProgress(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Duration = 0
	cfg.InjectProb = 1
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for range 300_000 {
		m, _ := g.Next()
		act := g.Active(nil)
		for _, l := range act {
			if l.Start.After(m.Time) || l.End.After(m.Time) || l.End.Before(l.Start) {
				t.Fatalf("active label %+v is not within the stream so far (at %v)", l, m.Time)
			}
		}
		seen = max(seen, len(act))
	}
	if seen == 0 {
		t.Fatal("no injection was ever reported in progress")
	}
	for _, l := range g.DrainLabels(nil) {
		for _, a := range g.Active(nil) {
			if a.Device == l.Device && a.Start.Equal(l.Start) {
				t.Fatalf("a finished injection %+v is still reported active", l)
			}
		}
	}
}
