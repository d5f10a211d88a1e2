package detectors_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// t0 is an arbitrary event time (2025-11-21T10:00:00Z) in Unix ns.
const t0 = int64(1763719200) * 1e9

const sec = int64(time.Second)

// The operating point of the simulated device and its noise (one standard
// deviation), as the task's sensor nodes publish them.
const (
	p0, pSigma = 4.0, 0.06 // bar
	t0C, tSig  = 60.0, 0.25
	v0, vSigma = 2.0, 0.08 // mm/s
	warmup     = 300       // baselines.DefaultConfig().WarmupSamples
)

// newSet compiles the default configuration after edit (nil: unchanged).
func newSet(t testing.TB, edit func(*detectors.Config)) *detectors.Set {
	t.Helper()
	cfg := detectors.DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	s, err := detectors.New(cfg)
	if err != nil {
		t.Fatalf("detectors.New: %v", err)
	}
	return s
}

// rig feeds one device's readings to an engine at fixed event-time steps and
// records the alerts.
type rig struct {
	t      testing.TB
	eng    *detectors.Engine
	device string
	step   int64 // event-time step, ns
	n      int   // readings processed so far
	r      pipeline.Reading
	alerts []pipeline.Alert
	// at[i] is the index of the reading that caused alerts[i].
	at []int
}

func newRig(t testing.TB, set *detectors.Set) *rig {
	return &rig{t: t, eng: set.NewEngine(), device: "sensor-node-01", step: sec}
}

// time returns the event time of reading i.
func (g *rig) time(i int) int64 { return t0 + int64(i)*g.step }

// feed processes one reading with the given values (no status) and returns
// the alerts it caused.
func (g *rig) feed(vals ...pipeline.Value) []pipeline.Alert {
	return g.feedStatus(pipeline.NoStatus, vals...)
}

func (g *rig) feedStatus(status int8, vals ...pipeline.Value) []pipeline.Alert {
	g.r = pipeline.Reading{
		Seq:    uint64(g.n),
		Time:   g.time(g.n),
		Device: g.device,
		Topic:  "plant/line-a/" + g.device + "/telemetry",
		Status: status,
		Values: vals,
	}
	before := len(g.alerts)
	g.alerts = g.eng.Process(&g.r, g.alerts)
	for range g.alerts[before:] {
		g.at = append(g.at, g.n)
	}
	g.n++
	return g.alerts[before:]
}

// since returns the alerts caused by readings from index i on.
func (g *rig) since(i int) []pipeline.Alert {
	for k, at := range g.at {
		if at >= i {
			return g.alerts[k:]
		}
	}
	return nil
}

// first returns the first alert of detector in state st caused by a reading
// with index >= from, and the index of that reading.
func (g *rig) first(detector string, st pipeline.AlertState, from int) (pipeline.Alert, int, bool) {
	for k, a := range g.alerts {
		if g.at[k] >= from && a.Detector == detector && a.State == st {
			return a, g.at[k], true
		}
	}
	return pipeline.Alert{}, -1, false
}

// signal returns the state of a signal of the rig's device.
func (g *rig) signal(name string) *detectors.SignalState {
	g.t.Helper()
	d := g.eng.Device(g.device)
	if d == nil {
		g.t.Fatalf("Device(%q) = nil", g.device)
	}
	for i := range d.Signals {
		if d.Signals[i].Name == name {
			return &d.Signals[i]
		}
	}
	g.t.Fatalf("device %q has no signal %q", g.device, name)
	return nil
}

// noise yields deterministic Gaussian noise.
type noise struct{ rng *rand.Rand }

func newNoise(seed uint64) noise { return noise{rand.New(rand.NewPCG(seed, 0x5eed))} }

func (n noise) gauss(mu, sigma float64) float64 { return mu + sigma*n.rng.NormFloat64() }

func pressure(x float64) pipeline.Value {
	return pipeline.Value{Name: "pressure", Kind: pipeline.Pressure, V: x}
}

func temperature(x float64) pipeline.Value {
	return pipeline.Value{Name: "temperature", Kind: pipeline.Temperature, V: x}
}

func vibration(x float64) pipeline.Value {
	return pipeline.Value{Name: "vibration", Kind: pipeline.Vibration, V: x}
}

func flow(x float64) pipeline.Value {
	return pipeline.Value{Name: "flow", Kind: pipeline.Generic, V: x}
}

// fmtAlerts renders alerts compactly for failure messages.
func fmtAlerts(as []pipeline.Alert) string {
	if len(as) == 0 {
		return "no alerts"
	}
	var b strings.Builder
	for i, a := range as {
		if i == 8 {
			fmt.Fprintf(&b, "\n\t... and %d more", len(as)-i)
			break
		}
		fmt.Fprintf(&b, "\n\t%s %s %s at +%ds observed=%.4g value=%.4g threshold=%.4g score=%.3g",
			a.Detector, a.State, a.Severity, (a.Time-t0)/sec, a.Observed, a.Value, a.Threshold, a.Score)
	}
	return b.String()
}

