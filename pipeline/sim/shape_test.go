package sim_test

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

// TestDefaultsUnchanged: with the new features off, the generator writes the
// committed fixture byte for byte, as `task fixtures` (`vigil simulate --out
// fixtures/plant.log`) generated it, labels included.
func TestDefaultsUnchanged(t *testing.T) {
	wantLog, err := os.ReadFile("../../fixtures/plant.log")
	if err != nil {
		t.Fatal(err)
	}
	wantLabels, err := os.ReadFile("../../fixtures/plant.labels.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	if cfg.Cycles != (sim.Cycles{}) || cfg.Relation != (sim.Relation{}) {
		t.Fatalf("DefaultConfig turns on cycles or relations: %+v %+v", cfg.Cycles, cfg.Relation)
	}
	log, labels := writeLog(t, cfg)
	if !bytes.Equal(log, wantLog) {
		t.Errorf("the default run differs from fixtures/plant.log (%d bytes; want %d)", len(log), len(wantLog))
	}
	var lb bytes.Buffer
	if err := sim.WriteLabels(&lb, labels); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lb.Bytes(), wantLabels) {
		t.Errorf("the default labels differ from fixtures/plant.labels.json:\n%s", lb.Bytes())
	}
}

// series is one device's readings as seconds after the start and values per
// signal.
type series struct {
	at []float64
	x  [3][]float64
}

func seriesOf(rs []reading, dev string, start time.Time) series {
	var s series
	for _, r := range rs {
		if r.Device != dev {
			continue
		}
		s.at = append(s.at, r.Time.Sub(start).Seconds())
		for j, x := range [3]float64{r.P, r.T, r.V} {
			s.x[j] = append(s.x[j], x)
		}
	}
	return s
}

// fitSine returns the amplitude and phase (fraction of the period) of the
// least-squares sinusoid of the given period through (at, x), x centred.
func fitSine(at, x []float64, period float64) (amp, phase float64) {
	mean := 0.0
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss, sc, cc, xs, xc float64
	w := 2 * math.Pi / period
	for i, v := range x {
		s, c := math.Sincos(w * at[i])
		ss, sc, cc = ss+s*s, sc+s*c, cc+c*c
		xs, xc = xs+(v-mean)*s, xc+(v-mean)*c
	}
	det := ss*cc - sc*sc
	b, c := (xs*cc-xc*sc)/det, (xc*ss-xs*sc)/det // x ≈ b sin + c cos
	phase = math.Atan2(c, b) / (2 * math.Pi)
	if phase < 0 {
		phase++
	}
	return math.Hypot(b, c), phase
}

// bestPeriod returns the period in [lo, hi] seconds whose sinusoid fits x
// best (the periodogram's peak, on a 0.1 % grid), from 10-second means.
func bestPeriod(at, x []float64, lo, hi float64) float64 {
	var bt, bx []float64
	for i := 0; i < len(at); {
		j, sum := i, 0.0
		for ; j < len(at) && at[j] < at[i]+10; j++ {
			sum += x[j]
		}
		bt, bx = append(bt, (at[i]+at[j-1])/2), append(bx, sum/float64(j-i))
		i = j
	}
	best, bestAmp := lo, -1.0
	for p := lo; p <= hi; p *= 1.001 {
		if a, _ := fitSine(bt, bx, p); a > bestAmp {
			best, bestAmp = p, a
		}
	}
	return best
}

func cyclicConfig() sim.Config {
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Drifts, cfg.Faults = 4, 0, false, false
	cfg.Duration = 6 * time.Hour
	cfg.Cycles.Temperature = sim.Cycle{Period: 20 * time.Minute, MaxPeriod: 40 * time.Minute, Amp: 3, MaxAmp: 4}
	cfg.Cycles.Pressure = sim.Cycle{Period: 5 * time.Minute, MaxPeriod: 15 * time.Minute, Amp: 3}
	cfg.Cycles.Vibration = sim.Cycle{Period: 7 * time.Minute, Amp: 0.2, Absolute: true, Phase: 0.25, FixedPhase: true}
	return cfg
}

