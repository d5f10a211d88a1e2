package detectors_test

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// plant returns the three signals of a healthy sensor node.
func plant(nz noise) []pipeline.Value {
	return []pipeline.Value{
		pressure(nz.gauss(p0, pSigma)),
		temperature(nz.gauss(t0C, tSig)),
		vibration(nz.gauss(v0, vSigma)),
	}
}

func TestStatus(t *testing.T) {
	// The lifecycle step by step, without keep_firing_for (TestStatusFlapping).
	g := newRig(t, newSet(t, func(c *detectors.Config) { c.Params.Status.KeepFiringFor = 0 }))
	type step struct {
		status int8
		tr     pipeline.AlertState // 0: no alert
		sev    pipeline.Severity
		msg    string
	}
	steps := []step{
		{status: 0},
		{status: 1, tr: pipeline.Firing, sev: pipeline.Warning, msg: "The device reports status 1 (warning)."},
		{status: 1},
		{status: 2, tr: pipeline.Firing, sev: pipeline.Critical, msg: "The device reports status 2 (critical)."},
		// Back to 1 is still not normal: the episode stays critical and firing.
		{status: 1},
		{status: 0, tr: pipeline.Resolved, sev: pipeline.Critical, msg: "status resolved: status is back to 0."},
		{status: pipeline.NoStatus},
		{status: 0},
		{status: 2, tr: pipeline.Firing, sev: pipeline.Critical},
		// A reading without a status field says nothing about it.
		{status: pipeline.NoStatus},
		{status: 0, tr: pipeline.Resolved, sev: pipeline.Critical},
	}
	var ids []string
	var all []pipeline.Alert
	for i, s := range steps {
		got := g.feedStatus(s.status, pressure(p0))
		if s.tr == 0 {
			if len(got) != 0 {
				t.Fatalf("step %d (status %d): got %s; want no alert", i, s.status, fmtAlerts(got))
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("step %d (status %d): got %s; want one %v alert", i, s.status, fmtAlerts(got), s.tr)
		}
		a := got[0]
		if a.Kind != "status" || a.Detector != "status" || a.Signal != "status" || a.State != s.tr || a.Severity != s.sev {
			t.Errorf("step %d: got %s/%s signal %s %v %v; want status/status signal status %v %v",
				i, a.Kind, a.Detector, a.Signal, a.State, a.Severity, s.tr, s.sev)
		}
		if a.Observed != float64(s.status) || a.Value != float64(s.status) || a.Threshold != 1 || a.Unit != "" || a.Mean != 0 || a.Std != 0 {
			t.Errorf("step %d: got observed %v value %v threshold %v unit %q baseline %v/%v; want %d, %d, 1, \"\", 0/0",
				i, a.Observed, a.Value, a.Threshold, a.Unit, a.Mean, a.Std, s.status, s.status)
		}
		if s.msg != "" && a.Message != s.msg {
			t.Errorf("step %d: got message %q; want %q", i, a.Message, s.msg)
		}
		ids = append(ids, a.ID)
		all = append(all, a)
	}
	// Episodes: [firing, escalation, resolved], [firing, resolved].
	if esc := []bool{all[0].Escalation, all[1].Escalation, all[2].Escalation, all[3].Escalation, all[4].Escalation}; !slices.Equal(esc, []bool{false, true, false, false, false}) {
		t.Errorf("got escalation flags %v; want only the second transition (warning → critical) marked", esc)
	}
	if !(ids[0] == ids[1] && ids[1] == ids[2] && ids[3] == ids[4] && ids[0] != ids[3]) {
		t.Errorf("got IDs %v; want the first three equal, the last two equal, and the two episodes different", ids)
	}
}

// TestWarmup checks that during the first WarmupSamples samples only the
// absolute limits (overpressure.limit, thermal.limit, vibration.zone, status)
// and the warm-up spike check on gross pressure anomalies (overpressure.spike)
// fire, even on a huge spike of every signal.
func TestWarmup(t *testing.T) {
	allowed := []string{"overpressure.limit", "overpressure.spike", "status", "thermal.limit", "vibration.zone"} // sorted
	for _, tc := range []struct {
		name        string
		spikeAt, to int // readings [spikeAt, to) are spiked
		wantLimits  bool
	}{
		{name: "early", spikeAt: 40, to: 50, wantLimits: true},
		{name: "middle", spikeAt: 150, to: 200, wantLimits: true},
		{name: "last samples", spikeAt: warmup - 6, to: warmup, wantLimits: true},
		{name: "clean", spikeAt: 0, to: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, newSet(t, func(c *detectors.Config) {
				c.Params.Overpressure.Limit = ptr(8)
				c.Params.Thermal.High = ptr(90)
			}))
			nz := newNoise(7)
			for i := range warmup {
				vals := append(plant(nz), flow(nz.gauss(f0, fSigma)))
				status := int8(0)
				if i >= tc.spikeAt && i < tc.to {
					for k := range vals {
						vals[k].V *= 10
					}
					status = 2
				}
				g.feedStatus(status, vals...)
			}
			var fired []string
			for _, a := range g.alerts {
				if a.State == pipeline.Firing {
					fired = append(fired, a.Detector)
				}
				if !slices.Contains(allowed, a.Detector) {
					t.Errorf("during warm-up: got %s; want only %v", fmtAlerts([]pipeline.Alert{a}), allowed)
				}
			}
			slices.Sort(fired)
			fired = slices.Compact(fired)
			if tc.wantLimits && !slices.Equal(fired, allowed) {
				t.Errorf("during warm-up: got firing %v; want every limit %v", fired, allowed)
			}
			if !tc.wantLimits && len(fired) > 0 {
				t.Errorf("during warm-up: got firing %v; want none", fired)
			}
			// Samples beyond a limit do not teach, so the warm-up lasts until
			// WarmupSamples samples have been learned; then a spike is judged.
			for range 100 {
				if g.signal("pressure").Base.Warm {
					break
				}
				g.feed(append(plant(nz), flow(nz.gauss(f0, fSigma)))...)
			}
			if !g.signal("pressure").Base.Warm {
				t.Fatalf("pressure baseline not warm after %d readings", g.n)
			}
			from := g.n
			g.feed(pressure(1.5*p0), temperature(t0C), vibration(v0), flow(f0))
			g.feed(pressure(1.5*p0), temperature(t0C), vibration(v0), flow(f0))
			if _, _, ok := g.first("overpressure.spike", pipeline.Firing, from); !ok {
				t.Errorf("once warm: got %s; want overpressure.spike on a 50%% spike", fmtAlerts(g.since(from)))
			}
		})
	}
}

