package detectors

import (
	"errors"
	"fmt"

	"github.com/vigil-iot/vigil/baselines"
	"github.com/vigil-iot/vigil/pipeline"
)

// VibrationConfig configures the vibration checks.
type VibrationConfig struct {
	// Zones are the severity zone boundaries in mm/s RMS in the style of ISO
	// 10816: below AB zone A (new machine), below BC zone B (unrestricted
	// operation), below CD zone C (restricted: warning), above zone D (damage
	// likely: critical). The defaults are ISO 10816-3's for group 1 machines
	// (large, 300 kW–50 MW) on rigid foundations: 2.3, 4.5, 7.1 mm/s.
	Zones    Zones `yaml:"zones"`
	ZoneRule Rule  `yaml:"zone_rule"`
	// Jump flags a sudden jump above the learned band.
	Jump Spike `yaml:"jump"`
	// Elevation is a one-sided CUSUM for sustained elevation (wear).
	Elevation CUSUM `yaml:"elevation"`
}

// Zones are ISO 10816-style boundaries (mm/s RMS).
type Zones struct {
	AB float64 `yaml:"ab"`
	BC float64 `yaml:"bc"`
	CD float64 `yaml:"cd"`
}

// DefaultVibration returns the defaults documented on VibrationConfig, with a
// jump at 6 robust sigmas held 2 samples and an elevation CUSUM k=1.5 h=12.
func DefaultVibration() VibrationConfig {
	return VibrationConfig{
		Zones:     Zones{AB: 2.3, BC: 4.5, CD: 7.1},
		ZoneRule:  Rule{Hold: 3, Clear: 5},
		Jump:      Spike{Z: 6, Rule: Rule{Hold: 2, Clear: 3}},
		Elevation: CUSUM{K: 1.5, H: 12, Margin: 2, Rule: Rule{Hold: 1, Clear: 3, KeepFiringFor: driftKeepFiring}},
	}
}

// Validate checks the configuration.
func (c *VibrationConfig) Validate() error {
	var zones error
	if z := c.Zones; !(z.AB > 0 && z.AB < z.BC && z.BC < z.CD) {
		zones = fmt.Errorf("zones: need 0 < ab < bc < cd, got %v, %v, %v", z.AB, z.BC, z.CD)
	}
	return errors.Join(zones,
		prefix("zone_rule", c.ZoneRule.Validate()),
		c.Jump.validate("jump"),
		c.Elevation.validate("elevation"),
	)
}

// Zone returns the ISO 10816-style zone letter of v.
func (z Zones) Zone(v float64) byte {
	switch {
	case v < z.AB:
		return 'A'
	case v < z.BC:
		return 'B'
	case v < z.CD:
		return 'C'
	}
	return 'D'
}

// Vibration detects mechanical problems: severity zones, sudden jumps and
// sustained elevation.
type Vibration struct {
	cfg    VibrationConfig
	checks []Check
}

// NewVibration returns the detector for cfg.
func NewVibration(cfg VibrationConfig) *Vibration {
	return &Vibration{cfg: cfg, checks: []Check{
		{Detector: "vibration.zone", Kind: "vibration", Rule: cfg.ZoneRule, describe: describeZone(cfg.Zones)},
		{Detector: "vibration.jump", Kind: "vibration", Rule: cfg.Jump.Rule, Warm: true, Residual: true, describe: describeSpike},
		{Detector: "vibration.elevation", Kind: "vibration", Rule: cfg.Elevation.Rule, Warm: true, Stat: StatSigma, GateOnCross: true, Residual: true, describe: describeCUSUM("sustained elevation")},
	}}
}

// Checks implements SignalDetector.
func (vd *Vibration) Checks() []Check { return vd.checks }

// Judge implements SignalDetector.
func (vd *Vibration) Judge(x float64, se Season, t int64, s *SignalState, l *baselines.Learner, v []Verdict) {
	z := vd.cfg.Zones
	switch {
	case x >= z.CD:
		v[0] = Verdict{Score: ratioAbove(x, z.CD), Severity: pipeline.Critical, Stat: x, Threshold: z.CD}
	default:
		v[0] = upperLimit(x, &z.BC, pipeline.Warning)
	}
	r := x - se.Near
	if cusumReady(s, l) {
		v[2] = vd.cfg.Elevation.up(s, zscore(r, l, &s.Base))
	}
	if !s.Base.Warm {
		v[1] = vd.cfg.Jump.warmup(x, r-s.Base.Median, l.Spread(&s.Base), l.Floor(&s.Base), se, &s.Base, true)
		v[2] = Verdict{}
		return
	}
	v[1] = vd.cfg.Jump.verdict(x, r-s.Base.Median, l.Spread(&s.Base), se, &s.Base, true)
}
