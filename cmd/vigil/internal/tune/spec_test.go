package tune

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/detectors"
)

const exampleSpec = `
objective: f1            # f1 (point-wise), event_f1, nab_standard, nab_low_fp, nab_low_fn, recall_at_fa
fa_budget: 0.5           # for recall_at_fa: false alarms per device-hour allowed
search: random           # grid or random
trials: 60
seed: 1
match_kind: true
before: 2s
after: 30s
parameters:
  overpressure.spike.z: {min: 4, max: 9}
  overpressure.spike.hold: {values: [1, 2, 3]}
  signal.drift.h: {min: 6, max: 24, steps: 4}
  baseline.half_life: {values: [300, 1000, 3000]}
`

func TestParseSpecExample(t *testing.T) {
	s := mustSpec(t, exampleSpec)
	if s.Objective != ObjectiveF1 || s.Search != Random || s.Trials != 60 || s.Seed != 1 {
		t.Errorf("got objective %q, search %q, trials %d, seed %d; want f1, random, 60, 1", s.Objective, s.Search, s.Trials, s.Seed)
	}
	if !s.Eval.MatchKind || s.Eval.Before != 2*time.Second || s.Eval.After != 30*time.Second {
		t.Errorf("got eval options %+v; want match_kind, 2s, 30s", s.Eval)
	}
	var paths []string
	for _, p := range s.Params {
		paths = append(paths, p.Path)
	}
	want := []string{"overpressure.spike.z", "overpressure.spike.hold", "signal.drift.h", "baseline.half_life"}
	if !slices.Equal(paths, want) {
		t.Fatalf("got parameters %v; want %v in file order", paths, want)
	}
	z, hold, h := &s.Params[0], &s.Params[1], &s.Params[2]
	if z.Min != 4 || z.Max != 9 || z.Discrete() || z.kind != kindFloat {
		t.Errorf("z: got %+v; want the continuous float range 4..9", z)
	}
	if !hold.Discrete() || hold.kind != kindInt || len(hold.steps) != 3 {
		t.Errorf("hold: got kind %v, %d values; want 3 whole numbers", hold.kind, len(hold.steps))
	}
	var steps []string
	for _, n := range h.steps {
		steps = append(steps, n.Value)
	}
	if !slices.Equal(steps, []string{"6", "12", "18", "24"}) || !h.Discrete() {
		t.Errorf("drift.h steps: got %v; want [6 12 18 24]", steps)
	}
}

