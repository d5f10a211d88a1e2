package tune

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
)

// RunOptions are the knobs of Run that do not change its result.
type RunOptions struct {
	// Parallelism is the number of trials run at once (default
	// runtime.GOMAXPROCS(0)). The result does not depend on it.
	Parallelism int
	// Progress, when set, is called after each trial with the number of
	// trials done and the total, on Run's goroutine, so it may draw.
	Progress func(done, total int)
}

// Trial is one parameter setting and its scores.
type Trial struct {
	// Index numbers the trial; 0 is the baseline (the base configuration).
	Index int `json:"trial"`
	// Values holds each parameter's value (aligned with Spec.Params) as YAML
	// text, as the decoded Params hold it; Changed says which differ from the
	// baseline's.
	Values  []string `json:"values"`
	Changed []bool   `json:"changed"`
	// Params is the trial's detectors section.
	Params detectors.Params `json:"-"`

	// The evaluation, overall and per kind.
	Events eval.Events        `json:"events"`
	Points eval.Points        `json:"points"`
	NAB    eval.NAB           `json:"nab"`
	Kinds  []eval.KindSummary `json:"per_kind"`
	// Alerts counts the alert records the trial produced.
	Alerts int `json:"alerts"`
	// Objective is the score the search maximises; NaN when undefined.
	Objective eval.Number `json:"objective"`
	// Pareto marks the trials on the Pareto front of event recall (higher is
	// better) against false alarms per device-hour (lower is better).
	Pareto  bool          `json:"pareto"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Err is why the trial failed (its settings are invalid together), or nil.
	Err error `json:"-"`

	nodes    []*yaml.Node // the values set, nil for the baseline
	finished bool         // ran to the end (scored, or failed)
}

// NABStandard returns the trial's NAB score under the standard profile.
func (t *Trial) NABStandard() eval.Number { return nabScore(t.NAB, eval.ProfileStandard.Name) }

func nabScore(n eval.NAB, profile string) eval.Number {
	for _, s := range n.Scores {
		if s.Profile == profile {
			return s.Score
		}
	}
	return eval.Number(math.NaN())
}

// Result is the outcome of a search.
type Result struct {
	Spec *Spec
	// Trials are the finished trials in trial order; Trials[0] is the
	// baseline unless the search was cancelled before it finished.
	Trials []*Trial
	// Best is the finished trial with the highest defined objective (ties: fewer
	// false alarms per device-hour, then the lower index), nil if none.
	Best *Trial
	// Planned counts the trials planned, the baseline included.
	Planned int
	// GridSize is the number of combinations of a grid; when it exceeds
	// Spec.MaxTrials, MaxTrials of them are drawn at random with Spec.Seed.
	GridSize int
	// Skipped counts settings not run: combinations that are invalid together
	// (vibration zones out of order), repeats of the baseline, and random
	// draws that kept repeating earlier trials.
	Skipped int
	// Partial is set when ctx was done before every trial finished.
	Partial bool
	// Windows counts the label windows on the data's devices.
	Windows int
	// UnknownDevices are labelled devices that are not in the data; their
	// windows are ignored.
	UnknownDevices []string
	Data           DataSummary
	Elapsed        time.Duration

	base *config.File
}

// DataSummary describes the data a search ran on.
type DataSummary struct {
	Files       []string  `json:"files"`
	Devices     int       `json:"devices"`
	Readings    int       `json:"readings"`
	Hours       float64   `json:"device_hours"`
	First, Last time.Time `json:"-"`
}

// Baseline returns the baseline trial, or nil if it did not finish.
func (r *Result) Baseline() *Trial {
	if len(r.Trials) > 0 && r.Trials[0].Index == 0 {
		return r.Trials[0]
	}
	return nil
}

// Ranked returns the finished trials, best first: by objective (undefined and
// failed last), then fewer false alarms per device-hour, then trial order.
func (r *Result) Ranked() []*Trial {
	ts := slices.Clone(r.Trials)
	slices.SortStableFunc(ts, compareTrials)
	return ts
}

func compareTrials(a, b *Trial) int {
	ao, bo := a.Err == nil && a.Objective.Defined(), b.Err == nil && b.Objective.Defined()
	switch {
	case ao && !bo:
		return -1
	case !ao && bo:
		return 1
	case ao && bo && a.Objective != b.Objective:
		return cmp.Compare(b.Objective, a.Objective)
	}
	return cmp.Or(cmp.Compare(faOrInf(a), faOrInf(b)), cmp.Compare(a.Index, b.Index))
}

func faOrInf(t *Trial) float64 {
	if t.Err != nil || !t.Events.FalseAlarmsPerHour.Defined() {
		return math.Inf(1)
	}
	return float64(t.Events.FalseAlarmsPerHour)
}

// Run searches the parameters of spec over ds, scoring each trial's alerts
// against labels. base is the configuration whose detectors section (and
// classes) trials start from; nil means the defaults. The trial with the base
// unchanged is always trial 0.
//
// When ctx is done before the search ends, Run stops the trials under way and
// returns the trials finished so far (Result.Partial set, Best among them)
// together with ctx's error.
func Run(ctx context.Context, ds *Dataset, labels *eval.Labels, base *config.File, spec *Spec, opts RunOptions) (*Result, error) {
	start := time.Now()
	switch {
	case ds == nil || ds.Len() == 0:
		return nil, errors.New("tune: no readings to tune on")
	case spec == nil:
		return nil, errors.New("tune: no spec")
	}
	// Validate prepares the parameters; do it on a copy, so that concurrent
	// runs may share a spec.
	sp := *spec
	sp.Params = slices.Clone(spec.Params)
	spec = &sp
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if base == nil {
		base = config.Default()
	}
	if labels == nil {
		labels = eval.NewLabels()
	}
	windows := 0
	for _, w := range labels.Windows() {
		if _, ok := ds.data.Times[w.Device]; ok {
			windows++
		}
	}
	if windows == 0 {
		return nil, fmt.Errorf("tune: the labels have no window on the %d devices of the data: nothing to score against", ds.Devices())
	}
	r := &runner{ds: ds, labels: labels, spec: spec, base: base}
	cfg, err := r.detectorConfig(&base.Detectors)
	if err == nil {
		_, err = detectors.New(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("tune: base configuration: %w", err)
	}
	res := &Result{Spec: spec, Windows: windows, base: base, Data: dataSummary(ds),
		UnknownDevices: labels.UnknownDevices(ds.data.Seen())}
	trials, err := r.plan(res)
	if err != nil {
		return nil, err
	}
	res.Planned = len(trials)

	workers := opts.Parallelism
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(trials))
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		live    atomic.Int64
		results = make(chan *Trial, len(trials))
	)
	live.Store(int64(workers))
	for range workers {
		wg.Go(func() {
			defer func() {
				if live.Add(-1) == 0 {
					close(results)
				}
			}()
			var buf []pipeline.Alert
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(trials) {
					return
				}
				buf = r.run(ctx, trials[i], buf[:0])
				results <- trials[i]
			}
		})
	}
	done := 0
	for t := range results {
		if !t.finished {
			continue // cancelled
		}
		done++
		if opts.Progress != nil {
			opts.Progress(done, len(trials))
		}
	}
	wg.Wait()

	for _, t := range trials {
		if t.finished {
			res.Trials = append(res.Trials, t)
		}
	}
	markPareto(res.Trials)
	if ranked := res.Ranked(); len(ranked) > 0 && ranked[0].Err == nil && ranked[0].Objective.Defined() {
		res.Best = ranked[0]
	}
	res.Elapsed = time.Since(start)
	if len(res.Trials) < len(trials) {
		res.Partial = true
		if err := ctx.Err(); err != nil {
			return res, err
		}
		return res, errors.New("BUG: tune: trials missing without cancellation")
	}
	return res, nil
}

func dataSummary(ds *Dataset) DataSummary {
	first, last := ds.Span()
	return DataSummary{
		Files: ds.Files(), Devices: ds.Devices(), Readings: ds.Len(), Hours: ds.Hours(),
		First: time.Unix(0, first).UTC(), Last: time.Unix(0, last).UTC(),
	}
}

// runner holds what every trial shares.
type runner struct {
	ds     *Dataset
	labels *eval.Labels
	spec   *Spec
	base   *config.File
}

// maxDraws bounds the attempts at drawing a new, valid random setting.
const maxDraws = 100

// plan draws the trials: the baseline, then the grid or the random
// settings. It depends on the spec and the base only.
func (r *runner) plan(res *Result) ([]*Trial, error) {
	sp := r.spec
	paths := make([][]string, len(sp.Params))
	for i := range sp.Params {
		paths[i] = sp.Params[i].segs
	}
	baseParams, err := copyParams(&r.base.Detectors)
	if err != nil {
		return nil, err
	}
	baseline := &Trial{Index: 0, Params: baseParams, Values: renderValues(&baseParams, sp.Params)}
	baseline.Changed = make([]bool, len(sp.Params))
	trials := []*Trial{baseline}
	seen := map[string]bool{strings.Join(baseline.Values, "\x00"): true}

	// try adds the setting if it is valid and new.
	try := func(nodes []*yaml.Node) bool {
		p, err := overlay(&r.base.Detectors, nodes, paths)
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			return false
		}
		vals := renderValues(&p, sp.Params)
		key := strings.Join(vals, "\x00")
		if seen[key] {
			return false
		}
		seen[key] = true
		t := &Trial{Index: len(trials), Params: p, Values: vals, nodes: nodes, Changed: make([]bool, len(vals))}
		for i := range vals {
			t.Changed[i] = vals[i] != baseline.Values[i]
		}
		trials = append(trials, t)
		return true
	}

	rng := rand.New(rand.NewPCG(sp.Seed, 0x76696769_6c74756e)) // "vigiltun"
	switch sp.Search {
	case Grid:
		size := 1
		for i := range sp.Params {
			n := len(sp.Params[i].steps)
			if size > math.MaxInt/n {
				size = math.MaxInt
				break
			}
			size *= n
		}
		res.GridSize = size
		combo := func(k int) []*yaml.Node {
			nodes := make([]*yaml.Node, len(sp.Params))
			for i := len(sp.Params) - 1; i >= 0; i-- { // the last parameter varies fastest
				st := sp.Params[i].steps
				nodes[i] = st[k%len(st)]
				k /= len(st)
			}
			return nodes
		}
		var ks []int
		if size <= sp.MaxTrials {
			ks = make([]int, size)
			for k := range ks {
				ks[k] = k
			}
		} else {
			picked := map[int]bool{}
			for len(ks) < sp.MaxTrials {
				if k := rng.IntN(size); !picked[k] {
					picked[k] = true
					ks = append(ks, k)
				}
			}
			slices.Sort(ks)
		}
		for _, k := range ks {
			if !try(combo(k)) {
				res.Skipped++
			}
		}
	case Random:
		for range sp.Trials {
			ok := false
			for range maxDraws {
				nodes := make([]*yaml.Node, len(sp.Params))
				for i := range sp.Params {
					p := &sp.Params[i]
					if p.Discrete() {
						nodes[i] = p.steps[rng.IntN(len(p.steps))]
					} else {
						nodes[i] = p.draw(rng.Float64())
					}
				}
				if ok = try(nodes); ok {
					break
				}
			}
			if !ok {
				res.Skipped++
			}
		}
	}
	if len(trials) == 1 {
		return nil, fmt.Errorf("tune: no valid setting besides the base: every combination was invalid or the same as the base (%d skipped)", res.Skipped)
	}
	return trials, nil
}

// renderValues returns each parameter's value in p as YAML text.
func renderValues(p *detectors.Params, params []Param) []string {
	var n yaml.Node
	if err := n.Encode(p); err != nil {
		panic("BUG: encode detectors.Params: " + err.Error())
	}
	vals := make([]string, len(params))
	for i := range params {
		vals[i] = render(lookup(&n, params[i].segs))
	}
	return vals
}

// detectorConfig returns the detection configuration of a trial: its
// Params, and the base's classes applied on top of them as config.Parse
// applies them.
func (r *runner) detectorConfig(p *detectors.Params) (detectors.Config, error) {
	cfg := detectors.Config{Params: *p, Fleet: r.base.Fleet}
	for i, c := range r.base.Classes {
		cp, err := copyParams(p)
		if err != nil {
			return cfg, err
		}
		if !c.Detectors.IsZero() {
			if err := decodeStrict(&c.Detectors, &cp); err != nil {
				return cfg, fmt.Errorf("classes[%d] (%s).detectors: %w", i, c.Name, err)
			}
		}
		cfg.Classes = append(cfg.Classes, detectors.Class{Name: c.Name, Devices: c.Devices, Topics: c.Topics, Params: cp})
	}
	return cfg, nil
}

// run runs one trial, reusing buf for its alerts, and returns buf.
func (r *runner) run(ctx context.Context, t *Trial, buf []pipeline.Alert) []pipeline.Alert {
	start := time.Now()
	fail := func(err error) []pipeline.Alert {
		t.Err, t.Objective, t.finished = err, eval.Number(math.NaN()), true
		t.Elapsed = time.Since(start)
		return buf
	}
	cfg, err := r.detectorConfig(&t.Params)
	if err != nil {
		return fail(err)
	}
	set, err := detectors.New(cfg)
	if err != nil {
		return fail(err)
	}
	// The stages of `vigil replay`: the engine (rejections and ticks
	// included) and the fleet judge, over the dataset already decoded.
	eng := set.NewEngine()
	eng.SetMaxDevices(r.base.Pipeline.MaxDevices)
	var fleet pipeline.FleetFunc
	if f := set.NewFleet(); f != nil {
		fleet = f.Judge
	}
	alerts, err := r.ds.Replay(ctx, eng, fleet, r.base.Pipeline.BatchSize, buf)
	if err != nil {
		if ctx.Err() != nil {
			return alerts // cancelled: not finished
		}
		return fail(err)
	}
	rep := eval.Evaluate(alerts, r.labels, r.ds.data, r.spec.Eval)
	t.Events, t.Points, t.NAB, t.Kinds = rep.Overall.Events, rep.Overall.Points, rep.Overall.NAB, rep.Kinds
	t.Alerts = rep.Alerts
	t.Objective = r.spec.score(rep)
	t.Elapsed, t.finished = time.Since(start), true
	return alerts
}

// score computes the objective of a report.
func (s *Spec) score(rep *eval.Report) eval.Number {
	o := rep.Overall
	switch s.Objective {
	case ObjectiveF1:
		return o.Points.F1
	case ObjectiveEventF1:
		return o.Events.F1
	case ObjectiveNABStandard:
		return nabScore(o.NAB, eval.ProfileStandard.Name)
	case ObjectiveNABLowFP:
		return nabScore(o.NAB, eval.ProfileLowFP.Name)
	case ObjectiveNABLowFN:
		return nabScore(o.NAB, eval.ProfileLowFN.Name)
	case ObjectiveRecallAtFA:
		fa := o.Events.FalseAlarmsPerHour
		if !fa.Defined() {
			return eval.Number(math.NaN())
		}
		if float64(fa) <= s.FABudget {
			return o.Events.Recall
		}
		return eval.Number(s.FABudget - float64(fa))
	}
	return eval.Number(math.NaN())
}

// markPareto marks the trials no other trial beats on both event recall and
// false alarms per device-hour.
func markPareto(ts []*Trial) {
	ok := func(t *Trial) bool {
		return t.Err == nil && t.Events.Recall.Defined() && t.Events.FalseAlarmsPerHour.Defined()
	}
	for _, a := range ts {
		a.Pareto = false
		if !ok(a) {
			continue
		}
		a.Pareto = true
		for _, b := range ts {
			if b == a || !ok(b) {
				continue
			}
			ra, fa := a.Events.Recall, a.Events.FalseAlarmsPerHour
			rb, fb := b.Events.Recall, b.Events.FalseAlarmsPerHour
			if rb >= ra && fb <= fa && (rb > ra || fb < fa) {
				a.Pareto = false
				break
			}
		}
	}
}
