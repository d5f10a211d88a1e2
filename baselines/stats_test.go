package baselines

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
)

// t0 is an arbitrary event time (2025-11-21T10:00:00Z) in Unix ns.
const t0 = int64(1763719200) * 1e9

func newLearner(t testing.TB, edit func(*Config)) *Learner {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	l, err := NewLearner(cfg)
	if err != nil {
		t.Fatalf("NewLearner(%+v): %v", cfg, err)
	}
	return l
}

// relErr is |got-want| relative to |want| (absolute when want is 0).
func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// feed learns xs, one per second from t0.
func feed(l *Learner, s *Stats, xs []float64) {
	for i, x := range xs {
		l.Observe(s, x, t0+int64(i)*1e9, true)
	}
}

func gaussian(rng *rand.Rand, n int, mu, sigma float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = mu + sigma*rng.NormFloat64()
	}
	return xs
}

// observeAll learns xs, one per second from t0, and returns the samples as the
// mean and variance saw them: x itself, or, once the baseline has RobustStart
// samples and Config.Clip is set, x winsorized to Mean ± Clip·Spread of the
// baseline before it. check is called after each sample with the count so far.
func observeAll(l *Learner, s *Stats, xs []float64, check func(n int, eff []float64)) (eff []float64, clipped int) {
	clip := l.Config().Clip
	for i, x := range xs {
		e := x
		if clip > 0 && s.N+1 > RobustStart {
			lim := clip * l.Spread(s)
			if d := x - s.Mean; d > lim || d < -lim {
				e = s.Mean + min(max(d, -lim), lim)
				clipped++
			}
		}
		eff = append(eff, e)
		l.Observe(s, x, t0+int64(i)*1e9, true)
		check(i+1, eff)
	}
	return eff, clipped
}

// testStreams are sample streams for the mean and variance checks.
func testStreams(n int) []struct {
	name string
	xs   []float64
} {
	rng := rand.New(rand.NewPCG(1, 1))
	exp := make([]float64, n)
	for i := range exp {
		exp[i] = rng.ExpFloat64() * 10 // heavy right tail: the clip bites
	}
	drift := gaussian(rng, n, 0, 1)
	for i := range drift {
		drift[i] += 10*math.Sin(float64(i)/300) + 5*float64(rng.IntN(2))
	}
	return []struct {
		name string
		xs   []float64
	}{
		{"gaussian", gaussian(rng, n, 4.2, 0.3)},
		{"large offset", gaussian(rng, n, 1e6, 1)},
		{"exponential", exp},
		{"drifting two-level", drift},
	}
}

// TestExactWhileYoung checks that while N <= 1/alpha the mean and variance are
// the plain mean and population variance of the samples, as gonum computes
// them. With Config.Clip set they are those of the winsorized samples; with Clip
// 0, of the raw ones.
func TestExactWhileYoung(t *testing.T) {
	for _, clip := range []float64{0, DefaultConfig().Clip} {
		l := newLearner(t, func(c *Config) { c.HalfLife = 1e6; c.Clip = clip })
		for _, st := range testStreams(5000) {
			t.Run(fmt.Sprintf("%s/clip=%g", st.name, clip), func(t *testing.T) {
				var s Stats
				_, clipped := observeAll(l, &s, st.xs, func(n int, eff []float64) {
					if n > 3 && n%500 != 0 {
						return
					}
					wantMean := stat.Mean(eff, nil)
					wantVar := 0.0
					if n > 1 {
						wantVar = stat.Variance(eff, nil) * float64(n-1) / float64(n)
					}
					if s.N != uint32(n) {
						t.Errorf("n=%d: N = %d", n, s.N)
					}
					if e := relErr(s.Mean, wantMean); e > 1e-9 {
						t.Errorf("n=%d: Mean = %.15g; want %.15g (rel. error %.2g)", n, s.Mean, wantMean, e)
					}
					if e := relErr(s.Var, wantVar); e > 1e-9 {
						t.Errorf("n=%d: Var = %.15g; want %.15g (rel. error %.2g)", n, s.Var, wantVar, e)
					}
				})
				if clip == 0 && clipped != 0 {
					t.Fatalf("BUG in test: %d samples clipped with Clip 0", clipped)
				}
				if clipped > 0 {
					t.Logf("%d of %d samples winsorized", clipped, len(st.xs))
				}
			})
		}
	}
}

