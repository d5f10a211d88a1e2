package detectors

import (
	"errors"

	"github.com/vigil-iot/vigil/baselines"
)

// SignalConfig configures the checks on generic signals: any numeric field that
// is not mapped to pressure, temperature or vibration.
type SignalConfig struct {
	// Spike flags values outside the learned band on either side.
	Spike Spike `yaml:"spike"`
	// Drift is a two-sided CUSUM for drift away from the baseline mean.
	Drift CUSUM `yaml:"drift"`
}

// DefaultSignal returns the defaults: spike at 6 robust sigmas held 2 samples,
// drift CUSUM k=1.5 h=12.
func DefaultSignal() SignalConfig {
	return SignalConfig{
		Spike: Spike{Z: 6, Rule: Rule{Hold: 2, Clear: 3}},
		Drift: CUSUM{K: 1.5, H: 12, Margin: 2, Rule: Rule{Hold: 1, Clear: 3}},
	}
}

// Validate checks the configuration.
func (c *SignalConfig) Validate() error {
	return errors.Join(c.Spike.validate("spike"), c.Drift.validate("drift"))
}

// Signal detects spikes and drift on any signal.
type Signal struct {
	cfg    SignalConfig
	checks []Check
}

// NewSignal returns the detector for cfg.
func NewSignal(cfg SignalConfig) *Signal {
	return &Signal{cfg: cfg, checks: []Check{
		{Detector: "signal.spike", Kind: "signal", Rule: cfg.Spike.Rule, Warm: true, describe: describeSpike},
		{Detector: "signal.drift", Kind: "signal", Rule: cfg.Drift.Rule, Warm: true, Stat: StatSigma, describe: describeCUSUM("drift")},
	}}
}

// Checks implements SignalDetector.
func (sd *Signal) Checks() []Check { return sd.checks }

// Judge implements SignalDetector.
func (sd *Signal) Judge(x float64, t int64, s *SignalState, l *baselines.Learner, v []Verdict) {
	if cusumReady(s, l) {
		v[1] = sd.cfg.Drift.upDown(s, zscore(x, l, &s.Base))
	}
	if !s.Base.Warm {
		v[1] = Verdict{}
		return
	}
	spread := l.Spread(&s.Base)
	dev := x - s.Base.Median
	if dev >= 0 {
		v[0] = sd.cfg.Spike.verdict(x, dev, spread, &s.Base, true)
	} else {
		v[0] = sd.cfg.Spike.verdict(x, -dev, spread, &s.Base, false)
	}
}
