package relation

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// MaxSignals is the largest number of signals a model relates.
const MaxSignals = 8

// eigFloor is the smallest eigenvalue of the correlation matrix the model
// believes in: a component with a standard deviation of 1 % of the signals'.
// It keeps a collinear pair (two sensors of one quantity) from making the
// precision matrix explode.
const eigFloor = 1e-4

// momentMin is the number of readings the EW moments of the statistics
// must have seen before they may widen the limits.
const momentMin = 30

// Config sets how relation models learn and judge. The zero value is not
// valid; start from DefaultConfig.
type Config struct {
	// HalfLife is the half-life, in readings, of the EW mean and covariance.
	HalfLife float64 `yaml:"half_life"`
	// Warmup readings (and, if set, WarmupDuration of event time) are learned
	// before the model judges.
	Warmup         int           `yaml:"warmup"`
	WarmupDuration time.Duration `yaml:"warmup_duration"`
	// Refresh is the number of learned readings between eigen-decompositions.
	Refresh int `yaml:"refresh"`
	// Variance is the share of the (standardised) variance the retained
	// principal components explain; at least one and at most k−1 are kept.
	Variance float64 `yaml:"variance"`
	// Alpha is the false-alarm rate per reading of each control limit.
	Alpha float64 `yaml:"alpha"`
	// Critical is the score (distance relative to the limit) from which a
	// verdict is critical.
	Critical float64 `yaml:"critical"`
	// LearnBelow: a reading teaches only if its score is below this (the
	// caller passes the outcome to Observe; see Model.Learns).
	LearnBelow float64 `yaml:"learn_below"`
	// Clip winsorises learning: a reading scoring above Clip (but below
	// LearnBelow, or any reading in warm-up and once the model learns again
	// after RelearnAfter) moves the estimates as one scoring Clip would, so
	// readings near the limit teach little. 0 disables.
	Clip float64 `yaml:"clip"`
	// RelearnAfter is how many consecutive readings may be kept out before
	// the model learns again; 0 means never.
	RelearnAfter int `yaml:"relearn_after"`
	// MinSpread (absolute, signal units) and RelSpread (relative to |mean|)
	// floor each signal's standard deviation, so a constant signal cannot
	// make the covariance singular.
	MinSpread float64 `yaml:"min_spread"`
	RelSpread float64 `yaml:"rel_spread"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		HalfLife:     1000,
		Warmup:       300,
		Refresh:      100,
		Variance:     0.9,
		Alpha:        1e-4,
		Critical:     2,
		LearnBelow:   1,
		Clip:         0.7,
		RelearnAfter: 3000,
		MinSpread:    1e-6,
		RelSpread:    1e-3,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if !(c.HalfLife >= 1) {
		errs = append(errs, fmt.Errorf("half_life must be at least 1 reading, got %v", c.HalfLife))
	}
	if c.Warmup < robustStart {
		errs = append(errs, fmt.Errorf("warmup must be at least %d readings, got %d", robustStart, c.Warmup))
	}
	if c.WarmupDuration < 0 {
		errs = append(errs, fmt.Errorf("warmup_duration must not be negative, got %v", c.WarmupDuration))
	}
	if c.Refresh < 1 {
		errs = append(errs, fmt.Errorf("refresh must be at least 1, got %d", c.Refresh))
	}
	if !(c.Variance > 0 && c.Variance < 1) {
		errs = append(errs, fmt.Errorf("variance must be in (0, 1), got %v", c.Variance))
	}
	if !(c.Alpha > 0 && c.Alpha < 0.5) {
		errs = append(errs, fmt.Errorf("alpha must be in (0, 0.5), got %v", c.Alpha))
	}
	if !(c.Critical > 1) {
		errs = append(errs, fmt.Errorf("critical must be above 1, got %v", c.Critical))
	}
	if !(c.LearnBelow > 0) {
		errs = append(errs, fmt.Errorf("learn_below must be positive, got %v", c.LearnBelow))
	}
	if !(c.Clip >= 0) {
		errs = append(errs, fmt.Errorf("clip must not be negative, got %v", c.Clip))
	}
	if c.RelearnAfter < 0 {
		errs = append(errs, fmt.Errorf("relearn_after must not be negative, got %d", c.RelearnAfter))
	}
	if !(c.MinSpread > 0) || !(c.RelSpread >= 0) {
		errs = append(errs, fmt.Errorf("min_spread must be positive and rel_spread non-negative, got %v and %v", c.MinSpread, c.RelSpread))
	}
	return errors.Join(errs...)
}

// robustStart is the number of learned readings after which the first model
// is built and learning is winsorised.
const robustStart = 30

// Model holds a validated Config and its derived constants. It is immutable
// and safe to share between goroutines; all per-device data is in State.
type Model struct {
	cfg   Config
	k     int
	alpha float64 // EW weight once n > 1/alpha
	nEff  float64 // effective sample size of the EW estimator
	// devLimit is the two-sided normal quantile at Alpha: a signal this
	// many conditional σ from its expectation breaks the relation.
	devLimit float64
	// t2 holds the Gaussian T² limits for a retained components judged
	// against n readings, t2[a-1][j] for n = grid[j]: the F quantile costs
	// tens of microseconds, so it is computed here once, not per refresh.
	grid []float64
	t2   [MaxSignals - 1][]float64
	// chi1 is the χ² quantile of one degree of freedom at 1 − Alpha: the
	// SPE limit's shape when one component is discarded (see chi2).
	chi1 float64
	// chernoff is ln(1/Alpha), for an upper bound on χ² quantiles.
	chernoff float64
}

// New returns the model of k signals (2 ≤ k ≤ MaxSignals) under cfg.
func New(cfg Config, k int) (*Model, error) {
	if k < 2 || k > MaxSignals {
		return nil, fmt.Errorf("relation: %d signals, want 2 to %d", k, MaxSignals)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relation: %w", err)
	}
	a := 1 - math.Exp2(-1/cfg.HalfLife)
	m := &Model{cfg: cfg, k: k, alpha: a, nEff: (2 - a) / a,
		devLimit: distuv.UnitNormal.Quantile(1 - cfg.Alpha/2)}
	// n from robustStart up by factors of 2^¼ to the effective size.
	for n := float64(robustStart); ; n *= math.Pow(2, 0.25) {
		m.grid = append(m.grid, math.Round(min(n, m.nEff)))
		if n >= m.nEff {
			break
		}
	}
	p := 1 - cfg.Alpha
	m.chi1 = distuv.ChiSquared{K: 1}.Quantile(p)
	m.chernoff = -math.Log(cfg.Alpha)
	for a := 1; a < k; a++ {
		fa := float64(a)
		lims := make([]float64, len(m.grid))
		for j, n := range m.grid {
			lims[j] = distuv.ChiSquared{K: fa}.Quantile(p)
			if n > fa+1 {
				// Phase II limit for a new reading judged against n of them.
				lims[j] = fa * (n - 1) * (n + 1) / (n * (n - fa)) * distuv.F{D1: fa, D2: n - fa}.Quantile(p)
			}
		}
		m.t2[a-1] = lims
	}
	return m, nil
}

// t2Limit is the Gaussian T² limit for a components judged against n
// readings (the limit for the largest tabulated size not above n).
func (m *Model) t2Limit(a int, n float64) float64 {
	lims := m.t2[a-1]
	j := 0
	for j+1 < len(m.grid) && m.grid[j+1] <= n {
		j++
	}
	return lims[j]
}

// K returns the number of signals.
func (m *Model) K() int { return m.k }

// Config returns the configuration.
func (m *Model) Config() Config { return m.cfg }

// State is the learned relation of one device's signals: plain data, to be
// copied, compared and snapshotted (AppendBinary, UnmarshalBinary). Make it
// with Model.NewState; a zero State, or one of another number of signals,
// is not judged and starts afresh at the next Observe or Update.
type State struct {
	// K is the number of signals; A the number of retained components (0
	// until the first model is built).
	K, A uint8
	// Warm is set once the warm-up has ended.
	Warm bool
	// N counts the readings learned, Gated the consecutive readings kept
	// out, Since the readings learned since the last refresh, Skipped the
	// readings with a missing signal, NM the readings the moments learned.
	N, Gated, Since, Skipped, NM uint32
	// First and Last are the event times (Unix ns) of the first learned and
	// of the latest complete reading.
	First, Last int64
	// T2Limit and SPELimit are the control limits, Theta1 the sum of the
	// discarded eigenvalues (the expected SPE), all as of the last refresh.
	T2Limit, SPELimit, Theta1 float64
	// MT, VT and MQ, VQ are the EW mean and variance of T²/A and SPE/Theta1
	// over learned readings.
	MT, VT, MQ, VQ float64
	// Data holds, for k signals: the mean (k), the covariance's upper
	// triangle row by row (k(k+1)/2), the eigenvalues of the correlation
	// matrix in decreasing order (k), their eigenvectors (k×k, row i holds
	// signal i's loadings), the diagonal of the standardised precision
	// matrix (k) and the scales that standardise the signals (k, the floored
	// standard deviations), all but mean and covariance as of the last
	// refresh.
	Data []float64
}

func dataLen(k int) int { return k + k*(k+1)/2 + k + k*k + k + k }

// NewState returns an empty state for m.
func (m *Model) NewState() State {
	return State{K: uint8(m.k), Data: make([]float64, dataLen(m.k))}
}

// layout of Data.
func (s *State) mean() []float64 { k := int(s.K); return s.Data[:k] }
func (s *State) cov() []float64 {
	k := int(s.K)
	return s.Data[k : k+k*(k+1)/2]
}
func (s *State) eig() []float64 {
	k := int(s.K)
	o := k + k*(k+1)/2
	return s.Data[o : o+k]
}
func (s *State) vec() []float64 {
	k := int(s.K)
	o := 2*k + k*(k+1)/2
	return s.Data[o : o+k*k]
}
func (s *State) lii() []float64 {
	k := int(s.K)
	o := 2*k + k*(k+1)/2 + k*k
	return s.Data[o : o+k]
}
func (s *State) scales() []float64 {
	k := int(s.K)
	o := 3*k + k*(k+1)/2 + k*k
	return s.Data[o : o+k]
}

// tri is the index of (i, j), i ≤ j, in the packed upper triangle.
func tri(k, i, j int) int {
	if i > j {
		i, j = j, i
	}
	return i*k - i*(i-1)/2 + j - i
}

// Mean returns the learned mean of signal i.
func (s *State) Mean(i int) float64 { return s.mean()[i] }

// Cov returns the learned covariance of signals i and j.
func (s *State) Cov(i, j int) float64 { return s.cov()[tri(int(s.K), i, j)] }

// Eigen returns the m-th largest eigenvalue of the correlation matrix as of
// the last refresh.
func (s *State) Eigen(m int) float64 { return s.eig()[m] }

// scale is the floored standard deviation of signal i.
func (m *Model) scale(s *State, i int) float64 {
	return max(math.Sqrt(max(s.cov()[tri(m.k, i, i)], 0)), m.cfg.MinSpread, m.cfg.RelSpread*math.Abs(s.mean()[i]))
}

// maxValue is the largest magnitude of a signal value taken as a reading.
const maxValue = 1e100

// complete reports whether x holds k finite values.
func (m *Model) complete(x []float64) bool {
	if len(x) != m.k {
		panic(fmt.Sprintf("BUG: relation: reading of %d signals for a model of %d", len(x), m.k))
	}
	for _, v := range x {
		// NaN and ±Inf are missing; so are absurd magnitudes, whose squares
		// would overflow the covariance.
		if !(math.Abs(v) <= maxValue) {
			return false
		}
	}
	return true
}

// Severity grades a verdict.
type Severity uint8

// Severities.
const (
	None Severity = iota
	Warning
	Critical
)

// String returns "none", "warning" or "critical".
func (v Severity) String() string {
	switch v {
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return "none"
}

// Stat names a statistic.
type Stat uint8

// Statistics.
const (
	StatT2  Stat = iota // Hotelling's T² on the retained components
	StatSPE             // squared prediction error in the residual subspace
)

// String returns "t2" or "spe".
func (st Stat) String() string {
	if st == StatSPE {
		return "spe"
	}
	return "t2"
}

// Result is the verdict on one reading, with its contribution analysis. It is
// written in place by Judge (about 450 bytes, no pointers).
type Result struct {
	// Judged is false when the reading was not judged: a signal missing
	// (Missing) or the model not yet warm. The other fields are then zero.
	Judged, Missing bool
	// T2, SPE and their limits; T2Score and SPEScore are √(stat/limit).
	T2, T2Limit, T2Score    float64
	SPE, SPELimit, SPEScore float64
	// Score is the larger score, Stat the statistic it comes from, Severity
	// the grade: Warning from 1, Critical from Config.Critical.
	Score    float64
	Stat     Stat
	Severity Severity
	// Top is the signal contributing most: the one furthest from its
	// conditional expectation when that is beyond the per-signal limit
	// (Broken: the normal quantile at Config.Alpha, two-sided) or the
	// statistic is SPE, else the one with the largest T² share.
	Top    int
	Broken bool
	// Per signal (first K entries): the standardised deviation from the
	// mean, the share of T² (complete decomposition, non-negative, summing
	// to T²), the share of SPE (squared standardised residual, summing to
	// SPE), the deviation from the conditional expectation in conditional
	// standard deviations (signed), and that expectation and standard
	// deviation in signal units.
	Z, T2Contrib, SPEContrib, Deviation [MaxSignals]float64
	Expected, ExpectedStd               [MaxSignals]float64
	// partial is set by Assess until Contribute completes the verdict.
	partial bool
}

// Learns reports whether a reading with verdict r should teach the model: the
// learn argument of Observe.
func (m *Model) Learns(r *Result) bool { return r.Score < m.cfg.LearnBelow }

// project standardises x into z and projects it on the eigenvectors into w;
// it returns T² and SPE. The state must have a model (A > 0).
func (m *Model) project(s *State, x []float64, z, w *[MaxSignals]float64) (t2, spe float64) {
	k, a := m.k, int(s.A)
	mu, vec, eig, sc := s.mean(), s.vec(), s.eig(), s.scales()
	for i := range k {
		z[i] = (x[i] - mu[i]) / sc[i]
	}
	for c := range k {
		var d float64
		for i := range k {
			d += vec[i*k+c] * z[i]
		}
		w[c] = d
		if c < a {
			t2 += d * d / eig[c]
		} else {
			spe += d * d
		}
	}
	return t2, spe
}

// Judge judges the complete reading x (k values in the model's order; NaN
// marks a missing signal) against s and writes the verdict into r. It does
// not change s and allocates nothing. It is Assess then Contribute.
func (m *Model) Judge(s *State, x []float64, r *Result) {
	m.Assess(s, x, r)
	m.Contribute(s, r)
}

// Assess is the first half of Judge, what a caller needs for every
// reading: it writes Judged, Missing, the statistics with their limits and
// scores, Score, Stat, Severity, and per signal Z and Expected. The
// contribution analysis (Top, Broken, T2Contrib, SPEContrib, Deviation,
// ExpectedStd) is left zero until Contribute, which a caller runs when the
// reading matters (a score near the limit, an alert to write). It does not
// change s and allocates nothing.
func (m *Model) Assess(s *State, x []float64, r *Result) {
	*r = Result{}
	if !m.complete(x) {
		r.Missing = true
		return
	}
	if !s.Warm || s.A == 0 || int(s.K) != m.k || len(s.Data) != dataLen(m.k) {
		return
	}
	k := m.k
	var w [MaxSignals]float64
	t2, spe := m.project(s, x, &r.Z, &w)
	r.Judged, r.partial = true, true
	r.T2, r.T2Limit, r.T2Score = t2, s.T2Limit, math.Sqrt(t2/s.T2Limit)
	r.SPE, r.SPELimit, r.SPEScore = spe, s.SPELimit, math.Sqrt(spe/s.SPELimit)
	r.Score, r.Stat = r.T2Score, StatT2
	if r.SPEScore > r.T2Score {
		r.Score, r.Stat = r.SPEScore, StatSPE
	}
	switch {
	case r.Score >= m.cfg.Critical:
		r.Severity = Critical
	case r.Score >= 1:
		r.Severity = Warning
	}
	mu, vec, eig, lii, scs := s.mean(), s.vec(), s.eig(), s.lii(), s.scales()
	// Scores per component on the precision: w/λ.
	var wl [MaxSignals]float64
	for c := range k {
		wl[c] = w[c] / eig[c]
	}
	for i := range k {
		var prec float64
		row := vec[i*k : i*k+k]
		for c := range k {
			prec += row[c] * wl[c]
		}
		// (Σ⁻¹z)_i / Λ_ii is z_i minus its conditional expectation.
		e := prec / lii[i]
		r.Expected[i] = mu[i] + scs[i]*(r.Z[i]-e)
	}
}

// Contribute completes the verdict r that Assess wrote for a reading against
// the same, unchanged s: the contribution analysis. It does nothing when r
// is complete already (Judge's, or Contribute's before) or not judged.
func (m *Model) Contribute(s *State, r *Result) {
	if !r.Judged || !r.partial || int(s.K) != m.k || len(s.Data) != dataLen(m.k) {
		return
	}
	r.partial = false
	k, a := m.k, int(s.A)
	vec, eig, lii, scs := s.vec(), s.eig(), s.lii(), s.scales()
	// The projection again, as project computed it.
	var w [MaxSignals]float64
	for c := range k {
		var d float64
		for i := range k {
			d += vec[i*k+c] * r.Z[i]
		}
		w[c] = d
	}
	// Scores per component: w/√λ for T², w/λ for the precision.
	var wh, wl [MaxSignals]float64
	for c := range k {
		wl[c] = w[c] / eig[c]
		if c < a {
			wh[c] = w[c] / math.Sqrt(eig[c])
		}
	}
	bestT2, bestDev := -1.0, -1.0
	topT2, topDev := 0, 0
	for i := range k {
		var half, proj, prec float64
		row := vec[i*k : i*k+k]
		for c := range a {
			half += row[c] * wh[c]
			proj += row[c] * w[c]
		}
		for c := range k {
			prec += row[c] * wl[c]
		}
		r.T2Contrib[i] = half * half
		res := r.Z[i] - proj
		r.SPEContrib[i] = res * res
		e := prec / lii[i]
		sd := 1 / math.Sqrt(lii[i])
		r.Deviation[i] = e / sd
		r.ExpectedStd[i] = scs[i] * sd
		if r.T2Contrib[i] > bestT2 {
			bestT2, topT2 = r.T2Contrib[i], i
		}
		if d := math.Abs(r.Deviation[i]); d > bestDev {
			bestDev, topDev = d, i
		}
	}
	// A signal off its conditional expectation beyond the per-signal
	// limit is a broken relation, whichever statistic carries it (with few
	// signals a retained minor component can carry a break into T²);
	// otherwise the reading moved along the learned relation and the
	// largest T² share names it.
	r.Top = topT2
	if r.Broken = bestDev >= m.devLimit; r.Broken || r.Stat == StatSPE {
		r.Top = topDev
	}
}

// ExpectedWithout writes into e, for every signal j but b, its expected
// value given the signals of the reading judged into r other than j and b
// (signal units): Result.Expected with signal b left out, for when b is the
// one that broke the relation and must not drag its partners' expectations
// along. e[b] is set to NaN. r must be Judge's verdict on a reading against
// the same, unchanged s (r.Judged); otherwise e is left alone. It allocates
// nothing: the standardised precision matrix V Λ⁻¹ Vᵀ is rebuilt on the
// stack, and b is marginalised out by its Schur complement.
func (m *Model) ExpectedWithout(s *State, r *Result, b int, e []float64) {
	k := m.k
	if !r.Judged || b < 0 || b >= k || len(e) < k {
		return
	}
	vec, eig, mu, sc := s.vec(), s.eig(), s.mean(), s.scales()
	var p [MaxSignals][MaxSignals]float64
	for i := range k {
		for j := i; j < k; j++ {
			var v float64
			for c := range k {
				v += vec[i*k+c] * vec[j*k+c] / eig[c]
			}
			p[i][j], p[j][i] = v, v
		}
	}
	pbb := p[b][b]
	for j := range k {
		if j == b {
			e[j] = math.NaN()
			continue
		}
		pjj := p[j][j] - p[j][b]*p[b][j]/pbb
		var acc float64
		for i := range k {
			if i != j && i != b {
				acc += (p[j][i] - p[j][b]*p[b][i]/pbb) * r.Z[i]
			}
		}
		e[j] = mu[j] - sc[j]*acc/pjj
	}
}

// Observe records the complete reading x at event time t. learn is the
// caller's verdict (Model.Learns of Judge's result): when false the estimates
// are left alone, unless RelearnAfter readings in a row have been kept out.
// A reading with a missing signal (NaN, ±Inf or beyond ±1e100) is only
// counted. It reports whether the
// reading was learned, and allocates nothing.
func (m *Model) Observe(s *State, x []float64, t int64, learn bool) bool {
	return m.observe(s, x, t, learn, nil)
}

// Update is Observe for the reading x that Judge has just judged into r
// against the same, unchanged s: it learns when Learns(r) and reuses r's
// statistics instead of computing them again. This is the per-reading call:
// Judge, then Update.
func (m *Model) Update(s *State, x []float64, t int64, r *Result) bool {
	return m.observe(s, x, t, m.Learns(r), r)
}

func (m *Model) observe(s *State, x []float64, t int64, learn bool, r *Result) bool {
	if !m.complete(x) {
		if s.Skipped < math.MaxUint32 {
			s.Skipped++
		}
		return false
	}
	if int(s.K) != m.k || len(s.Data) != dataLen(m.k) {
		// A state of another signal set (the device's signals changed, or
		// a zero State): learn afresh.
		*s = m.NewState()
	}
	s.Last = t
	if !learn && s.N > 0 {
		if s.Gated < math.MaxUint32 {
			s.Gated++
		}
		if m.cfg.RelearnAfter == 0 || int(s.Gated) <= m.cfg.RelearnAfter {
			return false
		}
	} else {
		s.Gated = 0
	}
	k := m.k
	mu, cov := s.mean(), s.cov()
	if s.N < math.MaxUint32 {
		s.N++
	}
	if s.N == 1 {
		s.First = t
		copy(mu, x)
		clear(cov)
		return true
	}
	// Winsorise: a reading beyond Clip × the limit distance counts as one at
	// that distance, so no single reading can move the model much.
	u := 1.0
	if s.A > 0 {
		var t2, spe float64
		if r != nil && r.Judged {
			t2, spe = r.T2, r.SPE
		} else {
			var z, w [MaxSignals]float64
			t2, spe = m.project(s, x, &z, &w)
		}
		var score float64
		if r != nil && r.Judged {
			score = max(r.T2Score, r.SPEScore) // √ is monotonic: the same value
		} else {
			score = math.Sqrt(max(t2/s.T2Limit, spe/s.SPELimit))
		}
		if m.cfg.Clip > 0 && score > m.cfg.Clip {
			u = m.cfg.Clip / score
		}
		// The moments forget at the model's pace from their Gaussian start:
		// a faster start would let a few early outliers widen the limits.
		if s.NM < math.MaxUint32 {
			s.NM++
		}
		// Raw values, not winsorised: the moments then also see how much
		// the winsorised covariance understates the spread, and widen the
		// limits to match.
		ewMoment(&s.MT, &s.VT, min(t2, s.T2Limit)/float64(s.A), m.alpha)
		ewMoment(&s.MQ, &s.VQ, min(spe, s.SPELimit)/s.Theta1, m.alpha)
	}
	a := max(1/float64(s.N), m.alpha)
	var d [MaxSignals]float64
	for i := range k {
		d[i] = u * (x[i] - mu[i])
		mu[i] += a * d[i]
	}
	p := 0
	for i := range k {
		for j := i; j < k; j++ {
			cov[p] = (1 - a) * (cov[p] + a*d[i]*d[j])
			p++
		}
	}
	if s.Since < math.MaxUint32 {
		s.Since++
	}
	if !s.Warm && int(s.N) >= m.cfg.Warmup &&
		(m.cfg.WarmupDuration == 0 || t-s.First >= int64(m.cfg.WarmupDuration)) {
		s.Warm = true
		m.Refresh(s)
	}
	if (s.A == 0 && s.N >= robustStart) || int(s.Since) >= m.cfg.Refresh {
		m.Refresh(s)
	}
	return true
}

func ewMoment(mean, vr *float64, x, b float64) {
	d := x - *mean
	*mean += b * d
	*vr = (1 - b) * (*vr + b*d*d)
}

// Refresh rebuilds the principal component model and the control limits from
// the current estimates. Observe calls it every Config.Refresh learned
// readings; call it after restoring or editing a state. It allocates nothing.
func (m *Model) Refresh(s *State) {
	k := m.k
	if s.N < 2 || int(s.K) != k || len(s.Data) != dataLen(k) {
		return
	}
	sc := s.scales()
	for i := range k {
		sc[i] = m.scale(s, i)
	}
	var r, v matrix
	cov := s.cov()
	for i := range k {
		r[i][i] = 1 // a floored (near-constant) signal is shrunk towards independence
		for j := i + 1; j < k; j++ {
			c := cov[tri(k, i, j)] / (sc[i] * sc[j])
			c = min(max(c, -1), 1)
			r[i][j], r[j][i] = c, c
		}
	}
	jacobi(&r, &v, k)
	// Sort the eigenpairs by decreasing eigenvalue (insertion sort on an
	// index: k ≤ 8).
	var idx [MaxSignals]int
	for i := range k {
		idx[i] = i
		for j := i; j > 0 && r[idx[j]][idx[j]] > r[idx[j-1]][idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	eig, vec, lii := s.eig(), s.vec(), s.lii()
	var total float64
	for c := range k {
		eig[c] = max(r[idx[c]][idx[c]], eigFloor)
		total += eig[c]
		for i := range k {
			vec[i*k+c] = v[i][idx[c]]
		}
	}
	a, cum := 0, 0.0
	for a < k-1 {
		cum += eig[a]
		a++
		if cum >= m.cfg.Variance*total {
			break
		}
	}
	var theta1, theta2 float64
	for c := a; c < k; c++ {
		theta1 += eig[c]
		theta2 += eig[c] * eig[c]
	}
	for i := range k {
		var l float64
		for c := range k {
			l += vec[i*k+c] * vec[i*k+c] / eig[c]
		}
		lii[i] = l
	}
	if s.Theta1 == 0 {
		// The first model: the moments of the statistics start from their
		// Gaussian values.
		s.MT, s.VT = 1, 2/float64(a)
		s.MQ, s.VQ = 1, 2*theta2/(theta1*theta1)
	}
	s.A, s.Theta1, s.Since = uint8(a), theta1, 0

	fa := float64(a)
	t2 := m.t2Limit(a, float64(s.N))
	spe := m.scaledChi2(theta1, 2*theta2, 0)
	if s.NM >= momentMin {
		t2 = m.scaledChi2(s.MT*fa, s.VT*fa*fa, t2)
		spe = m.scaledChi2(s.MQ*theta1, s.VQ*theta1*theta1, spe)
	}
	s.T2Limit, s.SPELimit = t2, spe
}

// scaledChi2 returns the larger of floor and the (1 − Alpha)-quantile of
// g·χ²_h with mean m and variance v (Box). The quantile, an inversion of
// the incomplete gamma function, costs microseconds, most of a refresh; it
// is skipped when a cheap upper bound on it (Chernoff's) shows that floor
// is the larger, and taken from a constant for one degree of freedom (the
// SPE of one discarded component).
func (m *Model) scaledChi2(mean, vr, floor float64) float64 {
	g, h := vr/(2*mean), 2*mean*mean/vr
	if !(g > 0 && g < math.MaxFloat64) || !(h > 0 && h < math.MaxFloat64) {
		// Never binding.
		return max(floor, math.SmallestNonzeroFloat64)
	}
	// gonum's quantile loops on a NaN shape and crawls on extreme ones.
	h = min(max(h, 0.05), 1e6)
	if floor > 0 && g*h*chernoffRatio(h, m.chernoff)*(1+1e-6) <= floor {
		return floor
	}
	q := m.chi1
	if h != 1 {
		q = distuv.ChiSquared{K: h}.Quantile(1 - m.cfg.Alpha)
	}
	return max(floor, g*q)
}

// chernoffRatio returns u > 1 with (h/2)(u − 1 − ln u) = c: by Chernoff's
// bound, P(χ²_h ≥ u·h) ≤ exp(−(h/2)(u − 1 − ln u)), so the χ²_h quantile
// at 1 − e^−c is at most u·h. Newton's method from above converges
// monotonically (the function is convex and increasing for u > 1), so every
// iterate is itself an upper bound.
func chernoffRatio(h, c float64) float64 {
	t := 2 * c / h                  // u − 1 − ln u = t
	u := 1 + t + math.Sqrt(2*t) + 1 // above the root: u − 1 − ln u ≥ t there
	for range 8 {
		f := u - 1 - math.Log(u) - t
		if f <= 1e-12*t {
			break
		}
		u -= f / (1 - 1/u)
	}
	return u
}