// TestExponentialForgetting checks the mean and variance against gonum's
// weighted mean and variance with the weights the update implies: sample i
// enters with gain a_i = max(1/i, alpha) (a_1 = 1) and is then scaled by
// (1 - a_j) for every later sample j.
func TestExponentialForgetting(t *testing.T) {
	const halfLife = 50
	alpha := 1 - math.Exp2(-1.0/halfLife)
	checkpoints := []int{2, 10, 30, 31, 72, 73, 74, 100, 500, 1234, 5000}
	for _, clip := range []float64{0, DefaultConfig().Clip} {
		l := newLearner(t, func(c *Config) { c.HalfLife = halfLife; c.Clip = clip })
		for _, st := range testStreams(5000) {
			t.Run(fmt.Sprintf("%s/clip=%g", st.name, clip), func(t *testing.T) {
				var s Stats
				_, clipped := observeAll(l, &s, st.xs, func(n int, eff []float64) {
					if !slices.Contains(checkpoints, n) {
						return
					}
					// w_i = a_i * prod_{j>i} (1 - a_j), built from the newest sample back.
					const k = 1e9 // gonum divides by sum(w) - 1; with sum(w) = K that is K - 1
					w := make([]float64, n)
					prod := 1.0
					for j := n; j >= 1; j-- {
						a := max(1/float64(j), alpha)
						w[j-1] = k * a * prod
						prod *= 1 - a
					}
					mean, v := stat.MeanVariance(eff, w)
					popVar := v * (k - 1) / k
					if _, pv := stat.PopMeanVariance(eff, w); relErr(popVar, pv) > 1e-9 {
						t.Fatalf("BUG in test: converted variance %g != PopMeanVariance %g", popVar, pv)
					}
					if e := relErr(floats.Sum(w), k); e > 1e-12 {
						t.Errorf("n=%d: weights sum to %g·K; want K", n, floats.Sum(w)/k)
					}
					if e := relErr(s.Mean, mean); e > 1e-9 {
						t.Errorf("n=%d: Mean = %.15g; want %.15g (rel. error %.2g)", n, s.Mean, mean, e)
					}
					if e := relErr(s.Var, popVar); e > 1e-9 {
						t.Errorf("n=%d: Var = %.15g; want %.15g (rel. error %.2g)", n, s.Var, popVar, e)
					}
				})
				if clipped > 0 {
					t.Logf("%d of %d samples winsorized", clipped, len(st.xs))
				}
			})
		}
	}
}

// TestClipExplainsRawMismatch shows why, with the default Clip, the mean and
// variance of a heavy-tailed stream are not those of the raw samples: the
// winsorized samples differ from the raw ones exactly where the update clipped.
func TestClipExplainsRawMismatch(t *testing.T) {
	l := newLearner(t, func(c *Config) { c.HalfLife = 1e6 })
	xs := testStreams(5000)[2].xs // exponential
	var s Stats
	eff, clipped := observeAll(l, &s, xs, func(int, []float64) {})
	if clipped == 0 {
		t.Fatalf("no sample of an exponential stream was winsorized at %g spreads", l.Config().Clip)
	}
	if relErr(s.Mean, stat.Mean(xs, nil)) < 1e-6 {
		t.Errorf("Mean %g equals the raw mean although %d samples were clipped", s.Mean, clipped)
	}
	if e := relErr(s.Mean, stat.Mean(eff, nil)); e > 1e-9 {
		t.Errorf("Mean = %.15g; want the winsorized mean %.15g", s.Mean, stat.Mean(eff, nil))
	}
}

// exactMedianMAD returns the empirical median of xs and the median absolute
// deviation from it.
func exactMedianMAD(xs []float64) (median, mad float64) {
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	median = stat.Quantile(0.5, stat.Empirical, sorted, nil)
	for i, x := range xs {
		sorted[i] = math.Abs(x - median)
	}
	slices.Sort(sorted)
	return median, stat.Quantile(0.5, stat.Empirical, sorted, nil)
}

