package detectors_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// The cyclic plant: devices publishing every second whose temperature follows
// a cooling cycle and whose pressure follows a pump cycle, with amplitudes a
// few times the sensor noise; vibration has no cycle.
type cyclicDevice struct {
	name           string
	tPeriod, tAmp  float64 // temperature cycle: seconds, °C
	pPeriod, pAmp  float64 // pressure cycle: seconds, bar
	tPhase, pPhase float64 // radians
	// newPeriod, from reading change on, replaces tPeriod (0: never).
	newPeriod float64
	change    int
	// loaded makes the three signals also follow a common load, an AR(1)
	// process of unit variance with a 2-minute time constant, with
	// couplings of 3, 3 and 2 noise σ (the simulator's related profile).
	loaded bool
	load   float64
}

// anomaly is one injection riding on the cycle.
type anomaly struct {
	device, signal, kind string // kind: the detector that must catch it
	start, n             int    // readings
}

// cyclicPlant returns the fleet: four devices with temperature cycles of 20
// to 40 minutes at 3 to 4 σ and pressure cycles of 7 to 11 minutes at 3 σ,
// each at its own phase.
func cyclicPlant() []cyclicDevice {
	return []cyclicDevice{
		{name: "cyc-01", tPeriod: 1800, tAmp: 4 * tSig, pPeriod: 420, pAmp: 3 * pSigma, tPhase: 0.3, pPhase: 1.1},
		{name: "cyc-02", tPeriod: 1200, tAmp: 3 * tSig, pPeriod: 660, pAmp: 3 * pSigma, tPhase: 2.0, pPhase: 0.2},
		{name: "cyc-03", tPeriod: 2400, tAmp: 4 * tSig, pPeriod: 540, pAmp: 3 * pSigma, tPhase: 4.1, pPhase: 3.0},
		{name: "cyc-04", tPeriod: 1500, tAmp: 3 * tSig, pPeriod: 480, pAmp: 3 * pSigma, tPhase: 5.2, pPhase: 4.4},
	}
}

// cyclicAnomalies injects, on every device, from the fifth hour on: a
// pressure spike (+9 σ for 6 s), a thermal fluctuation (±8 σ at a 6 s period
// for 30 s) and a thermal drift (+8 σ over 10 minutes, held 5 minutes), each
// at a different point of the cycles.
func cyclicAnomalies(devs []cyclicDevice) []anomaly {
	var as []anomaly
	for i, d := range devs {
		off := 397 * i
		as = append(as,
			anomaly{d.name, "pressure", "overpressure.spike", 5*3600 + off, 6},
			anomaly{d.name, "temperature", "thermal.fluctuation", 6*3600 + off, 30},
			anomaly{d.name, "temperature", "thermal.drift", 7*3600 + off, 900},
		)
	}
	return as
}

// value returns the reading of d at index i with the anomalies applied.
func (d *cyclicDevice) values(i int, nz noise, as []anomaly, out []pipeline.Value) []pipeline.Value {
	ts := float64(i)
	tp := d.tPeriod
	phase := 2 * math.Pi * ts / tp
	if d.newPeriod > 0 && i >= d.change {
		// Phase-continuous change of period.
		phase = 2*math.Pi*float64(d.change)/tp + 2*math.Pi*float64(i-d.change)/d.newPeriod
	}
	temp := t0C + d.tAmp*math.Sin(phase+d.tPhase) + nz.gauss(0, tSig)
	pres := p0 + d.pAmp*math.Sin(2*math.Pi*ts/d.pPeriod+d.pPhase) + nz.gauss(0, pSigma)
	vib := nz.gauss(v0, vSigma)
	if d.loaded {
		phi := math.Exp(-1.0 / 120)
		d.load = phi*d.load + math.Sqrt(1-phi*phi)*nz.gauss(0, 1)
		temp += 3 * tSig * d.load
		pres += 3 * pSigma * d.load
		vib += 2 * vSigma * d.load
	}
	for _, a := range as {
		if a.device != d.name || i < a.start || i >= a.start+a.n {
			continue
		}
		k := float64(i - a.start)
		switch a.kind {
		case "overpressure.spike":
			pres += 9 * pSigma
		case "thermal.fluctuation":
			temp += 8 * tSig * math.Sin(2*math.Pi*k/6)
		case "thermal.drift":
			temp += 8 * tSig * min(k/600, 1)
		}
	}
	return append(out[:0], pressure(pres), temperature(temp), vibration(vib))
}

