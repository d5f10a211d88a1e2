package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/vigil-iot/vigil/baselines"
	"github.com/vigil-iot/vigil/pipeline"
)

// maxChecks bounds the checks one signal detector runs.
const maxChecks = 4

// SignalState is what Vigil keeps for one signal of one device: the learned
// baseline, the detectors' memory and one alert episode per check. Plain data,
// ready to be snapshotted.
type SignalState struct {
	Name string
	Kind pipeline.SignalKind
	// Record is 1 + the index of the signal's record memory in
	// Device.Extra.Records, 0 when it has none.
	Record uint8
	// Daily is 1 + the index of the signal's daily profile in
	// Device.Extra.Dailies, 0 when it has none.
	Daily uint8
	// Cycle is 1 + the index of the signal's cycle memory in
	// Device.Extra.Cycles, 0 when it has none.
	Cycle uint8
	// Lead is 1 + the index of the check whose episode leads the signal's
	// alert when checks fold (Params.Fold), 0 when none is firing.
	Lead uint8
	Base baselines.Stats
	// CUSUM sums of standardised deviations above and below the baseline, the
	// peaks of their current excursions (float32, rounded up: they are only
	// compared with thresholds, and the bytes saved keep the struct within
	// budget), and the learned envelope: the largest excursion that ended
	// (returned to 0) without crossing the threshold.
	CusumHi, CusumLo float64
	ExcHi, ExcLo     float32
	CusumPeak        float64
	// Short-window EW mean and variance, for fluctuation.
	ShortMean, ShortVar float64
	Episodes            [maxChecks]Episode
}

// Check describes one test a detector runs on a signal.
type Check struct {
	// Detector is the alert's detector field, e.g. "overpressure.spike".
	Detector string
	// Kind is the alert kind, e.g. "overpressure".
	Kind string
	// Rule is the lifecycle policy.
	Rule Rule
	// Warm says the check needs a learned baseline: it is silent during warm-up.
	Warm bool
	// Stat says what the statistic measures, and so its unit.
	Stat StatKind
	// GateOnCross says the check keeps a sample from teaching the baseline
	// only once it crosses its threshold, not from Params.LearnBelow: checks
	// whose statistic approaches the threshold in normal operation (a CUSUM
	// building up, a value near its record).
	GateOnCross bool
	// Residual says the check judges the residual from the signal's learned
	// cycle (the raw value when it has none), not the raw value.
	Residual bool
	// describe renders the alert's message.
	describe func(a *pipeline.Alert, unit string) string
}

// StatKind says what a check's statistic measures.
type StatKind uint8

// Statistic kinds.
const (
	StatValue  StatKind = iota // the signal itself, in its unit
	StatRate                   // rate of change, unit per second
	StatSigma                  // a CUSUM sum of standardised deviations
	StatPeriod                 // the period of a cycle, in seconds
)

// Unit returns the unit of a statistic on a signal measured in unit.
func (k StatKind) Unit(unit string) string {
	switch k {
	case StatRate:
		if unit == "" {
			return "1/s"
		}
		return unit + "/s"
	case StatSigma:
		return "sigma"
	case StatPeriod:
		return "s"
	}
	return unit
}

// SignalDetector judges samples of one signal kind. Judge writes one verdict
// per check (in the order of Checks) into v. x is the raw value, se the
// signal's seasonal component at t (zero when it has no learned cycle): the
// checks marked Residual judge the residual from it and report thresholds on
// the raw scale. Judge may update the detector memory in s (CUSUM sums, short
// windows) but never the baseline, which the caller updates afterwards with
// the outcome (the residual x − se.At); it does no I/O and never reads the
// clock.
type SignalDetector interface {
	Checks() []Check
	Judge(x float64, se Season, t int64, s *SignalState, l *baselines.Learner, v []Verdict)
}