// TestMedianMAD checks the stochastic-approximation median and MAD against the
// exact values over the last 3 half-lives of a stationary stream. Tolerances are
// in units of the distribution's standard deviation: over 50 seeds the median's
// error has an rms of 0.025σ (uniform: 0.03σ) and a maximum of 0.07σ, so 0.1σ
// is about 4 rms.
func TestMedianMAD(t *testing.T) {
	l := newLearner(t, nil)
	window := int(l.Config().HalfLife * 3)
	const n = 50_000
	for _, tc := range []struct {
		name    string
		sigma   float64 // standard deviation of the distribution
		draw    func(*rand.Rand) float64
		tolMed  float64 // tolerances, in sigmas
		tolMAD  float64
		checkSD bool // Spread ≈ σ (Gaussian only)
	}{
		{"gaussian", 2, func(r *rand.Rand) float64 { return 100 + 2*r.NormFloat64() }, 0.1, 0.1, true},
		{"gaussian at zero", 0.01, func(r *rand.Rand) float64 { return 0.01 * r.NormFloat64() }, 0.1, 0.1, true},
		{"laplace", math.Sqrt2 * 3, func(r *rand.Rand) float64 {
			x := r.ExpFloat64() * 3
			if r.IntN(2) == 0 {
				x = -x
			}
			return -50 + x
		}, 0.1, 0.1, false},
		{"uniform", 20 / math.Sqrt(12), func(r *rand.Rand) float64 { return 10 + 20*r.Float64() }, 0.1, 0.1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 3))
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = tc.draw(rng)
			}
			var s Stats
			feed(l, &s, xs)
			med, mad := exactMedianMAD(xs[n-window:])
			t.Logf("Median %.5g (exact %.5g, %.3fσ), MAD %.5g (exact %.5g, %.3fσ), Spread %.5g (σ %.5g)",
				s.Median, med, math.Abs(s.Median-med)/tc.sigma, s.MAD, mad, math.Abs(s.MAD-mad)/tc.sigma, l.Spread(&s), tc.sigma)
			if e := math.Abs(s.Median-med) / tc.sigma; e > tc.tolMed {
				t.Errorf("Median = %.5g; want %.5g ± %gσ (off by %.3gσ)", s.Median, med, tc.tolMed, e)
			}
			if e := math.Abs(s.MAD-mad) / tc.sigma; e > tc.tolMAD {
				t.Errorf("MAD = %.5g; want %.5g ± %gσ (off by %.3gσ)", s.MAD, mad, tc.tolMAD, e)
			}
			if spread := l.Spread(&s); tc.checkSD && relErr(spread, tc.sigma) > 0.1 {
				t.Errorf("Spread = %.5g; want σ = %g ± 10%%", spread, tc.sigma)
			}
		})
	}
}

// spike runs two copies of a warm Gaussian baseline (mean 50, sd sigma), one
// fed spikes of 50σ every `every` samples and one fed normal samples instead.
func spike(l *Learner, sigma float64, spikes, every int) (clean, spiked Stats) {
	rng := rand.New(rand.NewPCG(4, 4))
	feed(l, &clean, gaussian(rng, 20_000, 50, sigma))
	spiked = clean
	ts := clean.LastT
	for k := range spikes {
		for range every - 1 {
			if k == 0 {
				break // the first spike comes at once
			}
			x := 50 + sigma*rng.NormFloat64()
			ts += 1e9
			l.Observe(&clean, x, ts, true)
			l.Observe(&spiked, x, ts, true)
		}
		ts += 1e9
		l.Observe(&clean, 50+sigma*rng.NormFloat64(), ts, true)
		l.Observe(&spiked, 50+50*sigma, ts, true)
	}
	return clean, spiked
}