// TestCyclesPeriodAmplitude: each device draws its periods and amplitudes in
// the configured ranges (in σ, or absolute), and the generated data have
// them: the periodogram peaks within 1 % of the drawn period and the fitted
// sinusoid has the drawn amplitude within 10 %, and the fixed phase.
func TestCyclesPeriodAmplitude(t *testing.T) {
	cfg := cyclicConfig()
	g, rs := run(t, cfg)
	phases := map[float64]bool{}
	for _, d := range devices(g, cfg.Devices) {
		s := seriesOf(rs, d.Name, cfg.Start)
		for j, want := range []struct {
			c     sim.Cycle
			sigma float64
		}{{cfg.Cycles.Pressure, d.SigmaP}, {cfg.Cycles.Temperature, d.SigmaT}, {cfg.Cycles.Vibration, d.SigmaV}} {
			c := d.Cycles[j]
			name := []string{"pressure", "temperature", "vibration"}[j]
			maxP, minA, maxA := want.c.MaxPeriod, want.c.Amp, max(want.c.MaxAmp, want.c.Amp)
			if maxP == 0 {
				maxP = want.c.Period
			}
			if !want.c.Absolute {
				minA, maxA = minA*want.sigma, maxA*want.sigma
			}
			if c.Period < want.c.Period || c.Period > maxP || c.Amplitude < minA-1e-12 || c.Amplitude > maxA+1e-12 {
				t.Errorf("%s %s: drew period %v amplitude %.4g; want %v–%v and %.4g–%.4g", d.Name, name, c.Period, c.Amplitude, want.c.Period, maxP, minA, maxA)
			}
			period := c.Period.Seconds()
			got := bestPeriod(s.at, s.x[j], 0.7*want.c.Period.Seconds(), 1.3*maxP.Seconds())
			amp, phase := fitSine(s.at, s.x[j], period)
			t.Logf("%s %s: period %.0f s (estimated %.0f s), amplitude %.4g (fitted %.4g), phase %.3f (fitted %.3f)",
				d.Name, name, period, got, c.Amplitude, amp, c.Phase, phase)
			if math.Abs(got-period) > 0.01*period {
				t.Errorf("%s %s: the data's period is %.0f s; want %.0f s", d.Name, name, got, period)
			}
			if math.Abs(amp-c.Amplitude) > 0.1*c.Amplitude {
				t.Errorf("%s %s: the data's amplitude is %.4g; want %.4g", d.Name, name, amp, c.Amplitude)
			}
			if want.c.FixedPhase && math.Abs(phase-want.c.Phase) > 0.02 {
				t.Errorf("%s %s: phase %.3f; want the fixed %.3f", d.Name, name, phase, want.c.Phase)
			}
			if !want.c.FixedPhase {
				phases[c.Phase] = true
			}
		}
	}
	if len(phases) != 2*cfg.Devices {
		t.Errorf("%d distinct random phases over %d devices and 2 signals; want all different", len(phases), cfg.Devices)
	}
}

// TestDailyCycle: the daily load cycle peaks at 14:00 UTC with the
// configured amplitude in σ.
func TestDailyCycle(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Drifts, cfg.Faults = 1, 0, false, false
	cfg.Interval, cfg.Duration = time.Second, 48*time.Hour
	cfg.Cycles.Daily = 3
	g, rs := run(t, cfg)
	d := g.Device(0)
	s := seriesOf(rs, d.Name, cfg.Start)
	for j, sigma := range []float64{d.SigmaP, d.SigmaT, d.SigmaV} {
		amp, phase := fitSine(s.at, s.x[j], 86400)
		// A cosine peaking at 14:00 is a sine 6 h ahead: 2 h ahead at the 10:00 start.
		wantPhase := (6 - (14 - 10)) / 24.0
		if math.Abs(amp-3*sigma) > 0.1*3*sigma || math.Abs(phase-wantPhase) > 0.02 {
			t.Errorf("signal %d: daily amplitude %.4g phase %.3f; want %.4g and %.3f", j, amp, phase, 3*sigma, wantPhase)
		}
	}
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx, my = mx+x[i], my+y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy, sxx, syy = sxy+dx*dy, sxx+dx*dx, syy+dy*dy
	}
	return sxy / math.Sqrt(sxx*syy)
}