// Season is the seasonal component of a reading of a signal with a learned
// cycle; the zero value is no cycle, and then the checks judge x itself.
type Season struct {
	// At is the profile's value at the reading's phase: the baseline learns
	// x − At, and the checks on spread and rate (fluctuation, rate) judge it.
	At float64
	// Near is the profile's value within the phase tolerance (one phase bin
	// either side) nearest to x − level: the checks on level (spike, CUSUM)
	// judge x − Near, so that a reading inside the profile's local range is
	// not an anomaly because the phase is known only to within a bin.
	Near float64
}

// Memory is the extra memory of a signal whose checks need more than
// SignalState holds: the record check's and the daily profile's. It lives in
// Device.Extra rather than in SignalState, which stays small and pointer-free
// for the signals that do not need it. A nil field is memory the
// detector did not ask for.
type Memory struct {
	Record *RecordState
	Daily  *DailyState
}

// Extended is implemented by signal detectors with checks that need Memory.
// The engine finds the memory and calls JudgeExtended after Judge.
type Extended interface {
	// Needs reports which memories the configured checks use.
	Needs() (record, daily bool)
	// JudgeExtended writes the verdicts of those checks into v (the
	// verdicts of Judge) and teaches them x.
	JudgeExtended(x float64, t int64, s *SignalState, m Memory, v []Verdict)
}

// unitOf returns the display unit of a signal kind.
func unitOf(k pipeline.SignalKind) string { return k.Unit() }

// num formats a number for messages: four significant digits.
func num(f float64) string {
	return fmt.Sprintf("%.4g", f)
}

func withUnit(f float64, unit string) string {
	if unit == "" {
		return num(f)
	}
	return num(f) + " " + unit
}

// CUSUM configures a one- or two-sided cumulative-sum test on standardised
// deviations z = (x - mean)/std: S = max(0, S + z - K), alarm when S reaches the
// decision level. K is the slack in standard deviations (shifts smaller than K
// are ignored). The decision level is H, or Margin times the largest excursion
// of S seen in normal operation, whichever is higher: a signal that switches
// between set points (day and night, load and idle) makes long excursions that
// return to zero, and so teaches the test its own normal. A drift never returns
// to zero, so it cannot raise the level it is judged by.
type CUSUM struct {
	K      float64 `yaml:"k"`
	H      float64 `yaml:"h"`
	Margin float64 `yaml:"margin"`
	Rule   `yaml:",inline"`
}