// TestWarmupSpikeDoesNotLeak: a gross excursion during warm-up is alerted
// by the warm-up spike check (Spike.WarmupZ) where one runs, and resolves;
// it must not teach the baseline, and nothing of it may surface once the
// baseline is warm and the signal is back to normal.
func TestWarmupSpikeDoesNotLeak(t *testing.T) {
	const spike = 10 // the last 10 warm-up samples
	for _, tc := range []struct {
		value         func(float64) pipeline.Value
		op, sd, spike float64
		warmup        string // the warm-up check that catches it, if any
	}{
		{pressure, p0, pSigma, p0 + 100*pSigma, "overpressure.spike"},
		{temperature, t0C, tSig, t0C + 100*tSig, ""},
		// 30 sigma, still in zone B: no limit crossed.
		{vibration, v0, vSigma, 4.4, ""},
		{flow, f0, fSigma, f0 + 100*fSigma, ""},
	} {
		name := tc.value(0).Name
		t.Run(name, func(t *testing.T) {
			g := newRig(t, newSet(t, nil))
			nz := newNoise(2)
			for i := range 2 * warmup {
				x := nz.gauss(tc.op, tc.sd)
				if i >= warmup-spike && i < warmup {
					x = tc.spike
				}
				g.feed(tc.value(x))
			}
			var want []string
			if tc.warmup != "" {
				want = []string{tc.warmup + " firing", tc.warmup + " resolved"}
			}
			var got []string
			for k, a := range g.alerts {
				got = append(got, a.Detector+" "+a.State.String())
				if a.State == pipeline.Firing && (g.at[k] != warmup-spike || !strings.Contains(a.Message, "during warm-up")) {
					t.Errorf("alert at reading %d: %q; want it at reading %d, saying it is during warm-up", g.at[k], a.Message, warmup-spike)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %v (%+.0f sigma) on readings %d-%d (warm-up), then normal: got %s; want %v",
					name, tc.spike, (tc.spike-tc.op)/tc.sd, warmup-spike, warmup-1, fmtAlerts(g.alerts), want)
			}
		})
	}
}

// TestWarmupGrossSpike: a fresh device's pressure spikes at readings 40, 100
// and 250 (inside the warm-up, where no limit is configured) are alerted at
// once by overpressure.spike, and do not widen the band: the baseline ends
// warm-up as a clean one does. Clean warm-ups raise nothing.
func TestWarmupGrossSpike(t *testing.T) {
	at := map[int]bool{40: true, 100: true, 250: true}
	g := newRig(t, newSet(t, nil))
	clean := newRig(t, newSet(t, nil))
	nz, nc := newNoise(11), newNoise(11)
	for i := range warmup {
		x := nz.gauss(p0, pSigma)
		clean.feed(pressure(nc.gauss(p0, pSigma)))
		if at[i] {
			x = p0 + 15*pSigma
		}
		g.feed(pressure(x))
	}
	fired := map[int]bool{}
	for k, a := range g.alerts {
		if a.State != pipeline.Firing {
			continue
		}
		if a.Detector != "overpressure.spike" || !at[g.at[k]] {
			t.Errorf("reading %d: %s %s; want only overpressure.spike at the spikes", g.at[k], a.Detector, a.Message)
		}
		fired[g.at[k]] = true
	}
	for i := range at {
		if !fired[i] {
			t.Errorf("spike at reading %d: not alerted; got %s", i, fmtAlerts(g.alerts))
		}
	}
	if len(clean.alerts) != 0 {
		t.Errorf("clean warm-up: got %s; want no alerts", fmtAlerts(clean.alerts))
	}
	b, _ := g.eng.Band(g.device, "pressure")
	bc, _ := clean.eng.Band(clean.device, "pressure")
	// (The spiked device has learned 3 samples fewer.)
	if b.Spread > 1.02*bc.Spread || math.Abs(b.Median-bc.Median) > 0.02*bc.Spread || math.Abs(b.Mean-bc.Mean) > 0.02*bc.Spread {
		t.Errorf("band after a warm-up with 3 gross spikes: %+v; want that of the clean warm-up %+v", b, bc)
	}
	// Clean warm-ups of every signal kind, several seeds: nothing.
	for seed := range uint64(20) {
		g := newRig(t, newSet(t, nil))
		nz := newNoise(100 + seed)
		for range warmup {
			g.feed(pressure(nz.gauss(p0, pSigma)), temperature(nz.gauss(t0C, tSig)), vibration(nz.gauss(v0, vSigma)), flow(nz.gauss(f0, fSigma)))
		}
		if len(g.alerts) != 0 {
			t.Errorf("clean warm-up, seed %d: got %s; want no alerts", seed, fmtAlerts(g.alerts))
		}
	}
}

