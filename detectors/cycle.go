package detectors

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/dsp/fourier"

	"github.com/vigil-iot/vigil/baselines"
	"github.com/vigil-iot/vigil/pipeline"
)

// Cycle-aware baselines. Per signal, readings are averaged into time bins
// (widths a power of two of milliseconds) in a ring of cycleBins; every
// cycleEvery bins the ring is searched for a dominant period (the
// autocorrelation of the binned series, by FFT). A period that is both
// significant (autocorrelation strength) and worth modelling (amplitude
// against the noise) and is found twice in a row becomes the signal's cycle:
// a profile of cyclePhases phase bins (the seasonal component, zero mean) is
// learned, and the plant checks judge x − profile(phase) instead of x. A
// signal without such a period keeps a zero seasonal component, and its checks
// do exactly what they did before cycles existed.
//
// The ring starts with bins of about MinPeriod/8 and, while no cycle is
// found, halves its resolution each time it is full (pairs of bins are
// merged), so a fixed 256 bins cover periods from MinPeriod to MaxPeriod in
// turn; at the coarsest width it starts again from the finest. Once a cycle
// is found the width stays and the ring slides.

// Sizes of the cycle memory; not worth a knob.
const (
	cycleBins   = 256 // bins in the period-search ring
	cyclePhases = 32  // phase bins of the learned profile
	cycleEvery  = 32  // bins between two period searches
	cycleMinLag = 6   // shortest period searched, in bins
	cycleSpan   = 2.5 // periods the searched window must span
	cycleFill   = 0.8 // share of non-empty bins a search needs
	cycleMisses = 4   // searches in a row without the cycle before it is lost
	cycleEmpty  = math.MinInt16
	cycleClip   = 4              // a sample teaches the profile at most this many spreads away
	cycleMaxLvl = 30             // widest bin: 2^30 ms, about 12 days
	cycleStart  = 2 * cycleEvery // readings a signal needs before it gets cycle memory
)

// CycleConfig configures cycle-aware baselines: finding a signal's dominant
// period and judging the spike, drift, fluctuation and rate checks on the
// residual from its learned profile (see docs/DETECTION.md).
type CycleConfig struct {
	// Enabled turns cycle detection on for every signal of the class.
	Enabled bool `yaml:"enabled"`
	// MinPeriod and MaxPeriod bound the periods searched.
	MinPeriod time.Duration `yaml:"min_period"`
	MaxPeriod time.Duration `yaml:"max_period"`
	// MinStrength is the autocorrelation strength a period needs to be
	// significant: half the rise of the autocorrelation from its dip to its
	// peak at the period (a pure sinusoid scores its share of the variance of
	// the binned series; white noise of 200 bins about 0.1).
	MinStrength float64 `yaml:"min_strength"`
	// MinAmplitude is the amplitude the cycle needs, in standard deviations
	// of the noise around it (√2 × the profile's standard deviation, so a
	// sinusoid's amplitude), to be worth modelling: a cycle smaller than the
	// noise does no harm to the checks.
	MinAmplitude float64 `yaml:"min_amplitude"`
	// Tolerance is the relative change of period that counts as a new rhythm.
	Tolerance float64 `yaml:"tolerance"`
	// Learn is the profile's learning rate per period: each phase bin moves
	// this share of the way towards what it sees in one period.
	Learn float64 `yaml:"learn"`
	// Rhythm is the lifecycle of the signal.rhythm alert, raised when a
	// learned cycle changes its period or stops.
	Rhythm Rule `yaml:"rhythm"`
}

// DefaultCycles returns the defaults: on, periods from 30 s to 25 h,
// strength 0.5, amplitude at least twice the noise, 10 % tolerance.
func DefaultCycles() CycleConfig {
	return CycleConfig{
		Enabled:      true,
		MinPeriod:    30 * time.Second,
		MaxPeriod:    25 * time.Hour,
		MinStrength:  0.5,
		MinAmplitude: 1.5,
		Tolerance:    0.1,
		Learn:        0.2,
		Rhythm:       Rule{Hold: 1, Clear: 1},
	}
}

// Validate checks the configuration.
func (c *CycleConfig) Validate() error {
	var errs []error
	if c.MinPeriod < time.Second || c.MaxPeriod < 4*c.MinPeriod || c.MaxPeriod > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("need min_period >= 1s and 4 × min_period <= max_period <= 720h, got %v and %v", c.MinPeriod, c.MaxPeriod))
	}
	if !(c.MinStrength > 0 && c.MinStrength < 1) {
		errs = append(errs, fmt.Errorf("min_strength must be in (0, 1), got %v", c.MinStrength))
	}
	if !(c.MinAmplitude >= 0) || math.IsInf(c.MinAmplitude, 1) {
		errs = append(errs, fmt.Errorf("min_amplitude must be a non-negative number, got %v", c.MinAmplitude))
	}
	if !(c.Tolerance > 0 && c.Tolerance < 1) {
		errs = append(errs, fmt.Errorf("tolerance must be in (0, 1), got %v", c.Tolerance))
	}
	if !(c.Learn > 0 && c.Learn <= 1) {
		errs = append(errs, fmt.Errorf("learn must be in (0, 1], got %v", c.Learn))
	}
	errs = append(errs, prefix("rhythm", c.Rhythm.Validate()))
	return errors.Join(errs...)
}