// TestRelationCorrelation: signals coupled to the load have the Pearson
// correlation the documentation gives, k₁k₂/√((1.5+k₁²)(1.5+k₂²)), within
// 0.05, including a negative coupling; an uncoupled signal is uncorrelated.
func TestRelationCorrelation(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Drifts, cfg.Faults = 3, 0, false, false
	cfg.Duration = 6 * time.Hour
	cfg.Relation = sim.Relation{Pressure: 3, Temperature: -2, Tau: 2 * time.Minute}
	g, rs := run(t, cfg)
	k := [3]float64{3, -2, 0}
	want := func(a, b int) float64 { return k[a] * k[b] / math.Sqrt((1.5+k[a]*k[a])*(1.5+k[b]*k[b])) }
	var mean [3]float64
	for _, d := range devices(g, cfg.Devices) {
		if d.Load != [3]float64{3 * d.SigmaP, -2 * d.SigmaT, 0} {
			t.Errorf("%s: Load %v; want 3σp, -2σt, 0", d.Name, d.Load)
		}
		s := seriesOf(rs, d.Name, cfg.Start)
		for k, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
			r := pearson(s.x[pair[0]], s.x[pair[1]])
			w := want(pair[0], pair[1])
			mean[k] += r / float64(cfg.Devices)
			t.Logf("%s: r(%d,%d) = %.3f; want %.3f", d.Name, pair[0], pair[1], r, w)
			// One device's 6 hours hold about 90 load time constants: its
			// sample variance, and the slow waves, move r by a few hundredths.
			if math.Abs(r-w) > 0.1 {
				t.Errorf("%s: r(signal %d, signal %d) = %.3f; want %.3f ± 0.1", d.Name, pair[0], pair[1], r, w)
			}
		}
	}
	for k, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
		if w := want(pair[0], pair[1]); math.Abs(mean[k]-w) > 0.04 {
			t.Errorf("fleet mean r(signal %d, signal %d) = %.3f; want %.3f ± 0.04", pair[0], pair[1], mean[k], w)
		}
	}
}

func relatedConfig() sim.Config {
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Drifts, cfg.Faults = 6, 6, false, false
	cfg.Duration = 3 * time.Hour
	if err := sim.ApplyProfile(&cfg, "related"); err != nil {
		panic(err)
	}
	cfg.Duration = 3 * time.Hour
	return cfg
}