// cyclicRun replays the fleet for hours through one engine and returns the
// alerts with the index of the reading (per device) that caused each.
type cyclicRun struct {
	alerts []pipeline.Alert
	at     []int
	eng    *detectors.Engine
}

func runCyclic(t testing.TB, set *detectors.Set, devs []cyclicDevice, as []anomaly, hours float64) cyclicRun {
	t.Helper()
	run := cyclicRun{eng: set.NewEngine()}
	noises := make([]noise, len(devs))
	for k := range devs {
		noises[k] = newNoise(uint64(100 + k))
	}
	var r pipeline.Reading
	var vals []pipeline.Value
	n := int(hours * 3600)
	for i := range n {
		for k := range devs {
			d := &devs[k]
			vals = d.values(i, noises[k], as, vals)
			// Each device publishes at its own offset within the second.
			r = pipeline.Reading{Seq: uint64(i*len(devs) + k), Time: t0 + int64(i)*sec + int64(k)*int64(97*time.Millisecond),
				Device: d.name, Status: pipeline.NoStatus, Values: vals}
			before := len(run.alerts)
			run.alerts = run.eng.Process(&r, run.alerts)
			for range run.alerts[before:] {
				run.at = append(run.at, i)
			}
		}
	}
	return run
}

// score splits a run's firing alerts into caught injections and false
// alarms: an alert is explained by an injection on its device and signal if
// it fires between its start and 60 s after its end.
func (run cyclicRun) score(as []anomaly, from int) (caught int, missed []anomaly, false_ []pipeline.Alert) {
	hit := make([]bool, len(as))
	for k, a := range run.alerts {
		if a.State != pipeline.Firing || run.at[k] < from {
			continue
		}
		explained := false
		for j, in := range as {
			if a.Device == in.device && a.Signal == in.signal && run.at[k] >= in.start && run.at[k] <= in.start+in.n+60 {
				explained = true
				if a.Detector == in.kind {
					hit[j] = true
				}
			}
		}
		if !explained {
			false_ = append(false_, a)
		}
	}
	for j, h := range hit {
		if h {
			caught++
		} else {
			missed = append(missed, as[j])
		}
	}
	return caught, missed, false_
}

func withoutCycles(c *detectors.Config) { c.Params.Cycles.Enabled = false }