// cycles is the compiled form of a CycleConfig.
type cycles struct {
	cfg        CycleConfig
	start, top uint8 // finest and coarsest bin widths, as log2 ms
	rhythm     Check
}

func compileCycles(c CycleConfig) *cycles {
	if !c.Enabled {
		return nil
	}
	cy := &cycles{cfg: c}
	for ms := c.MinPeriod.Milliseconds() / 8; cy.start < cycleMaxLvl && int64(1)<<cy.start < ms; cy.start++ {
	}
	need := cycleSpan * float64(c.MaxPeriod.Milliseconds()) / cycleBins
	for cy.top = cy.start; cy.top < cycleMaxLvl && float64(int64(1)<<cy.top) < need; cy.top++ {
	}
	cy.rhythm = Check{Detector: "signal.rhythm", Kind: "rhythm", Rule: c.Rhythm, Stat: StatPeriod, describe: describeRhythm}
	return cy
}

// CycleState is one signal's cycle memory, in DeviceExtra.Cycles. It is
// made once the signal has cycleStart readings (see cycleReady), so a device
// that sends a few readings pays nothing for it. It holds what every
// reading touches, the open bin
// (56 B, so the hot memory of a device's signals stays within a few cache
// lines); the period-search ring, touched when a bin closes, is behind Ring,
// and a learned cycle behind Model.
type CycleState struct {
	// Bin is the index (time / width) of the open bin; BinN, BinMean and
	// BinM2 its count, mean and sum of squared deviations, BinKept the
	// readings of it that taught the baseline.
	Bin            int64
	BinMean, BinM2 float64
	BinN, BinKept  uint32
	Level          uint8 // bin width 2^Level ms; 0 before the first reading
	// Ring is the period-search memory (never nil once made).
	Ring *CycleRing
	// Model is the learned cycle; nil until the first is found. It stays
	// (with Period 0) when the cycle is lost, for its rhythm episode.
	Model *CycleModel
}

// CycleRing is the period-search memory of a signal: the ring of bin means
// and what the search and the bins keep between searches. 552 B.
type CycleRing struct {
	Ref    float64
	Cand   float64 // the candidate period (ns) found by the last search
	Exp    int16
	Head   uint16  // where the next bin goes
	Filled uint16  // bins in the ring
	Since  uint16  // bins closed since the last search
	Found  uint8   // searches in a row that found the candidate
	Misses uint8   // searches in a row that did not find the cycle
	Gone   float32 // EW share of recent bins left empty as anomalous
	Within float32 // EW variance of readings within a bin: the noise
	PerBin float32 // EW readings per bin
	// Bins is the ring of bin means, oldest at Head once full, stored as
	// (mean − Ref) / 2^Exp in 16 bits (cycleEmpty: no reading in the bin);
	// Exp grows when a value does not fit, so the resolution is 1/32767 of
	// the largest deviation seen in the ring.
	Bins [cycleBins]int16
}

// CycleModel is a learned cycle: its period, phase and profile. 184 B.
type CycleModel struct {
	Period        float64 // ns, 0: none (the cycle was lost)
	T0            int64   // event time at which its phase is 0
	Gain          float32 // per-reading learning rate of the profile
	Strength, Amp float32 // of the last search that found it
	// Low and High are the profile's extremes: while a cycle is learned, the
	// ring takes readings clipped to them (widened by cycleClip spreads
	// around the level), so a large anomaly cannot hide the cycle from the
	// search while a new rhythm of the same range passes whole.
	Low, High float32
	// Rhythm is the episode of the signal.rhythm alert.
	Rhythm  Episode
	Profile [cyclePhases]float32
}

// width returns the bin width in ns.
func (s *CycleState) width() int64 { return int64(time.Millisecond) << s.Level }

// Active reports whether the signal has a learned cycle.
func (s *CycleState) Active() bool { return s.Model != nil && s.Model.Period > 0 }

// model returns the learned cycle, nil when there is none.
func (s *CycleState) model() *CycleModel {
	if s.Model != nil && s.Model.Period > 0 {
		return s.Model
	}
	return nil
}

// rhythm returns the signal.rhythm episode, nil when no cycle was ever
// learned (then there is none).
func (s *CycleState) rhythm() *Episode {
	if s.Model == nil {
		return nil
	}
	return &s.Model.Rhythm
}

// phase returns the profile bin k at or before event time t and the
// fraction f of the way to the next.
func (m *CycleModel) phase(t int64) (k int, f float64) {
	ph := math.Mod(float64(t-m.T0), m.Period)
	if ph < 0 {
		ph += m.Period
	}
	ph = ph/m.Period*cyclePhases - 0.5
	i := math.Floor(ph)
	return (int(i) + cyclePhases) % cyclePhases, ph - i
}

// phaseMemo remembers a learned cycle's phase at one event time. The checks,
// the relation check and the profile's update all need the phase of a
// signal's reading, and math.Mod is not cheap; phase is a function of the
// time, T0 and the period only, so a memo that matches all three returns
// exactly what phase would. The zero memo matches no learned cycle (its
// period is positive).
type phaseMemo struct {
	t, t0  int64
	period float64
	k      int
	f      float64
}

