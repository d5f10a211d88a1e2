package detectors

import (
	"errors"
	"fmt"
	"math"

	"github.com/vigil-iot/vigil/baselines/relation"
	"github.com/vigil-iot/vigil/pipeline"
)

// The relation check: a per-device multivariate model (package
// baselines/relation) of how the device's signals move together. It flags a
// reading whose signals break their learned relation (pressure up while the
// temperature and vibration that normally go with it stay put) or move
// jointly far outside their learned distribution, even when every signal is
// inside its own band. Its alerts are device-level: kind and detector
// "process.relation", the signal named is the one that contributes most, with
// its expected value given the others.

// RelationKind is the kind and detector name of the relation check's alerts.
const RelationKind = "process.relation"

// relationStart is the number of readings a device's first signal needs
// before the device gets relation memory: a device that sends a few
// readings (or a spoofed device ID) costs nothing more.
const relationStart = 64

// RelationConfig configures the relation check.
type RelationConfig struct {
	// Enabled turns the check on for the class's devices with two or more
	// signals.
	Enabled bool `yaml:"enabled"`
	// Signals names the signals the model relates; empty means every
	// signal of the device, in the order first seen, up to eight.
	Signals []string `yaml:"signals,omitempty"`
	// Hold and Clear are the alert lifecycle: consecutive readings beyond
	// the limit to fire, below the hysteresis level to resolve.
	Hold  int `yaml:"hold"`
	Clear int `yaml:"clear"`
	// Drift is a two-sided CUSUM, per signal, on its deviation from what the
	// other signals imply (in conditional standard deviations): it catches
	// a relation that stays broken by a little for a while, which no single
	// reading shows. K is the slack, H the decision level; Margin, Hold and
	// Clear are unused. Off by default: on slowly wandering signals it
	// raises false alarms (docs/DETECTION.md).
	Drift CUSUM `yaml:"drift"`
	// Explain makes the per-signal checks judge what the relation does not
	// explain: a signal's move that its partners account for (a common
	// load) is taken off before its spike, drift, fluctuation and rate
	// checks, as its cycle is.
	Explain bool `yaml:"explain"`
	// Config is the model: learning, limits and the poisoning guard.
	relation.Config `yaml:",inline"`
}

// DefaultRelation returns the documented defaults.
func DefaultRelation() RelationConfig {
	return RelationConfig{Enabled: true, Hold: 3, Clear: 5, Explain: true,
		Drift:  CUSUM{K: 1, H: 15, Margin: 1, Rule: Rule{Hold: 1, Clear: 1, Off: true}},
		Config: relation.DefaultConfig()}
}

// Validate reports every invalid field.
func (c *RelationConfig) Validate() error {
	errs := []error{c.rule().Validate(), c.Config.Validate(), c.Drift.validate("drift")}
	if len(c.Signals) > relation.MaxSignals {
		errs = append(errs, fmt.Errorf("signals: at most %d, got %d", relation.MaxSignals, len(c.Signals)))
	}
	if len(c.Signals) == 1 {
		errs = append(errs, errors.New("signals: a relation needs two signals at least (or none: all)"))
	}
	seen := map[string]bool{}
	for _, s := range c.Signals {
		if s == "" || seen[s] {
			errs = append(errs, fmt.Errorf("signals: %q is empty or listed twice", s))
		}
		seen[s] = true
	}
	return errors.Join(errs...)
}

func (c *RelationConfig) rule() Rule { return Rule{Hold: c.Hold, Clear: c.Clear} }

// relations is the compiled form of a RelationConfig.
type relations struct {
	cfg    RelationConfig
	models [relation.MaxSignals + 1]*relation.Model // by number of signals
	only   map[string]bool                          // nil: every signal
	check  Check
}

func compileRelation(c RelationConfig) (*relations, error) {
	if !c.Enabled {
		return nil, nil
	}
	rp := &relations{cfg: c, check: Check{Detector: RelationKind, Kind: RelationKind, Rule: c.rule()}}
	for k := 2; k <= relation.MaxSignals; k++ {
		m, err := relation.New(c.Config, k)
		if err != nil {
			return nil, fmt.Errorf("relation: %w", err)
		}
		rp.models[k] = m
	}
	if len(c.Signals) > 0 {
		rp.only = make(map[string]bool, len(c.Signals))
		for _, s := range c.Signals {
			rp.only[s] = true
		}
	}
	return rp, nil
}

