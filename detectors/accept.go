package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// A new normal. A signal whose samples the checks keep from teaching its
// baseline (they are anomalous) but which holds one level, every sample
// within baseline.accept_band spreads of the run's mean, for
// baseline.accept_after of event time has settled: a set point was changed,
// a part replaced. Its baseline moves to the level and its alerts resolve
// with "new normal accepted after …", instead of firing until
// baseline.relearn_after samples have passed and the baseline has crept to
// the level. Absolute limits are not baselines: a level beyond them keeps
// firing.

// acceptStart is the length of a run of kept-out samples before its level
// is tracked, so that a short excursion costs no memory.
const acceptStart = 30

// AcceptState tracks the run of kept-out samples of one signal at one
// level: its mean, its start (event time) and its length. Plain data, in
// Device.Extra.Accepts by signal index.
type AcceptState struct {
	Level float64
	Since int64
	N     uint32
	// From is the baseline's mean when the run started, for the message.
	From float64
}

// trackAccept follows signal k's run of kept-out samples at residual x and
// reports whether the signal has settled at a new level. learn is the
// checks' verdict on the sample; spread the baseline's.
func (e *Engine) trackAccept(d *Device, k int, s *SignalState, p *profile, x float64, t int64, learn bool) bool {
	cfg := &p.params.Baseline
	if cfg.AcceptAfter <= 0 || !s.Base.Warm {
		return false
	}
	if learn {
		if d.Extra != nil && k < len(d.Extra.Accepts) {
			d.Extra.Accepts[k] = AcceptState{}
		}
		return false
	}
	if s.Base.Gated+1 < acceptStart {
		return false
	}
	if d.Extra == nil {
		d.Extra = &DeviceExtra{}
	}
	if k >= len(d.Extra.Accepts) {
		if k >= math.MaxUint8 {
			return false
		}
		d.Extra.Accepts = append(d.Extra.Accepts, make([]AcceptState, k+1-len(d.Extra.Accepts))...)
	}
	a := &d.Extra.Accepts[k]
	band := cfg.AcceptBand * p.learner.Spread(&s.Base)
	if a.N == 0 || math.Abs(x-a.Level) > band {
		*a = AcceptState{Level: x, Since: t, N: 1, From: s.Base.Mean}
		return false
	}
	a.N++
	a.Level += (x - a.Level) / float64(a.N)
	return t-a.Since >= int64(cfg.AcceptAfter) && a.N >= acceptStart
}

// acceptNormal moves signal k's baseline to its settled level and resolves
// its firing alerts with the reason; it returns the alerts.
func (e *Engine) acceptNormal(d *Device, k int, s *SignalState, p *profile, r *pipeline.Reading, x, off float64, cs *CycleState, out []pipeline.Alert) []pipeline.Alert {
	a := d.Extra.Accepts[k]
	d.Extra.Accepts[k] = AcceptState{}
	p.learner.Accept(&s.Base, a.Level)
	s.CusumHi, s.CusumLo, s.ExcHi, s.ExcLo = 0, 0, 0, 0
	s.ShortMean = a.Level
	held := time.Duration(r.Time - a.Since).Round(time.Second)
	checks := p.detectors[s.Kind].Checks()
	unit := unitOf(s.Kind)
	for c := range checks {
		ep := &s.Episodes[c]
		if ep.State != FiringState {
			*ep = Episode{}
			continue
		}
		ep.State, ep.Count = Inactive, 0
		if ep.Joined {
			continue // the relation alert resolves when the relation does
		}
		tr := pipeline.Resolved
		cc := c
		if p.params.Fold {
			if cc, ep, tr, _ = s.fold(c, tr); tr == 0 {
				continue
			}
		}
		al := e.alert(d, s.Name, unit, &checks[cc], ep, Verdict{Stat: math.NaN(), Threshold: math.NaN()}, tr, r, x, &s.Base, cs, off)
		if p.params.Fold {
			al.ID = episodeID(d.Name, checks[cc].Kind, s.Name, ep.Started)
		}
		al.Message = fmt.Sprintf("%s resolved: new normal accepted after %v: %s has held %s (the baseline was %s); the baseline has been moved there.",
			checks[cc].Detector, held, s.Name, withUnit(a.Level, unit), withUnit(a.From, unit))
		if ep.Flaps > 0 {
			al.Message += describeFlaps(ep.Flaps, checks[cc].Rule.KeepFiringFor)
		}
		out = append(out, al)
	}
	return out
}