func (c CUSUM) validate(name string) error {
	if !(c.K >= 0) || !(c.H > 0) || !(c.Margin >= 1) {
		return fmt.Errorf("%s: need k >= 0, h > 0 and margin >= 1, got %v, %v and %v", name, c.K, c.H, c.Margin)
	}
	if err := c.Rule.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// driftKeepFiring is the default keep_firing_for of the drift checks
// (signal.drift, thermal.drift, overpressure.rise, vibration.elevation). A
// signal that keeps moving one way (a machine warming up for hours) makes
// a drift CUSUM cross, clear once the baseline has caught up, and cross
// again minutes later: one event, which without it was a new alert each
// time (the SKAB test bed's anomaly-free run: 35 drift alerts in 2.6 hours,
// 18 with it). Drifts are slow, so a resolution 10 minutes late costs
// little.
const driftKeepFiring = 10 * time.Minute

// cusumStart is the number of samples after which the CUSUM runs (silently
// during warm-up, to learn its envelope), once the mean and std are usable.
const cusumStart = 30

// threshold is the decision level given the learned envelope.
func (c CUSUM) threshold(peak float64) float64 { return max(c.H, c.Margin*peak) }

// step advances a CUSUM sum and its excursion peak with deviation z and
// returns the verdict. One sample adds at most H/4 to the sum (z is clipped at
// K + H/4), so a single glitch cannot pass for a sustained shift: it takes at
// least four samples to fire; spikes have their own check. The sum is capped
// at twice the decision level so that it comes back down soon after the shift
// ends.
func (c CUSUM) step(sum *float64, exc *float32, peak, z float64, sev pipeline.Severity) Verdict {
	thr := c.threshold(peak)
	z = min(z, c.K+c.H/4)
	*sum = min(max(0, *sum+z-c.K), 2*thr)
	*exc = max(*exc, up32(*sum))
	return Verdict{Score: *sum / thr, Severity: sev, Stat: *sum, Threshold: thr}
}

// settle learns a finished excursion: when the sum is back at 0 and its
// excursion stayed below the decision level (or the baseline is still warming
// up, when everything teaches), the envelope takes it.
func (c CUSUM) settle(sum *float64, exc *float32, peak *float64, warm bool) {
	if *sum == 0 && *exc > 0 {
		if e := float64(*exc); !warm || e < c.threshold(*peak) {
			*peak = max(*peak, e)
		}
		*exc = 0
	}
}

// up32 rounds x to a float32 no smaller than x (MaxFloat32 at most).
func up32(x float64) float32 {
	f := float32(min(x, math.MaxFloat32))
	if float64(f) < x {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// down32 rounds x to a float32 no larger than x (−MaxFloat32 at least).
func down32(x float64) float32 {
	f := float32(max(x, -math.MaxFloat32))
	if float64(f) > x {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

// cusumReady reports whether the CUSUM should run, and decays the envelope.
func cusumReady(s *SignalState, l *baselines.Learner) bool {
	s.CusumPeak *= l.PeakDecay()
	return s.Base.N >= cusumStart
}

// upDown runs a two-sided CUSUM and returns the stronger side's verdict; a
// downward verdict has a negative Stat.
func (c CUSUM) upDown(s *SignalState, z float64) Verdict {
	up := c.step(&s.CusumHi, &s.ExcHi, s.CusumPeak, z, pipeline.Warning)
	down := c.step(&s.CusumLo, &s.ExcLo, s.CusumPeak, -z, pipeline.Warning)
	c.settle(&s.CusumHi, &s.ExcHi, &s.CusumPeak, s.Base.Warm)
	c.settle(&s.CusumLo, &s.ExcLo, &s.CusumPeak, s.Base.Warm)
	if down.Score > up.Score {
		down.Stat = -down.Stat
		return down
	}
	return up
}

// up runs a one-sided (upward) CUSUM.
func (c CUSUM) up(s *SignalState, z float64) Verdict {
	v := c.step(&s.CusumHi, &s.ExcHi, s.CusumPeak, z, pipeline.Warning)
	c.settle(&s.CusumHi, &s.ExcHi, &s.CusumPeak, s.Base.Warm)
	return v
}

// Spike is a threshold on the robust z-score (x - median)/spread.
type Spike struct {
	Z float64 `yaml:"z"`
	// WarmupZ is the threshold during warm-up: once warmupStart samples
	// have been learned, a value WarmupZ spreads from the median of the
	// samples seen so far is a gross anomaly and fires at once (hold 1);
	// it does not teach the baseline. 0 turns the warm-up check off.
	WarmupZ float64 `yaml:"warmup_z"`
	Rule    `yaml:",inline"`
}

// warmupStart is the number of samples after which the spike checks judge
// gross anomalies during warm-up: before it the spread is not yet known
// (learning is winsorized from the same point, baselines.RobustStart).
const warmupStart = baselines.RobustStart

func (s Spike) validate(name string) error {
	if !(s.Z > 0) {
		return fmt.Errorf("%s: z must be positive, got %v", name, s.Z)
	}
	if !(s.WarmupZ >= 0) {
		return fmt.Errorf("%s: warmup_z must not be negative (0 is off), got %v", name, s.WarmupZ)
	}
	if err := s.Rule.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// verdict judges deviation dev (already signed for the side tested) of the
// residual from the band; twice the threshold is critical. The threshold is
// on the raw scale: the band moved by season.
func (s Spike) verdict(x, dev, spread float64, se Season, st *baselines.Stats, up bool) Verdict {
	return spikeVerdict(s.Z, x, dev, spread, se, st, up)
}

// warmup judges like verdict with the warm-up threshold, or returns the zero
// verdict while the check cannot judge (too few samples, or off).
// Only a signal whose spread so far is noise is judged: its robust spread
// (1.4826·MAD) above twice the floor and its standard deviation within 3× of
// it. A signal flat so far, or one that has switched between set points
// (whose MAD is far below its standard deviation, or 0) says nothing yet
// about how far it may move.
func (s Spike) warmup(x, dev, spread, floor float64, se Season, st *baselines.Stats, up bool) Verdict {
	robust := 1.4826 * st.MAD
	if s.WarmupZ <= 0 || st.N < warmupStart || robust <= 2*floor || st.Std() > 3*robust {
		return Verdict{}
	}
	return spikeVerdict(max(s.WarmupZ, s.Z), x, dev, spread, se, st, up)
}

func spikeVerdict(z, x, dev, spread float64, se Season, st *baselines.Stats, up bool) Verdict {
	thr := st.Median + z*spread
	if !up {
		thr = st.Median - z*spread
	}
	if se.Near != 0 {
		thr += se.Near
	}
	score := dev / (z * spread)
	sev := pipeline.Warning
	if score >= 2 {
		sev = pipeline.Critical
	}
	return Verdict{Score: score, Severity: sev, Stat: x, Threshold: thr}
}

// RateLimit flags a rate of change faster than Factor times the fastest rate
// seen in normal operation (the baseline's decaying envelope).
type RateLimit struct {
	Factor float64 `yaml:"factor"`
	Rule   `yaml:",inline"`
}

func (r RateLimit) validate(name string) error {
	if !(r.Factor > 1) {
		return fmt.Errorf("%s: factor must be greater than 1, got %v", name, r.Factor)
	}
	if err := r.Rule.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// verdict judges rate (signed for the side tested; negative is never
// anomalous) against envelope, the fastest normal change on that side,
// floored so a flat signal still has a limit.
func (r RateLimit) verdict(rate, envelope, floor float64) Verdict {
	thr := r.Factor * max(envelope, floor)
	return Verdict{Score: rate / thr, Severity: pipeline.Warning, Stat: rate, Threshold: thr}
}

// rateFloor is the smallest rate envelope assumed: the spread floor per
// typical sampling interval, so a flat signal does not make every change fast.
func rateFloor(l *baselines.Learner, st *baselines.Stats) float64 {
	return l.Floor(st) * 10
}

// zscore returns the standardised deviation of x from the EW mean.
func zscore(x float64, l *baselines.Learner, st *baselines.Stats) float64 {
	return (x - st.Mean) / l.StdFloor(st)
}

// upperLimit judges x against an absolute upper limit (nil: disabled).
func upperLimit(x float64, limit *float64, sev pipeline.Severity) Verdict {
	if limit == nil {
		return Verdict{}
	}
	return Verdict{Score: ratioAbove(x, *limit), Severity: sev, Stat: x, Threshold: *limit}
}

// lowerLimit judges x against an absolute lower limit (nil: disabled).
func lowerLimit(x float64, limit *float64, sev pipeline.Severity) Verdict {
	if limit == nil {
		return Verdict{}
	}
	return Verdict{Score: ratioBelow(x, *limit), Severity: sev, Stat: x, Threshold: *limit}
}

// limitScale sets how steeply an absolute-limit score rises: by 1 per 5% of
// the limit's magnitude, so with the default hysteresis (0.8) a firing limit
// alert resolves once the value is 1% of the limit back inside it.
func limitScale(limit float64) float64 {
	return math.Max(0.05*math.Abs(limit), 1e-9)
}

// ratioAbove scores x against an upper limit: 1 at the limit, more above it.
func ratioAbove(x, limit float64) float64 { return 1 + (x-limit)/limitScale(limit) }

// ratioBelow scores x against a lower limit: 1 at the limit, more below it.
func ratioBelow(x, limit float64) float64 { return 1 + (limit-x)/limitScale(limit) }