func TestPoisoningSlowRamp(t *testing.T) {
	// An attacker (or a slow fault) ramps the pressure by 0.005 sigma a sample
	// after warm-up, for 20,000 samples (100 sigma in all). The baseline
	// follows what it learns; the ramp must raise an alert before it is 6
	// sigma from where it started.
	g := newRig(t, newSet(t, nil))
	nz := newNoise(5)
	for range warmup {
		g.feed(pressure(nz.gauss(p0, pSigma)))
	}
	const slope = 0.005 * pSigma
	for i := range 20000 {
		g.feed(pressure(nz.gauss(p0+slope*float64(i+1), pSigma)))
	}
	if len(g.alerts) == 0 {
		t.Fatalf("got no alerts; want one before the ramp reaches 6 sigma")
	}
	first, at := g.alerts[0], g.at[0]
	if first.State != pipeline.Firing || first.Signal != "pressure" || first.Kind != "overpressure" {
		t.Errorf("first alert: got %s; want an overpressure firing", fmtAlerts(g.alerts[:1]))
	}
	if rise := slope * float64(at-warmup+1); rise >= 6*pSigma {
		t.Errorf("first alert %s on ramp sample %d, %.2f sigma above the start; want before 6 sigma",
			first.Detector, at-warmup, rise/pSigma)
	} else {
		t.Logf("first alert %s on ramp sample %d, %.2f sigma above the start", first.Detector, at-warmup, rise/pSigma)
	}
}

// TestPoisoningSpike: a single spike is judged anomalous and so does not teach
// the baseline. A control device sees the same readings with the spike
// replaced by the operating point.
func TestPoisoningSpike(t *testing.T) {
	for _, tc := range []struct {
		value  func(float64) pipeline.Value
		op, sd float64
		spike  float64
	}{
		{pressure, p0, pSigma, 2 * p0},
		{temperature, t0C, tSig, 100},
		{vibration, v0, vSigma, 4.4}, // 30 sigma, below zone C
		{flow, f0, fSigma, -1000},
	} {
		sig := tc.value(0).Name
		t.Run(sig, func(t *testing.T) {
			set := newSet(t, nil)
			g, control := newRig(t, set), newRig(t, set)
			nz := newNoise(3)
			for range 1000 {
				x := nz.gauss(tc.op, tc.sd)
				g.feed(tc.value(x))
				control.feed(tc.value(x))
			}
			before := g.signal(sig).Base
			g.feed(tc.value(tc.spike))
			control.feed(tc.value(tc.op))
			after := g.signal(sig).Base
			if after.N != before.N || after.Mean != before.Mean || after.Var != before.Var ||
				after.Median != before.Median || after.MAD != before.MAD || after.RatePeak() != before.RatePeak() {
				t.Errorf("spike to %v: got baseline %+v; want N, Mean, Var, Median, MAD and RatePeak unchanged from %+v", tc.spike, after, before)
			}
			if after.Gated != 1 || after.Last != tc.spike {
				t.Errorf("spike to %v: got Gated %d Last %v; want 1, %v", tc.spike, after.Gated, after.Last, tc.spike)
			}
			// Nor does it distort the baseline through the samples after it
			// (their rate of change from the spike, the detectors' memory).
			for range 100 {
				x := nz.gauss(tc.op, tc.sd)
				g.feed(tc.value(x))
				control.feed(tc.value(x))
			}
			got, want := g.signal(sig).Base, control.signal(sig).Base
			// Samples judged while the detectors still remember the spike are
			// kept out too, so the two baselines differ a little.
			for _, f := range []struct {
				name           string
				got, want, tol float64
			}{
				{"Mean", got.Mean, want.Mean, 0.1 * tc.sd},
				{"Median", got.Median, want.Median, 0.1 * tc.sd},
				{"Std", got.Std(), want.Std(), 0.1 * tc.sd},
			} {
				if !near(f.got, f.want, f.tol) {
					t.Errorf("100 samples after a spike to %v: got %s %.5g; want %.5g ± %.3g as without the spike", tc.spike, f.name, f.got, f.want, f.tol)
				}
			}
			// The jump from the spike back to normal is not a normal rate.
			if got.RatePeak() > 1.05*want.RatePeak() {
				t.Errorf("100 samples after a spike to %v: got rate envelope %.5g; want at most %.5g as without the spike", tc.spike, got.RatePeak(), want.RatePeak())
			}
		})
	}
}