// TestCyclesCyclicPlant: on the cyclic plant, without cycle-aware baselines
// the drift check fires on the cycles (false alarms every device-hour) and the
// anomalies riding on them are partly missed; with them, once the cycles are
// learned (within the first two hours), there is no false alarm and every
// injected spike, fluctuation and drift is caught by its check.
func TestCyclesCyclicPlant(t *testing.T) {
	if testing.Short() {
		t.Skip("10 simulated hours of 4 devices")
	}
	const hours = 10
	const learned = 2 * 3600 // readings before which the cycles must be learned
	devs := cyclicPlant()
	as := cyclicAnomalies(devs)

	before := runCyclic(t, newSet(t, withoutCycles), devs, as, hours)
	bCaught, bMissed, bFalse := before.score(as, learned)
	after := runCyclic(t, newSet(t, nil), devs, as, hours)
	aCaught, aMissed, aFalse := after.score(as, learned)
	_, _, aFalseAll := after.score(as, 0)
	_, _, bFalseAll := before.score(as, 0)
	perHour := func(n int, h float64) float64 { return float64(n) / (float64(len(devs)) * h) }
	t.Logf("without cycles: %d false alarms over %d device-hours (%.2f per device-hour; %d after hour 2), caught %d/%d",
		len(bFalseAll), len(devs)*hours, perHour(len(bFalseAll), hours), len(bFalse), bCaught, len(as))
	t.Logf("with cycles:    %d false alarms over %d device-hours (%.2f per device-hour; %d after hour 2), caught %d/%d",
		len(aFalseAll), len(devs)*hours, perHour(len(aFalseAll), hours), len(aFalse), aCaught, len(as))

	if perHour(len(bFalse), hours-2) < 0.5 {
		t.Errorf("without cycles: got %d false alarms after hour 2; the cyclic plant should make the drift check fire about once per cycle", len(bFalse))
	}
	if len(aFalse) != 0 {
		t.Errorf("with cycles: got %d false alarms after hour 2; want none:%s", len(aFalse), fmtAlerts(aFalse))
	}
	if len(aMissed) != 0 {
		t.Errorf("with cycles: missed %d of %d injections: %+v", len(aMissed), len(as), aMissed)
	}
	if len(bMissed) == 0 {
		t.Logf("without cycles every injection was caught too")
	}
	// Every signal with a cycle has it, at the right period; vibration has none.
	for _, d := range devs {
		for _, sig := range []struct {
			name   string
			period float64
		}{{"temperature", d.tPeriod}, {"pressure", d.pPeriod}, {"vibration", 0}} {
			period, strength, ok := after.eng.Cycle(d.name, sig.name)
			switch {
			case sig.period == 0 && ok:
				t.Errorf("%s %s: got a %v s cycle (strength %.2f); want none", d.name, sig.name, period.Seconds(), strength)
			case sig.period > 0 && (!ok || math.Abs(period.Seconds()-sig.period) > 0.02*sig.period):
				t.Errorf("%s %s: got cycle %v (found %v); want %v s", d.name, sig.name, period, ok, sig.period)
			}
		}
	}
	// The alerts say where in its cycle the signal was.
	for k, a := range after.alerts {
		if a.State == pipeline.Firing && a.Detector == "thermal.drift" && after.at[k] >= learned {
			if !strings.Contains(a.Message, "is normal at this point of its") || !strings.Contains(a.Message, "-minute cycle") {
				t.Errorf("drift alert message without its cycle: %q", a.Message)
			}
			break
		}
	}
}

// TestCyclesUnderCommonLoad: the cyclic plant whose signals also follow a
// common load (as a pump's pressure, temperature and vibration follow its
// duty) of about the cycles' size. The load hides the cycles from a period
// search of the raw signal (it made the noise around them as large as they
// are), and the per-signal checks read its excursions as drift. The cycle
// memory sees what the device's other signals do not explain, so the cycles
// are still learned, and with them and the relation check explaining the
// load, few false alarms after hour 3 and every injection caught.
func TestCyclesUnderCommonLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("10 simulated hours of 4 devices")
	}
	const hours = 10
	const learned = 3 * 3600
	devs := cyclicPlant()
	for i := range devs {
		devs[i].loaded = true
	}
	as := cyclicAnomalies(devs)
	run := runCyclic(t, newSet(t, nil), devs, as, hours)
	caught, missed, falseAfter := run.score(as, learned)
	_, _, falseAll := run.score(as, 0)
	t.Logf("%d false alarms over %d device-hours, %d after hour 3; caught %d/%d",
		len(falseAll), len(devs)*hours, len(falseAfter), caught, len(as))
	cycles := 0
	for _, d := range devs {
		for _, sig := range []struct {
			name   string
			period float64
		}{{"temperature", d.tPeriod}, {"pressure", d.pPeriod}} {
			period, strength, ok := run.eng.Cycle(d.name, sig.name)
			t.Logf("%s %s: cycle %v (strength %.2f, found %v); want %v s", d.name, sig.name, period, strength, ok, sig.period)
			if ok && math.Abs(period.Seconds()-sig.period) <= 0.05*sig.period {
				cycles++
			}
		}
		r, ok := run.eng.Correlation(d.name, "pressure", "temperature")
		t.Logf("%s pressure~temperature %.2f", d.name, r)
		if !ok || r < 0.75 {
			t.Errorf("%s: pressure~temperature correlation %.2f (%v); want the load's (about 0.9 without the cycles)", d.name, r, ok)
		}
	}
	if cycles < 7 {
		t.Errorf("%d of 8 cycles learned at their period; want at least 7", cycles)
	}
	// The periods never change: the load may blur an estimate, but no
	// rhythm change is reported (one was, 6.5 → 7.2 minutes for a 7-minute
	// cycle, while a rival period had to be found only twice in a row).
	for _, a := range run.alerts {
		if a.Detector == "signal.rhythm" && a.State == pipeline.Firing {
			t.Errorf("rhythm alert on a constant cycle: %s", a.Message)
		}
	}
	// What the partners cannot explain of the load (a slow residual of
	// about 0.8 σ) still lets a drift CUSUM cross now and then: 3 in 28
	// device-hours here, where the cycles hidden by the load made 53.
	if len(falseAfter) > 4 {
		t.Errorf("got %d false alarms after hour 3; want at most 4:%s", len(falseAfter), fmtAlerts(falseAfter))
	}
	if len(missed) != 0 {
		t.Errorf("missed %d of %d injections: %+v", len(missed), len(as), missed)
	}
}

