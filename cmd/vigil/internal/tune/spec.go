package tune

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/detectors/eval"
)

// Objective names the score a search maximises.
type Objective string

// Objectives.
const (
	// ObjectiveF1 is the point-wise F1: every reading a sample.
	ObjectiveF1 Objective = "f1"
	// ObjectiveEventF1 is the event-level F1: windows detected and episodes true.
	ObjectiveEventF1 Objective = "event_f1"
	// ObjectiveNABStandard, ObjectiveNABLowFP and ObjectiveNABLowFN are the
	// normalised NAB scores of the standard, reward_low_FP and reward_low_FN
	// profiles.
	ObjectiveNABStandard Objective = "nab_standard"
	ObjectiveNABLowFP    Objective = "nab_low_fp"
	ObjectiveNABLowFN    Objective = "nab_low_fn"
	// ObjectiveRecallAtFA is the event-level recall of a trial whose false
	// alarms per device-hour are within Spec.FABudget. A trial over the budget
	// scores budget − false alarms per device-hour, below 0 and so below every
	// trial within it, and closer to 0 the closer it came.
	ObjectiveRecallAtFA Objective = "recall_at_fa"
)

var objectives = []Objective{ObjectiveF1, ObjectiveEventF1, ObjectiveNABStandard, ObjectiveNABLowFP, ObjectiveNABLowFN, ObjectiveRecallAtFA}

// Describe says in words what the objective measures.
func (o Objective) Describe() string {
	switch o {
	case ObjectiveF1:
		return "point-wise F1"
	case ObjectiveEventF1:
		return "event-level F1"
	case ObjectiveNABStandard:
		return "NAB score, standard profile"
	case ObjectiveNABLowFP:
		return "NAB score, reward_low_FP profile"
	case ObjectiveNABLowFN:
		return "NAB score, reward_low_FN profile"
	case ObjectiveRecallAtFA:
		return "event recall within a false-alarm budget"
	}
	return string(o)
}

// Search is the search strategy.
type Search string

// Searches.
const (
	// Grid runs every combination of the parameters' values (ranges in Steps
	// steps), at most MaxTrials of them.
	Grid Search = "grid"
	// Random draws Trials settings, each parameter independently.
	Random Search = "random"
)

// Spec defaults.
const (
	DefaultTrials    = 50
	DefaultMaxTrials = 1000
	DefaultGridSteps = 5
	// MaxParams bounds the number of parameters of a spec.
	MaxParams = 32
)

// Spec is a tuning file: what to vary, how to search and what to maximise.
type Spec struct {
	Objective Objective
	// FABudget is the false alarms per device-hour allowed by recall_at_fa.
	FABudget float64
	Search   Search
	// Trials is the number of random trials (besides the baseline).
	Trials int
	// MaxTrials caps the trials of a grid search; a larger grid is sampled at
	// random (with Seed) down to MaxTrials combinations.
	MaxTrials int
	Seed      uint64
	// Eval are the evaluation options: MatchKind, Before and After.
	Eval eval.Options
	// Params are the parameters, in file order.
	Params []Param
}

// Param is one tuned parameter: a dotted path into the detectors section and
// the values it may take, either Values or the range Min..Max.
type Param struct {
	// Path is the key, e.g. "overpressure.spike.z".
	Path string
	// Values, when set, are the values to try, as YAML nodes (scalars or, for
	// a key holding a mapping, mappings).
	Values []*yaml.Node
	// Min and Max bound a range, in the key's unit (nanoseconds for
	// durations). Steps is the number of evenly spaced values a grid (or, when
	// set, a random search) takes from it; Log spaces them, and draws random
	// values, evenly on a log scale.
	Min, Max float64
	Steps    int
	Log      bool

	kind             valueKind
	minNode, maxNode *yaml.Node   // the range as written, until prepared
	steps            []*yaml.Node // the candidate values of a grid
	segs             []string     // Path split at dots
}

// Discrete reports whether the parameter takes a finite list of values (Values,
// or a range with Steps) rather than any value of a range.
func (p *Param) Discrete() bool { return p.Values != nil || p.Steps > 0 }