// RelationState is a device's relation memory (Device.Extra.Relation):
// which of its signals the model relates, the model and the check's episode.
// Plain data.
type RelationState struct {
	// Of holds, per model position, 1 + the index of the signal in
	// Device.Signals; N positions are used. Seen is the number of the
	// device's signals when Of was built.
	Of      [relation.MaxSignals]uint8
	N, Seen uint8
	// Top is the position of the signal named when the episode fired.
	Top uint8
	// Silent is set when the episode started while a check on one of the
	// device's signals was already pending or firing: that alert tells the
	// operator about the event, so this episode raises none.
	Silent bool
	// Level is the severity the open alert was last reported with (its
	// own or that of a check that joined it): its resolution carries it,
	// whatever the relation's episode has done since. (Beside Silent, it
	// fits the padding before Open.)
	Level pipeline.Severity
	// Open is the start (event time, Unix ns) of the relation alert that
	// is open, 0 when none is. A per-signal check on the named signal that
	// starts firing meanwhile joins it (Episode.Joined) and keeps it open
	// until it resolves too: one alert for the device's event.
	Open int64
	// Hi and Lo are the drift CUSUMs of each position's deviation from
	// its conditional expectation, upwards and downwards.
	Hi, Lo  [relation.MaxSignals]float32
	Model   relation.State
	Episode Episode
}

// relate rebuilds rs's signal positions from d's signals; a changed set
// starts the model afresh (it reports whether it did).
func (rp *relations) relate(d *Device, rs *RelationState) bool {
	var of [relation.MaxSignals]uint8
	n := 0
	for i := range d.Signals {
		if i >= math.MaxUint8 || n == relation.MaxSignals {
			break
		}
		if rp.only == nil || rp.only[d.Signals[i].Name] {
			of[n] = uint8(i + 1)
			n++
		}
	}
	rs.Seen = uint8(min(len(d.Signals), math.MaxUint8))
	if of == rs.Of && uint8(n) == rs.N {
		return false
	}
	rs.Of, rs.N = of, uint8(n)
	rs.Model = relation.State{}
	return true
}

// prepareRelation is the first half of the relation check, run before the
// per-signal checks: it assembles the reading's residuals from the signals'
// cycles, judges them against the device's model into e.rr and, when the
// model explains the reading, writes into e.off (by signal index, flagged in
// e.offMask) how far each signal's residual is from its mean because of the
// others: the per-signal checks then judge what the others do not explain.
// It returns the device's relation memory to finish with finishRelation, or
// nil when there is nothing to judge; it may append a resolution when the
// device's signal set changed.
func (e *Engine) prepareRelation(d *Device, p *profile, r *pipeline.Reading, out []pipeline.Alert) (*RelationState, []pipeline.Alert) {
	rp := p.relations
	e.offMask = 0
	if len(d.Signals) < 2 {
		return nil, out
	}
	if d.Extra == nil || d.Extra.Relation == nil {
		if d.Signals[0].Base.N <= relationStart {
			return nil, out
		}
		if d.Extra == nil {
			d.Extra = &DeviceExtra{}
		}
		d.Extra.Relation = &RelationState{}
	}
	rs := d.Extra.Relation
	if int(rs.Seen) != min(len(d.Signals), math.MaxUint8) {
		if rp.relate(d, rs) {
			// Learned afresh; an open alert stays open while checks that
			// joined it fire, and closes with this reason otherwise.
			if rs.Open != 0 && !joinedFiring(d, p) {
				out = append(out, e.relationAlert(d, rs, nil, Verdict{}, pipeline.Resolved, r))
				rs.Open = 0
				endJoined(d)
			}
			rs.Episode, rs.Silent = Episode{}, false
		}
	}
	k := int(rs.N)
	if k < 2 {
		return nil, out
	}
	x := e.rx[:k]
	for j := range x {
		x[j] = math.NaN()
	}
	for i := range r.Values {
		val := &r.Values[i]
		j := i // a device's messages usually carry its signals in one order
		if j >= k || d.Signals[rs.Of[j]-1].Name != val.Name {
			if j = rs.position(d, val.Name); j < 0 {
				continue
			}
		}
		s := &d.Signals[rs.Of[j]-1]
		var at float64
		if p.cycles != nil && p.cycleKinds[s.Kind] && cycleReady(s) {
			if cs := d.cycleOf(s); cs != nil {
				at = cs.judged(val.V, s.Base.Mean, r.Time, e.phaseMemo(int(rs.Of[j])-1)).At
			}
		}
		x[j], e.seas[j] = val.V-at, at
	}
	m := rp.models[k]
	rr := &e.rr
	// The contribution analysis (which signal, how far off) is needed for
	// a reading near or beyond the limit, and for the drift sums; an alert
	// completes it too (relationAlert).
	m.Assess(&rs.Model, x, rr)
	if rr.Score >= 1 || !rp.cfg.Drift.Off {
		m.Contribute(&rs.Model, rr)
	}
	if !rr.Judged || !rp.cfg.Explain {
		return rs, out
	}
	// Explaining offsets: every signal's when the reading keeps the
	// relation; when one signal broke it, the broken one's given all the
	// others and the others' given the rest without it (so the broken one
	// does not drag its partners along). A joint excursion along the
	// relation is the relation check's to report (T²): each signal's
	// share of it is explained.
	broken := -1
	if rr.Score >= 1 && (rr.Broken || rr.Stat == relation.StatSPE) {
		broken = rr.Top
		m.ExpectedWithout(&rs.Model, rr, broken, e.ew[:k])
	}
	for j := range k {
		i := int(rs.Of[j]) - 1
		if i >= len(e.off) {
			continue
		}
		ex := rr.Expected[j]
		if broken >= 0 && j != broken {
			ex = e.ew[j]
		}
		e.off[i] = ex - rs.Model.Mean(j)
		e.offMask |= 1 << i
	}
	return rs, out
}

