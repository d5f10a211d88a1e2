package tune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors/eval"
)

const spikeSpec = `
objective: event_f1
search: random
trials: 12
seed: 7
match_kind: true
before: 2s
after: 30s
parameters:
  overpressure.spike.z: {min: 4, max: 12}
  vibration.jump.z: {min: 4, max: 12}
  overpressure.spike.hold: {values: [1, 2, 3]}
`

// A deliberately bad base (spike thresholds at 30 spreads) misses the
// injected spikes and jumps; tuning the thresholds finds them.
func TestRunBeatsBadBase(t *testing.T) {
	ds, labels := loadSmall(t)
	res, err := Run(context.Background(), ds, labels, badBase(t), mustSpec(t, spikeSpec), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())

	base := res.Baseline()
	if base == nil || base.Index != 0 || base.Values[0] != "30" || base.Values[1] != "30" {
		t.Fatalf("baseline: got %+v; want trial 0 with the base's z 30", base)
	}
	if len(res.Trials) != 13 || res.Planned != 13 {
		t.Errorf("got %d trials of %d planned; want 13 (the baseline and 12)", len(res.Trials), res.Planned)
	}
	best := res.Best
	if best == nil {
		t.Fatal("no best trial")
	}
	if !(best.Objective >= base.Objective+0.2) {
		t.Errorf("best event F1 %.3f (trial %d); want at least 0.2 above the base's %.3f", best.Objective, best.Index, base.Objective)
	}
	if !(best.Events.Recall > base.Events.Recall) {
		t.Errorf("best recall %.3f; want above the base's %.3f", best.Events.Recall, base.Events.Recall)
	}
	if best.Params.Overpressure.Spike.Z >= 30 || best.Params.Vibration.Jump.Z >= 30 {
		t.Errorf("best thresholds z %v, jump %v; want them lowered", best.Params.Overpressure.Spike.Z, best.Params.Vibration.Jump.Z)
	}
	// The rest of the base is kept.
	if best.Params.Thermal != base.Params.Thermal || best.Params.Baseline != base.Params.Baseline {
		t.Error("untuned sections differ from the base")
	}
	pareto := 0
	for _, tr := range res.Trials {
		if tr.Pareto {
			pareto++
		}
	}
	if pareto == 0 {
		t.Error("no trial on the Pareto front")
	}
	for _, want := range []string{"objective event_f1", "13 of 13 trials", "rank", "spike.z", "jump.z", "FA/dev-h", "NAB std", "*", "best: trial"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// The same seed gives the same trials and scores whatever the parallelism;
// another seed gives other trials.
func TestRunDeterministic(t *testing.T) {
	ds, labels := loadSmall(t)
	spec := mustSpec(t, spikeSpec)
	run := func(par int, seed uint64) *Result {
		s := *spec
		s.Seed = seed
		res, err := Run(context.Background(), ds, labels, badBase(t), &s, RunOptions{Parallelism: par})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	type row struct {
		Values    []string
		Objective string
		Events    eval.Events
		NAB       eval.NAB
		Alerts    int
		Pareto    bool
	}
	rows := func(r *Result) []row {
		var out []row
		for _, tr := range r.Ranked() {
			out = append(out, row{tr.Values, objectiveCell(r.Spec.Objective, tr.Objective), tr.Events, tr.NAB, tr.Alerts, tr.Pareto})
		}
		return out
	}
	one, four := run(1, 7), run(4, 7)
	if a, b := rows(one), rows(four); !reflect.DeepEqual(a, b) {
		t.Errorf("parallelism 1 and 4 differ:\n%+v\n%+v", a, b)
	}
	if one.Best.Index != four.Best.Index {
		t.Errorf("best trial %d with one worker, %d with four", one.Best.Index, four.Best.Index)
	}
	other := run(2, 8)
	if reflect.DeepEqual(one.Trials[1].Values, other.Trials[1].Values) {
		t.Errorf("seeds 7 and 8 drew the same first trial %v", one.Trials[1].Values)
	}
}

func TestRunGrid(t *testing.T) {
	ds, labels := loadSmall(t)
	spec := mustSpec(t, `
objective: nab_standard
search: grid
parameters:
  overpressure.spike.z: {min: 6, max: 12, steps: 3}   # 6 is the base value
  overpressure.spike.hold: [1, 2]
`)
	res, err := Run(context.Background(), ds, labels, nil, spec, RunOptions{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	// 3 × 2 combinations, one of which (6, 1) is the default base: skipped.
	if res.GridSize != 6 || res.Planned != 6 || res.Skipped != 1 {
		t.Errorf("got grid %d, planned %d, skipped %d; want 6, 6 (base + 5), 1", res.GridSize, res.Planned, res.Skipped)
	}
	var got []string
	for _, tr := range res.Trials[1:] {
		got = append(got, strings.Join(tr.Values, "/"))
	}
	if want := "6/2 9/1 9/2 12/1 12/2"; strings.Join(got, " ") != want {
		t.Errorf("grid order: got %v; want %s", got, want)
	}

	spec.MaxTrials = 3
	res, err = Run(context.Background(), ds, labels, nil, spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.GridSize != 6 || res.Planned+res.Skipped != 4 {
		t.Errorf("capped grid: got grid %d, planned %d, skipped %d; want 3 drawn of 6", res.GridSize, res.Planned, res.Skipped)
	}
}

// Combinations that are invalid together (zones out of order) are not run.
func TestRunSkipsInvalidCombinations(t *testing.T) {
	ds, labels := loadSmall(t)
	spec := mustSpec(t, `
search: grid
parameters:
  vibration.zones.ab: [1.4, 5]
  vibration.zones.bc: [2.8, 6]
`)
	res, err := Run(context.Background(), ds, labels, nil, spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// (5, 2.8) is invalid: ab < bc.
	if res.Skipped != 1 || res.Planned != 4 {
		t.Errorf("got planned %d, skipped %d; want 4 (base + 3) and 1", res.Planned, res.Skipped)
	}
	for _, tr := range res.Trials {
		if tr.Err != nil {
			t.Errorf("trial %d failed: %v", tr.Index, tr.Err)
		}
	}
}

// Classes of the base are kept, and apply their own keys on top of each
// trial's.
func TestRunKeepsClasses(t *testing.T) {
	ds, labels := loadSmall(t)
	base, err := config.Parse([]byte(`
detectors:
  overpressure: {spike: {z: 30}}
classes:
  - name: odd
    devices: ["sensor-node-0[135]"]
    detectors:
      overpressure: {spike: {hold: 3}}
`))
	if err != nil {
		t.Fatal(err)
	}
	spec := mustSpec(t, "search: grid\nparameters: {overpressure.spike.z: [5]}")
	r := &runner{ds: ds, labels: labels, spec: spec, base: base}
	res, err := Run(context.Background(), ds, labels, base, spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := r.detectorConfig(&res.Trials[1].Params)
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Classes[0].Params.Overpressure.Spike
	if len(cfg.Classes) != 1 || cl.Z != 5 || cl.Hold != 3 {
		t.Errorf("class spike %+v; want the trial's z 5 and the class's hold 3", cl)
	}
}

func TestRunCancel(t *testing.T) {
	ds, labels := loadSmall(t)
	spec := mustSpec(t, strings.Replace(spikeSpec, "trials: 12", "trials: 40", 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	res, err := Run(ctx, ds, labels, badBase(t), spec, RunOptions{Parallelism: 2, Progress: func(done, total int) {
		calls++
		if total != 41 {
			t.Errorf("progress total %d; want 41", total)
		}
		if done == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v; want context.Canceled", err)
	}
	if res == nil || !res.Partial {
		t.Fatalf("got result %+v; want a partial result", res)
	}
	if n := len(res.Trials); n < 3 || n >= 41 || n != calls {
		t.Errorf("got %d finished trials and %d progress calls; want 3 or a few more, and equal", n, calls)
	}
	if res.Best == nil {
		t.Error("no best trial among those finished")
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "INTERRUPTED") {
		t.Errorf("table of a partial result: err %v, %q; want it marked INTERRUPTED", err, buf.String())
	}

	// Cancelled before it starts.
	res, err = Run(ctx, ds, labels, nil, spec, RunOptions{})
	if !errors.Is(err, context.Canceled) || len(res.Trials) != 0 || res.Best != nil {
		t.Errorf("cancelled run: got %v, %d trials; want context.Canceled and none", err, len(res.Trials))
	}
}

func TestRunErrors(t *testing.T) {
	ds, labels := loadSmall(t)
	spec := mustSpec(t, spikeSpec)
	if _, err := Run(context.Background(), ds, eval.NewLabels(), nil, spec, RunOptions{}); err == nil ||
		!strings.Contains(err.Error(), "no window") {
		t.Errorf("no labels: got %v; want an error saying there is no window", err)
	}
	other := eval.NewLabels()
	other.Add(eval.Window{Device: "elsewhere", Start: 1, End: 2})
	if _, err := Run(context.Background(), ds, other, nil, spec, RunOptions{}); err == nil {
		t.Error("labels of other devices: got no error")
	}
	if _, err := Run(context.Background(), nil, labels, nil, spec, RunOptions{}); err == nil {
		t.Error("no dataset: got no error")
	}
	bad := config.Default()
	bad.Detectors.Hysteresis = 2
	if _, err := Run(context.Background(), ds, labels, bad, spec, RunOptions{}); err == nil ||
		!strings.Contains(err.Error(), "base configuration") || !strings.Contains(err.Error(), "hysteresis") {
		t.Errorf("invalid base: got %v; want an error naming hysteresis", err)
	}
}

func TestScoreRecallAtFA(t *testing.T) {
	s := &Spec{Objective: ObjectiveRecallAtFA, FABudget: 0.5}
	rep := &eval.Report{}
	rep.Overall.Events.Recall = 0.8
	rep.Overall.Events.FalseAlarmsPerHour = 0.4
	if got := s.score(rep); got != 0.8 {
		t.Errorf("within budget: got %v; want the recall 0.8", got)
	}
	rep.Overall.Events.FalseAlarmsPerHour = 2
	if got := s.score(rep); got != -1.5 {
		t.Errorf("over budget: got %v; want budget − FA = −1.5", got)
	}
}

func TestWriteJSON(t *testing.T) {
	ds, labels := loadSmall(t)
	res, err := Run(context.Background(), ds, labels, badBase(t), mustSpec(t, spikeSpec), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Objective string `json:"objective"`
		Best      int    `json:"best_trial"`
		Trials    []struct {
			Rank      int               `json:"rank"`
			Trial     int               `json:"trial"`
			Params    map[string]string `json:"params"`
			Objective *float64          `json:"objective"`
			Events    eval.Events       `json:"events"`
		} `json:"trials"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got.Objective != "event_f1" || len(got.Trials) != 13 || got.Best != res.Best.Index {
		t.Fatalf("got objective %q, %d trials, best %d; want event_f1, 13, %d", got.Objective, len(got.Trials), got.Best, res.Best.Index)
	}
	first := got.Trials[0]
	if first.Rank != 1 || first.Trial != res.Best.Index || first.Objective == nil ||
		first.Params["overpressure.spike.z"] != res.Best.Values[0] || first.Events.Recall != res.Best.Events.Recall {
		t.Errorf("first trial %+v; want the best, %+v", first, res.Best)
	}
}
