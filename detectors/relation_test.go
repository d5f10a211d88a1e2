package detectors_test

import (
	"math"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// related is a device whose three signals follow a common load (an AR(1)
// process of unit variance, time constant 100 readings) with couplings of 3,
// 3 and 2 noise σ, as a pump's pressure, temperature and vibration follow
// its duty.
type related struct {
	nz   noise
	load float64
}

// next advances the load and returns the readings' values; tLoad, when not
// NaN, is the load temperature follows instead of the device's (a broken
// relation), and hold, when not NaN, pins the device's load.
func (d *related) next(tLoad, hold float64) []pipeline.Value {
	const phi = 0.99
	d.load = phi*d.load + math.Sqrt(1-phi*phi)*d.nz.gauss(0, 1)
	l := d.load
	if !math.IsNaN(hold) {
		l = hold
	}
	lt := l
	if !math.IsNaN(tLoad) {
		lt = tLoad
	}
	return []pipeline.Value{
		pressure(d.nz.gauss(p0+3*pSigma*l, pSigma)),
		temperature(d.nz.gauss(t0C+3*tSig*lt, tSig)),
		vibration(d.nz.gauss(v0+2*vSigma*l, vSigma)),
	}
}

func relationAlerts(as []pipeline.Alert) []pipeline.Alert {
	var out []pipeline.Alert
	for _, a := range as {
		if a.Kind == detectors.RelationKind {
			out = append(out, a)
		}
	}
	return out
}

// TestRelationBreak: temperature turns against the load its device's
// pressure and vibration still follow, every signal inside its own band; the
// relation check fires, names temperature and what it should be, and
// resolves when the relation is restored. Nothing relation-related fires
// on the related signals before or after.
func TestRelationBreak(t *testing.T) {
	nan := math.NaN()
	g := newRig(t, newSet(t, nil))
	dev := &related{nz: newNoise(41)}
	for range 4000 {
		g.feed(dev.next(nan, nan)...)
	}
	if got := relationAlerts(g.alerts); len(got) != 0 {
		t.Fatalf("before the break: %d relation alerts, first %+v; want none", len(got), got[0])
	}
	// Pressure and vibration at +1.5 load σ, temperature at −1.5: 4.5 of
	// its noise σ below where the others put it, and 1.4 of its overall σ
	// from its mean, so its own band does not see it.
	from := g.n
	for range 60 {
		g.feed(dev.next(-1.5, 1.5)...)
	}
	a, at, ok := g.first(detectors.RelationKind, pipeline.Firing, from)
	if !ok {
		t.Fatalf("no relation alert during the break; alerts %+v", g.since(from))
	}
	if at-from > 10 {
		t.Errorf("the relation alert came %d readings into the break; want within 10", at-from)
	}
	if a.Signal != "temperature" || !(a.Mean > a.Observed+3*tSig) || !strings.Contains(a.Message, "temperature") || !strings.Contains(a.Message, "expected given") {
		t.Errorf("alert %+v: want temperature named, observed well below the expected value, in the message", a)
	}
	// A per-signal check on temperature that fires on the break (its
	// drift against what the others imply) joins the relation alert: one
	// alert, one ID, for the device's event.
	for _, o := range g.since(from) {
		if o.ID != a.ID {
			t.Errorf("alert %s %s (%s) beside the relation alert %s; want every record of the event under one ID", o.Detector, o.State, o.ID, a.ID)
		}
	}
	back := g.n
	for range 2000 {
		g.feed(dev.next(nan, nan)...)
	}
	if _, _, ok := g.first(detectors.RelationKind, pipeline.Resolved, back); !ok {
		t.Error("the relation alert did not resolve once the relation was restored")
	}
	if n := len(relationAlerts(g.since(back))); n != 1 {
		t.Errorf("after the break: %d relation alert records; want the one resolution", n)
	}
	if r, _, _ := g.first(detectors.RelationKind, pipeline.Resolved, back); r.ID != a.ID {
		t.Errorf("resolution ID %s; want the alert's %s", r.ID, a.ID)
	}
}

// TestRelationSilentBesideSignalAlert: a pressure excursion breaks the
// relation too, but the overpressure alert already tells the operator; the
// relation check raises no second alert for the same event.
func TestRelationSilentBesideSignalAlert(t *testing.T) {
	nan := math.NaN()
	g := newRig(t, newSet(t, nil))
	dev := &related{nz: newNoise(42)}
	for range 4000 {
		g.feed(dev.next(nan, nan)...)
	}
	from := g.n
	for range 20 {
		v := dev.next(nan, nan)
		v[0].V += 40 * pSigma
		g.feed(v...)
	}
	for range 1000 {
		g.feed(dev.next(nan, nan)...)
	}
	if _, _, ok := g.first("overpressure.spike", pipeline.Firing, from); !ok {
		t.Fatalf("no overpressure alert for a 40 σ excursion; alerts %+v", g.since(from))
	}
	if got := relationAlerts(g.since(from)); len(got) != 0 {
		t.Errorf("relation alerts beside the overpressure alert: %+v; want none", got)
	}
	if d := g.eng.Device(g.device); d.Extra == nil || d.Extra.Relation == nil || !d.Extra.Relation.Model.Warm {
		t.Error("the relation model is not warm after 5,000 readings")
	}
}

// TestRelationOff: with the check off a device keeps no relation memory and
// a break raises nothing.
func TestRelationOff(t *testing.T) {
	nan := math.NaN()
	g := newRig(t, newSet(t, func(c *detectors.Config) { c.Params.Relation.Enabled = false }))
	dev := &related{nz: newNoise(41)}
	for range 4000 {
		g.feed(dev.next(nan, nan)...)
	}
	for range 60 {
		g.feed(dev.next(-1.5, 1.5)...)
	}
	if got := relationAlerts(g.alerts); len(got) != 0 {
		t.Errorf("relation alerts with the check off: %+v", got)
	}
	if d := g.eng.Device(g.device); d.Extra != nil && d.Extra.Relation != nil {
		t.Error("relation memory kept with the check off")
	}
}

func TestRelationConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*detectors.RelationConfig)
		want string
	}{
		{"defaults", func(*detectors.RelationConfig) {}, ""},
		{"one signal", func(c *detectors.RelationConfig) { c.Signals = []string{"pressure"} }, "relation: signals: a relation needs two"},
		{"twice", func(c *detectors.RelationConfig) { c.Signals = []string{"pressure", "pressure"} }, `"pressure" is empty or listed twice`},
		{"alpha", func(c *detectors.RelationConfig) { c.Alpha = 0 }, "relation: alpha must be in (0, 0.5)"},
		{"hold", func(c *detectors.RelationConfig) { c.Hold = 0 }, "relation: hold and clear"},
		{"off is not checked", func(c *detectors.RelationConfig) { c.Enabled, c.Alpha = false, 0 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := detectors.DefaultConfig()
			tc.edit(&cfg.Params.Relation)
			_, err := detectors.New(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v; want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRelationExplainsCommonLoad: three signals that follow a slow common
// load (the device's duty) wander by several noise σ for minutes at a time.
// Judged alone, their drift checks read that as drift; with the relation
// explaining what the partners account for, the same readings raise nothing.
func TestRelationExplainsCommonLoad(t *testing.T) {
	run := func(explain bool) (n int, kinds map[string]int) {
		g := newRig(t, newSet(t, func(c *detectors.Config) { c.Params.Relation.Explain = explain }))
		dev := &related{nz: newNoise(43)}
		kinds = map[string]int{}
		for range 20000 {
			// a slower load than next's: time constant 500 readings
			const phi = 0.998
			dev.load = phi*dev.load + math.Sqrt(1-phi*phi)*dev.nz.gauss(0, 1)
			l := dev.load
			g.feed(pressure(dev.nz.gauss(p0+3*pSigma*l, pSigma)),
				temperature(dev.nz.gauss(t0C+3*tSig*l, tSig)),
				vibration(dev.nz.gauss(v0+2*vSigma*l, vSigma)))
		}
		for _, a := range g.since(1000) {
			if a.State == pipeline.Firing {
				n++
				kinds[a.Detector]++
			}
		}
		return n, kinds
	}
	off, offKinds := run(false)
	on, onKinds := run(true)
	t.Logf("alerts after warm-up: %d judged alone %v, %d with the relation explaining %v", off, offKinds, on, onKinds)
	if on != 0 {
		t.Errorf("with the relation explaining the common load: %d alerts %v; want none", on, onKinds)
	}
	if off == 0 {
		t.Error("judged alone, the common load raised no alert: the test no longer shows what explaining is for")
	}
}

// TestRelationReloadedOff: a configuration reload that switches the check
// off while its alert is open (a drift check joined to it) resolves that
// alert with the reason, and no record follows for an alert that never
// fired.
func TestRelationReloadedOff(t *testing.T) {
	nan := math.NaN()
	g := newRig(t, newSet(t, nil))
	dev := &related{nz: newNoise(41)}
	for range 4000 {
		g.feed(dev.next(nan, nan)...)
	}
	from := g.n
	for range 60 {
		g.feed(dev.next(-1.5, 1.5)...)
	}
	a, _, ok := g.first(detectors.RelationKind, pipeline.Firing, from)
	if !ok {
		t.Fatal("no relation alert during the break")
	}
	off := newSet(t, func(c *detectors.Config) { c.Params.Relation.Enabled = false })
	var rep []pipeline.Alert
	var err error
	rep, _, err = g.eng.Reconfigure(off, g.time(g.n), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || rep[0].ID != a.ID || rep[0].State != pipeline.Resolved || !strings.Contains(rep[0].Message, "configuration reload") {
		t.Fatalf("reload: %+v; want the relation alert %s resolved by the reload", rep, a.ID)
	}
	g.alerts = append(g.alerts, rep...)
	for range rep {
		g.at = append(g.at, g.n)
	}
	for range 60 {
		g.feed(dev.next(-1.5, 1.5)...)
	}
	for range 1000 {
		g.feed(dev.next(nan, nan)...)
	}
	fired := map[string]bool{}
	for _, x := range g.alerts {
		if x.State == pipeline.Firing {
			fired[x.ID] = true
		} else if !fired[x.ID] {
			t.Errorf("%s %s resolved (%s) without a firing record", x.Detector, x.ID, x.Message)
		}
	}
}

// TestEngineCorrelation: the correlation the relation check reports for
// inspection is the one of the signals it relates: about 0.9 between
// pressure and temperature, which follow the same load with couplings of 3
// noise σ (9/(9+1)), and nothing for a device or signal it does not know.
func TestEngineCorrelation(t *testing.T) {
	nan := math.NaN()
	g := newRig(t, newSet(t, nil))
	if _, ok := g.eng.Correlation(g.device, "pressure", "temperature"); ok {
		t.Fatal("a correlation before the device has sent anything")
	}
	dev := &related{nz: newNoise(43)}
	for range 4000 {
		g.feed(dev.next(nan, nan)...)
	}
	r, ok := g.eng.Correlation(g.device, "pressure", "temperature")
	if !ok || r < 0.8 || r > 0.97 {
		t.Errorf("pressure~temperature: %v, %v; want about 0.9", r, ok)
	}
	if r2, ok := g.eng.Correlation(g.device, "temperature", "pressure"); !ok || r2 != r {
		t.Errorf("temperature~pressure: %v, %v; want the same %v", r2, ok, r)
	}
	for _, c := range [][3]string{{g.device, "pressure", "flow"}, {"no-such-device", "pressure", "temperature"}} {
		if v, ok := g.eng.Correlation(c[0], c[1], c[2]); ok {
			t.Errorf("Correlation%v = %v, true; want false", c, v)
		}
	}
}
