package baselines

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config sets how baselines learn. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// HalfLife is the half-life, in samples, of the exponentially weighted mean,
	// variance and robust estimates. Counting samples rather than seconds keeps
	// a device that lies about its timestamps from speeding up forgetting.
	HalfLife float64 `yaml:"half_life"`
	// WarmupSamples and WarmupDuration end the warm-up; when both are set both must
	// be met (enough samples spanning enough time to have seen a whole cycle).
	// During warm-up every sample teaches and only absolute limits fire.
	WarmupSamples  int           `yaml:"warmup_samples"`
	WarmupDuration time.Duration `yaml:"warmup_duration"`
	// MinSpread is an absolute floor for the spread (signal units), RelSpread a
	// floor relative to |median|. They keep a perfectly flat signal from making
	// every tiny change an infinite z-score.
	MinSpread float64 `yaml:"min_spread"`
	RelSpread float64 `yaml:"rel_spread"`
	// RatePeakHalfLife is the half-life, in samples, of the envelope of the
	// fastest rate of change seen in normal operation.
	RatePeakHalfLife float64 `yaml:"rate_peak_half_life"`
	// Clip winsorizes learning: once the baseline has RobustStart samples, a
	// sample's deviation from the mean is clipped to Clip spreads before it
	// updates the mean and variance, so one wild sample cannot widen the band
	// much (at most Clip² spreads² / n), yet a real change of level (a machine
	// switching set points) is followed within a few dozen samples. 0 disables.
	Clip float64 `yaml:"clip"`
	// RelearnAfter is how many consecutive samples may be kept from teaching
	// (because they were judged anomalous) before the baseline learns again. A
	// persistent change thus alerts first and becomes the new normal only after
	// that many samples; 0 means never.
	RelearnAfter int `yaml:"relearn_after"`
	// AcceptAfter and AcceptBand accept a new normal sooner: a signal kept
	// from teaching that has held one level (every sample within
	// AcceptBand spreads of the run's mean) for AcceptAfter of event time
	// has settled there, after a set-point change or a repair; its baseline
	// moves to that level (Learner.Accept) and the alerts it raised resolve,
	// saying so (the detectors do that). AcceptAfter 0 leaves only
	// RelearnAfter.
	AcceptAfter time.Duration `yaml:"accept_after"`
	AcceptBand  float64       `yaml:"accept_band"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		HalfLife:         1000,
		WarmupSamples:    300,
		MinSpread:        1e-6,
		RelSpread:        1e-3,
		RatePeakHalfLife: 3000,
		Clip:             6,
		RelearnAfter:     3000,
		AcceptAfter:      15 * time.Minute,
		AcceptBand:       4,
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	var errs []error
	if !(c.HalfLife >= 1) {
		errs = append(errs, fmt.Errorf("half_life must be at least 1 sample, got %v", c.HalfLife))
	}
	if c.WarmupSamples < 2 {
		errs = append(errs, fmt.Errorf("warmup_samples must be at least 2, got %d", c.WarmupSamples))
	}
	if c.WarmupDuration < 0 {
		errs = append(errs, fmt.Errorf("warmup_duration must not be negative, got %v", c.WarmupDuration))
	}
	if !(c.MinSpread > 0) || !(c.RelSpread >= 0) {
		errs = append(errs, fmt.Errorf("min_spread must be positive and rel_spread non-negative, got %v and %v", c.MinSpread, c.RelSpread))
	}
	if !(c.RatePeakHalfLife >= 1) {
		errs = append(errs, fmt.Errorf("rate_peak_half_life must be at least 1 sample, got %v", c.RatePeakHalfLife))
	}
	if !(c.Clip >= 0) {
		errs = append(errs, fmt.Errorf("clip must not be negative, got %v", c.Clip))
	}
	if c.RelearnAfter < 0 {
		errs = append(errs, fmt.Errorf("relearn_after must not be negative, got %d", c.RelearnAfter))
	}
	if c.AcceptAfter < 0 {
		errs = append(errs, fmt.Errorf("accept_after must not be negative, got %v", c.AcceptAfter))
	}
	if c.AcceptAfter > 0 && !(c.AcceptBand > 0) {
		errs = append(errs, fmt.Errorf("accept_band must be positive, got %v", c.AcceptBand))
	}
	return errors.Join(errs...)
}

// Learner holds the derived constants of a Config. It is immutable and safe to
// share between goroutines.
type Learner struct {
	cfg       Config
	alpha     float64 // EW weight of a new sample once warm
	rateDecay float64 // per-sample decay of the rate envelope
}

// NewLearner validates cfg and returns a Learner.
func NewLearner(cfg Config) (*Learner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("baselines: %w", err)
	}
	return &Learner{
		cfg:       cfg,
		alpha:     1 - math.Exp2(-1/cfg.HalfLife),
		rateDecay: math.Exp2(-1 / cfg.RatePeakHalfLife),
	}, nil
}

// PeakDecay is the per-sample decay factor of learned envelopes (the rate
// envelope here, and detectors' own, such as CUSUM excursions).
func (l *Learner) PeakDecay() float64 { return l.rateDecay }

// Config returns the configuration the learner was made with.
func (l *Learner) Config() Config { return l.cfg }

// Stats is the learned baseline of one signal of one device. It is plain data:
// it can be copied, compared and serialised as is. The zero value is an empty
// baseline.
type Stats struct {
	// N counts the samples learned; Gated the consecutive samples kept from
	// learning because they were anomalous.
	N, Gated uint32
	// Warm is set once the warm-up has ended.
	Warm bool
	// First is the event time of the first sample learned (Unix ns).
	First int64
	// Mean and Var are the exponentially weighted mean and (population)
	// variance. While N < 1/alpha they equal the exact running mean and variance.
	Mean, Var float64
	// Median and MAD are robust, exponentially forgetting estimates of the
	// median and of the median absolute deviation.
	Median, MAD float64
	// Last and LastT are the most recent sample and its time, learned or not.
	Last  float64
	LastT int64
	// RateMean and RateVar are the EW mean and variance of the rate of change
	// (units per second); RiseMax and FallMax are slowly decaying envelopes of
	// the fastest rise and the fastest fall (as a positive number) seen in
	// normal operation.
	RateMean, RateVar, RiseMax, FallMax float64
}

// RatePeak is the envelope of the fastest normal change either way.
func (s *Stats) RatePeak() float64 { return max(s.RiseMax, s.FallMax) }

// Std is the EW standard deviation.
func (s *Stats) Std() float64 { return math.Sqrt(s.Var) }

// Floor is the smallest spread the learner allows for s.
func (l *Learner) Floor(s *Stats) float64 {
	return max(l.cfg.MinSpread, l.cfg.RelSpread*math.Abs(s.Median))
}

// RobustStart is the number of samples after which learning is winsorized
// (see Config.Clip): before it the spread is not yet known.
const RobustStart = 30

// Spread is the robust scale of s: 1.4826·MAD (the standard deviation for
// Gaussian noise), but at least the winsorized EW standard deviation, so that
// multi-modal signals (a machine switching between set points, whose MAD can be
// 0) keep a sensible band, and at least the floor. A single spike moves the MAD
// by one small step and the winsorized variance by a bounded amount, so it
// does not widen the band.
func (l *Learner) Spread(s *Stats) float64 {
	return max(1.4826*s.MAD, math.Sqrt(s.Var), l.Floor(s))
}

// StdFloor is the EW standard deviation, at least the floor.
func (l *Learner) StdFloor(s *Stats) float64 {
	return max(math.Sqrt(s.Var), l.Floor(s))
}

// Rate returns the rate of change from the last sample to (x, t) in units per
// second, and false when there is no earlier sample or no time has passed.
// The time step is taken as at least half the signal's mean interval once
// it has rateMinSamples: a publisher that falls behind stamps messages
// milliseconds apart, and noise over such a step is no fast change.
func (s *Stats) Rate(x float64, t int64) (float64, bool) {
	if s.LastT == 0 || t <= s.LastT {
		return 0, false
	}
	dt := float64(t - s.LastT)
	if s.N >= rateMinSamples && s.LastT > s.First {
		dt = max(dt, 0.5*float64(s.LastT-s.First)/float64(s.N-1))
	}
	return (x - s.Last) / (dt / 1e9), true
}

// rateMinSamples is the number of samples after which the mean interval
// floors the time step of Rate.
const rateMinSamples = 10

// Observe records sample x at event time t. When learn is false (the sample was
// judged anomalous) the estimates are left alone, unless RelearnAfter samples in
// a row have been kept out, in which case the baseline adapts again. It reports
// whether the sample was learned.
func (l *Learner) Observe(s *Stats, x float64, t int64, learn bool) bool {
	rate, haveRate := s.Rate(x, t)
	s.Last, s.LastT = x, t
	if s.Gated > 0 && (l.cfg.RelearnAfter == 0 || int(s.Gated) <= l.cfg.RelearnAfter) {
		// The previous sample was kept out: a rate from an anomalous sample
		// back to a normal one says nothing about normal rates.
		haveRate = false
	}
	if !learn && s.N > 0 {
		s.Gated++
		if l.cfg.RelearnAfter == 0 || int(s.Gated) <= l.cfg.RelearnAfter {
			return false
		}
	} else {
		s.Gated = 0
	}
	l.learn(s, x, t, rate, haveRate)
	return true
}

// Accept moves the baseline to a new level: mean and median to level, the
// spread and the rate envelopes as they were, the run of kept-out samples
// ended. The detectors call it when a signal has settled at a new normal
// (Config.AcceptAfter).
func (l *Learner) Accept(s *Stats, level float64) {
	s.Mean, s.Median = level, level
	s.Gated = 0
}

func (l *Learner) learn(s *Stats, x float64, t int64, rate float64, haveRate bool) {
	if s.N < math.MaxUint32 {
		s.N++
	}
	if s.N == 1 {
		s.First = t
		s.Mean, s.Var = x, 0
		s.Median, s.MAD = x, 0
		return
	}
	// Exact running statistics first (weight 1/n), exponential forgetting once
	// 1/n falls below alpha (West's weighted update).
	a := max(1/float64(s.N), l.alpha)
	scale := l.Spread(s)
	d := x - s.Mean
	if l.cfg.Clip > 0 && s.N > RobustStart {
		lim := l.cfg.Clip * scale
		d = min(max(d, -lim), lim)
	}
	inc := a * d
	s.Mean += inc
	s.Var = (1 - a) * (s.Var + d*inc)

	// Robust estimates by stochastic approximation: the median moves a step
	// towards x, the MAD towards |x - median|, with gains near the optimum for
	// Gaussian noise (the reciprocal of the density at the target).
	switch {
	case x > s.Median:
		s.Median += min(2.5*a*scale, x-s.Median)
	case x < s.Median:
		s.Median -= min(2.5*a*scale, s.Median-x)
	}
	dev := math.Abs(x - s.Median)
	switch {
	case dev > s.MAD:
		s.MAD += min(1.6*a*scale, dev-s.MAD)
	case dev < s.MAD:
		s.MAD -= min(1.6*a*scale, s.MAD-dev)
	}

	if haveRate {
		if s.RateMean == 0 && s.RateVar == 0 && s.RiseMax == 0 && s.FallMax == 0 {
			s.RateMean = rate // the first rate seen (or a signal that never moved)
		} else {
			rd := rate - s.RateMean
			rinc := a * rd
			s.RateMean += rinc
			s.RateVar = (1 - a) * (s.RateVar + rd*rinc)
		}
		s.RiseMax = max(s.RiseMax*l.rateDecay, rate)
		s.FallMax = max(s.FallMax*l.rateDecay, -rate)
	}
	if !s.Warm && int(s.N) >= l.cfg.WarmupSamples &&
		(l.cfg.WarmupDuration == 0 || t-s.First >= int64(l.cfg.WarmupDuration)) {
		s.Warm = true
	}
}