// specFile is the YAML form of a Spec.
type specFile struct {
	Objective Objective     `yaml:"objective"`
	FABudget  *float64      `yaml:"fa_budget"`
	Search    Search        `yaml:"search"`
	Trials    *int          `yaml:"trials"`
	MaxTrials *int          `yaml:"max_trials"`
	Seed      uint64        `yaml:"seed"`
	MatchKind bool          `yaml:"match_kind"`
	Before    time.Duration `yaml:"before"`
	After     time.Duration `yaml:"after"`
	Params    yaml.Node     `yaml:"parameters"`
}

// paramFile is the YAML form of one parameter.
type paramFile struct {
	Min    yaml.Node   `yaml:"min"`
	Max    yaml.Node   `yaml:"max"`
	Steps  int         `yaml:"steps"`
	Log    bool        `yaml:"log"`
	Values []yaml.Node `yaml:"values"`
}

// LoadSpec reads a tuning file; see ParseSpec.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	s, err := ParseSpec(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseSpec parses and validates a tuning file:
//
//	objective: f1            # f1, event_f1, nab_standard, nab_low_fp, nab_low_fn, recall_at_fa
//	fa_budget: 0.5           # recall_at_fa: false alarms per device-hour allowed
//	search: random           # random (default) or grid
//	trials: 60               # random: trials besides the baseline (default 50)
//	max_trials: 1000         # grid: at most this many combinations (default 1000)
//	seed: 1
//	match_kind: true         # evaluation options, as eval.Options
//	before: 2s
//	after: 30s
//	parameters:              # dotted paths into the detectors section
//	  overpressure.spike.z: {min: 4, max: 9}          # range: random uniform, grid in 5 steps
//	  overpressure.spike.hold: {values: [1, 2, 3]}
//	  overpressure.spike.clear: [2, 3, 5]             # a list is values
//	  signal.drift.h: {min: 6, max: 24, steps: 4}     # 6, 12, 18, 24 (random picks one)
//	  baseline.half_life: {min: 300, max: 3000, log: true}
//	  baseline.warmup_duration: {min: 0s, max: 10m}
//
// A path may start with "detectors.". Every value is checked by decoding it
// over the default detectors section strictly, and validating the result, so
// an unknown key, a value of the wrong type or one out of its range is an
// error naming the parameter. Ranges need a number key (or a duration);
// integer keys take whole numbers.
func ParseSpec(text []byte) (*Spec, error) {
	var f specFile
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("tune: spec: empty file")
		}
		return nil, fmt.Errorf("tune: spec: %w", friendlier(err))
	}
	s := &Spec{
		Objective: f.Objective,
		Search:    f.Search,
		Trials:    DefaultTrials,
		MaxTrials: DefaultMaxTrials,
		Seed:      f.Seed,
		Eval:      eval.Options{MatchKind: f.MatchKind, Before: f.Before, After: f.After},
	}
	if s.Objective == "" {
		s.Objective = ObjectiveF1
	}
	if s.Search == "" {
		s.Search = Random
	}
	if f.Trials != nil {
		s.Trials = *f.Trials
	}
	if f.MaxTrials != nil {
		s.MaxTrials = *f.MaxTrials
	}
	var errs []error
	// fa_budget, trials and max_trials may stay in the file when the
	// objective or search that uses them is switched off.
	if f.FABudget != nil {
		s.FABudget = *f.FABudget
	} else if s.Objective == ObjectiveRecallAtFA {
		errs = append(errs, errors.New("fa_budget: recall_at_fa needs a budget of false alarms per device-hour"))
	}
	params, perr := parseParams(&f.Params)
	s.Params = params
	// Report every error at once: the file's, and those of validation
	// (which says nothing is tuned only when no parameter was malformed).
	if verr := s.validate(perr == nil); verr != nil {
		errs = append(errs, verr)
	}
	if err := errors.Join(append([]error{perr}, errs...)...); err != nil {
		return nil, fmt.Errorf("tune: spec: %w", err)
	}
	return s, nil
}

// Validate checks the spec; errors name the key. It prepares the parameters
// of a Spec built in code, so call it before Run (ParseSpec does).
func (s *Spec) Validate() error {
	if err := s.validate(true); err != nil {
		return fmt.Errorf("tune: spec: %w", err)
	}
	return nil
}

