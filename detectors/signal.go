package detectors

import (
	"errors"
	"time"

	"github.com/vigil-iot/vigil/baselines"
)

// SignalConfig configures the checks on generic signals: any numeric field that
// is not mapped to pressure, temperature or vibration.
type SignalConfig struct {
	// Spike flags values outside the learned band on either side.
	Spike Spike `yaml:"spike"`
	// Drift is a two-sided CUSUM for drift away from the baseline mean.
	Drift CUSUM `yaml:"drift"`
	// Record flags values beyond the range of the last readings (off when
	// samples is 0).
	Record Record `yaml:"record"`
	// Daily flags a signal that stays off its usual level for the time of
	// day (off unless enabled).
	Daily Daily `yaml:"daily"`
}

// DefaultSignal returns the defaults: spike at 6 robust sigmas held 2 samples,
// drift CUSUM k=1.5 h=12.
func DefaultSignal() SignalConfig {
	return SignalConfig{
		Spike:  Spike{Z: 6, Rule: Rule{Hold: 2, Clear: 3}},
		Drift:  CUSUM{K: 1.5, H: 12, Margin: 2, Rule: Rule{Hold: 1, Clear: 3, KeepFiringFor: driftKeepFiring}},
		Record: Record{Margin: 0.1, Rule: Rule{Hold: 1, Clear: 10}},
		Daily:  Daily{K: 1.5, H: 50, Rate: 0.2, Warmup: 48 * time.Hour, Rule: Rule{Hold: 1, Clear: 10}},
	}
}

// Validate checks the configuration.
func (c *SignalConfig) Validate() error {
	return errors.Join(c.Spike.validate("spike"), c.Drift.validate("drift"), c.Record.validate("record"), c.Daily.validate("daily"))
}

// Signal detects spikes and drift on any signal.
type Signal struct {
	cfg    SignalConfig
	checks []Check
}

// NewSignal returns the detector for cfg.
func NewSignal(cfg SignalConfig) *Signal {
	return &Signal{cfg: cfg, checks: []Check{
		{Detector: "signal.spike", Kind: "signal", Rule: cfg.Spike.Rule, Warm: true, Residual: true, describe: describeSpike},
		{Detector: "signal.drift", Kind: "signal", Rule: cfg.Drift.Rule, Warm: true, Stat: StatSigma, GateOnCross: true, Residual: true, describe: describeCUSUM("drift")},
		{Detector: "signal.record", Kind: "signal", Rule: cfg.Record.Rule, Warm: true, GateOnCross: true, describe: describeRecord(cfg.Record)},
		{Detector: "signal.daily", Kind: "signal", Rule: cfg.Daily.Rule, Warm: true, GateOnCross: true, Stat: StatSigma, describe: describeDaily},
	}}
}

// Checks implements SignalDetector.
func (sd *Signal) Checks() []Check { return sd.checks }

// Needs implements Extended: a check switched off needs no memory.
func (sd *Signal) Needs() (record, daily bool) {
	return sd.cfg.Record.Samples > 0 && !sd.cfg.Record.Off, sd.cfg.Daily.Enabled && !sd.cfg.Daily.Off
}

// JudgeExtended implements Extended: the record and daily checks are the
// third and fourth. Both learn from every reading, warm or not, and speak once
// the baseline is warm.
func (sd *Signal) JudgeExtended(x float64, t int64, s *SignalState, m Memory, v []Verdict) {
	if m.Record != nil {
		v[2] = sd.cfg.Record.judge(x, m.Record)
	}
	if m.Daily != nil {
		v[3] = sd.cfg.Daily.judge(x, t, m.Daily)
	}
	if !s.Base.Warm {
		v[2], v[3] = Verdict{}, Verdict{}
	}
}

// Judge implements SignalDetector.
func (sd *Signal) Judge(x float64, se Season, t int64, s *SignalState, l *baselines.Learner, v []Verdict) {
	r := x - se.Near
	if cusumReady(s, l) {
		v[1] = sd.cfg.Drift.upDown(s, zscore(r, l, &s.Base))
	}
	spread := l.Spread(&s.Base)
	dev := r - s.Base.Median
	if !s.Base.Warm {
		v[1] = Verdict{}
		if dev >= 0 {
			v[0] = sd.cfg.Spike.warmup(x, dev, spread, l.Floor(&s.Base), se, &s.Base, true)
		} else {
			v[0] = sd.cfg.Spike.warmup(x, -dev, spread, l.Floor(&s.Base), se, &s.Base, false)
		}
		return
	}
	if dev >= 0 {
		v[0] = sd.cfg.Spike.verdict(x, dev, spread, se, &s.Base, true)
	} else {
		v[0] = sd.cfg.Spike.verdict(x, -dev, spread, se, &s.Base, false)
	}
}