// TestSpikeRobustness checks that 50σ spikes learned into a Gaussian baseline
// barely move the median and spread, though they do move the variance.
func TestSpikeRobustness(t *testing.T) {
	const sigma = 1.5
	l := newLearner(t, nil)
	for _, tc := range []struct {
		name          string
		spikes, every int
	}{
		{"one spike", 1, 1},
		{"10 spikes a half-life apart", 10, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clean, spiked := spike(l, sigma, tc.spikes, tc.every)
			if d := math.Abs(spiked.Median-clean.Median) / sigma; d >= 0.05 {
				t.Errorf("spikes moved Median from %.4g to %.4g (%.3gσ); want < 0.05σ", clean.Median, spiked.Median, d)
			}
			if r := relErr(l.Spread(&spiked), l.Spread(&clean)); r >= 0.05 {
				t.Errorf("spikes moved Spread from %.4g to %.4g (%.1f%%); want < 5%%", l.Spread(&clean), l.Spread(&spiked), 100*r)
			}
			if spiked.Var <= clean.Var {
				t.Errorf("spikes did not move Var (%.4g, clean %.4g); want it to react", spiked.Var, clean.Var)
			}
			// A winsorized spike adds at most alpha·(Clip·Spread)² to the variance.
			alpha := 1 - math.Exp2(-1/l.Config().HalfLife)
			if bound := float64(tc.spikes) * alpha * math.Pow(l.Config().Clip*l.Spread(&spiked), 2); spiked.Var-clean.Var > bound {
				t.Errorf("spikes moved Var from %.4g to %.4g; want at most +%.4g (clipped)", clean.Var, spiked.Var, bound)
			}
		})
	}
	// Without the clip the EW variance is not robust: the same spikes inflate it
	// many times over, which is why the spread leans on the MAD and the clip.
	t.Run("unclipped variance", func(t *testing.T) {
		l := newLearner(t, func(c *Config) { c.Clip = 0 })
		clean, spiked := spike(l, sigma, 10, 1000)
		if spiked.Var < 2*clean.Var {
			t.Errorf("unclipped: spikes moved Var only from %.4g to %.4g; want more than double", clean.Var, spiked.Var)
		}
		if d := math.Abs(spiked.Median-clean.Median) / sigma; d >= 0.05 {
			t.Errorf("unclipped: spikes moved Median from %.4g to %.4g (%.3gσ); want < 0.05σ", clean.Median, spiked.Median, d)
		}
		if r := relErr(1.4826*spiked.MAD, 1.4826*clean.MAD); r >= 0.05 {
			t.Errorf("unclipped: spikes moved 1.4826·MAD from %.4g to %.4g; want < 5%%", 1.4826*clean.MAD, 1.4826*spiked.MAD)
		}
	})
}

// TestPoisoningGuard checks that samples observed with learn=false do not
// teach, and that a long enough run of them lets the baseline adapt.
func TestPoisoningGuard(t *testing.T) {
	const relearn = 5
	l := newLearner(t, func(c *Config) { c.RelearnAfter = relearn })
	rng := rand.New(rand.NewPCG(5, 5))
	var s Stats
	feed(l, &s, gaussian(rng, 1000, 10, 1))
	ts := s.LastT

	// Kept out: only Last, LastT and Gated change. (Whether the RelearnAfter-th
	// sample itself is kept out is TestRelearnAfterCount's business.)
	before := s
	for i := range relearn - 1 {
		ts += 1e9
		x := 1000 + float64(i)
		if l.Observe(&s, x, ts, false) {
			t.Fatalf("gated sample %d of %d was learned", i+1, relearn)
		}
		want := before
		want.Last, want.LastT, want.Gated = x, ts, uint32(i+1)
		if s != want {
			t.Fatalf("after gated sample %d:\n got %+v\nwant %+v", i+1, s, want)
		}
	}

	// A run of RelearnAfter or so teaches, and so does every sample after it.
	learnedAt := 0
	for i := relearn; i <= relearn+1 && learnedAt == 0; i++ {
		ts += 1e9
		if l.Observe(&s, 1000, ts, false) {
			learnedAt = i
		}
	}
	if learnedAt == 0 {
		t.Fatalf("%d gated samples in a row with RelearnAfter = %d: none learned", relearn+1, relearn)
	}
	for i := range 3 {
		ts += 1e9
		n := s.N
		if !l.Observe(&s, 1000, ts, false) || s.N != n+1 {
			t.Fatalf("gated sample %d after the baseline started relearning was not learned (N = %d)", learnedAt+i+1, s.N)
		}
	}
	if s.Mean == before.Mean || s.Var == before.Var || s.Median == before.Median || s.RatePeak() == before.RatePeak() {
		t.Errorf("relearning did not change the estimates: %+v", s)
	}

	// A learned sample resets Gated, and the guard holds again.
	ts += 1e9
	if !l.Observe(&s, 10, ts, true) || s.Gated != 0 {
		t.Fatalf("learned sample: Gated = %d; want 0", s.Gated)
	}
	ts += 1e9
	if l.Observe(&s, 1000, ts, false) || s.Gated != 1 {
		t.Errorf("gated sample after a learned one: learned or Gated = %d; want kept out with Gated = 1", s.Gated)
	}
}