// TestCyclesRhythmChange: a temperature cycle that changes from 30 to 18
// minutes raises one signal.rhythm alert, is learned again at its new period
// within 3 hours, with a few alerts on the way and none after.
func TestCyclesRhythmChange(t *testing.T) {
	if testing.Short() {
		t.Skip("10 simulated hours")
	}
	const change = 5 * 3600
	devs := []cyclicDevice{{name: "cyc-01", tPeriod: 1800, tAmp: 4 * tSig, pPeriod: 420, pAmp: 3 * pSigma, tPhase: 0.3, pPhase: 1.1,
		newPeriod: 1080, change: change}}
	run := runCyclic(t, newSet(t, nil), devs, nil, 10)
	var rhythm []pipeline.Alert
	var during, afterRelearn []pipeline.Alert
	relearned := -1
	for k, a := range run.alerts {
		if a.Detector == "signal.rhythm" {
			if a.State == pipeline.Firing {
				rhythm = append(rhythm, a)
				relearned = run.at[k]
			}
			continue
		}
		if a.State != pipeline.Firing || run.at[k] < 2*3600 {
			continue
		}
		if relearned < 0 {
			during = append(during, a)
		} else if run.at[k] > relearned+1800 {
			afterRelearn = append(afterRelearn, a)
		}
	}
	t.Logf("rhythm alerts: %s", fmtAlerts(rhythm))
	t.Logf("other alerts between the change and the rhythm alert: %d%s", len(during), fmtAlerts(during))
	if len(rhythm) != 1 {
		t.Fatalf("got %d rhythm alerts; want 1:%s", len(rhythm), fmtAlerts(rhythm))
	}
	if a := rhythm[0]; a.Signal != "temperature" || relearned < change || !near(a.Threshold, 1800, 90) || !near(a.Value, 1080, 54) ||
		!strings.Contains(a.Message, "temperature changed its rhythm: its 30") || !strings.Contains(a.Message, "cycle became a 1") {
		t.Errorf("rhythm alert at reading %d: %s %v → %v s %q; want temperature, after %d, 1800 → 1080 s", relearned, a.Signal, a.Threshold, a.Value, a.Message, change)
	}
	if relearned > change+3*3600 {
		t.Errorf("relearned %d s after the change; want within 3 h", relearned-change)
	}
	// While the new rhythm is learned (it must show for a few of its
	// periods), the residual checks see the signal off its learned cycle;
	// that is about one drift alert per new cycle, and then none.
	if len(during) > 8 {
		t.Errorf("got %d alerts while the new rhythm was learned; want 8 at most", len(during))
	}
	if len(afterRelearn) != 0 {
		t.Errorf("got %d alerts from 30 minutes after the rhythm alert on; want none:%s", len(afterRelearn), fmtAlerts(afterRelearn))
	}
	if p, _, ok := run.eng.Cycle("cyc-01", "temperature"); !ok || math.Abs(p.Seconds()-1080) > 20 {
		t.Errorf("temperature cycle after the change: %v (%v); want 18 minutes", p, ok)
	}
}