func TestParseSpecForms(t *testing.T) {
	s := mustSpec(t, `
objective: recall_at_fa
fa_budget: 0.5
search: grid
max_trials: 20
parameters:
  detectors.thermal.fluctuation.hold: [2, 3, 4]      # a list is values
  baseline.half_life: {min: 100, max: 10000, steps: 3, log: true}
  baseline.warmup_duration: {min: 0s, max: 10m, steps: 3}
  vibration.zones: {values: [{ab: 1.4, bc: 2.8, cd: 4.5}, {ab: 2.3, bc: 4.5, cd: 7.1}]}
`)
	if s.Search != Grid || s.MaxTrials != 20 || s.FABudget != 0.5 {
		t.Errorf("got search %q, max_trials %d, budget %v; want grid, 20, 0.5", s.Search, s.MaxTrials, s.FABudget)
	}
	if p := s.Params[0].Path; p != "thermal.fluctuation.hold" {
		t.Errorf("got path %q; want the detectors. prefix dropped", p)
	}
	got := func(i int) []string {
		var vs []string
		for _, n := range s.Params[i].steps {
			vs = append(vs, render(n))
		}
		return vs
	}
	for _, tc := range []struct {
		i    int
		want []string
	}{
		{0, []string{"2", "3", "4"}},
		{1, []string{"100", "1000", "10000"}},
		{2, []string{"0s", "5m0s", "10m0s"}},
		{3, []string{"{ab: 1.4, bc: 2.8, cd: 4.5}", "{ab: 2.3, bc: 4.5, cd: 7.1}"}},
	} {
		if g := got(tc.i); !slices.Equal(g, tc.want) {
			t.Errorf("%s: got values %v; want %v", s.Params[tc.i].Path, g, tc.want)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string // substrings of the error
	}{
		{"unknown parameter", `parameters: {overpressure.spike.zz: {min: 1, max: 2}}`,
			[]string{"parameters.overpressure.spike.zz", `unknown key "zz" in overpressure.spike`, "keys: z, warmup_z, hold, clear"}},
		{"unknown section", `parameters: {pressure.spike.z: [1]}`,
			[]string{"parameters.pressure.spike.z", `unknown key "pressure" in the detectors section`}},
		{"key below a number", `parameters: {overpressure.spike.z.x: [1]}`,
			[]string{"parameters.overpressure.spike.z.x", "overpressure.spike.z holds a number"}},
		{"min above max", `parameters: {overpressure.spike.z: {min: 9, max: 4}}`,
			[]string{"parameters.overpressure.spike.z", "min (9) is greater than max (4)"}},
		{"empty values", `parameters: {overpressure.spike.hold: {values: []}}`,
			[]string{"parameters.overpressure.spike.hold", "values: empty list"}},
		{"empty list", `parameters: {overpressure.spike.hold: []}`,
			[]string{"parameters.overpressure.spike.hold", "values: empty list"}},
		{"bad objective", "objective: accuracy\nparameters: {overpressure.spike.z: [5]}",
			[]string{`objective: unknown objective "accuracy"`, "recall_at_fa"}},
		{"bad search", "search: annealing\nparameters: {overpressure.spike.z: [5]}",
			[]string{`search: unknown search "annealing"`}},
		{"unknown spec key", "objectiv: f1\nparameters: {overpressure.spike.z: [5]}",
			[]string{`unknown key "objectiv" (keys: objective, fa_budget,`}},
		{"unknown range key", `parameters: {overpressure.spike.z: {min: 1, max: 2, stepz: 3}}`,
			[]string{"parameters.overpressure.spike.z", `unknown key "stepz" (keys: min, max, steps, log, values)`}},
		{"all errors at once", "objective: accuracy\nsearch: x\nparameters: {overpressure.spike.z: 5, a.b: [1]}",
			[]string{"objective: unknown", "search: unknown", "parameters.overpressure.spike.z: line 3: want", "parameters.a.b: unknown key"}},
		{"wrong type", `parameters: {overpressure.spike.hold: [1, 1.5]}`,
			[]string{"parameters.overpressure.spike.hold", "values[1] (1.5): want a whole number"}},
		{"not a number", `parameters: {overpressure.spike.z: [high]}`,
			[]string{"parameters.overpressure.spike.z", "values[0] (high)", "cannot unmarshal !!str `high` into float64"}},
		{"invalid value", `parameters: {overpressure.spike.z: {min: -1, max: 5}}`,
			[]string{"parameters.overpressure.spike.z: min", "z must be positive"}},
		{"range of a section", `parameters: {vibration.zones: {min: 1, max: 2}}`,
			[]string{"parameters.vibration.zones", "a range needs a number or duration key; vibration.zones holds a section of keys"}},
		{"range without max", `parameters: {overpressure.spike.z: {min: 1}}`,
			[]string{"parameters.overpressure.spike.z", "a range needs min and max"}},
		{"values and range", `parameters: {overpressure.spike.z: {min: 1, max: 3, values: [2]}}`,
			[]string{"parameters.overpressure.spike.z", "not both"}},
		{"bad duration", `parameters: {baseline.warmup_duration: {min: soon, max: 5m}}`,
			[]string{"parameters.baseline.warmup_duration", "min: want a duration"}},
		{"log from zero", `parameters: {baseline.clip: {min: 0, max: 8, log: true}}`,
			[]string{"parameters.baseline.clip", "log scale needs min > 0"}},
		{"one step", `parameters: {overpressure.spike.z: {min: 4, max: 8, steps: 1}}`,
			[]string{"parameters.overpressure.spike.z", "steps"}},
		{"no whole number", `parameters: {overpressure.spike.hold: {min: 1.2, max: 1.8}}`,
			[]string{"parameters.overpressure.spike.hold", "no whole number"}},
		{"duplicate", "parameters:\n  overpressure.spike.z: [5]\n  detectors.overpressure.spike.z: [6]",
			[]string{"parameters.overpressure.spike.z: given twice"}},
		{"overlap", "parameters:\n  overpressure.spike: [{z: 5}]\n  overpressure.spike.z: [6]",
			[]string{"parameters.overpressure.spike.z: overlaps parameters.overpressure.spike"}},
		{"no parameters", "objective: f1", []string{"parameters: nothing to tune"}},
		{"budget missing", "objective: recall_at_fa\nparameters: {overpressure.spike.z: [5]}",
			[]string{"fa_budget: recall_at_fa needs a budget"}},
		{"zero trials", "trials: 0\nparameters: {overpressure.spike.z: [5]}",
			[]string{"trials: must be at least 1"}},
		{"empty", "", []string{"empty file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tc.spec))
			if err == nil {
				t.Fatalf("got no error; want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// Keys that constrain each other are not validated alone: zones tuned
// together may cross each other's defaults, and invalid combinations are
// skipped by the search.
func TestParseSpecRelatedKeys(t *testing.T) {
	mustSpec(t, `parameters:
  vibration.zones.ab: {values: [1.4, 5]}     # 5 > the default bc 4.5, valid with bc 6
  vibration.zones.bc: {values: [2.8, 6]}
`)
	if _, err := ParseSpec([]byte(`parameters: {vibration.zones.ab: [5]}`)); err == nil ||
		!strings.Contains(err.Error(), "ab < bc < cd") {
		t.Errorf("got %v; want ab alone above the default bc rejected", err)
	}
}

func TestOverlay(t *testing.T) {
	base := detectors.DefaultParams()
	limit := 8.0
	base.Overpressure.Limit = &limit
	base.Thermal.Drift.H = 20

	seg := func(p string) []string { return strings.Split(p, ".") }
	node := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	got, err := overlay(&base,
		[]*yaml.Node{node("4.5"), node("3"), node("2m"), node("9.5")},
		[][]string{seg("overpressure.spike.z"), seg("overpressure.spike.hold"), seg("baseline.warmup_duration"), seg("overpressure.limit")})
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.Overpressure.Spike.Z = 4.5
	want.Overpressure.Spike.Hold = 3
	want.Baseline.WarmupDuration = 2 * time.Minute
	l2 := 9.5
	want.Overpressure.Limit = &l2
	if !equalParams(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if *base.Overpressure.Limit != 8 {
		t.Errorf("base limit changed to %v; the overlay must not share pointers", *base.Overpressure.Limit)
	}
	if got.Thermal.Drift.H != 20 || got.Overpressure.Spike.Clear != base.Overpressure.Spike.Clear {
		t.Errorf("untouched keys changed: drift h %v, spike clear %v", got.Thermal.Drift.H, got.Overpressure.Spike.Clear)
	}

	if _, err := overlay(&base, []*yaml.Node{node("1")}, [][]string{seg("overpressure.spike.zz")}); err == nil ||
		!strings.Contains(err.Error(), "field zz not found") {
		t.Errorf("unknown path: got %v; want a strict decoding error", err)
	}
}

func TestCopyParams(t *testing.T) {
	p := detectors.DefaultParams()
	hi, lo := 95.0, -10.0
	p.Thermal.High, p.Thermal.Low = &hi, &lo
	c, err := copyParams(&p)
	if err != nil {
		t.Fatal(err)
	}
	if !equalParams(c, p) {
		t.Errorf("copy %+v differs from %+v", c, p)
	}
	if c.Thermal.High == p.Thermal.High || c.Thermal.Low == p.Thermal.Low {
		t.Error("copy shares limit pointers with the original")
	}
}

func TestGridAndDraw(t *testing.T) {
	p := Param{Path: "overpressure.spike.hold", Min: 1, Max: 3}
	if err := p.prepare(false); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range p.steps {
		got = append(got, n.Value)
	}
	if !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("grid of whole numbers 1..3 in 5 steps: got %v; want duplicates removed: [1 2 3]", got)
	}
	counts := map[string]int{}
	for i := range 300 {
		counts[p.draw(float64(i)/300).Value]++
	}
	if counts["1"] != 100 || counts["2"] != 100 || counts["3"] != 100 {
		t.Errorf("draws of 1..3: got %v; want each a third", counts)
	}
	z := Param{Path: "overpressure.spike.z", Min: 4, Max: 9}
	if err := z.prepare(false); err != nil {
		t.Fatal(err)
	}
	if v := z.draw(0.123456789).Value; v != "4.617" {
		t.Errorf("draw: got %s; want 4.617 (four significant digits)", v)
	}
	if v := z.draw(0.99999999).Value; v != "9" {
		t.Errorf("draw near the top: got %s; want 9", v)
	}
}