// TestRelearnAfterCount pins the documented count: "RelearnAfter is how many
// consecutive samples may be kept from teaching ... before the baseline learns
// again", so RelearnAfter samples are kept out and the next one teaches.
func TestRelearnAfterCount(t *testing.T) {
	for _, relearn := range []int{1, 2, 5, 3000} {
		l := newLearner(t, func(c *Config) { c.RelearnAfter = relearn })
		var s Stats
		feed(l, &s, []float64{1, 2, 3})
		for i := 1; i <= relearn+1; i++ {
			learned := l.Observe(&s, 1000, t0+int64(10+i)*1e9, false)
			if want := i > relearn; learned != want {
				t.Errorf("RelearnAfter = %d: anomalous sample %d in a row learned = %v; want %v", relearn, i, learned, want)
				break
			}
		}
	}
}

func TestPoisoningGuardNeverRelearns(t *testing.T) {
	l := newLearner(t, func(c *Config) { c.RelearnAfter = 0 })
	var s Stats
	if !l.Observe(&s, 3, t0, false) || s.N != 1 {
		t.Fatalf("first sample with learn=false: N = %d; want it learned (nothing to compare with)", s.N)
	}
	before := s
	for i := range 10_000 {
		ts := t0 + int64(i+1)*1e9
		if l.Observe(&s, 1e6, ts, false) {
			t.Fatalf("gated sample %d learned with RelearnAfter = 0", i+1)
		}
	}
	if s.N != before.N || s.Mean != before.Mean || s.Median != before.Median || s.Gated != 10_000 {
		t.Errorf("after 10000 gated samples: %+v; want the baseline of %+v unchanged", s, before)
	}
}

func TestWarmup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		samples  int
		duration time.Duration
		step     time.Duration // between samples
		wantAt   int           // 1-based sample that ends the warm-up
	}{
		{"samples only", 10, 0, time.Second, 10},
		{"samples only, no time passes", 10, 0, 0, 10},
		{"duration longer", 10, 5 * time.Minute, 10 * time.Second, 31},
		{"samples longer", 10, 5 * time.Minute, time.Minute, 10},
		{"both at once", 6, 5 * time.Minute, time.Minute, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLearner(t, func(c *Config) { c.WarmupSamples, c.WarmupDuration = tc.samples, tc.duration })
			var s Stats
			for i := 1; i <= tc.wantAt+5; i++ {
				l.Observe(&s, float64(i%3), t0+int64(i-1)*int64(tc.step), true)
				if want := i >= tc.wantAt; s.Warm != want {
					t.Fatalf("after sample %d: Warm = %v; want %v", i, s.Warm, want)
				}
			}
		})
	}
	t.Run("gated samples do not count", func(t *testing.T) {
		l := newLearner(t, func(c *Config) { c.WarmupSamples = 3 })
		var s Stats
		l.Observe(&s, 1, t0, true)
		l.Observe(&s, 1, t0+1e9, true)
		for i := range 5 {
			l.Observe(&s, 100, t0+int64(i+2)*1e9, false)
		}
		if s.Warm {
			t.Errorf("Warm after 2 learned and 5 gated samples; want false")
		}
		l.Observe(&s, 1, t0+10e9, true)
		if !s.Warm {
			t.Errorf("not Warm after 3 learned samples")
		}
	})
}