// phase returns m.phase(t), from the memo when it matches.
func (pm *phaseMemo) phase(m *CycleModel, t int64) (int, float64) {
	if pm.t != t || pm.t0 != m.T0 || pm.period != m.Period {
		pm.k, pm.f = m.phase(t)
		pm.t, pm.t0, pm.period = t, m.T0, m.Period
	}
	return pm.k, pm.f
}

// season returns the seasonal component at event time t: 0 without a cycle.
func (s *CycleState) season(t int64) float64 {
	m := s.model()
	if m == nil {
		return 0
	}
	k, f := m.phase(t)
	return (1-f)*float64(m.Profile[k]) + f*float64(m.Profile[(k+1)%cyclePhases])
}

// judged returns the seasonal component of reading x at event time t (see
// Season). The phase of a reading is
// only known to within one phase bin (the profile is piecewise linear between
// bin centres, and a batch cycle's edges are steeper than that), so the checks
// are given the value of the profile within one phase bin either side that is
// nearest to x − level: a reading inside the profile's local range has no
// residual beyond the level. Without a cycle both are 0. pm remembers the
// phase for the reading's other uses.
func (s *CycleState) judged(x, level float64, t int64, pm *phaseMemo) Season {
	m := s.model()
	if m == nil {
		return Season{}
	}
	k, f := pm.phase(m, t)
	p := func(j int) float64 { return float64(m.Profile[(k+j+cyclePhases)%cyclePhases]) }
	at := (1-f)*p(0) + f*p(1)
	before := f*p(0) + (1-f)*p(-1) // one bin earlier
	after := (1-f)*p(1) + f*p(2)   // one bin later
	lo := min(before, p(0), p(1), after)
	hi := max(before, p(0), p(1), after)
	return Season{At: at, Near: min(max(x-level, lo), hi)}
}

// cycleReady reports whether signal s has been seen long enough to be given
// cycle memory: once its baseline has learned cycleStart readings. The ring
// is first searched when 2 × cycleEvery bins have closed, so a signal with
// fewer readings cannot have shown a cycle yet, and a device that sends a
// few readings (a spoofed device ID, a one-off message) costs no more than
// it did without cycles. N only grows, so the decision is a function of the
// signal's state: a restored snapshot makes the memory at the same reading.
func cycleReady(s *SignalState) bool { return s.Base.N >= cycleStart }

// newCycleState returns fresh cycle memory: the ring made, no model.
func newCycleState() CycleState { return CycleState{Ring: new(CycleRing)} }

// cycleEvent is what observing a reading did to the cycle model.
type cycleEvent uint8

const (
	cycleNone    cycleEvent = iota
	cycleFound              // a cycle was found (silently)
	cycleChanged            // the cycle changed its period
	cycleLost               // the cycle stopped
)

// cycleScratch is the working memory of the period search, owned by one
// Engine (the FFT plan is not safe for concurrent use).
type cycleScratch struct {
	fft  *fourier.FFT
	x    [2 * cycleBins]float64
	coef [cycleBins + 1]complex128
	acf  [2 * cycleBins]float64
	dev  [cycleBins]float64
	ph   [cycleBins]uint8
	fold [cyclePhases]float64
	cnt  [cyclePhases]float64
}

func newCycleScratch() *cycleScratch {
	return &cycleScratch{fft: fourier.NewFFT(2 * cycleBins)}
}

// rhythmNote says what a rhythm alert reports: the period before and after
// (ns, 0: none).
type rhythmNote struct{ from, to float64 }

// observe teaches the cycle memory reading x at event time t. season is the
// profile's value at t (judged's nominal), learned whether the baseline learned
// the reading (the profile learns only such readings; the ring takes all, so
// that a new rhythm is seen although its readings are judged anomalous). On a
// change of model it re-seeds the signal's baseline and detector memory for
// the residual. It reports what changed.
func (cy *cycles) observe(s *CycleState, sig *SignalState, l *baselines.Learner, x, season float64, t int64, learned bool, sc *cycleScratch, pm *phaseMemo, note *rhythmNote) cycleEvent {
	if s.Level == 0 {
		cy.begin(s, sig, t)
	}
	if m := s.model(); m != nil {
		if learned {
			cy.teach(m, sig, l, x, season, t, pm)
		}
		lv, sp := sig.Base.Mean, cycleClip*l.Spread(&sig.Base)
		x = min(max(x, lv+float64(m.Low)-sp), lv+float64(m.High)+sp)
	}
	ev := cycleNone
	// t / width > Bin, without the division while the bin is open (event
	// times before 1970 take the division).
	if w := s.width(); t >= (s.Bin+1)*w || t < 0 {
		if idx := t / w; idx > s.Bin {
			cy.closeBins(s, idx)
			if g := s.Ring; g.Since >= cycleEvery && int(g.Filled) >= 2*cycleEvery {
				g.Since = 0
				ev = cy.search(s, sig, l, sc, note)
			}
		}
	}
	// Welford within the open bin (late readings join the open bin).
	if learned {
		s.BinKept++
	}
	s.BinN++
	d := x - s.BinMean
	s.BinMean += d / float64(s.BinN)
	s.BinM2 += d * (x - s.BinMean)
	return ev
}