func TestClasses(t *testing.T) {
	set := newSet(t, func(c *detectors.Config) {
		c.Params.Overpressure.Limit = ptr(8)
		press := detectors.DefaultParams()
		press.Overpressure.Limit = ptr(12)
		pumps := detectors.DefaultParams()
		pumps.Overpressure.Limit = ptr(6)
		c.Classes = []detectors.Class{
			{Name: "hydraulic-presses", Devices: []string{"press-*", "sensor-node-0[1-4]"}, Params: press},
			// press-07 matches both: the first class wins.
			{Name: "pumps", Devices: []string{"pump-??", "press-07"}, Params: pumps},
		}
	})
	eng := set.NewEngine()
	for _, tc := range []struct {
		device, class string
		limit         float64
	}{
		{"press-01", "hydraulic-presses", 12},
		{"press-07", "hydraulic-presses", 12},
		{"sensor-node-03", "hydraulic-presses", 12},
		{"sensor-node-05", "default", 8},
		{"pump-01", "pumps", 6},
		{"pump-001", "default", 8},
		{"boiler", "default", 8},
	} {
		var got []pipeline.Alert
		for i, p := range []float64{5, 7, 10, 13} {
			r := pipeline.Reading{Time: t0 + int64(i)*sec, Device: tc.device, Status: pipeline.NoStatus, Values: []pipeline.Value{pressure(p)}}
			got = eng.Process(&r, got)
		}
		if len(got) == 0 || got[0].Detector != "overpressure.limit" || got[0].Threshold != tc.limit {
			t.Errorf("%s: pressure 5, 7, 10, 13 bar: got %s; want overpressure.limit with threshold %v first", tc.device, fmtAlerts(got), tc.limit)
		}
		if got := eng.Class(tc.device); got != tc.class {
			t.Errorf("Class(%q): got %q; want %q", tc.device, got, tc.class)
		}
	}
	if got, want := eng.Devices(), 7; got != want {
		t.Errorf("Devices() = %d; want %d", got, want)
	}
	if d := eng.Device("never-seen"); d != nil {
		t.Errorf("Device(never-seen) = %+v; want nil", d)
	}
}

// stream returns a deterministic multi-device stream with anomalies.
func stream(n int) []pipeline.Reading {
	nz := newNoise(11)
	devices := []string{"sensor-node-01", "sensor-node-02", "press-01"}
	var rs []pipeline.Reading
	for i := range n {
		dev := devices[i%len(devices)]
		vals := append(plant(nz), flow(nz.gauss(f0, fSigma)))
		k := i / len(devices)
		switch {
		case dev == "sensor-node-02" && k >= 600 && k < 606:
			vals[0].V *= 1.5
		case dev == "press-01" && k >= 500:
			vals[1].V += 0.02 * float64(k-500)
		case dev == "sensor-node-01" && k >= 700 && k < 760:
			vals[2].V = 5
		}
		status := int8(0)
		if dev == "sensor-node-01" && k >= 800 && k < 805 {
			status = 1
		}
		rs = append(rs, pipeline.Reading{Seq: uint64(i), Time: t0 + int64(k)*sec, Device: dev, Topic: "plant/" + dev, Status: status, Values: vals})
	}
	return rs
}

func TestDeterminism(t *testing.T) {
	rs := stream(3 * 1200)
	set := newSet(t, nil)
	run := func() ([]pipeline.Alert, *detectors.Engine) {
		eng := set.NewEngine()
		var out []pipeline.Alert
		for i := range rs {
			r := rs[i]
			out = eng.Process(&r, out)
		}
		return out, eng
	}
	a1, e1 := run()
	a2, e2 := run()
	// Another Set from the same configuration behaves the same.
	eng3 := newSet(t, nil).NewEngine()
	var a3 []pipeline.Alert
	for i := range rs {
		a3 = eng3.Process(&rs[i], a3)
	}
	if len(a1) < 5 {
		t.Fatalf("got %s; want the stream's anomalies to raise alerts", fmtAlerts(a1))
	}
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(a1, a3) {
		t.Errorf("same readings, different alerts:\n%s\n%s\n%s", fmtAlerts(a1), fmtAlerts(a2), fmtAlerts(a3))
	}
	for _, dev := range []string{"sensor-node-01", "sensor-node-02", "press-01"} {
		d1, d2, d3 := e1.Device(dev), e2.Device(dev), eng3.Device(dev)
		if d1 == nil || !reflect.DeepEqual(d1, d2) || !reflect.DeepEqual(d1, d3) {
			t.Errorf("device %s: same readings, different state:\n%+v\n%+v\n%+v", dev, d1, d2, d3)
		}
		if d1 != nil && (d1.Topic != "plant/"+dev || len(d1.Signals) != 4) {
			t.Errorf("device %s: got topic %q and %d signals; want %q and 4", dev, d1.Topic, len(d1.Signals), "plant/"+dev)
		}
	}
	// Alerts come out in stream order.
	if !slices.IsSortedFunc(a1, func(a, b pipeline.Alert) int { return int(a.Seq) - int(b.Seq) }) {
		t.Errorf("alerts not in stream order: %s", fmtAlerts(a1))
	}
}