// TestCyclesNoPeriodUnchanged: on signals without a cycle (noise, with a
// spike, a drift and a fluctuation), cycle detection changes nothing: the
// same alerts and the same baselines as with it switched off.
func TestCyclesNoPeriodUnchanged(t *testing.T) {
	devs := []cyclicDevice{{name: "flat-01", tPeriod: 1800, pPeriod: 420}, {name: "flat-02", tPeriod: 900, pPeriod: 300}} // amplitudes 0
	as := []anomaly{
		{"flat-01", "pressure", "overpressure.spike", 2000, 6},
		{"flat-02", "temperature", "thermal.fluctuation", 2500, 30},
		{"flat-01", "temperature", "thermal.drift", 3000, 900},
	}
	on := runCyclic(t, newSet(t, nil), devs, as, 2)
	off := runCyclic(t, newSet(t, withoutCycles), devs, as, 2)
	if got, want := fmtAll(on.alerts), fmtAll(off.alerts); got != want {
		t.Errorf("alerts with cycle detection:\n%s\nwithout:\n%s", got, want)
	}
	if len(on.alerts) == 0 {
		t.Errorf("no alerts at all; want the injections caught")
	}
	for _, d := range devs {
		a, b := on.eng.Device(d.name), off.eng.Device(d.name)
		for i := range a.Signals {
			if a.Signals[i].Base != b.Signals[i].Base {
				t.Errorf("%s %s: baseline %+v; without cycle detection %+v", d.name, a.Signals[i].Name, a.Signals[i].Base, b.Signals[i].Base)
			}
			if _, _, ok := on.eng.Cycle(d.name, a.Signals[i].Name); ok {
				t.Errorf("%s %s: a cycle was found in noise", d.name, a.Signals[i].Name)
			}
		}
	}
}

func fmtAll(as []pipeline.Alert) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%s %s %s %s %d %v %v %q\n", a.Device, a.Signal, a.Detector, a.State, a.Time, a.Value, a.Threshold, a.Message)
	}
	return b.String()
}