// begin starts the memory of a signal that has been seen before: its ring
// starts where the signal did, and the bins its earlier readings would have
// closed (taken as evenly spaced) are closed empty, so that the bin grid, the
// merges and the searches follow the schedule they would have followed had
// the memory been there from the first reading.
func (cy *cycles) begin(s *CycleState, sig *SignalState, t int64) {
	first := min(sig.Base.First, t)
	cy.restart(s, first)
	n := int64(sig.Base.N) // readings before this one (those learned: all of them, but for anomalies)
	g := s.Ring
	for i := int64(1); i < n; i++ {
		ti := first + int64(float64(t-first)*float64(i)/float64(n))
		if idx := ti / s.width(); idx > s.Bin {
			cy.closeBins(s, idx)
			if g.Since >= cycleEvery && int(g.Filled) >= 2*cycleEvery {
				// A search of an empty ring finds nothing.
				g.Since, g.Cand, g.Found = 0, 0, 0
			}
		}
	}
}

// restart empties the ring at the finest width.
func (cy *cycles) restart(s *CycleState, t int64) {
	g := s.Ring
	s.Level = max(cy.start, 1)
	g.Head, g.Filled, g.Since, g.Exp, g.Ref = 0, 0, 0, -60, 0
	s.Bin = t / s.width()
	s.BinN, s.BinKept, s.BinMean, s.BinM2 = 0, 0, 0, 0
}

// closeBins closes the open bin and the empty ones up to idx (exclusive).
func (cy *cycles) closeBins(s *CycleState, idx int64) {
	g := s.Ring
	if s.BinN > 0 {
		// Mostly anomalous readings: the bin is left empty, so that an
		// anomaly cannot hide a cycle from the search for as long as it
		// stays in the ring, nor recurring anomalies pass for a cycle;
		// unless that has been the case for a fifth of the recent bins:
		// then the signal is not having an anomaly but a new rhythm, which
		// the search must see.
		gone := 2*s.BinKept < s.BinN
		if gone {
			g.Gone += (1 - g.Gone) / 64
		} else {
			g.Gone -= g.Gone / 64
		}
		if gone && g.Gone < 0.2 {
			s.BinN = 0
		}
	}
	if s.BinN > 1 {
		v := float32(s.BinM2 / float64(s.BinN-1))
		if g.PerBin == 0 {
			g.Within, g.PerBin = v, float32(s.BinN)
		} else {
			g.Within += (v - g.Within) / 32
			g.PerBin += (float32(s.BinN) - g.PerBin) / 32
		}
	} else if s.BinN == 1 && g.PerBin != 0 {
		g.PerBin += (1 - g.PerBin) / 32
	}
	if s.BinN > 0 {
		g.push(s.BinMean)
	} else {
		g.push(math.NaN())
	}
	gap := idx - s.Bin - 1
	if gap >= cycleBins {
		g.Head, g.Filled = 0, 0
		gap = 0
	}
	for ; gap > 0; gap-- {
		g.push(math.NaN())
	}
	s.Bin = idx
	s.BinN, s.BinKept, s.BinMean, s.BinM2 = 0, 0, 0, 0
	// Without a cycle, a full ring halves its resolution (pairs must align:
	// the open bin must be the first of a pair) or, at the coarsest width,
	// starts again from the finest.
	if s.model() == nil && g.Filled == cycleBins && s.Bin%2 == 0 {
		if s.Level >= cy.top {
			if g.Since >= cycleEvery {
				return // search this full ring first
			}
			cy.restart(s, s.Bin*s.width())
			return
		}
		cy.merge(s)
	}
}

// push appends one bin mean (NaN: empty) to the ring.
func (g *CycleRing) push(v float64) {
	q := int16(cycleEmpty)
	if !math.IsNaN(v) {
		if g.Filled == 0 {
			g.Ref, g.Exp = v, -60
		}
		d := math.Ldexp(v-g.Ref, -int(g.Exp))
		if a := math.Abs(d); a > math.MaxInt16 {
			_, e := math.Frexp(a / math.MaxInt16)
			g.rescale(e)
			d = math.Ldexp(d, -e)
		}
		q = int16(math.Round(d))
		if q == cycleEmpty {
			q++
		}
	}
	g.Bins[g.Head] = q
	g.Head = (g.Head + 1) % cycleBins
	if g.Filled < cycleBins {
		g.Filled++
	}
	g.Since++
}

// rescale divides the stored bins by 2^e (e > 0).
func (g *CycleRing) rescale(e int) {
	g.Exp += int16(e)
	for i, q := range g.Bins {
		if q != cycleEmpty {
			g.Bins[i] = int16(math.Round(math.Ldexp(float64(q), -e)))
		}
	}
}

// sharpen scales the stored bins up when the largest no longer needs the
// range (a large deviation that set Exp has left the ring).
func (g *CycleRing) sharpen() {
	var m int
	for _, q := range g.Bins {
		if q != cycleEmpty {
			m = max(m, abs16(q))
		}
	}
	e := 0
	for m > 0 && m<<(e+1) <= math.MaxInt16 && g.Exp-int16(e) > -60 {
		e++
	}
	if e == 0 {
		return
	}
	g.Exp -= int16(e)
	for i, q := range g.Bins {
		if q != cycleEmpty {
			g.Bins[i] = q << e
		}
	}
}