// position returns the model position of the device's signal name, or -1.
func (rs *RelationState) position(d *Device, name string) int {
	for j := range int(rs.N) {
		if d.Signals[rs.Of[j]-1].Name == name {
			return j
		}
	}
	return -1
}

// finishRelation is the second half of the relation check, after the
// per-signal checks: the verdict on e.rr (and the drift sums), the
// episode and its alerts, and the model's update.
func (e *Engine) finishRelation(d *Device, p *profile, rs *RelationState, r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	rp := p.relations
	k := int(rs.N)
	x := e.rx[:k]
	m := rp.models[k]
	rr := &e.rr
	e.relDrift = -1
	if !rr.Judged {
		if !rr.Missing {
			rs.Hi, rs.Lo = [relation.MaxSignals]float32{}, [relation.MaxSignals]float32{}
		}
	} else {
		v := Verdict{Score: rr.Score, Severity: pipeline.Warning, Stat: rr.T2, Threshold: rr.T2Limit}
		if rr.Stat == relation.StatSPE {
			v.Stat, v.Threshold = rr.SPE, rr.SPELimit
		}
		if rr.Severity == relation.Critical {
			v.Severity = pipeline.Critical
		}
		// The drift CUSUMs, as the per-signal ones: a reading adds at most
		// H/4, the sums are capped at twice H.
		c := rp.cfg.Drift
		for j := 0; j < k && !c.Off; j++ {
			z := min(max(rr.Deviation[j], -(c.K+c.H/4)), c.K+c.H/4)
			hi := min(max(0, float64(rs.Hi[j])+z-c.K), 2*c.H)
			lo := min(max(0, float64(rs.Lo[j])-z-c.K), 2*c.H)
			rs.Hi[j], rs.Lo[j] = float32(hi), float32(lo)
			if sc := max(hi, lo) / c.H; sc > v.Score {
				v = Verdict{Score: sc, Severity: pipeline.Warning, Stat: max(hi, lo), Threshold: c.H}
				e.relDrift = j
			}
		}
		// A reading whose drift has crossed does not teach the model
		// either (Update decides by the score).
		rr.Score = max(rr.Score, v.Score)
		was := rs.Episode.State
		tr, esc := rs.Episode.stepEsc(v, r.Time, rp.check.Rule, p.params.Hysteresis)
		if tr != 0 {
			m.Contribute(&rs.Model, rr) // done already when the score is 1 or more
		}
		switch {
		case tr == pipeline.Firing && was != FiringState && rs.Open != 0:
			// The relation breaks again while its alert is held open
			// by a joined check: the same device episode goes on.
			rs.Silent = false
		case tr == pipeline.Firing && was != FiringState:
			if rs.Silent = e.signalEpisodeActive(d, p); !rs.Silent {
				rs.Top = uint8(rr.Top)
				if e.relDrift >= 0 {
					rs.Top = uint8(e.relDrift)
				}
				rs.Open = rs.Episode.Started
				out = append(out, e.relationAlert(d, rs, x, v, tr, r))
			}
		case tr == pipeline.Firing && !rs.Silent:
			a := e.relationAlert(d, rs, x, v, tr, r)
			a.Escalation = esc
			out = append(out, a)
		case tr == pipeline.Resolved:
			rs.Silent = false
		}
	}
	// The alert resolves once the relation is restored and no check that
	// joined it is still firing (held open by keep_firing_for is not).
	if rs.Open != 0 && rs.Episode.State != FiringState && !joinedFiring(d, p) {
		out = append(out, e.relationAlert(d, rs, x, Verdict{Score: rr.Score}, pipeline.Resolved, r))
		rs.Open = 0
		endJoined(d)
	}
	m.Update(&rs.Model, x, r.Time, rr)
	return out
}

// joinRelation reports whether a per-signal check of signal k that starts
// firing joins the device's open relation alert instead of raising its own:
// the alert is open and names that signal. The two describe one event.
func joinRelation(d *Device, rs *RelationState, k int) bool {
	return rs != nil && rs.Open != 0 && int(rs.Top) < int(rs.N) && int(rs.Of[rs.Top])-1 == k
}