// TestRelationBreaks: relation breaks are labelled process.relation with the
// signal that broke away as detail, and last 50–80 s. Inside them the other
// signals no longer predict that signal: a least-squares fit on them, made
// outside labels, misses it by at least twice its usual error, and its
// correlation with them, pooled over the fleet's breaks, is far below the
// correlation outside. Yet every signal stays within the range the device's
// clean twin (the same fleet without injections) spans over the run, ± 1σ,
// and outside labels the messages are the twin's.
func TestRelationBreaks(t *testing.T) {
	cfg := relatedConfig()
	g, rs := run(t, cfg)
	labels := g.Labels()
	clean := cfg
	clean.Anomalous = 0
	_, twin := run(t, clean)
	if len(twin) != len(rs) {
		t.Fatalf("%d messages; the clean twin has %d", len(rs), len(twin))
	}
	byDev := map[string][]sim.Label{}
	for _, l := range labels {
		byDev[l.Device] = append(byDev[l.Device], l)
	}
	label := func(r reading) (sim.Label, bool) {
		for _, l := range byDev[r.Device] {
			if !r.Time.Before(l.Start) && !r.Time.After(l.End) {
				return l, true
			}
		}
		return sim.Label{}, false
	}
	breaks := 0
	for _, l := range labels {
		if l.Kind != sim.KindRelation {
			continue
		}
		breaks++
		if !slicesContains([]string{"pressure", "temperature", "vibration"}, l.Detail) {
			t.Errorf("relation label %+v: detail is not a signal", l)
		}
		if d := l.End.Sub(l.Start); d < 48*time.Second || d > 80*time.Second {
			t.Errorf("relation label %+v lasts %v; want 50–80 s", l, d)
		}
	}
	if breaks < 10 {
		t.Fatalf("%d relation breaks in %v of %d devices; want at least 10", breaks, cfg.Duration, cfg.Devices)
	}
	sigIdx := map[string]int{"pressure": 0, "temperature": 1, "vibration": 2}
	var rIn, rOut [2][]float64 // pooled over the fleet, centred per device: broken signal, a partner
	for _, d := range devices(g, cfg.Devices) {
		sigma := [3]float64{d.SigmaP, d.SigmaT, d.SigmaV}
		lo := [3]float64{math.Inf(1), math.Inf(1), math.Inf(1)}
		hi := [3]float64{math.Inf(-1), math.Inf(-1), math.Inf(-1)}
		var out [][3]float64
		for i, r := range rs {
			if r.Device != d.Name {
				continue
			}
			c := twin[i]
			for j, x := range [3]float64{c.P, c.T, c.V} {
				lo[j], hi[j] = min(lo[j], x), max(hi[j], x)
			}
			if _, ok := label(r); !ok {
				if r.Payload != c.Payload {
					t.Fatalf("message outside labels differs from the clean twin:\n%s\n%s", r.Payload, c.Payload)
				}
				out = append(out, [3]float64{r.P, r.T, r.V})
			}
		}
		var mean [3]float64
		for _, x := range out {
			for j := range x {
				mean[j] += x[j] / float64(len(out))
			}
		}
		for b := range 3 {
			// Predict signal b from the other two, fitted outside labels.
			o1, o2 := (b+1)%3, (b+2)%3
			coef := fit3(out, b, o1, o2)
			var outErr, inErr float64
			for _, x := range out {
				e := x[b] - coef[0] - coef[1]*x[o1] - coef[2]*x[o2]
				outErr += e * e
			}
			outErr = math.Sqrt(outErr / float64(len(out)))
			n := 0
			for _, r := range rs {
				l, ok := label(r)
				if r.Device != d.Name || !ok || l.Kind != sim.KindRelation {
					continue
				}
				x := [3]float64{r.P, r.T, r.V}
				for j := range x {
					if x[j] < lo[j]-sigma[j] || x[j] > hi[j]+sigma[j] {
						t.Errorf("%s %s break at %s: signal %d is %.2f, outside the clean range %.2f–%.2f ± 1σ",
							d.Name, l.Detail, r.Time.Format(time.TimeOnly), j, x[j], lo[j], hi[j])
					}
				}
				// The plateau: 10 s in, 10 s before the end.
				if sigIdx[l.Detail] != b || r.Time.Sub(l.Start) < 10*time.Second || l.End.Sub(r.Time) < 10*time.Second {
					continue
				}
				e := x[b] - coef[0] - coef[1]*x[o1] - coef[2]*x[o2]
				inErr += e * e
				n++
				rIn[0], rIn[1] = append(rIn[0], (x[b]-mean[b])/sigma[b]), append(rIn[1], (x[o1]-mean[o1])/sigma[o1])
			}
			if n == 0 {
				continue
			}
			inErr = math.Sqrt(inErr / float64(n))
			t.Logf("%s: %s predicted from the others misses by %.2fσ inside its breaks (%d samples), %.2fσ outside",
				d.Name, []string{"pressure", "temperature", "vibration"}[b], inErr/sigma[b], n, outErr/sigma[b])
			if inErr < 2*outErr {
				t.Errorf("%s: signal %d predicted from the others misses by %.3g inside its breaks, %.3g outside; want at least twice",
					d.Name, b, inErr, outErr)
			}
			for _, x := range out {
				rOut[0], rOut[1] = append(rOut[0], (x[b]-mean[b])/sigma[b]), append(rOut[1], (x[o1]-mean[o1])/sigma[o1])
			}
		}
	}
	// Centre per device before pooling: operating points differ.
	ri, ro := pearson(rIn[0], rIn[1]), pearson(rOut[0], rOut[1])
	t.Logf("broken signal vs a partner: r = %.2f inside breaks, %.2f outside", ri, ro)
	if ro < 0.7 || ri > ro-0.6 {
		t.Errorf("r(broken signal, partner) = %.2f inside breaks, %.2f outside; want ≥ 0.7 outside and at least 0.6 less inside", ri, ro)
	}
}