func abs16(q int16) int {
	if q < 0 {
		return -int(q)
	}
	return int(q)
}

// merge halves the ring's resolution: each pair of bins becomes one.
func (cy *cycles) merge(s *CycleState) {
	g := s.Ring
	var out [cycleBins / 2]int16
	for j := range out {
		a := g.Bins[(int(g.Head)+2*j)%cycleBins]
		b := g.Bins[(int(g.Head)+2*j+1)%cycleBins]
		switch {
		case a == cycleEmpty:
			out[j] = b
		case b == cycleEmpty:
			out[j] = a
		default:
			out[j] = int16((int32(a) + int32(b)) / 2)
		}
	}
	copy(g.Bins[:], out[:])
	g.Head, g.Filled, g.Since = cycleBins/2, cycleBins/2, cycleEvery
	s.Level++
	s.Bin /= 2
}

// values writes ring bins skip, skip+1, … (0: oldest) into x in signal
// units, NaN for an empty bin, and returns how many are not empty.
func (g *CycleRing) values(x []float64, skip int) int {
	start := skip
	if g.Filled == cycleBins {
		start += int(g.Head)
	}
	// Exact as Ldexp is: Exp ≥ −60 keeps every product a normal number.
	scale := math.Ldexp(1, int(g.Exp))
	nan := math.NaN()
	have := 0
	for i := range x {
		q := g.Bins[(start+i)%cycleBins]
		if q == cycleEmpty {
			x[i] = nan
			continue
		}
		x[i] = g.Ref + float64(q)*scale
		have++
	}
	return have
}

// found is what a period search found.
type found struct {
	period   float64 // bins
	strength float64
	amp      float64
	noise    float64 // variance of the readings around the profile
	t0       int64   // event time of phase 0 of the fold
	phases   int     // phase bins of the fold
	level    float64 // the trend line at the end of the window
	skipped  bool    // too few bins to search
}

// search looks for the dominant period in the ring and updates the model.
func (cy *cycles) search(s *CycleState, sig *SignalState, l *baselines.Learner, sc *cycleScratch, note *rhythmNote) cycleEvent {
	f, ok := cy.find(s, sc)
	g := s.Ring
	w := float64(s.width())
	tol := cy.cfg.Tolerance
	near := func(a, b float64) bool { return a > 0 && b > 0 && math.Abs(a-b) <= tol*b }
	m := s.model()
	if m == nil {
		if !ok || !cy.strong(&f) {
			g.Cand, g.Found = 0, 0
			return cycleNone
		}
		if !near(f.period*w, g.Cand) {
			g.Cand, g.Found = f.period*w, 1
			return cycleNone
		}
		cy.adopt(s, sig, &f, sc)
		return cycleFound
	}
	if ok && near(f.period*w, m.Period) {
		g.Misses, g.Cand = 0, 0
		cy.realign(s, &f, sc)
		return cycleNone
	}
	if f.skipped {
		return cycleNone
	}
	g.Misses++
	if ok && cy.strong(&f) {
		if near(f.period*w, g.Cand) {
			if g.Found++; g.Found >= 2 {
				*note = rhythmNote{from: m.Period, to: f.period * w}
				cy.adopt(s, sig, &f, sc)
				return cycleChanged
			}
			return cycleNone
		}
		g.Cand, g.Found = f.period*w, 0
		return cycleNone // the next searches confirm it or not
	}
	g.Cand = 0
	if g.Misses >= cycleMisses {
		*note = rhythmNote{from: m.Period}
		cy.drop(s, sig)
		cy.restart(s, s.Bin*s.width())
		return cycleLost
	}
	return cycleNone
}