// num formats like the package's messages: four significant digits.
func num(f float64) string { return fmt.Sprintf("%.4g", f) }

func ptr(f float64) *float64 { return &f }

// near reports whether got is within tol of want.
func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// injection is one case of a per-detector table: a clean signal, an injected
// disturbance, and the alerts it must and must not cause.
type injection struct {
	name string
	// edit changes the default parameters (nil: defaults).
	edit func(*detectors.Params)
	// step is the sampling interval (default 1 s).
	step time.Duration
	// clean is the normal signal at reading i (noise included); nil uses the
	// table's default.
	clean func(nz noise, i int) float64
	// before is the number of clean readings before the injection (default:
	// warm-up + 200); no alert may fire during them.
	before int
	// n readings are replaced by inject(i, clean) for i in [0, n).
	n      int
	inject func(i int, clean float64) float64
	// after clean readings follow the injection.
	after int
	// want lists alerts that must fire; forbid detectors that must not fire
	// at all ("*": nothing may fire).
	want   []want
	forbid []string
	// check makes case-specific assertions; start is the index of the first
	// injected reading.
	check func(t *testing.T, g *rig, start int)
}

// want is an alert an injection must raise.
type want struct {
	detector string
	severity pipeline.Severity
	// The episode must start firing on injected reading from <= i < by.
	from, by int
	// below says the statistic is on the low side: Value <= Threshold for
	// value checks, Value < 0 for CUSUM sums.
	below bool
	// resolves: the episode must resolve (same ID, Started and Severity)
	// during the clean readings after the injection.
	resolves bool
	// msg lists further substrings the message must contain.
	msg []string
}

// table is the signal a per-detector table works on.
type table struct {
	value  func(float64) pipeline.Value
	unit   string
	op     float64 // operating point
	sigma  float64 // noise standard deviation
	clean  func(nz noise, i int) float64
	checks map[string]stat // what each detector's alerts compare
}

// stat is what a check compares, and so the unit and meaning of an alert's
// Value and Threshold.
type stat struct {
	unit string
	kind statKind
}

type statKind int

const (
	statValue statKind = iota // the signal itself, against a limit or band
	statRate                  // rate of change
	statSigma                 // a CUSUM sum
	statStd                   // a short-window standard deviation
)

func (tb table) run(t *testing.T, cases []injection) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tb.runOne(t, tc) })
	}
}

func (tb table) runOne(t *testing.T, tc injection) {
	set := newSet(t, func(c *detectors.Config) {
		if tc.edit != nil {
			tc.edit(&c.Params)
		}
	})
	g := newRig(t, set)
	if tc.step != 0 {
		g.step = int64(tc.step)
	}
	clean := tc.clean
	if clean == nil {
		clean = tb.clean
	}
	before := tc.before
	if before == 0 {
		before = warmup + 200
	} else if before < 0 {
		before = 0
	}
	nz := newNoise(1)
	for i := 0; i < before; i++ {
		g.feed(tb.value(clean(nz, g.n)))
	}
	if len(g.alerts) > 0 {
		t.Fatalf("clean signal before the injection: got %s; want no alerts", fmtAlerts(g.alerts))
	}
	start := g.n
	for i := 0; i < tc.n; i++ {
		x := clean(nz, g.n)
		if tc.inject != nil {
			x = tc.inject(i, x)
		}
		g.feed(tb.value(x))
	}
	for i := 0; i < tc.after; i++ {
		g.feed(tb.value(clean(nz, g.n)))
	}

	for _, f := range tc.forbid {
		for _, a := range g.alerts {
			if f == "*" || a.Detector == f {
				t.Fatalf("got %s; want no %s alert", fmtAlerts(g.alerts), f)
			}
		}
	}
	for _, w := range tc.want {
		a, at, ok := g.first(w.detector, pipeline.Firing, start)
		if !ok {
			t.Errorf("got %s; want %s firing", fmtAlerts(g.alerts), w.detector)
			continue
		}
		if i := at - start; i < w.from || i >= w.by {
			t.Errorf("%s fired on injected reading %d; want %d <= i < %d (alerts: %s)", w.detector, i, w.from, w.by, fmtAlerts(g.alerts))
		}
		if a.Seq != uint64(at) || a.Time != g.time(at) {
			t.Errorf("%s: got seq %d time +%ds; want the reading's, %d and +%ds", w.detector, a.Seq, (a.Time-t0)/sec, at, (g.time(at)-t0)/sec)
		}
		tb.checkFiring(t, g, w, a, start)
		if w.resolves {
			r, _, ok := g.first(w.detector, pipeline.Resolved, at)
			switch {
			case !ok:
				t.Errorf("%s: got %s; want it to resolve after the injection", w.detector, fmtAlerts(g.since(at)))
			case r.ID != a.ID || r.Started != a.Started || r.Severity != lastSeverity(g.alerts, a.ID):
				t.Errorf("%s resolved: got ID %s started %d severity %v; want %s, %d, %v as when it last fired",
					w.detector, r.ID, r.Started, r.Severity, a.ID, a.Started, lastSeverity(g.alerts, a.ID))
			case r.Time < g.time(start+tc.n):
				t.Errorf("%s resolved at reading %d, during the injection (%d..%d)", w.detector, (r.Time-t0)/g.step, start, start+tc.n-1)
			}
		}
	}
	if tc.check != nil {
		tc.check(t, g, start)
	}
	t.Logf("injection from reading %d: %s", start, fmtAlerts(g.alerts))
}