// TestSignalStateIsPlainData: a SignalState copied by value shares nothing with
// the original but the (immutable) Name string.
func TestSignalStateIsPlainData(t *testing.T) {
	// Structurally: no pointers, slices, maps, interfaces... anywhere inside.
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				walk(path+"."+f.Name, f.Type)
			}
		case reflect.Array:
			walk(path+"[]", typ.Elem())
		case reflect.String:
			if path != "SignalState.Name" {
				t.Errorf("%s is a string; want only Name to share memory", path)
			}
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
			t.Errorf("%s is a %v: copies of a SignalState would share it", path, typ.Kind())
		}
	}
	walk("SignalState", reflect.TypeFor[detectors.SignalState]())

	// Behaviourally: a copy does not change when the engine goes on.
	g := newRig(t, newSet(t, nil))
	nz := newNoise(4)
	for range 400 {
		g.feed(plant(nz)...)
	}
	d := g.eng.Device(g.device)
	snap := slices.Clone(d.Signals)
	copied := d.Signals[0]
	for range 10 {
		g.feed(pressure(1.5*p0), temperature(t0C), vibration(v0))
	}
	if copied != snap[0] {
		t.Errorf("copy of SignalState changed after Process:\ngot  %+v\nwant %+v", copied, snap[0])
	}
	if d.Signals[0] == snap[0] {
		t.Errorf("Process left the pressure state unchanged; the copy test proves nothing")
	}
	if d.Signals[0].Episodes[1].State != detectors.FiringState || snap[0].Episodes[1].State != detectors.Inactive {
		t.Errorf("got spike episodes %v (live), %v (copy); want firing, inactive", d.Signals[0].Episodes[1].State, snap[0].Episodes[1].State)
	}
}

func TestAlertIDs(t *testing.T) {
	set := newSet(t, func(c *detectors.Config) { c.Params.Overpressure.Limit = ptr(5) })
	g := newRig(t, set)
	nz := newNoise(9)
	// Two episodes of the limit check, and one of it on a second device at
	// the same time.
	for _, x := range []float64{4, 6, 4, 4, 4, 6, 6, 4, 4, 4} {
		g.feed(pressure(x + nz.gauss(0, pSigma)))
	}
	other := newRig(t, set)
	other.eng = g.eng
	other.device = "sensor-node-02"
	other.n = 1
	other.feed(pressure(6))

	var ids []string
	for _, a := range g.alerts {
		if a.Detector != "overpressure.limit" {
			t.Fatalf("got %s; want only overpressure.limit", fmtAlerts(g.alerts))
		}
		ids = append(ids, a.ID)
	}
	if len(ids) != 4 || g.alerts[0].State != pipeline.Firing || g.alerts[1].State != pipeline.Resolved {
		t.Fatalf("got %s; want firing, resolved, firing, resolved", fmtAlerts(g.alerts))
	}
	if ids[0] != ids[1] || ids[2] != ids[3] {
		t.Errorf("got IDs %v; want firing and resolved of one episode to share the ID", ids)
	}
	if ids[0] == ids[2] {
		t.Errorf("got ID %s for both episodes; want different IDs", ids[0])
	}
	if o := other.alerts; len(o) != 1 || o[0].Started != g.alerts[0].Started || o[0].ID == ids[0] {
		t.Errorf("another device, same start: got %s (ID %v); want a different ID from %s", fmtAlerts(o), o, ids[0])
	}
	for _, id := range ids {
		if len(id) == 0 || len(id) > 16 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("got ID %q; want up to 16 hex digits", id)
		}
	}
}

// TestProcessAllocs pins the hot path: a warmed-up device with three signals
// and no alert costs no allocation.
func TestProcessAllocs(t *testing.T) {
	eng := newSet(t, nil).NewEngine()
	nz := newNoise(1)
	r := pipeline.Reading{Device: "sensor-node-01", Status: 0, Values: plant(nz)}
	var out []pipeline.Alert
	n := 0
	next := func() {
		r.Time = t0 + int64(n)*sec
		r.Seq = uint64(n)
		r.Values[0].V = nz.gauss(p0, pSigma)
		r.Values[1].V = nz.gauss(t0C, tSig)
		r.Values[2].V = nz.gauss(v0, vSigma)
		out = eng.Process(&r, out[:0])
		n++
	}
	for range 2 * warmup {
		next()
	}
	if !eng.Device(r.Device).Signals[0].Base.Warm {
		t.Fatal("device not warm")
	}
	// Every check on: the relation model judges, each signal has its
	// cycle memory (the 1000 readings below close bins and search).
	if x := eng.Device(r.Device).Extra; x == nil || x.Relation == nil || !x.Relation.Model.Warm || len(x.Cycles) != 3 {
		t.Fatal("relation model not warm or cycle memory missing")
	}
	allocs := testing.AllocsPerRun(1000, next)
	if len(out) != 0 {
		t.Fatalf("got %s; want a run without alerts", fmtAlerts(out))
	}
	if allocs != 0 {
		t.Errorf("Engine.Process: got %v allocs per reading; want 0", allocs)
	}
}

// TestDeviceSize: the per-device state with three signals fits in 1 KiB.
func TestDeviceSize(t *testing.T) {
	size := unsafe.Sizeof(detectors.Device{}) + 3*unsafe.Sizeof(detectors.SignalState{})
	t.Logf("Device %d B + 3 × SignalState %d B = %d B", unsafe.Sizeof(detectors.Device{}), unsafe.Sizeof(detectors.SignalState{}), size)
	if size > 1024 {
		t.Errorf("per-device state with three signals: got %d bytes; want <= 1024", size)
	}
}