// find searches the ring: its autocorrelation's strongest peak, refined,
// and the fold of the ring at that period.
func (cy *cycles) find(s *CycleState, sc *cycleScratch) (found, bool) {
	g := s.Ring
	g.sharpen()
	n := int(g.Filled)
	w := float64(s.width())
	prefer := 0.0 // the learned period, in bins
	if m := s.model(); m != nil {
		// A learned cycle is looked for in its last three periods (at
		// least half the ring), so that a new rhythm shows after a few of
		// its own periods rather than after the whole ring has turned over.
		prefer = m.Period / w
		n = min(n, max(cycleBins/2, int(math.Ceil(3*prefer))))
	}
	x := sc.x[:n]
	have := g.values(x, int(g.Filled)-n)
	if float64(have) < cycleFill*float64(n) {
		return found{skipped: true}, false
	}
	interpolate(x)
	level := detrend(x)
	var v0 float64
	for _, v := range x {
		v0 += v * v
	}
	if v0 == 0 {
		return found{}, false
	}
	// The amplitude test below needs 2·cyc ≥ (min_amplitude/2)²·noise, and
	// the noise is at least the variance within bins, the fold's variance
	// cyc at most about the ring's (its medians vary a little more than
	// means: a 1.5 margin). A ring whose whole variance is below that holds
	// no cycle worth modelling: the FFTs, most of a search's cost, are
	// skipped, with the outcome of a search that finds nothing.
	if a := cy.cfg.MinAmplitude / 2; g.PerBin >= 2 && 2*1.5*v0/float64(n) < a*a*float64(g.Within) {
		return found{}, false
	}
	// A signal without a cycle adopts one only if it is strong, with an
	// amplitude of at least min_amplitude, i.e. 2·cyc ≥ min_amplitude²·noise.
	// Each phase bin's median is within one standard deviation of the
	// bin's mean, so the fold's variance cyc is at most twice the ring's
	// mean square v0/n, and the noise is at least the variance within bins:
	// a ring with 4·v0/n below min_amplitude²·within cannot hold a cycle to
	// adopt, whatever its period. The search then ends as one that finds
	// nothing strong would (a margin of 1e-6 covers rounding).
	if a := cy.cfg.MinAmplitude; prefer == 0 && g.PerBin >= 2 && 4*(1+1e-6)*v0/float64(n) < a*a*float64(g.Within) {
		return found{}, false
	}
	// Autocorrelation by FFT, zero-padded against wrap-around.
	clear(sc.x[n:])
	sc.fft.Coefficients(sc.coef[:], sc.x[:])
	for i, c := range sc.coef {
		sc.coef[i] = complex(real(c)*real(c)+imag(c)*imag(c), 0)
	}
	sc.fft.Sequence(sc.acf[:], sc.coef[:])
	r := sc.acf[:n]
	a0 := r[0]
	for k := range r {
		r[k] = r[k] / a0 * float64(n) / float64(n-k) // unbiased
	}
	lo := max(cycleMinLag, int(math.Ceil(float64(cy.cfg.MinPeriod)/w)))
	hi := min(int(float64(n)/cycleSpan), int(float64(cy.cfg.MaxPeriod)/w))
	if hi < lo+1 {
		return found{}, false
	}
	// The peak with the largest rise from the dip before it; the first of
	// those within 10 % of the best, so a harmonic does not win.
	var best float64
	var bestLag int
	var strengths [cycleBins]float64
	dip := r[0]
	for k := 1; k <= hi; k++ {
		dip = min(dip, r[k])
		if k >= lo && r[k] >= r[k-1] && r[k] > r[k+1] {
			strengths[k] = (r[k] - dip) / 2
			best = max(best, strengths[k])
		}
	}
	for k := lo; k <= hi; k++ {
		if strengths[k] > 0 && strengths[k] >= 0.9*best {
			bestLag = k
			break
		}
	}
	// The learned period, if it is still a peak, wins over its harmonics
	// and over a rival that is not clearly stronger.
	if prefer > 0 {
		tol := cy.cfg.Tolerance * prefer
		keep := 0 // strengths[0] is 0
		for k := max(lo, int(prefer-tol)); k <= min(hi, int(prefer+tol)+1); k++ {
			if strengths[k] > strengths[keep] {
				keep = k
			}
		}
		if keep > 0 && strengths[keep] >= 0.7*best {
			bestLag, best = keep, strengths[keep]
		}
	}
	if bestLag == 0 || best < cy.cfg.MinStrength/2 {
		return found{}, false
	}
	p := float64(bestLag) + parabola(r, bestLag)
	// Refine on the furthest multiple of the period in the window.
	if m := int(float64(n) / cycleSpan / p); m >= 2 {
		c := int(math.Round(float64(m) * p))
		k := c
		for j := max(1, c-2); j <= min(n-2, c+2); j++ {
			if r[j] > r[k] {
				k = j
			}
		}
		if k > 0 && k < n-1 && r[k] >= r[k-1] && r[k] >= r[k+1] && r[k] > best/2 {
			p = (float64(k) + parabola(r, k)) / float64(m)
		}
	}
	f := found{period: p, strength: best, level: level}
	cy.fold(s, x, &f, sc)
	return f, f.amp >= cy.cfg.MinAmplitude/2
}

// strong reports whether f is strong enough to be adopted as a new cycle;
// a learned cycle is kept while it is found at half the strength and
// amplitude (hysteresis).
func (cy *cycles) strong(f *found) bool {
	return f.strength >= cy.cfg.MinStrength && f.amp >= cy.cfg.MinAmplitude
}

