package detectors

import (
	"errors"
	"fmt"
	"math"

	"github.com/vigil-iot/vigil/baselines"
	"github.com/vigil-iot/vigil/pipeline"
)

// ThermalConfig configures the temperature checks.
type ThermalConfig struct {
	// High and Low are absolute limits (°C); nil disables them. Crossing one
	// is critical and fires even during warm-up.
	High      *float64 `yaml:"high"`
	Low       *float64 `yaml:"low"`
	LimitRule Rule     `yaml:"limit_rule"`
	// Drift is a two-sided CUSUM for drift away from the baseline mean
	// (cooling inefficiency shows as a slow rise).
	Drift CUSUM `yaml:"drift"`
	// Fluctuation flags a short-window variance more than Ratio times the
	// learned variance. Window is the short window's half-life in samples.
	Fluctuation Fluctuation `yaml:"fluctuation"`
	// Rate flags |rate of change| faster than Factor × the normal envelope.
	Rate RateLimit `yaml:"rate"`
}

// Fluctuation configures the short-window variance test.
type Fluctuation struct {
	Ratio  float64 `yaml:"ratio"`
	Window float64 `yaml:"window"`
	Rule   `yaml:",inline"`
}

func (f Fluctuation) validate(name string) error {
	if !(f.Ratio > 1) || !(f.Window >= 1) {
		return fmt.Errorf("%s: ratio must be > 1 and window >= 1, got %v and %v", name, f.Ratio, f.Window)
	}
	return prefix(name, f.Rule.Validate())
}

// DefaultThermal returns the defaults: no absolute limits, drift CUSUM k=1.5
// h=12, fluctuation when the 8-sample variance exceeds 9× the learned one (3×
// the standard deviation) for 3 samples, rate 2.5× the normal envelope.
func DefaultThermal() ThermalConfig {
	return ThermalConfig{
		LimitRule:   Rule{Hold: 1, Clear: 3},
		Drift:       CUSUM{K: 1.5, H: 12, Margin: 2, Rule: Rule{Hold: 1, Clear: 3, KeepFiringFor: driftKeepFiring}},
		Fluctuation: Fluctuation{Ratio: 9, Window: 8, Rule: Rule{Hold: 3, Clear: 5}},
		Rate:        RateLimit{Factor: 2.5, Rule: Rule{Hold: 1, Clear: 5}},
	}
}

// Validate checks the configuration.
func (c *ThermalConfig) Validate() error {
	var order error
	if c.High != nil && c.Low != nil && *c.Low >= *c.High {
		order = fmt.Errorf("low (%v) must be below high (%v)", *c.Low, *c.High)
	}
	return errors.Join(order,
		prefix("limit_rule", c.LimitRule.Validate()),
		c.Drift.validate("drift"),
		c.Fluctuation.validate("fluctuation"),
		c.Rate.validate("rate"),
	)
}

// Thermal detects cooling problems: absolute limits, drift, fluctuation and
// fast changes of temperature.
type Thermal struct {
	cfg    ThermalConfig
	alpha  float64 // short-window EW weight
	checks []Check
}

// NewThermal returns the detector for cfg.
func NewThermal(cfg ThermalConfig) *Thermal {
	return &Thermal{cfg: cfg, alpha: 1 - math.Exp2(-1/cfg.Fluctuation.Window), checks: []Check{
		{Detector: "thermal.limit", Kind: "thermal", Rule: cfg.LimitRule, describe: describeLimits},
		{Detector: "thermal.drift", Kind: "thermal", Rule: cfg.Drift.Rule, Warm: true, Stat: StatSigma, GateOnCross: true, Residual: true, describe: describeCUSUM("drift")},
		{Detector: "thermal.fluctuation", Kind: "thermal", Rule: cfg.Fluctuation.Rule, Warm: true, Residual: true, describe: describeFluctuation},
		{Detector: "thermal.rate", Kind: "thermal", Rule: cfg.Rate.Rule, Warm: true, Stat: StatRate, Residual: true, describe: describeRate("changes", cfg.Rate.Factor)},
	}}
}

// Checks implements SignalDetector.
func (th *Thermal) Checks() []Check { return th.checks }

// Judge implements SignalDetector.
func (th *Thermal) Judge(x float64, se Season, t int64, s *SignalState, l *baselines.Learner, v []Verdict) {
	hi := upperLimit(x, th.cfg.High, pipeline.Critical)
	lo := lowerLimit(x, th.cfg.Low, pipeline.Critical)
	if lo.Score > hi.Score {
		hi = lo
	}
	v[0] = hi
	r, at := x-se.Near, x-se.At
	short(s, at, th.alpha)
	if cusumReady(s, l) {
		v[1] = th.cfg.Drift.upDown(s, zscore(r, l, &s.Base))
	}
	if !s.Base.Warm {
		v[1] = Verdict{}
		return
	}
	v[2] = th.cfg.Fluctuation.verdict(s, l)
	if rate, ok := s.Base.Rate(at, t); ok {
		v[3] = th.cfg.Rate.verdict(math.Abs(rate), s.Base.RatePeak(), rateFloor(l, &s.Base))
	}
}

// short updates the short-window EW mean and variance of s with x.
func short(s *SignalState, x, alpha float64) {
	if s.Base.N == 0 && s.ShortMean == 0 && s.ShortVar == 0 {
		s.ShortMean = x
		return
	}
	d := x - s.ShortMean
	inc := alpha * d
	s.ShortMean += inc
	s.ShortVar = (1 - alpha) * (s.ShortVar + d*inc)
}

// verdict compares the short-window standard deviation with sqrt(Ratio) times
// the learned one; Stat and Threshold are standard deviations (signal units).
func (f Fluctuation) verdict(s *SignalState, l *baselines.Learner) Verdict {
	learned := l.StdFloor(&s.Base)
	thr := math.Sqrt(f.Ratio) * learned
	sd := math.Sqrt(s.ShortVar)
	return Verdict{Score: sd / thr, Severity: pipeline.Warning, Stat: sd, Threshold: thr}
}