// fit3 returns the least-squares a, b, c of x[y] ≈ a + b·x[p] + c·x[q].
func fit3(xs [][3]float64, y, p, q int) [3]float64 {
	var m [3][4]float64 // normal equations, augmented
	for _, x := range xs {
		v := [3]float64{1, x[p], x[q]}
		for i := range 3 {
			for j := range 3 {
				m[i][j] += v[i] * v[j]
			}
			m[i][3] += v[i] * x[y]
		}
	}
	for i := range 3 { // Gauss–Jordan; the matrix is positive definite
		for k := range 3 {
			if k != i {
				f := m[k][i] / m[i][i]
				for j := range 4 {
					m[k][j] -= f * m[i][j]
				}
			}
		}
	}
	return [3]float64{m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestRhythmChange: a device that changes rhythm runs its cycle at the old
// period before At and at Factor times it after, the phase continuous, and
// gets one rhythm label from At to At + 8 periods; the other devices keep
// their period and get none.
func TestRhythmChange(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Drifts, cfg.Faults = 2, 0, false, false
	cfg.Duration = 10 * time.Hour
	cfg.Cycles.Temperature = sim.Cycle{Period: 30 * time.Minute, Amp: 4}
	cfg.Cycles.Rhythm = sim.Rhythm{At: 4 * time.Hour, Factor: 0.6, Devices: 1}
	g, rs := run(t, cfg)
	labels := g.Labels()
	if len(labels) != 1 {
		t.Fatalf("labels %+v; want one rhythm label", labels)
	}
	l := labels[0]
	d := g.Device(0)
	wantStart, wantEnd := cfg.Start.Add(cfg.Cycles.Rhythm.At), cfg.Start.Add(4*time.Hour+8*30*time.Minute)
	if l.Device != d.Name || l.Kind != sim.KindRhythm || l.Detail != sim.DetailPeriod ||
		l.Start.Before(wantStart) || l.Start.Sub(wantStart) > time.Second || l.End.After(wantEnd) || wantEnd.Sub(l.End) > time.Second {
		t.Errorf("label %+v; want %s rhythm period from %v to %v", l, d.Name, wantStart, wantEnd)
	}
	for i, want := range []struct{ before, after float64 }{{1800, 1080}, {1800, 1800}} {
		name := g.Device(i).Name
		s := seriesOf(rs, name, cfg.Start)
		var bt, bx, at, ax []float64
		for k, ts := range s.at {
			if ts < 4*3600 {
				bt, bx = append(bt, ts), append(bx, s.x[1][k])
			} else {
				at, ax = append(at, ts), append(ax, s.x[1][k])
			}
		}
		pb, pa := bestPeriod(bt, bx, 600, 3000), bestPeriod(at, ax, 600, 3000)
		t.Logf("%s: period %.0f s before, %.0f s after", name, pb, pa)
		if math.Abs(pb-want.before) > 0.02*want.before || math.Abs(pa-want.after) > 0.02*want.after {
			t.Errorf("%s: period %.0f s before the change and %.0f s after; want %.0f and %.0f", name, pb, pa, want.before, want.after)
		}
		// Continuous phase: no jump at the change beyond what noise makes.
		for k := 1; k < len(s.at); k++ {
			if s.at[k-1] < 4*3600 && s.at[k] >= 4*3600 && math.Abs(s.x[1][k]-s.x[1][k-1]) > 10*d.SigmaT {
				t.Errorf("%s: temperature jumps from %.2f to %.2f at the change", name, s.x[1][k-1], s.x[1][k])
			}
		}
	}
}

// TestShapesDeterministic: every feature on, the same seed gives the same
// bytes and labels, another seed other ones.
func TestShapesDeterministic(t *testing.T) {
	cfg := sim.DefaultConfig()
	if err := sim.ApplyProfile(&cfg, "cyclic,related,rhythm"); err != nil {
		t.Fatal(err)
	}
	cfg.Duration, cfg.LeadIn, cfg.Cycles.Rhythm.At, cfg.Cycles.Daily = time.Hour, 10*time.Minute, 30*time.Minute, 1
	cfg.Traffic = sim.Traffic{Flood: true, Spoof: true, Rogue: true}
	a, la := writeLog(t, cfg)
	b, lb := writeLog(t, cfg)
	if !bytes.Equal(a, b) || !slicesEqualLabels(la, lb) {
		t.Error("two runs of the same config differ")
	}
	kinds := map[string]bool{}
	for _, l := range la {
		kinds[l.Kind] = true
	}
	for _, k := range []string{sim.KindRelation, sim.KindRhythm, sim.KindTraffic, sim.KindOverpressure} {
		if !kinds[k] {
			t.Errorf("no %s label in %v", k, kinds)
		}
	}
	cfg.Seed++
	if c, _ := writeLog(t, cfg); bytes.Equal(a, c) {
		t.Error("another seed gives the same log")
	}
}

func slicesEqualLabels(a, b []sim.Label) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseCycle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sim.Cycle
		err  string
	}{
		{"", sim.Cycle{}, ""},
		{"off", sim.Cycle{}, ""},
		{"20m-40m:3-4", sim.Cycle{Period: 20 * time.Minute, MaxPeriod: 40 * time.Minute, Amp: 3, MaxAmp: 4}, ""},
		{"24h:1.5abs@0.25", sim.Cycle{Period: 24 * time.Hour, Amp: 1.5, Absolute: true, Phase: 0.25, FixedPhase: true}, ""},
		{"10m:2", sim.Cycle{Period: 10 * time.Minute, Amp: 2}, ""},
		{"10m", sim.Cycle{}, "no amplitude"},
		{"ten:2", sim.Cycle{}, "period"},
		{"5s:2", sim.Cycle{}, "Period must be between"},
		{"40m-20m:2", sim.Cycle{}, "MaxPeriod"},
		{"10m:0", sim.Cycle{}, "Amp must be above 0"},
		{"10m:2@1", sim.Cycle{}, "Phase"},
		{"10m:x", sim.Cycle{}, "amplitude"},
	} {
		got, err := sim.ParseCycle(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseCycle(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseCycle(%q) error %v; want one containing %q", tc.in, err, tc.err)
		}
		if tc.err == "" && tc.in != "off" {
			if back, err := sim.ParseCycle(got.String()); err != nil || back != got {
				t.Errorf("ParseCycle(%q).String() = %q reads back as %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

func TestParseRelation(t *testing.T) {
	r, err := sim.ParseRelation("p=3, temperature=-2,v=1.5")
	if want := (sim.Relation{Pressure: 3, Temperature: -2, Vibration: 1.5, Tau: sim.DefaultLoadTau}); err != nil || r != want {
		t.Errorf("got %+v, %v; want %+v", r, err, want)
	}
	if r.String() != "p=3,t=-2,v=1.5" {
		t.Errorf("String() = %q", r.String())
	}
	for _, bad := range []string{"p", "p=x", "q=1", "p=100"} {
		if _, err := sim.ParseRelation(bad); err == nil {
			t.Errorf("ParseRelation(%q) accepted", bad)
		}
	}
}

func TestValidateShapes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*sim.Config)
		field string // "" when valid
	}{
		{"profiles", func(c *sim.Config) { _ = sim.ApplyProfile(c, "cyclic,related,rhythm") }, ""},
		{"cycle without period", func(c *sim.Config) { c.Cycles.Pressure.Amp = 3 }, "Cycles.Pressure.Period"},
		{"cycle too short", func(c *sim.Config) { c.Cycles.Temperature = sim.Cycle{Period: time.Second, Amp: 1} }, "Cycles.Temperature.Period"},
		{"cycle without amplitude", func(c *sim.Config) { c.Cycles.Vibration = sim.Cycle{Period: time.Minute} }, "Cycles.Vibration.Amp"},
		{"max period below period", func(c *sim.Config) {
			c.Cycles.Pressure = sim.Cycle{Period: time.Hour, MaxPeriod: time.Minute, Amp: 1}
		}, "Cycles.Pressure.MaxPeriod"},
		{"negative daily", func(c *sim.Config) { c.Cycles.Daily = -1 }, "Cycles.Daily"},
		{"rhythm without cycle", func(c *sim.Config) { c.Cycles.Rhythm = sim.Rhythm{At: time.Hour, Factor: 0.5, Devices: 1} }, "Cycles.Rhythm.At"},
		{"rhythm factor 1", func(c *sim.Config) {
			c.Cycles.Temperature = sim.Cycle{Period: time.Hour, Amp: 3}
			c.Cycles.Rhythm = sim.Rhythm{At: time.Hour, Factor: 1, Devices: 1}
		}, "Cycles.Rhythm.Factor"},
		{"rhythm on too many devices", func(c *sim.Config) {
			c.Cycles.Temperature = sim.Cycle{Period: time.Hour, Amp: 3}
			c.Cycles.Rhythm = sim.Rhythm{At: time.Hour, Factor: 2, Devices: 13}
		}, "Cycles.Rhythm.Devices"},
		{"relation without tau", func(c *sim.Config) { c.Relation = sim.Relation{Pressure: 1} }, "Relation.Tau"},
		{"breaks with one coupled signal", func(c *sim.Config) {
			c.Relation = sim.Relation{Pressure: 1, Tau: time.Minute, Breaks: true}
		}, "Relation.Breaks"},
		{"breaks with a short cycle", func(c *sim.Config) {
			c.Relation = sim.Relation{Pressure: 1, Vibration: 1, Tau: time.Minute, Breaks: true}
			c.Cycle = time.Minute
		}, "Relation.Breaks"},
		{"coupling too strong", func(c *sim.Config) { c.Relation = sim.Relation{Pressure: 50, Tau: time.Minute} }, "Relation.Pressure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("got %v; want no error", err)
			case tc.field != "" && (err == nil || !strings.HasPrefix(err.Error(), "sim: "+tc.field+" ")):
				t.Errorf("got %v; want an error naming %s", err, tc.field)
			}
		})
	}
	if err := sim.ApplyProfile(new(sim.Config), "cyclic,wobbly"); err == nil || !strings.Contains(err.Error(), `"wobbly"`) {
		t.Errorf("ApplyProfile accepted an unknown profile: %v", err)
	}
}