// checkFiring checks the fields of the first firing alert of a wanted episode.
func (tb table) checkFiring(t *testing.T, g *rig, w want, a pipeline.Alert, start int) {
	t.Helper()
	name := tb.value(0).Name
	kind, _, _ := strings.Cut(w.detector, ".")
	if a.Kind != kind || a.Signal != name || a.Device != g.device || a.Topic != g.r.Topic {
		t.Errorf("%s: got kind %q signal %q device %q topic %q; want %q, %q, %q, %q",
			w.detector, a.Kind, a.Signal, a.Device, a.Topic, kind, name, g.device, g.r.Topic)
	}
	if a.Severity != w.severity {
		t.Errorf("%s: got severity %v; want %v (%s)", w.detector, a.Severity, w.severity, fmtAlerts([]pipeline.Alert{a}))
	}
	if a.Started < g.time(start) || a.Started > a.Time {
		t.Errorf("%s: got started +%ds, time +%ds; want started within [injection +%ds, time]",
			w.detector, (a.Started-t0)/sec, (a.Time-t0)/sec, (g.time(start)-t0)/sec)
	}
	st, ok := tb.checks[w.detector]
	if !ok {
		t.Fatalf("table has no check %s", w.detector)
	}
	unit := st.unit
	if a.Unit != unit {
		t.Errorf("%s: got unit %q; want %q", w.detector, a.Unit, unit)
	}
	if !(a.Score >= 1) {
		t.Errorf("%s: got score %v; want >= 1", w.detector, a.Score)
	}
	switch {
	case st.kind == statSigma: // CUSUM: |Value| is the sum, past a threshold of at least H
		if !(math.Abs(a.Value) >= a.Threshold && a.Threshold >= 12) || (a.Value < 0) != w.below {
			t.Errorf("%s: got value %v threshold %v; want |value| >= threshold >= 12, negative %v", w.detector, a.Value, a.Threshold, w.below)
		}
		if !near(a.Score, math.Abs(a.Value)/a.Threshold, 1e-9) {
			t.Errorf("%s: got score %v; want |value|/threshold = %v", w.detector, a.Score, math.Abs(a.Value)/a.Threshold)
		}
	case st.kind == statRate, st.kind == statStd:
		if !(a.Value >= a.Threshold && a.Threshold > 0) {
			t.Errorf("%s: got value %v threshold %v; want value >= threshold > 0", w.detector, a.Value, a.Threshold)
		}
		if !near(a.Score, a.Value/a.Threshold, 1e-9) {
			t.Errorf("%s: got score %v; want value/threshold = %v", w.detector, a.Score, a.Value/a.Threshold)
		}
	default: // the signal itself against a limit or band
		if a.Value != a.Observed {
			t.Errorf("%s: got value %v, observed %v; want them equal", w.detector, a.Value, a.Observed)
		}
		if w.below && !(a.Value <= a.Threshold) || !w.below && !(a.Value >= a.Threshold) {
			t.Errorf("%s: got value %v threshold %v; want value on the %s side", w.detector, a.Value, a.Threshold, map[bool]string{true: "low", false: "high"}[w.below])
		}
	}
	// The baseline is the learned one: near the operating point.
	if tol := 10*tb.sigma + 1e-9; !near(a.Mean, tb.op, tol) || !(a.Std >= 0 && a.Std <= 3*tb.sigma+1e-9) {
		t.Errorf("%s: got baseline mean %v std %v; want mean %v ± %v, std <= %v", w.detector, a.Mean, a.Std, tb.op, tol, 3*tb.sigma)
	}
	for _, s := range append([]string{name + " ", num(a.Observed), num(a.Threshold), num(math.Abs(a.Value)), tb.unit}, w.msg...) {
		if !strings.Contains(a.Message, s) {
			t.Errorf("%s: got message %q; want it to mention %q", w.detector, a.Message, s)
		}
	}
}

// lastSeverity returns the severity of the last firing alert with the given ID.
func lastSeverity(as []pipeline.Alert, id string) pipeline.Severity {
	var sev pipeline.Severity
	for _, a := range as {
		if a.ID == id && a.State == pipeline.Firing {
			sev = a.Severity
		}
	}
	return sev
}
