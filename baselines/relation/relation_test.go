package relation

import (
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// gauss draws from a multivariate normal with a known mean and covariance.
type gauss struct {
	mu  []float64
	l   *mat.TriDense
	rng *rand.Rand
	e   []float64
}

func newGauss(t testing.TB, mu []float64, cov [][]float64, seed uint64) *gauss {
	t.Helper()
	k := len(mu)
	s := mat.NewSymDense(k, nil)
	for i := range k {
		for j := i; j < k; j++ {
			s.SetSym(i, j, cov[i][j])
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(s) {
		t.Fatal("covariance not positive definite")
	}
	var l mat.TriDense
	ch.LTo(&l)
	return &gauss{mu: mu, l: &l, rng: rand.New(rand.NewPCG(seed, 1)), e: make([]float64, k)}
}

func (g *gauss) draw(x []float64) {
	for i := range g.e {
		g.e[i] = g.rng.NormFloat64()
	}
	for i := range x {
		v := g.mu[i]
		for j := 0; j <= i; j++ {
			v += g.l.At(i, j) * g.e[j]
		}
		x[i] = v
	}
}

// plant is pressure (bar), temperature (°C) and vibration (mm/s) of a pump:
// strongly correlated, in different units.
var (
	plantMu  = []float64{4.3, 60, 2.5}
	plantSd  = []float64{0.2, 1.5, 0.3}
	plantCor = [][]float64{{1, 0.9, 0.8}, {0.9, 1, 0.85}, {0.8, 0.85, 1}}
)

func plantCov() [][]float64 {
	c := make([][]float64, 3)
	for i := range c {
		c[i] = make([]float64, 3)
		for j := range c[i] {
			c[i][j] = plantCor[i][j] * plantSd[i] * plantSd[j]
		}
	}
	return c
}

func newModel(t testing.TB, cfg Config, k int) *Model {
	t.Helper()
	m, err := New(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// step judges x, then teaches it as the engine would.
func step(m *Model, s *State, x []float64, ts int64, r *Result) {
	m.Judge(s, x, r)
	m.Update(s, x, ts, r)
}

func TestUpdateIsObserve(t *testing.T) {
	m := newModel(t, DefaultConfig(), 3)
	s1, s2 := m.NewState(), m.NewState()
	g := newGauss(t, plantMu, plantCov(), 12)
	x := make([]float64, 3)
	var r1, r2 Result
	for i := range 3000 {
		g.draw(x)
		if i%97 == 0 {
			x[0] += 2 // now and then a broken relation, kept out
		}
		m.Judge(&s1, x, &r1)
		m.Update(&s1, x, int64(i), &r1)
		m.Judge(&s2, x, &r2)
		m.Observe(&s2, x, int64(i), m.Learns(&r2))
	}
	if !reflect.DeepEqual(s1, s2) {
		t.Errorf("Update and Observe diverged:\n%+v\n%+v", s1, s2)
	}
}

// warmPlant returns a model and state that learned n plant readings.
func warmPlant(t testing.TB, cfg Config, n int, seed uint64) (*Model, State, *gauss) {
	m := newModel(t, cfg, 3)
	s := m.NewState()
	g := newGauss(t, plantMu, plantCov(), seed)
	x := make([]float64, 3)
	var r Result
	for i := range n {
		g.draw(x)
		step(m, &s, x, int64(i)*1e9, &r)
	}
	return m, s, g
}

func TestJacobiMatchesEigenSym(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for k := 2; k <= MaxSignals; k++ {
		for trial := range 20 {
			// A random covariance, sometimes nearly singular.
			b := mat.NewDense(k+trial%3, k, nil)
			for i := range k + trial%3 {
				for j := range k {
					b.Set(i, j, rng.NormFloat64())
				}
			}
			var c mat.SymDense
			c.SymOuterK(1, b.T())
			var a, v matrix
			for i := range k {
				for j := range k {
					a[i][j] = c.At(i, j)
				}
			}
			jacobi(&a, &v, k)
			got := make([]float64, k)
			for i := range k {
				got[i] = a[i][i]
			}
			var es mat.EigenSym
			if !es.Factorize(&c, true) {
				t.Fatal("EigenSym failed")
			}
			want := es.Values(nil)
			sort.Float64s(got)
			sort.Float64s(want)
			for i := range k {
				if math.Abs(got[i]-want[i]) > 1e-10*(1+math.Abs(want[k-1])) {
					t.Errorf("k=%d eigenvalue %d: got %v; want %v", k, i, got[i], want[i])
				}
			}
			// V diag(λ) Vᵀ reconstructs c.
			for i := range k {
				for j := range k {
					var s float64
					for m := range k {
						s += v[i][m] * a[m][m] * v[j][m]
					}
					if math.Abs(s-c.At(i, j)) > 1e-10*(1+math.Abs(want[k-1])) {
						t.Errorf("k=%d reconstruction (%d,%d): got %v; want %v", k, i, j, s, c.At(i, j))
					}
				}
			}
		}
	}
}

func TestEstimatorMatchesGonum(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HalfLife = 1e9 // weight 1/n throughout: exact running estimates
	cfg.Clip = 0
	m := newModel(t, cfg, 3)
	s := m.NewState()
	g := newGauss(t, plantMu, plantCov(), 1)
	const n = 2000
	data := mat.NewDense(n, 3, nil)
	x := make([]float64, 3)
	for i := range n {
		g.draw(x)
		data.SetRow(i, x)
		m.Observe(&s, x, int64(i), true)
	}
	var cov mat.SymDense
	stat.CovarianceMatrix(&cov, data, nil)
	for i := range 3 {
		if got, want := s.Mean(i), stat.Mean(data.ColView(i).(*mat.VecDense).RawVector().Data, nil); math.Abs(got-want) > 1e-12*math.Abs(want) {
			// ColView's raw data is strided; compare via explicit column.
			col := mat.Col(nil, i, data)
			if want = stat.Mean(col, nil); math.Abs(got-want) > 1e-12*math.Abs(want) {
				t.Errorf("mean %d: got %v; want %v", i, got, want)
			}
		}
		for j := range 3 {
			want := cov.At(i, j) * (n - 1) / n // population covariance
			if got := s.Cov(i, j); math.Abs(got-want) > 1e-9*math.Abs(want) {
				t.Errorf("cov(%d,%d): got %v; want %v", i, j, got, want)
			}
		}
	}
}

func TestFalseAlarmRate(t *testing.T) {
	if testing.Short() {
		t.Skip("100k readings")
	}
	cases := []struct {
		name string
		mu   []float64
		cov  [][]float64
	}{
		{"plant k=3", plantMu, plantCov()},
		{"k=6 two groups", []float64{0, 1, 2, 100, 200, -5}, blockCov()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Alpha = 1e-3
			k := len(tc.mu)
			m := newModel(t, cfg, k)
			s := m.NewState()
			g := newGauss(t, tc.mu, tc.cov, 3)
			x := make([]float64, k)
			var r Result
			const warm, n = 5000, 100000
			var t2, spe, judged int
			for i := range warm + n {
				g.draw(x)
				step(m, &s, x, int64(i)*1e9, &r)
				if i < warm {
					continue
				}
				judged++
				if r.T2Score >= 1 {
					t2++
				}
				if r.SPEScore >= 1 {
					spe++
				}
			}
			for _, c := range []struct {
				name string
				n    int
			}{{"T²", t2}, {"SPE", spe}} {
				rate := float64(c.n) / float64(judged)
				t.Logf("%s false-alarm rate %.2g (configured %g), %d components", c.name, rate, cfg.Alpha, s.A)
				if rate > 2*cfg.Alpha || rate < cfg.Alpha/2 {
					t.Errorf("%s false-alarm rate %v; want within 2× of %v", c.name, rate, cfg.Alpha)
				}
			}
		})
	}
}

// blockCov is two independent groups of three correlated signals.
func blockCov() [][]float64 {
	sd := []float64{1, 2, 0.5, 10, 30, 0.1}
	c := make([][]float64, 6)
	for i := range c {
		c[i] = make([]float64, 6)
		for j := range c[i] {
			switch {
			case i == j:
				c[i][j] = sd[i] * sd[i]
			case i/3 == j/3:
				c[i][j] = 0.85 * sd[i] * sd[j]
			}
		}
	}
	return c
}

func TestRelationBreakFlaggedBySPE(t *testing.T) {
	m, s, _ := warmPlant(t, DefaultConfig(), 3000, 2)
	// Each signal within its own ±2σ band, but pressure low while
	// temperature and vibration are high: the relation is broken.
	x := []float64{plantMu[0] - 1.5*plantSd[0], plantMu[1] + 1.5*plantSd[1], plantMu[2] + 1.5*plantSd[2]}
	var r Result
	m.Judge(&s, x, &r)
	if r.SPEScore < 1 || r.Stat != StatSPE || r.Severity == None {
		t.Errorf("broken relation: SPE score %.2f, T² score %.2f, stat %v, severity %v; want SPE to flag it", r.SPEScore, r.T2Score, r.Stat, r.Severity)
	}
	if r.Top != 0 || !r.Broken {
		t.Errorf("top contributor %d, broken %v; want 0 (pressure), broken; deviations %v", r.Top, r.Broken, r.Deviation[:3])
	}
	t.Logf("T² score %.2f, SPE score %.2f: %s", r.T2Score, r.SPEScore,
		Explain([]Signal{{"pressure", "bar"}, {"temperature", "°C"}, {"vibration", "mm/s"}}, x, &r))
}

func TestJointExcursionFlaggedByT2(t *testing.T) {
	m, s, _ := warmPlant(t, DefaultConfig(), 3000, 2)
	// All three up together by 5σ: along the main component.
	x := make([]float64, 3)
	for i := range x {
		x[i] = plantMu[i] + 5*plantSd[i]
	}
	var r Result
	m.Judge(&s, x, &r)
	if r.T2Score < 1 || r.Stat != StatT2 {
		t.Errorf("joint excursion: T² score %.2f, SPE score %.2f; want T² to flag it", r.T2Score, r.SPEScore)
	}
	if r.SPEScore >= 1 || r.Broken {
		t.Errorf("joint excursion: SPE score %.2f, broken %v; want below 1 and not broken (the relation holds)", r.SPEScore, r.Broken)
	}
}

func TestContributionsNameBrokenSignal(t *testing.T) {
	// Six signals in two correlated groups: shift each one alone against its
	// partners; it must be named first.
	mu := []float64{0, 1, 2, 100, 200, -5}
	cfg := DefaultConfig()
	m := newModel(t, cfg, 6)
	s := m.NewState()
	g := newGauss(t, mu, blockCov(), 4)
	x := make([]float64, 6)
	var r Result
	for i := range 5000 {
		g.draw(x)
		step(m, &s, x, int64(i), &r)
	}
	cov := blockCov()
	for broken := range 6 {
		for rep := range 20 {
			g.draw(x)
			x[broken] += 6 * math.Sqrt(cov[broken][broken]) * float64(1-2*(rep%2))
			m.Judge(&s, x, &r)
			if r.Severity == None {
				t.Errorf("signal %d shifted by 6σ: not flagged (T² %.2f, SPE %.2f)", broken, r.T2Score, r.SPEScore)
				continue
			}
			if r.Top != broken {
				t.Errorf("signal %d shifted (rep %d, %v): top contributor %d; deviations %.2f", broken, rep, r.Stat, r.Top, r.Deviation[:6])
			}
		}
	}
}

func TestConditionalExpectationClosedForm(t *testing.T) {
	m, s, _ := warmPlant(t, DefaultConfig(), 3000, 5)
	k := 3
	mu := make([]float64, k)
	sig := mat.NewSymDense(k, nil)
	for i := range k {
		mu[i] = s.Mean(i)
		for j := i; j < k; j++ {
			sig.SetSym(i, j, s.Cov(i, j))
		}
	}
	m.Refresh(&s) // the model of the current estimates
	x := []float64{4.0, 61.2, 2.7}
	var r Result
	m.Judge(&s, x, &r)
	for i := range k {
		// E[x_i | x_-i] = μ_i + Σ_i,-i Σ_-i,-i⁻¹ (x_-i − μ_-i);
		// Var = Σ_ii − Σ_i,-i Σ_-i,-i⁻¹ Σ_-i,i.
		var rest []int
		for j := range k {
			if j != i {
				rest = append(rest, j)
			}
		}
		soo := mat.NewSymDense(k-1, nil)
		sio := mat.NewVecDense(k-1, nil)
		dx := mat.NewVecDense(k-1, nil)
		for a, ja := range rest {
			sio.SetVec(a, sig.At(i, ja))
			dx.SetVec(a, x[ja]-mu[ja])
			for b, jb := range rest {
				soo.SetSym(a, b, sig.At(ja, jb))
			}
		}
		var beta mat.VecDense
		if err := beta.SolveVec(soo, sio); err != nil {
			t.Fatal(err)
		}
		want := mu[i] + mat.Dot(&beta, dx)
		wantSd := math.Sqrt(sig.At(i, i) - mat.Dot(&beta, sio))
		if got := r.Expected[i]; math.Abs(got-want) > 1e-9*math.Abs(want) {
			t.Errorf("E[x_%d | others]: got %v; want %v", i, got, want)
		}
		if got := r.ExpectedStd[i]; math.Abs(got-wantSd) > 1e-9*wantSd {
			t.Errorf("sd(x_%d | others): got %v; want %v", i, got, wantSd)
		}
	}
}

// TestExpectedWithoutClosedForm: with signal b left out, each other
// signal's expectation is the regression on the remaining ones,
// E[x_j | x_S] = μ_j + Σ_jS Σ_SS⁻¹ (x_S − μ_S), for k = 3 and k = 5.
func TestExpectedWithoutClosedForm(t *testing.T) {
	for _, k := range []int{3, 5} {
		cfg := DefaultConfig()
		m, err := New(cfg, k)
		if err != nil {
			t.Fatal(err)
		}
		s := m.NewState()
		rng := rand.New(rand.NewPCG(uint64(k), 9))
		x := make([]float64, k)
		for i := range 5000 {
			l := rng.NormFloat64()
			for j := range k {
				x[j] = float64(j+1)*10 + float64(j+1)*l + 0.5*rng.NormFloat64()
			}
			m.Observe(&s, x, int64(i)*1e9, true)
		}
		m.Refresh(&s)
		for j := range k {
			x[j] = float64(j+1)*10 + 0.3*float64(j) - 0.2
		}
		var r Result
		m.Judge(&s, x, &r)
		sig := func(i, j int) float64 {
			// the covariance the model uses: its scales times its
			// correlation, which is what the stored one is up to the floor
			return s.Cov(i, j)
		}
		for b := range k {
			e := make([]float64, k)
			m.ExpectedWithout(&s, &r, b, e)
			for j := range k {
				if j == b {
					if !math.IsNaN(e[j]) {
						t.Errorf("k=%d b=%d: e[b] = %v; want NaN", k, b, e[j])
					}
					continue
				}
				var rest []int
				for i := range k {
					if i != j && i != b {
						rest = append(rest, i)
					}
				}
				n := len(rest)
				soo := mat.NewSymDense(n, nil)
				sjo := mat.NewVecDense(n, nil)
				dx := mat.NewVecDense(n, nil)
				for a, ia := range rest {
					sjo.SetVec(a, sig(j, ia))
					dx.SetVec(a, x[ia]-s.Mean(ia))
					for c, ic := range rest {
						soo.SetSym(a, c, sig(ia, ic))
					}
				}
				var beta mat.VecDense
				if err := beta.SolveVec(soo, sjo); err != nil {
					t.Fatal(err)
				}
				want := s.Mean(j) + mat.Dot(&beta, dx)
				if math.Abs(e[j]-want) > 1e-6*math.Abs(want) {
					t.Errorf("k=%d, without %d: E[x_%d | rest] = %v; want %v", k, b, j, e[j], want)
				}
			}
		}
	}
}

func TestSlowRampNotLearned(t *testing.T) {
	// Pressure drifts away from what temperature and vibration imply: 0 to 8
	// conditional σ over 100 readings (each step 0.08 σ, lost in the noise),
	// then stays. The guarded model stops learning once the ramp crosses its
	// limit and keeps flagging the held break; an unguarded one (every
	// reading teaches, unclipped) absorbs it within a few dozen readings.
	run := func(cfg Config) (first, flagged int) {
		m, s, g := warmPlant(t, cfg, 3000, 6)
		x := make([]float64, 3)
		var r Result
		first = -1
		condSd := plantSd[0] * math.Sqrt(1-0.81) // about the conditional σ
		const ramp, hold = 100, 2000
		for i := range ramp + hold {
			g.draw(x)
			x[0] -= 8 * condSd * min(float64(i)/ramp, 1)
			step(m, &s, x, int64(3000+i)*1e9, &r)
			if r.Severity != None && first < 0 {
				first = i
			}
			if i >= ramp && r.Severity != None {
				flagged++
			}
		}
		return first, flagged
	}
	unguarded := DefaultConfig()
	unguarded.LearnBelow = math.Inf(1)
	unguarded.Clip = 0
	gf, gn := run(DefaultConfig())
	uf, un := run(unguarded)
	t.Logf("guarded: first alert at reading %d of the ramp, %d of 2000 held readings flagged; unguarded: %d, %d", gf, gn, uf, un)
	if gf < 0 || gn < 500 {
		t.Errorf("guarded model: first alert %d, %d of 2000 held readings flagged; want the held break flagged for long", gf, gn)
	}
	if un*10 > gn {
		t.Errorf("unguarded model flagged %d held readings, guarded %d: want the guard to make a tenfold difference", un, gn)
	}
}

func TestMissingSignalSkipped(t *testing.T) {
	m, s, _ := warmPlant(t, DefaultConfig(), 1000, 8)
	before := s
	before.Data = append([]float64(nil), s.Data...)
	var r Result
	for _, x := range [][]float64{{math.NaN(), 60, 2.5}, {4.3, math.Inf(1), 2.5}, {4.3, 60, math.Inf(-1)}, {4.3, -1e300, 2.5}} {
		m.Judge(&s, x, &r)
		if r.Judged || !r.Missing || r.Severity != None {
			t.Errorf("reading %v: judged %v, missing %v, severity %v; want skipped", x, r.Judged, r.Missing, r.Severity)
		}
		if m.Observe(&s, x, 5e12, true) {
			t.Errorf("reading %v was learned", x)
		}
	}
	if s.Skipped != 4 {
		t.Errorf("skipped %d; want 4", s.Skipped)
	}
	s.Skipped = 0
	if !reflect.DeepEqual(s, before) {
		t.Error("readings with a missing signal changed the state")
	}
}

func TestConstantSignal(t *testing.T) {
	// Vibration stuck at exactly 2.5 (a sensor that reports a constant).
	cfg := DefaultConfig()
	cfg.Alpha = 1e-3
	m := newModel(t, cfg, 3)
	s := m.NewState()
	g := newGauss(t, plantMu, plantCov(), 9)
	x := make([]float64, 3)
	var r Result
	alarms := 0
	for i := range 20000 {
		g.draw(x)
		x[2] = 2.5
		step(m, &s, x, int64(i), &r)
		for _, v := range []float64{r.T2, r.SPE, r.Score, r.Expected[0], r.Expected[2], r.ExpectedStd[2]} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("reading %d: non-finite result %+v", i, r)
			}
		}
		if i > 2000 && r.Severity != None {
			alarms++
		}
	}
	if rate := float64(alarms) / 18000; rate > 4*cfg.Alpha {
		t.Errorf("false-alarm rate with a constant signal %v; want about %v", rate, 2*cfg.Alpha)
	}
	// The pressure–temperature relation is still judged.
	x = []float64{plantMu[0] - 2*plantSd[0], plantMu[1] + 2*plantSd[1], 2.5}
	m.Judge(&s, x, &r)
	if r.Severity == None || r.Top != 0 && r.Top != 1 {
		t.Errorf("broken p–t relation beside a constant signal: severity %v, top %d", r.Severity, r.Top)
	}
	// And the constant signal moving is flagged.
	x = []float64{plantMu[0], plantMu[1], 2.6}
	m.Judge(&s, x, &r)
	if r.Severity == None || r.Top != 2 {
		t.Errorf("constant signal moved: severity %v, top %d", r.Severity, r.Top)
	}
}

func TestNoAllocations(t *testing.T) {
	for _, k := range []int{3, 8} {
		cfg := DefaultConfig()
		cfg.Refresh = 10 // refresh often, so the runs include refreshes
		m := newModel(t, cfg, k)
		s := m.NewState()
		rng := rand.New(rand.NewPCG(1, 2))
		xs := make([][]float64, 512)
		for i := range xs {
			xs[i] = make([]float64, k)
			base := rng.NormFloat64()
			for j := range k {
				xs[i][j] = float64(j) + base + 0.3*rng.NormFloat64()
			}
		}
		var r Result
		i := 0
		for ; i < 1000; i++ {
			step(m, &s, xs[i%len(xs)], int64(i), &r)
		}
		if !s.Warm {
			t.Fatal("not warm")
		}
		allocs := testing.AllocsPerRun(1000, func() {
			step(m, &s, xs[i%len(xs)], int64(i), &r)
			i++
		})
		if allocs != 0 {
			t.Errorf("k=%d: %v allocations per Judge+Observe; want 0", k, allocs)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	m, s, g := warmPlant(t, DefaultConfig(), 777, 10)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != s.BinarySize() {
		t.Errorf("encoding %d bytes; BinarySize says %d", len(b), s.BinarySize())
	}
	var got State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip changed the state:\ngot  %+v\nwant %+v", got, s)
	}
	// Both continue identically.
	x := make([]float64, 3)
	var r1, r2 Result
	for i := range 500 {
		g.draw(x)
		step(m, &s, x, int64(i), &r1)
		step(m, &got, x, int64(i), &r2)
		if r1 != r2 {
			t.Fatalf("reading %d after restore: got %+v; want %+v", i, r2, r1)
		}
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append([]byte{9}, b[1:]...), append(append([]byte{}, b[:1]...), append([]byte{9}, b[2:]...)...)} {
		var st State
		if err := st.UnmarshalBinary(bad); err == nil {
			t.Errorf("decoding %d bad bytes: no error", len(bad))
		}
	}
}

func TestExplain(t *testing.T) {
	m, s, _ := warmPlant(t, DefaultConfig(), 3000, 11)
	x := []float64{5.0, 60, 2.5}
	var r Result
	m.Judge(&s, x, &r)
	got := Explain([]Signal{{"pressure", "bar"}, {"temperature", "°C"}, {"vibration", "mm/s"}}, x, &r)
	want := "pressure 5 bar where 4.3 ± 0.0"
	if len(got) < len(want) || got[:len("pressure 5 bar where 4.3")] != want[:len("pressure 5 bar where 4.3")] {
		t.Errorf("got %q; want it to start %q", got, want)
	}
	t.Log(got)
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(DefaultConfig(), 1); err == nil {
		t.Error("k=1 accepted")
	}
	if _, err := New(DefaultConfig(), 9); err == nil {
		t.Error("k=9 accepted")
	}
	bad := DefaultConfig()
	bad.Variance = 1
	bad.Alpha = 0
	if _, err := New(bad, 3); err == nil {
		t.Error("variance 1, alpha 0 accepted")
	}
}

func TestOtherSignalSetStartsAfresh(t *testing.T) {
	m3, s3, _ := warmPlant(t, DefaultConfig(), 1000, 14)
	m4 := newModel(t, DefaultConfig(), 4)
	x := []float64{4.3, 60, 2.5, 7}
	var r Result
	m4.Judge(&s3, x, &r)
	if r.Judged {
		t.Error("a k=3 state was judged by a k=4 model")
	}
	if !m4.Update(&s3, x, 1, &r) || s3.K != 4 || s3.N != 1 {
		t.Errorf("k=3 state under a k=4 model: K %d, N %d; want a fresh k=4 state with one reading", s3.K, s3.N)
	}
	var zero State
	m3.Judge(&zero, x[:3], &r)
	if r.Judged || !m3.Observe(&zero, x[:3], 1, true) || zero.K != 3 {
		t.Errorf("zero state: judged %v, K %d", r.Judged, zero.K)
	}
}

func TestRelearnAfter(t *testing.T) {
	// Pressure steps to a new relation and stays (maintenance changed the
	// set point): flagged first, learned after RelearnAfter readings, then
	// quiet.
	cfg := DefaultConfig()
	cfg.RelearnAfter = 500
	m, s, g := warmPlant(t, cfg, 3000, 15)
	x := make([]float64, 3)
	var r Result
	flaggedEarly, flaggedLate := 0, 0
	for i := range 4000 {
		g.draw(x)
		x[0] += 4 * plantSd[0]
		step(m, &s, x, int64(i), &r)
		switch {
		case i < 400 && r.Severity != None:
			flaggedEarly++
		case i >= 3000 && r.Severity != None:
			flaggedLate++
		}
	}
	if flaggedEarly < 380 {
		t.Errorf("new relation flagged in %d of its first 400 readings; want nearly all", flaggedEarly)
	}
	if flaggedLate > 10 {
		t.Errorf("new relation still flagged in %d of 1000 readings long after relearn_after; want it learned", flaggedLate)
	}
}

// TestScaledChi2Shortcuts checks that the shortcuts of Model.scaledChi2
// (Chernoff's bound to skip a quantile that cannot exceed the floor, the
// constant for one degree of freedom) give exactly the limit the full
// computation gives.
func TestScaledChi2Shortcuts(t *testing.T) {
	for _, alpha := range []float64{1e-2, 1e-4, 1e-6} {
		cfg := DefaultConfig()
		cfg.Alpha = alpha
		m, err := New(cfg, 3)
		if err != nil {
			t.Fatal(err)
		}
		full := func(mean, vr float64) float64 {
			g, h := vr/(2*mean), 2*mean*mean/vr
			if !(g > 0 && g < math.MaxFloat64) || !(h > 0 && h < math.MaxFloat64) {
				return math.SmallestNonzeroFloat64
			}
			h = min(max(h, 0.05), 1e6)
			return g * distuv.ChiSquared{K: h}.Quantile(1-alpha)
		}
		for _, h := range []float64{0.01, 0.05, 0.3, 1, 1.7, 2, 5, 30, 400, 1e4, 1e6, 1e7} {
			bound := h * chernoffRatio(h, -math.Log(alpha))
			q := (distuv.ChiSquared{K: h}).Quantile(1 - alpha)
			if h >= 0.05 && h <= 1e6 && !(q <= bound) {
				t.Errorf("alpha %g, h %g: quantile %v above the Chernoff bound %v", alpha, h, q, bound)
			}
			for _, g := range []float64{1e-3, 0.7, 2.5} {
				mean := g * h
				vr := 2 * g * mean
				want := full(mean, vr)
				for _, floor := range []float64{0, want / 2, want * 0.999, want, want * 1.001, want * 3, 1e300} {
					if got := m.scaledChi2(mean, vr, floor); got != max(floor, want) {
						t.Errorf("alpha %g, g %g, h %g, floor %v: got %v; want %v", alpha, g, h, floor, got, max(floor, want))
					}
				}
			}
		}
	}
}

// TestAssessContributeIsJudge checks that Assess, then Contribute, writes
// exactly Judge's verdict, and that Assess alone writes the same statistics,
// scores and expectations.
func TestAssessContributeIsJudge(t *testing.T) {
	for _, k := range []int{2, 3, 5, 8} {
		m, err := New(DefaultConfig(), k)
		if err != nil {
			t.Fatal(err)
		}
		mu := make([]float64, k)
		cov := make([][]float64, k)
		for i := range cov {
			cov[i] = make([]float64, k)
			for j := range cov[i] {
				cov[i][j] = 0.5
			}
			cov[i][i] = 1 + float64(i)
			mu[i] = float64(10 * i)
		}
		g := newGauss(t, mu, cov, uint64(k))
		s := m.NewState()
		x := make([]float64, k)
		var judged, assessed Result
		for n := range 3000 {
			g.draw(x)
			if n%7 == 0 {
				x[n%k] += 6 // now and then a broken relation
			}
			m.Judge(&s, x, &judged)
			m.Assess(&s, x, &assessed)
			partial := assessed
			partial.partial = false
			want := Result{Judged: judged.Judged, Missing: judged.Missing,
				T2: judged.T2, T2Limit: judged.T2Limit, T2Score: judged.T2Score,
				SPE: judged.SPE, SPELimit: judged.SPELimit, SPEScore: judged.SPEScore,
				Score: judged.Score, Stat: judged.Stat, Severity: judged.Severity,
				Z: judged.Z, Expected: judged.Expected}
			if partial != want {
				t.Fatalf("k=%d, reading %d: Assess wrote %+v; want %+v", k, n, partial, want)
			}
			m.Contribute(&s, &assessed)
			if assessed != judged {
				t.Fatalf("k=%d, reading %d: Assess + Contribute wrote %+v; want %+v", k, n, assessed, judged)
			}
			m.Update(&s, x, int64(n), &judged)
		}
		if !s.Warm {
			t.Fatalf("k=%d: never warm", k)
		}
	}
}