// joinedFiring reports whether a check of one of d's signals that joined
// the relation alert is still firing.
func joinedFiring(d *Device, p *profile) bool {
	for i := range d.Signals {
		s := &d.Signals[i]
		checks := p.detectors[s.Kind].Checks()
		for c := range checks {
			if ep := &s.Episodes[c]; ep.Joined && ep.live(checks[c].Rule) {
				return true
			}
		}
	}
	return false
}

// endJoined ends the episodes that joined the relation alert as it
// resolves: those still firing are merely held open by keep_firing_for
// (joinedFiring said none is live), and the event they told of is over; an
// anomaly after it is a new one, with an alert of its own.
func endJoined(d *Device) {
	for i := range d.Signals {
		for c := range d.Signals[i].Episodes {
			if ep := &d.Signals[i].Episodes[c]; ep.Joined {
				*ep = Episode{}
			}
		}
	}
}

// signalEpisodeActive reports whether a check on one of d's signals (its
// status flag included) has an episode pending or firing, and not merely
// held open by its keep_firing_for after its condition cleared: a drift
// that has settled must not silence a relation break minutes later.
func (e *Engine) signalEpisodeActive(d *Device, p *profile) bool {
	if d.Status.live(p.status.Rule) {
		return true
	}
	for i := range d.Signals {
		s := &d.Signals[i]
		checks := p.detectors[s.Kind].Checks()
		for c := range checks {
			if s.Episodes[c].live(checks[c].Rule) {
				return true
			}
		}
	}
	return false
}

// relationAlert builds the alert of a transition of the relation check; x is
// the reading (nil when the transition has none, e.g. the signal set
// changed).
func (e *Engine) relationAlert(d *Device, rs *RelationState, x []float64, v Verdict, tr pipeline.AlertState, r *pipeline.Reading) pipeline.Alert {
	rr := &e.rr
	if x != nil {
		e.set.profiles[d.profile].relations.models[rs.N].Contribute(&rs.Model, rr)
	}
	a := pipeline.Alert{
		ID:        episodeID(d.Name, RelationKind, "", rs.Open),
		Seq:       r.Seq,
		Time:      r.Time,
		Started:   rs.Open,
		Device:    d.Name,
		Topic:     d.Topic,
		Kind:      RelationKind,
		Detector:  RelationKind,
		Severity:  rs.Episode.Severity,
		State:     tr,
		Value:     v.Stat,
		Threshold: v.Threshold,
		Score:     v.Score,
		Observed:  math.NaN(),
		Mean:      math.NaN(),
		Std:       math.NaN(),
	}
	if tr == pipeline.Firing {
		rs.Level = max(rs.Level, a.Severity)
	} else {
		a.Severity, rs.Level = rs.Level, pipeline.SeverityNone
	}
	top := int(rs.Top)
	if tr == pipeline.Firing && x != nil && rr.Judged {
		top = rr.Top
		if e.relDrift >= 0 {
			top = e.relDrift
		}
	}
	// The model relates residuals from the signals' cycles; the alert
	// speaks in raw values: what was read, and what is expected at this
	// point of the cycles given the others.
	var raw [relation.MaxSignals]float64
	expl := *rr
	for j := range x {
		at := e.seas[j]
		raw[j] = x[j] + at
		expl.Expected[j] += at
	}
	var unit string
	if top < int(rs.N) {
		s := &d.Signals[rs.Of[top]-1]
		a.Signal, unit = s.Name, unitOf(s.Kind)
		if x != nil && rr.Judged {
			a.Observed, a.Mean, a.Std = raw[top], expl.Expected[top], rr.ExpectedStd[top]
		}
	}
	if x == nil {
		a.Value, a.Threshold, a.Score = math.NaN(), math.NaN(), math.NaN()
		a.Message = RelationKind + " resolved: the device's signals changed, the relation is learned afresh."
		return a
	}
	if tr != pipeline.Firing {
		a.Message = describeResolved(&a, unit)
		return a
	}
	if e.relDrift >= 0 {
		a.Message = fmt.Sprintf("%s %s where %s ± %s is expected given the device's other signals: it has kept off their learned relation (cumulative deviation %s σ, limit %s).",
			a.Signal, withUnit(a.Observed, unit), num(a.Mean), withUnit(a.Std, unit), num(v.Stat), num(v.Threshold))
		return a
	}
	sigs := make([]relation.Signal, rs.N)
	for j := range sigs {
		s := &d.Signals[rs.Of[j]-1]
		sigs[j] = relation.Signal{Name: s.Name, Unit: unitOf(s.Kind)}
	}
	expl.Top = top
	a.Message = relation.Explain(sigs, raw[:len(x)], &expl)
	return a
}