func (s *Spec) validate(needParams bool) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	known := false
	for _, o := range objectives {
		known = known || s.Objective == o
	}
	if !known {
		names := make([]string, len(objectives))
		for i, o := range objectives {
			names[i] = string(o)
		}
		bad("objective: unknown objective %q (want one of %s)", s.Objective, strings.Join(names, ", "))
	}
	if s.Objective == ObjectiveRecallAtFA && !(s.FABudget >= 0 && !math.IsInf(s.FABudget, 1)) {
		bad("fa_budget: must be a number of false alarms per device-hour ≥ 0, got %v", s.FABudget)
	}
	switch s.Search {
	case Grid:
		if s.MaxTrials < 1 {
			bad("max_trials: must be at least 1, got %d", s.MaxTrials)
		}
	case Random:
		if s.Trials < 1 {
			bad("trials: must be at least 1, got %d", s.Trials)
		}
	default:
		bad("search: unknown search %q (want grid or random)", s.Search)
	}
	if s.Eval.Before < 0 || s.Eval.After < 0 {
		bad("before, after: must not be negative")
	}
	if len(s.Params) == 0 && needParams {
		bad("parameters: nothing to tune (give at least one dotted key)")
	}
	if len(s.Params) > MaxParams {
		bad("parameters: %d parameters; at most %d", len(s.Params), MaxParams)
	}
	seen := map[string]bool{}
	for i := range s.Params {
		p := &s.Params[i]
		p.Path = strings.TrimPrefix(p.Path, "detectors.")
		if seen[p.Path] {
			bad("parameters.%s: given twice", p.Path)
			continue
		}
		seen[p.Path] = true
		if err := p.prepare(s.related(p)); err != nil {
			errs = append(errs, fmt.Errorf("parameters.%s: %w", p.Path, err))
		}
	}
	for i := range s.Params {
		for j := range s.Params {
			if a, b := s.Params[i].Path, s.Params[j].Path; i != j && strings.HasPrefix(b, a+".") {
				bad("parameters.%s: overlaps parameters.%s (one is inside the other)", b, a)
			}
		}
	}
	return errors.Join(errs...)
}

// related reports whether another parameter sits beside p in the same
// section (vibration.zones.ab and .bc, thermal.high and .low): keys that may
// constrain each other, so p's values are not validated alone.
func (s *Spec) related(p *Param) bool {
	dir, _, ok := cutLast(p.Path)
	if !ok {
		return false
	}
	for i := range s.Params {
		if q := &s.Params[i]; q != p {
			if d, _, ok := cutLast(strings.TrimPrefix(q.Path, "detectors.")); ok && d == dir {
				return true
			}
		}
	}
	return false
}

func cutLast(path string) (dir, key string, ok bool) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