func TestRate(t *testing.T) {
	const peakHalfLife = 100
	l := newLearner(t, func(c *Config) { c.RatePeakHalfLife = peakHalfLife })
	var s Stats
	if r, ok := s.Rate(5, t0); ok {
		t.Errorf("Rate on an empty baseline = %v, true; want false", r)
	}
	l.Observe(&s, 10, t0, true)
	if s.RatePeak() != 0 || s.RateMean != 0 {
		t.Errorf("after the first sample RatePeak, RateMean = %v, %v; want 0, 0", s.RatePeak(), s.RateMean)
	}
	if r, ok := s.Rate(14, t0+2e9); !ok || r != 2 {
		t.Errorf("Rate(14, +2s) after 10 = %v, %v; want 2, true", r, ok)
	}
	if r, ok := s.Rate(14, t0); ok {
		t.Errorf("Rate at the same timestamp = %v, true; want false", r)
	}
	if r, ok := s.Rate(14, t0-1e9); ok {
		t.Errorf("Rate at an earlier timestamp = %v, true; want false", r)
	}
	if r, ok := s.Rate(9, t0+500e6); !ok || r != -2 {
		t.Errorf("Rate(9, +0.5s) after 10 = %v, %v; want -2, true", r, ok)
	}

	l.Observe(&s, 14, t0+2e9, true)
	if s.RatePeak() != 2 {
		t.Fatalf("RatePeak = %v; want 2", s.RatePeak())
	}
	l.Observe(&s, 14, t0+2e9, true) // same timestamp: no rate, no decay
	if s.RatePeak() != 2 {
		t.Errorf("RatePeak after a sample with no rate = %v; want 2", s.RatePeak())
	}
	// A flat signal: the envelope halves every RatePeakHalfLife samples.
	ts := t0 + 2e9
	for range peakHalfLife {
		ts += 1e9
		l.Observe(&s, 14, ts, true)
	}
	if relErr(s.RatePeak(), 1) > 1e-12 {
		t.Errorf("RatePeak after %d flat samples = %.15g; want 1", peakHalfLife, s.RatePeak())
	}
	// A smaller rate does not raise it; a larger |rate| replaces it.
	ts += 1e9
	l.Observe(&s, 14.5, ts, true)
	if s.RatePeak() >= 1 || s.RatePeak() < 0.99 {
		t.Errorf("RatePeak after a rate of 0.5 = %v; want the decayed 1", s.RatePeak())
	}
	ts += 1e9
	l.Observe(&s, 4.5, ts, true)
	if s.RatePeak() != 10 {
		t.Errorf("RatePeak after a rate of -10 = %v; want 10", s.RatePeak())
	}
	// Gated samples move Last, so the rate is measured from them, but do not
	// touch the envelope.
	ts += 1e9
	l.Observe(&s, 1000, ts, false)
	if s.RatePeak() != 10 || s.Last != 1000 || s.LastT != ts {
		t.Errorf("after a gated sample RatePeak, Last, LastT = %v, %v, %d; want 10, 1000, %d", s.RatePeak(), s.Last, s.LastT, ts)
	}
	if r, ok := s.Rate(1000, ts+1e9); !ok || r != 0 {
		t.Errorf("Rate after a gated sample = %v, %v; want 0, true (measured from the gated sample)", r, ok)
	}
}

// TestRateMeanSteadyRamp checks that a signal rising at a constant rate has that
// rate as its mean rate and no rate variance. The first sample has no rate, so
// it must not count as a rate of 0.
func TestRateMeanSteadyRamp(t *testing.T) {
	l := newLearner(t, nil)
	var s Stats
	for i := range 300 {
		l.Observe(&s, 2*float64(i), t0+int64(i)*1e9, true)
	}
	if relErr(s.RateMean, 2) > 1e-9 || s.RateVar > 1e-9 {
		t.Errorf("300 samples rising at 2/s: RateMean, RateVar = %.6g, %.6g; want 2, 0", s.RateMean, s.RateVar)
	}
}