func TestConfigValidate(t *testing.T) {
	def := detectors.DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v; want nil", err)
	}
	class := func(name string, devices ...string) detectors.Class {
		return detectors.Class{Name: name, Devices: devices, Params: detectors.DefaultParams()}
	}
	for _, tc := range []struct {
		name string
		edit func(*detectors.Config)
		want []string // substrings of the error
	}{
		{"negative spike z", func(c *detectors.Config) { c.Params.Overpressure.Spike.Z = -1 },
			[]string{"overpressure: spike: z must be positive"}},
		{"zero jump z", func(c *detectors.Config) { c.Params.Vibration.Jump.Z = 0 },
			[]string{"vibration: jump: z must be positive"}},
		{"NaN signal spike z", func(c *detectors.Config) { c.Params.Signal.Spike.Z = math.NaN() },
			[]string{"signal: spike: z must be positive"}},
		{"hold 0", func(c *detectors.Config) { c.Params.Thermal.Fluctuation.Hold = 0 },
			[]string{"thermal: fluctuation: hold and clear"}},
		{"clear 0", func(c *detectors.Config) { c.Params.Overpressure.LimitRule.Clear = 0 },
			[]string{"overpressure: limit_rule: hold and clear"}},
		{"status hold 0", func(c *detectors.Config) { c.Params.Status.Hold = 0 },
			[]string{"status: hold and clear"}},
		{"hold too large", func(c *detectors.Config) { c.Params.Vibration.ZoneRule.Hold = 70000 },
			[]string{"vibration: zone_rule: hold and clear"}},
		{"k < 0", func(c *detectors.Config) { c.Params.Thermal.Drift.K = -0.5 },
			[]string{"thermal: drift: need k >= 0"}},
		{"h 0", func(c *detectors.Config) { c.Params.Overpressure.Rise.H = 0 },
			[]string{"overpressure: rise: need", "h > 0"}},
		{"margin < 1", func(c *detectors.Config) { c.Params.Vibration.Elevation.Margin = 0.5 },
			[]string{"vibration: elevation: need", "margin >= 1"}},
		{"CUSUM hold 0", func(c *detectors.Config) { c.Params.Signal.Drift.Hold = 0 },
			[]string{"signal: drift: hold and clear"}},
		{"rate factor 1", func(c *detectors.Config) { c.Params.Thermal.Rate.Factor = 1 },
			[]string{"thermal: rate: factor must be greater than 1"}},
		{"fluctuation ratio 1", func(c *detectors.Config) { c.Params.Thermal.Fluctuation.Ratio = 1 },
			[]string{"thermal: fluctuation: ratio must be > 1"}},
		{"zones out of order", func(c *detectors.Config) { c.Params.Vibration.Zones = detectors.Zones{AB: 4.5, BC: 2.3, CD: 7.1} },
			[]string{"vibration: zones: need 0 < ab < bc < cd"}},
		{"zone ab 0", func(c *detectors.Config) { c.Params.Vibration.Zones.AB = 0 },
			[]string{"vibration: zones"}},
		{"low above high", func(c *detectors.Config) { c.Params.Thermal.High, c.Params.Thermal.Low = ptr(50), ptr(70) },
			[]string{"thermal: low (70) must be below high (50)"}},
		{"low equals high", func(c *detectors.Config) { c.Params.Thermal.High, c.Params.Thermal.Low = ptr(50), ptr(50) },
			[]string{"thermal: low (50) must be below high (50)"}},
		{"hysteresis 0", func(c *detectors.Config) { c.Params.Hysteresis = 0 },
			[]string{"hysteresis must be in (0, 1]"}},
		{"learn_below above 1", func(c *detectors.Config) { c.Params.LearnBelow = 1.5 },
			[]string{"learn_below must be in (0, 1]"}},
		{"baseline warm-up", func(c *detectors.Config) { c.Params.Baseline.WarmupSamples = 1 },
			[]string{"baseline: warmup_samples"}},
		{"duplicate class names", func(c *detectors.Config) { c.Classes = []detectors.Class{class("press", "a-*"), class("press", "b-*")} },
			[]string{`classes[1]: duplicate class name "press"`}},
		{"bad glob", func(c *detectors.Config) { c.Classes = []detectors.Class{class("press", "press-[")} },
			[]string{`classes[0]: press: bad device pattern "press-["`}},
		{"empty class devices", func(c *detectors.Config) { c.Classes = []detectors.Class{class("press")} },
			[]string{"classes[0]: press: devices or topics must list at least one pattern"}},
		{"class without a name", func(c *detectors.Config) { c.Classes = []detectors.Class{class("", "x")} },
			[]string{"classes[0]: name is required"}},
		{"invalid class parameter", func(c *detectors.Config) {
			cl := class("press", "press-*")
			cl.Params.Overpressure.Rise.Margin = 0
			c.Classes = []detectors.Class{cl}
		}, []string{"classes[0]: press: detectors: overpressure: rise: need", "margin >= 1"}},
		{"two errors", func(c *detectors.Config) { c.Params.Overpressure.Spike.Z = -1; c.Params.Thermal.Drift.K = -1 },
			[]string{"overpressure: spike: z", "thermal: drift: need k >= 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := detectors.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil; want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want it to mention %q", err, w)
				}
			}
			set, nerr := detectors.New(cfg)
			if set != nil || nerr == nil || !strings.HasPrefix(nerr.Error(), "detectors: ") || !strings.Contains(nerr.Error(), tc.want[0]) {
				t.Errorf("New() = %v, %v; want nil and an error \"detectors: ...%s...\"", set, nerr, tc.want[0])
			}
		})
	}
	// A valid class is accepted.
	cfg := detectors.DefaultConfig()
	cfg.Classes = []detectors.Class{class("press", "press-*", "sensor-node-0[1-4]")}
	if _, err := detectors.New(cfg); err != nil {
		t.Errorf("New with a valid class: %v; want nil", err)
	}
}

func TestTopicMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"plant/#", "plant/line-a/n1/telemetry", true},
		{"plant/#", "plant", true},
		{"plant/+/n1/telemetry", "plant/line-a/n1/telemetry", true},
		{"plant/+/n1/telemetry", "plant/line-a/n2/telemetry", false},
		{"plant/+", "plant/line-a/n1", false},
		{"plant/line-a", "plant/line-a", true},
		{"plant/line-a", "plant/line-b", false},
		{"#", "anything/at/all", true},
		{"plant/+/+", "plant/a", false},
	} {
		if got := detectors.TopicMatch(tc.filter, tc.topic); got != tc.want {
			t.Errorf("TopicMatch(%q, %q) = %v; want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// TestClassByTopic: a class chosen by topic filter applies to devices first
// seen on a matching topic, and not to others.
func TestClassByTopic(t *testing.T) {
	cfg := detectors.DefaultConfig()
	p := detectors.DefaultParams()
	limit := 1.0
	p.Overpressure.Limit = &limit
	cfg.Classes = []detectors.Class{{Name: "hydraulics", Topics: []string{"plant/hydraulics/#"}, Params: p}}
	set, err := detectors.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := set.NewEngine()
	for _, tc := range []struct{ dev, topic, class string }{
		{"h1", "plant/hydraulics/h1/telemetry", "hydraulics"},
		{"c1", "plant/cooling/c1/telemetry", "default"},
		{"x1", "", "default"},
	} {
		r := pipeline.Reading{Device: tc.dev, Topic: tc.topic, Time: 1e18, Status: pipeline.NoStatus,
			Values: []pipeline.Value{{Name: "pressure", Kind: pipeline.Pressure, V: 4}}}
		out := e.Process(&r, nil)
		if got := e.Class(tc.dev); got != tc.class {
			t.Errorf("device %s on %q: class %q; want %q", tc.dev, tc.topic, got, tc.class)
		}
		if fired := len(out) > 0 && out[0].Detector == "overpressure.limit"; fired != (tc.class == "hydraulics") {
			t.Errorf("device %s: limit alert %v; want it only for the hydraulics class", tc.dev, fired)
		}
	}
	bad := detectors.DefaultConfig()
	bad.Classes = []detectors.Class{{Name: "x", Topics: []string{"plant/#/x"}, Params: detectors.DefaultParams()}}
	if _, err := detectors.New(bad); err == nil || !strings.Contains(err.Error(), "bad topic filter") {
		t.Errorf("New with a bad topic filter = %v; want an error naming it", err)
	}
}

func TestBand(t *testing.T) {
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	e := set.NewEngine()
	for i := range 400 {
		r := pipeline.Reading{Device: "d", Time: int64(i+1) * 1e9, Status: pipeline.NoStatus,
			Values: []pipeline.Value{{Name: "pressure", Kind: pipeline.Pressure, V: 4 + 0.1*float64(i%2)}}}
		e.Process(&r, nil)
	}
	b, ok := e.Band("d", "pressure")
	if !ok || !b.Warm || b.Median < 3.99 || b.Median > 4.11 || b.Spread <= 0 || b.Mean < 4.04 || b.Mean > 4.06 || b.Std < 0.04 || b.Std > 0.06 {
		t.Errorf("Band = %+v, %v; want a warm band around 4.05 with std 0.05", b, ok)
	}
	if _, ok := e.Band("d", "temperature"); ok {
		t.Error("Band of a signal never seen reported ok")
	}
	if _, ok := e.Band("nobody", "pressure"); ok {
		t.Error("Band of an unknown device reported ok")
	}
}

func reading(dev string, sec int) *pipeline.Reading {
	return &pipeline.Reading{Device: dev, Time: int64(sec+1) * 1e9, Status: pipeline.NoStatus,
		Values: []pipeline.Value{{Name: "pressure", Kind: pipeline.Pressure, V: 4}}}
}

// TestMaxDevicesEvictsLeastRecentlySeen: at the cap, a new device replaces
// the one seen least recently; devices seen recently keep their state.
func TestMaxDevicesEvictsLeastRecentlySeen(t *testing.T) {
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	e := set.NewEngine()
	e.SetMaxDevices(3)
	for i, d := range []string{"a", "b", "c", "a", "d", "e"} {
		e.Process(reading(d, i), nil)
	}
	// After a,b,c the recency is c,b,a; a again: a,c,b; d evicts b; e evicts c.
	for _, tc := range []struct {
		dev  string
		kept bool
	}{{"a", true}, {"b", false}, {"c", false}, {"d", true}, {"e", true}} {
		if got := e.Device(tc.dev) != nil; got != tc.kept {
			t.Errorf("device %s tracked = %v; want %v", tc.dev, got, tc.kept)
		}
	}
	if e.Devices() != 3 || e.Evictions() != 2 {
		t.Errorf("devices %d, evictions %d; want 3 and 2", e.Devices(), e.Evictions())
	}
	if n := e.Device("a").Signals[0].Base.N; n != 2 {
		t.Errorf("device a learned %d samples; want 2 (its state survived)", n)
	}
}

// TestIdentitySprayingBoundedMemory: a flood of random node IDs cannot grow
// the engine past its cap, in devices or in heap.
func TestIdentitySprayingBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	const limit, spray = 10_000, 300_000
	e := set.NewEngine()
	e.SetMaxDevices(limit)
	var ms runtime.MemStats
	measure := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	names := make([]string, spray) // the attacker's IDs, made up front so they do not count
	for i := range names {
		names[i] = fmt.Sprintf("spray-%08x", i*2654435761)
	}
	for i := range limit {
		e.Process(reading(names[i], i), nil)
	}
	full := measure()
	for i := limit; i < spray; i++ {
		e.Process(reading(names[i], i), nil)
	}
	after := measure()
	if e.Devices() != limit || e.Evictions() != spray-limit {
		t.Fatalf("devices %d, evictions %d; want %d and %d", e.Devices(), e.Evictions(), limit, spray-limit)
	}
	if grew := int64(after) - int64(full); grew > 2<<20 {
		t.Errorf("heap grew by %d bytes while %d more IDs arrived at the cap; want it bounded (< 2 MiB)", grew, spray-limit)
	}
}

// TestWarmupGrossSpikeConfigured: the warm-up check runs on any spike check
// given warmup_z (generic signals and vibration jumps have it off by default).
func TestWarmupGrossSpikeConfigured(t *testing.T) {
	g := newRig(t, newSet(t, func(c *detectors.Config) {
		c.Params.Signal.Spike.WarmupZ = 10
		c.Params.Vibration.Jump.WarmupZ = 10
	}))
	nz := newNoise(3)
	for i := range warmup {
		f, v := nz.gauss(f0, fSigma), nz.gauss(v0, vSigma)
		if i == 60 {
			f = f0 - 40*fSigma // both sides for generic signals
		}
		if i == 120 {
			v = v0 + 15*vSigma // still in zone A or B
		}
		g.feed(flow(f), vibration(v))
	}
	var got []string
	for k, a := range g.alerts {
		if a.State == pipeline.Firing {
			got = append(got, fmt.Sprintf("%s@%d", a.Detector, g.at[k]))
		}
	}
	if want := "[signal.spike@60 vibration.jump@120]"; fmt.Sprint(got) != want {
		t.Errorf("got %v; want %s", got, want)
	}
}

// TestStatusFlapping: a device whose status flag flips to 1 on scattered
// single messages (every 10-40 s, at 1 Hz) raises one alert whose
// resolution, after keep_firing_for (2 min by default) of quiet, counts the
// flaps; without keep_firing_for, one alert per flip.
func TestStatusFlapping(t *testing.T) {
	for _, keep := range []time.Duration{-1, 0} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			edit := func(c *detectors.Config) { c.Params.Status.KeepFiringFor = keep }
			if keep < 0 {
				keep, edit = detectors.DefaultParams().Status.KeepFiringFor, nil
			}
			g := newRig(t, newSet(t, edit))
			nz := newNoise(9)
			flips, next, lastFlip := 0, 30, 0
			const n = 900 // 15 min of flapping
			for i := range n + 200 {
				st := int8(0)
				if i == next && i < n {
					st, next, flips, lastFlip = 1, i+10+nz.rng.IntN(31), flips+1, i
				}
				g.feedStatus(st, plant(nz)...)
			}
			var fired, resolved []int
			for k, a := range g.alerts {
				switch {
				case a.Detector != "status":
				case a.State == pipeline.Firing:
					fired = append(fired, k)
				default:
					resolved = append(resolved, k)
				}
			}
			want := 1
			if keep == 0 {
				want = flips
			}
			if len(fired) != want || len(resolved) != want {
				t.Fatalf("%d flips: got %d firing and %d resolved status alerts; want %d each", flips, len(fired), len(resolved), want)
			}
			r := g.alerts[resolved[0]]
			if keep == 0 {
				if strings.Contains(r.Message, "flapped") {
					t.Errorf("without keep_firing_for: %q; want no flaps", r.Message)
				}
				return
			}
			wantMsg := fmt.Sprintf("It flapped %d times", flips-1)
			if f := g.alerts[fired[0]]; r.ID != f.ID || !strings.Contains(r.Message, wantMsg) {
				t.Errorf("resolution %q (ID %s); want %q, ID %s", r.Message, r.ID, wantMsg, f.ID)
			}
			// Resolved after keep_firing_for of quiet from the last flip
			// (readings 1 s apart).
			if quiet := time.Duration(g.at[resolved[0]]-lastFlip) * time.Second; quiet != keep {
				t.Errorf("resolved %v after the last flip; want keep_firing_for %v", quiet, keep)
			}
		})
	}
}