// TestCyclesSnapshotMidCycle: a snapshot taken mid-cycle, once the cycles are
// learned, and restored into a new engine continues exactly as the engine
// that was not interrupted: the same alerts, the same state.
func TestCyclesSnapshotMidCycle(t *testing.T) {
	if testing.Short() {
		t.Skip("6 simulated hours")
	}
	devs := cyclicPlant()[:2]
	as := cyclicAnomalies(devs)
	for k := range as {
		as[k].start -= 2 * 3600 // into the second half
	}
	set := newSet(t, nil)
	const cut = 3*3600 + 517 // readings: mid-cycle for every signal
	whole := runCyclic(t, set, devs, as, 6)

	// The first part, a snapshot, a new engine, the rest.
	first := runCyclic(t, set, devs, as, float64(cut)/3600)
	for _, d := range devs {
		if _, _, ok := first.eng.Cycle(d.name, "temperature"); !ok {
			t.Fatalf("%s: no temperature cycle learned before the snapshot", d.name)
		}
	}
	var snap [][]byte
	if err := first.eng.Snapshot(func(_ string, b []byte) error {
		snap = append(snap, bytes.Clone(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eng := set.NewEngine()
	for _, b := range snap {
		if err := eng.Restore(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	rest := continueCyclic(eng, devs, as, cut, 6*3600)
	got := fmtAll(append(first.alerts, rest...))
	if want := fmtAll(whole.alerts); got != want {
		t.Errorf("alerts across a snapshot:\n%s\nwant:\n%s", got, want)
	}
	var a, b bytes.Buffer
	eng.Snapshot(func(_ string, s []byte) error { a.Write(s); return nil })
	whole.eng.Snapshot(func(_ string, s []byte) error { b.Write(s); return nil })
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("state after the restored run differs from the uninterrupted run's")
	}
}

// continueCyclic feeds readings [from, to) of the fleet to eng, replaying the
// noise from the start so the values match an uninterrupted run.
func continueCyclic(eng *detectors.Engine, devs []cyclicDevice, as []anomaly, from, to int) []pipeline.Alert {
	noises := make([]noise, len(devs))
	for k := range devs {
		noises[k] = newNoise(uint64(100 + k))
	}
	var out []pipeline.Alert
	var vals []pipeline.Value
	for i := range to {
		for k := range devs {
			d := &devs[k]
			vals = d.values(i, noises[k], as, vals)
			if i < from {
				continue
			}
			r := pipeline.Reading{Seq: uint64(i*len(devs) + k), Time: t0 + int64(i)*sec + int64(k)*int64(97*time.Millisecond),
				Device: d.name, Status: pipeline.NoStatus, Values: vals}
			out = eng.Process(&r, out)
		}
	}
	return out
}

// TestCyclesConfig: the defaults validate, a bad value is reported under its
// key, and switched off the section is not checked.
func TestCyclesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*detectors.CycleConfig)
		want string // "" valid
	}{
		{"defaults", func(*detectors.CycleConfig) {}, ""},
		{"short range", func(c *detectors.CycleConfig) { c.MaxPeriod = 2 * c.MinPeriod }, "cycles: need min_period"},
		{"strength", func(c *detectors.CycleConfig) { c.MinStrength = 1 }, "cycles: min_strength"},
		{"tolerance", func(c *detectors.CycleConfig) { c.Tolerance = 0 }, "cycles: tolerance"},
		{"learn", func(c *detectors.CycleConfig) { c.Learn = 2 }, "cycles: learn"},
		{"rhythm rule", func(c *detectors.CycleConfig) { c.Rhythm.Hold = 0 }, "cycles: rhythm: hold"},
		{"off is not checked", func(c *detectors.CycleConfig) { c.Enabled, c.Learn = false, 2 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := detectors.DefaultConfig()
			tc.edit(&cfg.Params.Cycles)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v; want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestCyclesMemoryLazy: a signal gets cycle memory only once it has enough
// readings for the ring to be searched (64), so a device that sends a few
// readings (a spoofed device ID) costs nothing for it; then every plant
// signal has its ring and none has a model before a cycle is found.
func TestCyclesMemoryLazy(t *testing.T) {
	eng := newSet(t, nil).NewEngine()
	nz := newNoise(7)
	feed := func(from, to int) {
		for i := from; i < to; i++ {
			r := pipeline.Reading{Seq: uint64(i), Time: t0 + int64(i)*sec, Device: "lazy-01", Status: 0, Values: plant(nz)}
			eng.Process(&r, nil)
		}
	}
	feed(0, 64) // the 64th reading is judged with 63 learned
	if x := eng.Device("lazy-01").Extra; x != nil {
		t.Fatalf("after 64 readings: extra memory %+v; want none", x)
	}
	feed(64, 65)
	x := eng.Device("lazy-01").Extra
	if x == nil || len(x.Cycles) != 3 {
		t.Fatalf("after 65 readings: extra memory %+v; want the cycle memory of 3 signals", x)
	}
	for i, c := range x.Cycles {
		if c.Ring == nil || c.Model != nil || c.Level == 0 {
			t.Errorf("signal %d: ring %v, model %v, level %d; want a started ring and no model", i, c.Ring != nil, c.Model != nil, c.Level)
		}
	}
	// The ring started where the signal did: 65 s at 4.096 s bins is 15
	// closed bins (the open one holds the last reading).
	if got := x.Cycles[0].Ring.Filled; got < 14 || got > 16 {
		t.Errorf("ring filled with %d bins after 65 s; want the bins since the first reading (about 15)", got)
	}
}