// fold averages the detrended ring x by phase at the period found, and
// measures the cycle's amplitude against the noise around it.
func (cy *cycles) fold(s *CycleState, x []float64, f *found, sc *cycleScratch) {
	n := len(x)
	k := min(cyclePhases, int(f.period))
	f.phases = k
	clear(sc.fold[:])
	clear(sc.cnt[:])
	phase := func(i int) int {
		return int(math.Mod(float64(i)+0.5, f.period) / f.period * float64(k))
	}
	// The fold is the median of each phase bin (an anomaly in the ring
	// must not pass for part of the cycle): bucket the values by phase.
	var start [cyclePhases + 1]int
	for i := range x {
		sc.ph[i] = uint8(phase(i))
		start[sc.ph[i]+1]++
	}
	for j := range k {
		sc.cnt[j] = float64(start[j+1])
		start[j+1] += start[j]
	}
	next := start
	for i, v := range x {
		j := sc.ph[i]
		sc.dev[next[j]] = v
		next[j]++
	}
	var mean float64
	for j := range k {
		if b := sc.dev[start[j]:start[j+1]]; len(b) > 0 {
			slices.Sort(b)
			sc.fold[j] = (b[(len(b)-1)/2] + b[len(b)/2]) / 2
		}
		mean += sc.fold[j] * sc.cnt[j]
	}
	mean /= float64(n)
	var cyc float64
	dev := sc.dev[:n]
	for i, v := range x {
		j := sc.ph[i]
		d := sc.fold[j] - mean
		cyc += d * d
		dev[i] = math.Abs(v - sc.fold[j])
	}
	cyc /= float64(n)
	// The spread around the fold, robustly (an anomaly in the ring must not
	// pass for noise): 1.4826 × the median absolute residual, squared; but
	// at least half the mean square, so that heavy-tailed noise (bursts,
	// counts) is not taken for a tight band around a weak cycle.
	var ms float64
	for _, d := range dev {
		ms += d * d
	}
	ms /= float64(n)
	slices.Sort(dev)
	mad := 1.4826 * (dev[(n-1)/2] + dev[n/2]) / 2
	res := max(mad*mad, ms/2)
	// The noise the checks see: within-bin variance plus what the fold
	// leaves between bins beyond the averaged-down within-bin noise.
	noise := res
	if g := s.Ring; g.PerBin >= 2 {
		within := float64(g.Within)
		noise = within + max(0, res-within/float64(g.PerBin))
	}
	f.noise = noise
	f.amp = math.Sqrt(2 * cyc / max(noise, 1e-300))
	f.t0 = (s.Bin - int64(n)) * s.width() // the window ends at the open bin
}

// adopt makes the period found the signal's cycle: the profile starts from
// the fold, and the baseline and detector memory are re-seeded for the
// residual: its scale from the noise around the fold, rate envelopes without
// the cycle's own slope, CUSUMs from zero.
func (cy *cycles) adopt(s *CycleState, sig *SignalState, f *found, sc *cycleScratch) {
	w := float64(s.width())
	b := &sig.Base
	b.Last += s.season(b.LastT) // back to the raw value (0 without a cycle)
	if s.Model == nil {
		s.Model = new(CycleModel)
	}
	m, g := s.Model, s.Ring
	m.Period = f.period * w
	m.T0 = f.t0
	m.Strength, m.Amp = float32(f.strength), float32(f.amp)
	g.Cand, g.Found, g.Misses = 0, 0, 0
	stretch(sc.fold[:f.phases], &m.Profile)
	m.extremes()
	perPeriod := max(float64(g.PerBin), 1) * f.period
	m.Gain = float32(min(0.5, cy.cfg.Learn*cyclePhases/perPeriod))
	var slope float64
	for k := range m.Profile {
		slope = max(slope, math.Abs(float64(m.Profile[(k+1)%cyclePhases]-m.Profile[k])))
	}
	slope /= m.Period / cyclePhases / 1e9 // units per second
	b.Last -= s.season(b.LastT)
	sd := math.Sqrt(f.noise)
	// The level the baseline learned from raw values swings with the cycle
	// (an EW mean lags it); the trend line of the window does not.
	b.Mean, b.Median = f.level, f.level
	b.Var = f.noise
	b.MAD = sd / 1.4826
	b.RiseMax = max(b.RiseMax-slope, 0)
	b.FallMax = max(b.FallMax-slope, 0)
	sig.CusumHi, sig.CusumLo, sig.ExcHi, sig.ExcLo, sig.CusumPeak = 0, 0, 0, 0, 0
	sig.ShortMean, sig.ShortVar = b.Mean, b.Var
}

// drop forgets the cycle: the checks judge the raw value again.
func (cy *cycles) drop(s *CycleState, sig *SignalState) {
	sig.Base.Last += s.season(sig.Base.LastT)
	m, g := s.Model, s.Ring
	m.Period, g.Cand, g.Found, g.Misses = 0, 0, 0, 0
	m.T0, m.Gain, m.Strength, m.Amp = 0, 0, 0, 0
	m.Profile = [cyclePhases]float32{}
	m.Low, m.High = 0, 0
	sig.CusumHi, sig.CusumLo, sig.ExcHi, sig.ExcLo = 0, 0, 0, 0
}

// realign follows a cycle whose period was found again: the period takes the
// new estimate and the phase origin moves to where the fold matches the
// profile best, so small errors of period do not accumulate into phase
// drift. The profile is re-centred on zero.
func (cy *cycles) realign(s *CycleState, f *found, sc *cycleScratch) {
	w := float64(s.width())
	m := s.Model
	m.Strength, m.Amp = float32(f.strength), float32(f.amp)
	var fold [cyclePhases]float32
	stretch(sc.fold[:f.phases], &fold)
	// Circular cross-correlation of the fold with the profile.
	var cc [cyclePhases]float64
	best := 0
	for d := range cyclePhases {
		for k := range cyclePhases {
			cc[d] += float64(fold[(k+d)%cyclePhases]) * float64(m.Profile[k])
		}
		if cc[d] > cc[best] {
			best = d
		}
	}
	shift := float64(best)
	if a, c := cc[(best+cyclePhases-1)%cyclePhases], cc[(best+1)%cyclePhases]; a-2*cc[best]+c < 0 {
		shift += 0.5 * (a - c) / (a - 2*cc[best] + c)
	}
	m.Period = f.period * w
	// The fold's phase shift/cyclePhases is the profile's phase 0.
	t0 := f.t0 + int64(shift/cyclePhases*m.Period)
	// Keep T0 close to the present so float phases stay exact.
	m.T0 = t0
	var mean float32
	for _, v := range m.Profile {
		mean += v
	}
	mean /= cyclePhases
	for k := range m.Profile {
		m.Profile[k] -= mean
	}
	m.extremes()
}