func TestSpreadFloors(t *testing.T) {
	l := newLearner(t, nil)
	for _, level := range []float64{0, 100, -250} {
		var s Stats
		for i := range 2000 {
			l.Observe(&s, level, t0+int64(i)*1e9, true)
		}
		floor := max(l.Config().MinSpread, l.Config().RelSpread*math.Abs(level))
		if s.Var != 0 || s.MAD != 0 || l.Floor(&s) != floor || l.Spread(&s) != floor || l.StdFloor(&s) != floor {
			t.Errorf("flat %g: Var %g, MAD %g, Floor %g, Spread %g, StdFloor %g; want 0, 0 and floor %g",
				level, s.Var, s.MAD, l.Floor(&s), l.Spread(&s), l.StdFloor(&s), floor)
		}
	}

	// A machine switching between two set points, 37.5% of the time at 80: the
	// MAD collapses, the EW standard deviation keeps the band open.
	var s Stats
	for i := range 20_000 {
		x := 20.0
		if i%8 < 3 {
			x = 80
		}
		l.Observe(&s, x, t0+int64(i)*1e9, true)
	}
	wantStd := 60 * math.Sqrt(0.375*0.625)
	if relErr(s.Std(), wantStd) > 0.05 {
		t.Errorf("square wave: Std = %.4g; want %.4g ± 5%%", s.Std(), wantStd)
	}
	if sp := l.Spread(&s); sp < s.Std() {
		t.Errorf("square wave: Spread = %.4g; want at least the EW std %.4g", sp, s.Std())
	}
	if 1.4826*s.MAD >= 0.5*s.Std() {
		t.Errorf("square wave: 1.4826·MAD = %.4g; want it collapsed well below the std %.4g (Median %.4g)", 1.4826*s.MAD, s.Std(), s.Median)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v; want nil", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"half_life zero", func(c *Config) { c.HalfLife = 0 }, "half_life"},
		{"half_life below 1", func(c *Config) { c.HalfLife = 0.5 }, "half_life"},
		{"half_life NaN", func(c *Config) { c.HalfLife = math.NaN() }, "half_life"},
		{"warmup_samples", func(c *Config) { c.WarmupSamples = 1 }, "warmup_samples"},
		{"warmup_duration", func(c *Config) { c.WarmupDuration = -time.Second }, "warmup_duration"},
		{"min_spread zero", func(c *Config) { c.MinSpread = 0 }, "min_spread"},
		{"min_spread NaN", func(c *Config) { c.MinSpread = math.NaN() }, "min_spread"},
		{"rel_spread", func(c *Config) { c.RelSpread = -0.1 }, "rel_spread"},
		{"rate_peak_half_life", func(c *Config) { c.RatePeakHalfLife = 0 }, "rate_peak_half_life"},
		{"clip negative", func(c *Config) { c.Clip = -1 }, "clip"},
		{"clip NaN", func(c *Config) { c.Clip = math.NaN() }, "clip"},
		{"relearn_after", func(c *Config) { c.RelearnAfter = -1 }, "relearn_after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v; want an error naming %s", err, tc.field)
			}
			if _, err := NewLearner(c); err == nil || !strings.HasPrefix(err.Error(), "baselines: ") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("NewLearner() error = %v; want \"baselines: ...%s...\"", err, tc.field)
			}
		})
	}
	c := Config{}
	err := c.Validate()
	for _, field := range []string{"half_life", "warmup_samples", "min_spread", "rate_peak_half_life"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Config{}.Validate() = %v; want it to name %s", err, field)
		}
	}
}

// TestStatsIsPlainData checks that a Stats copied by assignment evolves exactly
// like the original: no shared state, no hidden pointers.
func TestStatsIsPlainData(t *testing.T) {
	l := newLearner(t, func(c *Config) { c.RelearnAfter = 20; c.HalfLife = 30; c.WarmupSamples = 50 })
	rng := rand.New(rand.NewPCG(6, 6))
	var a Stats
	feed(l, &a, gaussian(rng, 100, 5, 1))
	b := a
	ts := a.LastT
	for i := range 2000 {
		ts += int64(rng.IntN(3)) * 1e9 // sometimes no time passes
		x := 5 + rng.NormFloat64()
		learn := rng.IntN(10) > 0
		if i%300 < 40 {
			x, learn = 50, false // long anomalous runs trigger relearning
		}
		la := l.Observe(&a, x, ts, learn)
		lb := l.Observe(&b, x, ts, learn)
		if la != lb || a != b {
			t.Fatalf("step %d: copies diverged:\n%+v (learned %v)\n%+v (learned %v)", i, a, la, b, lb)
		}
	}
	if a.N == 0 || !a.Warm || a.Gated == 0 && a.RatePeak() == 0 {
		t.Errorf("stream did not exercise the learner: %+v", a)
	}
}
