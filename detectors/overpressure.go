package detectors

import (
	"errors"
	"fmt"

	"github.com/vigil-iot/vigil/baselines"
	"github.com/vigil-iot/vigil/pipeline"
)

// OverpressureConfig configures the pressure checks.
type OverpressureConfig struct {
	// Limit is the absolute upper pressure limit (bar); nil disables it. Crossing
	// it is critical and fires even during warm-up.
	Limit     *float64 `yaml:"limit"`
	LimitRule Rule     `yaml:"limit_rule"`
	// Spike flags pressure above the learned band: median + Z·spread.
	Spike Spike `yaml:"spike"`
	// Rise is a one-sided CUSUM for a sustained rise above the baseline mean.
	Rise CUSUM `yaml:"rise"`
	// Rate flags a rate of rise faster than Factor × the fastest normal rise.
	Rate RateLimit `yaml:"rate"`
}

// DefaultOverpressure returns the defaults: no absolute limit (it depends on the
// plant), spike at 6 robust sigmas held 2 samples, CUSUM k=1.5 h=12 margin 2, rate of
// rise 2.5× the normal envelope.
func DefaultOverpressure() OverpressureConfig {
	return OverpressureConfig{
		LimitRule: Rule{Hold: 1, Clear: 3},
		Spike:     Spike{Z: 6, WarmupZ: 10, Rule: Rule{Hold: 1, Clear: 3}},
		Rise:      CUSUM{K: 1.5, H: 12, Margin: 2, Rule: Rule{Hold: 1, Clear: 3, KeepFiringFor: driftKeepFiring}},
		Rate:      RateLimit{Factor: 2.5, Rule: Rule{Hold: 1, Clear: 5}},
	}
}

// Validate checks the configuration.
func (c *OverpressureConfig) Validate() error {
	return errors.Join(
		prefix("limit_rule", c.LimitRule.Validate()),
		c.Spike.validate("spike"),
		c.Rise.validate("rise"),
		c.Rate.validate("rate"),
	)
}

func prefix(name string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Overpressure detects hydraulic overpressure: an absolute limit, spikes above
// the learned band, sustained rises and fast rates of rise.
type Overpressure struct {
	cfg    OverpressureConfig
	checks []Check
}

// NewOverpressure returns the detector for cfg.
func NewOverpressure(cfg OverpressureConfig) *Overpressure {
	return &Overpressure{cfg: cfg, checks: []Check{
		{Detector: "overpressure.limit", Kind: "overpressure", Rule: cfg.LimitRule, describe: describeUpperLimit},
		{Detector: "overpressure.spike", Kind: "overpressure", Rule: cfg.Spike.Rule, Warm: true, Residual: true, describe: describeSpike},
		{Detector: "overpressure.rise", Kind: "overpressure", Rule: cfg.Rise.Rule, Warm: true, Stat: StatSigma, GateOnCross: true, Residual: true, describe: describeCUSUM("sustained rise")},
		{Detector: "overpressure.rate", Kind: "overpressure", Rule: cfg.Rate.Rule, Warm: true, Stat: StatRate, Residual: true, describe: describeRate("rises", cfg.Rate.Factor)},
	}}
}

// Checks implements SignalDetector.
func (o *Overpressure) Checks() []Check { return o.checks }

// Judge implements SignalDetector.
func (o *Overpressure) Judge(x float64, se Season, t int64, s *SignalState, l *baselines.Learner, v []Verdict) {
	v[0] = upperLimit(x, o.cfg.Limit, pipeline.Critical)
	r := x - se.Near
	if cusumReady(s, l) {
		v[2] = o.cfg.Rise.up(s, zscore(r, l, &s.Base))
	}
	if !s.Base.Warm {
		v[1] = o.cfg.Spike.warmup(x, r-s.Base.Median, l.Spread(&s.Base), l.Floor(&s.Base), se, &s.Base, true)
		v[2] = Verdict{}
		return
	}
	v[1] = o.cfg.Spike.verdict(x, r-s.Base.Median, l.Spread(&s.Base), se, &s.Base, true)
	// A fast rise is overpressure only if it ends above the normal band: a
	// quick recovery from a dip is not.
	if rate, ok := s.Base.Rate(x-se.At, t); ok && r > s.Base.Median+l.Spread(&s.Base) {
		v[3] = o.cfg.Rate.verdict(rate, s.Base.RiseMax, rateFloor(l, &s.Base))
	}
}