// extremes sets Low and High from the profile.
func (m *CycleModel) extremes() {
	m.Low, m.High = m.Profile[0], m.Profile[0]
	for _, v := range m.Profile {
		m.Low, m.High = min(m.Low, v), max(m.High, v)
	}
}

// teach moves the profile towards the reading's residual from the level
// (Holt-Winters' seasonal update), clipped so an anomaly teaches little.
func (cy *cycles) teach(m *CycleModel, sig *SignalState, l *baselines.Learner, x, season float64, t int64, pm *phaseMemo) {
	e := x - season - sig.Base.Mean
	lim := cycleClip * l.Spread(&sig.Base)
	e = min(max(e, -lim), lim)
	k, fr := pm.phase(m, t)
	g := float64(m.Gain) * e
	m.Profile[k] += float32(g * (1 - fr))
	m.Profile[(k+1)%cyclePhases] += float32(g * fr)
}

// stretch resamples a circular fold of len(src) phases to cyclePhases,
// linearly between phase centres, with zero mean.
func stretch(src []float64, dst *[cyclePhases]float32) {
	k := len(src)
	var mean float64
	for _, v := range src {
		mean += v
	}
	mean /= float64(k)
	for j := range dst {
		ph := (float64(j)+0.5)/cyclePhases*float64(k) - 0.5
		i := math.Floor(ph)
		f := ph - i
		a := (int(i) + k) % k
		dst[j] = float32((1-f)*src[a] + f*src[(a+1)%k] - mean)
	}
}

// interpolate fills NaNs linearly between their neighbours (the nearest at
// the ends).
func interpolate(x []float64) {
	last := -1
	for i, v := range x {
		if math.IsNaN(v) {
			continue
		}
		switch {
		case last < 0:
			for j := range i {
				x[j] = v
			}
		case i > last+1:
			for j := last + 1; j < i; j++ {
				x[j] = x[last] + (v-x[last])*float64(j-last)/float64(i-last)
			}
		}
		last = i
	}
	for j := last + 1; j < len(x) && last >= 0; j++ {
		x[j] = x[last]
	}
}

// detrend removes the least-squares line from x and returns its value at
// the end of x.
func detrend(x []float64) float64 {
	n := float64(len(x))
	var sy, sxy float64
	for i, v := range x {
		sy += v
		sxy += float64(i) * v
	}
	mx := (n - 1) / 2
	my := sy / n
	sxx := n * (n*n - 1) / 12
	b := (sxy - n*mx*my) / sxx
	for i := range x {
		x[i] -= my + b*(float64(i)-mx)
	}
	return my + b*(n-mx)
}

// parabola returns the offset of the vertex of the parabola through r at
// k-1, k, k+1 from k.
func parabola(r []float64, k int) float64 {
	a, b, c := r[k-1], r[k], r[k+1]
	d := a - 2*b + c
	if d >= 0 {
		return 0
	}
	return 0.5 * (a - c) / d
}

// describeRhythm writes the message of a signal.rhythm alert.
func describeRhythm(a *pipeline.Alert, _ string) string {
	if a.Value == 0 {
		return fmt.Sprintf("%s lost its %s cycle: no significant period any more; it is judged against its plain baseline again.",
			a.Signal, periodWords(a.Threshold))
	}
	return fmt.Sprintf("%s changed its rhythm: its %s cycle became a %s cycle; the profile is learned again.",
		a.Signal, periodWords(a.Threshold), periodWords(a.Value))
}

// periodWords writes a period in seconds as "30-minute", "90-second",
// "24-hour", "2.5-hour".
func periodWords(sec float64) string {
	unit, v := "second", sec
	switch {
	case sec >= 2*3600:
		unit, v = "hour", sec/3600
	case sec >= 120:
		unit, v = "minute", sec/60
	}
	return fmt.Sprintf("%s-%s", trimNum(v), unit)
}

// trimNum formats v with at most one decimal, none when it is whole.
func trimNum(v float64) string {
	if r := math.Round(v); math.Abs(v-r) < 0.05 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", v)
}

// describeCycle writes the sentence that puts a cycle-aware alert in its
// cycle: "temperature 61.2 °C where 58.4 ± 0.3 °C is normal at this point of
// its 30-minute cycle (strength 0.93). "
func describeCycle(a *pipeline.Alert, unit string, s *CycleState, spread float64) string {
	return fmt.Sprintf("%s %s where %s ± %s is normal at this point of its %s cycle (strength %.2f). ",
		a.Signal, withUnit(a.Observed, unit), num(a.Mean), withUnit(spread, unit), periodWords(s.Model.Period/1e9), s.Model.Strength)
}
