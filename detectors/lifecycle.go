package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// Verdict is one check's judgement of one sample.
type Verdict struct {
	// Score says how far the statistic is past its threshold: 1 is on the
	// threshold, 2 twice as far. Below 1 the sample is normal for this check.
	Score float64
	// Severity applies when Score >= 1.
	Severity pipeline.Severity
	// Stat is the statistic the check compared, Threshold what it compared it
	// with, in the same units (see the check's Unit).
	Stat, Threshold float64
}

// Anomalous reports whether the verdict crosses the threshold.
func (v Verdict) Anomalous() bool { return v.Score >= 1 }

// Rule is the lifecycle policy of one check: how many consecutive anomalous
// samples make a pending episode fire, and how many normal ones resolve it.
type Rule struct {
	Hold  int `yaml:"hold"`
	Clear int `yaml:"clear"`
	// KeepFiringFor keeps a firing episode open after its condition
	// cleared (Prometheus' keep_firing_for), in event time: it resolves
	// only once Clear samples in a row were normal and no anomalous
	// sample came for KeepFiringFor. A re-anomaly within that time
	// continues the episode (same alert ID) and counts a flap; the
	// resolution says how many. 0: resolve after Clear samples.
	KeepFiringFor time.Duration `yaml:"keep_firing_for"`
	// Off turns the check off: it neither alerts nor keeps samples from
	// teaching the baseline.
	Off bool `yaml:"off"`
}

// Validate checks the rule.
func (r Rule) Validate() error {
	if r.Hold < 1 || r.Hold > 65535 || r.Clear < 1 || r.Clear > 65535 {
		return fmt.Errorf("hold and clear must be between 1 and 65535, got %d and %d", r.Hold, r.Clear)
	}
	if r.KeepFiringFor < 0 || r.KeepFiringFor > maxKeepFiringFor {
		return fmt.Errorf("keep_firing_for must be between 0 and %v, got %v", maxKeepFiringFor, r.KeepFiringFor)
	}
	return nil
}

// maxKeepFiringFor bounds Rule.KeepFiringFor: the episode keeps the time
// of its last anomalous sample in whole seconds since its start, 16 bits.
const maxKeepFiringFor = time.Hour

// EpisodeState is the state of one check's episode.
type EpisodeState uint8

// Episode states. Pending episodes have seen anomalous samples but fewer than
// the hold; they are not reported.
const (
	Inactive EpisodeState = iota
	Pending
	FiringState
)

func (s EpisodeState) String() string {
	switch s {
	case Pending:
		return "pending"
	case FiringState:
		return "firing"
	}
	return "inactive"
}

// Episode is the alert lifecycle of one check on one signal of one device:
// inactive → pending → firing → resolved (inactive again). It is plain data.
type Episode struct {
	State    EpisodeState
	Severity pipeline.Severity
	// Count is the run of consecutive anomalous samples while pending, or of
	// samples below the hysteresis level while firing.
	Count uint16
	// Joined says the episode joined the device's relation alert: it
	// reports under that alert's ID, and that alert resolves once both
	// are done (see RelationState.Open).
	Joined bool
	// Flaps counts, while firing, the times the condition cleared and came
	// back within Rule.KeepFiringFor (saturating at 255).
	Flaps uint8
	// LastBad is the time of the firing episode's last anomalous sample,
	// in whole seconds after Started, rounded up and saturating at 65535
	// (18 h: an episode older than that measures KeepFiringFor from its
	// 18th hour; maxKeepFiringFor is far below). Kept only while
	// Rule.KeepFiringFor is set; it fits the struct's padding, so an
	// Episode stays 16 bytes.
	LastBad uint16
	// Started is the event time of the episode's first anomalous sample.
	Started int64
}

// markBad records t as the episode's last anomalous sample.
func (e *Episode) markBad(t int64) {
	d := (t - e.Started + 1e9 - 1) / 1e9
	e.LastBad = uint16(min(max(d, 0), math.MaxUint16))
}

// quietFor reports whether no anomalous sample came for d before t.
func (e *Episode) quietFor(d time.Duration, t int64) bool {
	return d <= 0 || t-e.Started-int64(e.LastBad)*1e9 >= int64(d)
}

// Step advances the episode with verdict v of the sample at event time t.
// Hysteresis (0 < h <= 1) is the score below which a firing episode counts a
// sample as normal, so a value hovering at the threshold does not flap. Step
// returns the transition to report: Firing when the episode starts firing or
// its severity rises, Resolved when it ends; 0 otherwise.
func (e *Episode) Step(v Verdict, t int64, rule Rule, hysteresis float64) pipeline.AlertState {
	switch e.State {
	case Inactive:
		if !v.Anomalous() {
			return 0
		}
		*e = Episode{State: Pending, Severity: v.Severity, Count: 1, Started: t}
		if rule.KeepFiringFor > 0 {
			e.markBad(t)
		}
		if rule.Hold <= 1 {
			e.State, e.Count = FiringState, 0
			return pipeline.Firing
		}
	case Pending:
		if !v.Anomalous() {
			*e = Episode{}
			return 0
		}
		e.Count++
		e.Severity = max(e.Severity, v.Severity)
		if int(e.Count) >= rule.Hold {
			e.State, e.Count = FiringState, 0
			return pipeline.Firing
		}
	case FiringState:
		// An episode that has cleared (Clear normal samples) and is held
		// open by KeepFiringFor stays cleared while its statistic is back
		// near the threshold but not over it: a slow statistic (a CUSUM)
		// passes through the hysteresis band on its way back, and that is
		// not yet a return, nor the end of one.
		if v.Score >= hysteresis && !(e.held(rule) && !v.Anomalous()) {
			if rule.KeepFiringFor > 0 && v.Anomalous() {
				if e.Count > 0 && e.Flaps < math.MaxUint8 {
					e.Flaps++ // cleared and came back: a flap
				}
				e.markBad(t)
			}
			e.Count = 0
			if v.Anomalous() && v.Severity > e.Severity {
				e.Severity = v.Severity
				return pipeline.Firing
			}
			return 0
		}
		if e.Count < math.MaxUint16 {
			e.Count++
		}
		if int(e.Count) >= rule.Clear && e.quietFor(rule.KeepFiringFor, t) {
			e.State, e.Count = Inactive, 0
			return pipeline.Resolved
		}
	}
	return 0
}

// stepEsc is Step that also reports whether a Firing transition escalates
// an episode already reported as firing (Alert.Escalation).
func (e *Episode) stepEsc(v Verdict, t int64, rule Rule, hysteresis float64) (pipeline.AlertState, bool) {
	was := e.State == FiringState
	tr := e.Step(v, t, rule, hysteresis)
	return tr, tr == pipeline.Firing && was
}

// held reports whether the episode is firing only because rule's
// KeepFiringFor holds it open after Clear normal samples.
func (e *Episode) held(rule Rule) bool {
	return e.State == FiringState && rule.KeepFiringFor > 0 && int(e.Count) >= rule.Clear
}

// live reports whether the episode is pending or firing with its condition
// present (not merely held).
func (e *Episode) live(rule Rule) bool { return e.Active() && !e.held(rule) }

// Active reports whether the episode is pending or firing.
func (e *Episode) Active() bool { return e.State != Inactive }