// parseParams reads the parameters mapping in file order.
func parseParams(n *yaml.Node) ([]Param, error) {
	if n.IsZero() {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("parameters: line %d: want a mapping of dotted keys to ranges or values", n.Line)
	}
	var params []Param
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := Param{Path: k.Value}
		if p.Path == "" {
			errs = append(errs, fmt.Errorf("parameters: line %d: empty key", k.Line))
			continue
		}
		switch v.Kind {
		case yaml.SequenceNode: // a list is values
			p.Values = v.Content
			if len(p.Values) == 0 {
				p.Values = []*yaml.Node{}
			}
		case yaml.MappingNode:
			var pf paramFile
			if err := decodeStrict(v, &pf); err != nil {
				errs = append(errs, fmt.Errorf("parameters.%s: %w", p.Path, friendlier(err)))
				continue
			}
			if pf.Values != nil || hasKey(v, "values") {
				p.Values = make([]*yaml.Node, len(pf.Values))
				for j := range pf.Values {
					p.Values[j] = &pf.Values[j]
				}
				if !pf.Min.IsZero() || !pf.Max.IsZero() || pf.Steps != 0 || pf.Log {
					errs = append(errs, fmt.Errorf("parameters.%s: give values or a range (min, max, steps, log), not both", p.Path))
					continue
				}
				break
			}
			if pf.Min.IsZero() || pf.Max.IsZero() {
				errs = append(errs, fmt.Errorf("parameters.%s: a range needs min and max (or give values)", p.Path))
				continue
			}
			p.Steps, p.Log = pf.Steps, pf.Log
			p.minNode, p.maxNode = &pf.Min, &pf.Max
		default:
			errs = append(errs, fmt.Errorf("parameters.%s: line %d: want {min: , max: }, {values: […]} or a list", p.Path, v.Line))
			continue
		}
		params = append(params, p)
	}
	return params, errors.Join(errs...)
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// prepare checks the parameter against the default detectors section and
// computes its candidate values. Each value is decoded alone over the
// defaults and, unless related keys are tuned too, validated.
func (p *Param) prepare(related bool) error {
	p.segs = strings.Split(p.Path, ".")
	kind, err := kindAt(p.segs)
	if err != nil {
		return err
	}
	p.kind = kind
	def := detectors.DefaultParams()
	check := func(what string, n *yaml.Node) error {
		q, err := overlay(&def, []*yaml.Node{n}, [][]string{p.segs})
		if err == nil && !related {
			err = q.Validate()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if p.Values != nil {
		if len(p.Values) == 0 {
			return errors.New("values: empty list")
		}
		var errs []error
		for i, v := range p.Values {
			what := fmt.Sprintf("values[%d] (%s)", i, render(v))
			if kind == kindInt {
				// yaml truncates 1.5 into an int; a tuned value must be exact.
				if x, err := kind.parse(v); err == nil && x != math.Trunc(x) {
					errs = append(errs, fmt.Errorf("%s: want a whole number", what))
					continue
				}
			}
			errs = append(errs, check(what, v))
		}
		p.steps = p.Values
		return errors.Join(errs...)
	}
	if p.minNode != nil {
		if !kind.numeric() {
			return fmt.Errorf("a range needs a number or duration key; %s holds %s (give values)", p.Path, kind)
		}
		var errs []error
		for _, e := range []struct {
			name string
			n    *yaml.Node
			dst  *float64
		}{{"min", p.minNode, &p.Min}, {"max", p.maxNode, &p.Max}} {
			x, err := kind.parse(e.n)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.name, err))
				continue
			}
			*e.dst = x
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		p.minNode, p.maxNode = nil, nil
	}
	switch {
	case !kind.numeric():
		return fmt.Errorf("a range needs a number or duration key; %s holds %s (give values)", p.Path, kind)
	case math.IsNaN(p.Min) || math.IsNaN(p.Max) || math.IsInf(p.Min, 0) || math.IsInf(p.Max, 0):
		return errors.New("min and max must be finite numbers")
	case p.Min > p.Max:
		return fmt.Errorf("min (%s) is greater than max (%s)", kind.format(p.Min), kind.format(p.Max))
	case p.Steps < 0:
		return fmt.Errorf("steps: must not be negative, got %d", p.Steps)
	case p.Steps == 1 && p.Min != p.Max:
		return errors.New("steps: 1 step cannot span min..max (use values for a single value)")
	case p.Log && p.Min <= 0:
		return fmt.Errorf("log: a log scale needs min > 0, got %s", kind.format(p.Min))
	case kind == kindInt && math.Ceil(p.Min) > math.Floor(p.Max):
		return fmt.Errorf("no whole number between min %v and max %v", p.Min, p.Max)
	}
	if err := errors.Join(check("min", kind.node(p.Min)), check("max", kind.node(p.Max))); err != nil {
		return err
	}
	n := p.Steps
	if n == 0 {
		n = DefaultGridSteps
	}
	p.steps = p.grid(n)
	return nil
}

// grid returns n evenly spaced values of the range (on a log scale when Log),
// duplicates removed (integer keys round).
func (p *Param) grid(n int) []*yaml.Node {
	var out []*yaml.Node
	seen := map[string]bool{}
	for i := range n {
		f := 0.0
		if n > 1 {
			f = float64(i) / float64(n-1)
		}
		x := p.Min + f*(p.Max-p.Min)
		if p.Log {
			x = p.Min * math.Pow(p.Max/p.Min, f)
		}
		if i == n-1 {
			x = p.Max
		}
		node := p.kind.node(p.kind.round(x, p.Min, p.Max))
		if !seen[node.Value] {
			seen[node.Value] = true
			out = append(out, node)
		}
	}
	return out
}

// draw returns a random value of a continuous range, u uniform in [0, 1).
func (p *Param) draw(u float64) *yaml.Node {
	x := p.Min + u*(p.Max-p.Min)
	if p.Log {
		x = p.Min * math.Pow(p.Max/p.Min, u)
	}
	if p.kind == kindInt {
		// Whole numbers equally likely: spread u over lo..hi.
		lo, hi := math.Ceil(p.Min), math.Floor(p.Max)
		x = lo + math.Floor(u*(hi-lo+1))
		if p.Log {
			x = math.Round(p.Min * math.Pow(p.Max/p.Min, u))
		}
	}
	return p.kind.node(p.kind.round(x, p.Min, p.Max))
}
