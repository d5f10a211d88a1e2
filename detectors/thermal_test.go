package detectors_test

import (
	"math"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

var temperatureTable = table{
	value: temperature,
	unit:  "°C",
	op:    t0C,
	sigma: tSig,
	clean: func(nz noise, _ int) float64 { return nz.gauss(t0C, tSig) },
	checks: map[string]stat{
		"thermal.limit":       {"°C", statValue},
		"thermal.drift":       {"sigma", statSigma},
		"thermal.fluctuation": {"°C", statStd},
		"thermal.rate":        {"°C/s", statRate},
	},
}

func TestThermal(t *testing.T) {
	limits := func(p *detectors.Params) { p.Thermal.High, p.Thermal.Low = ptr(70), ptr(50) }
	// A drift of 0.02 °C/s is 0.08 sigma a sample: it reaches 6 sigma (1.5 °C)
	// after 75 samples, and the alert must come before that.
	const drift = 0.02
	drift6 := int(math.Ceil(6 * tSig / drift))
	temperatureTable.run(t, []injection{
		{
			name:   "high limit during warm-up",
			edit:   limits,
			before: 50, n: 3, after: 10,
			inject: func(int, float64) float64 { return 72 },
			want: []want{{detector: "thermal.limit", severity: pipeline.Critical, from: 0, by: 1, resolves: true,
				msg: []string{"above the configured high limit of 70 °C"}}},
			forbid: []string{"thermal.drift", "thermal.fluctuation", "thermal.rate"},
		},
		{
			name: "low limit",
			edit: limits,
			n:    3, after: 30,
			inject: func(int, float64) float64 { return 45 },
			want: []want{{detector: "thermal.limit", severity: pipeline.Critical, from: 0, by: 1, below: true, resolves: true,
				msg: []string{"below the configured low limit of 50 °C"}}},
		},
		{
			name:   "limits not crossed",
			edit:   limits,
			n:      100,
			inject: func(i int, x float64) float64 { return x + 9*math.Sin(float64(i)/10) },
			forbid: []string{"thermal.limit"},
		},
		{
			name:   "slow upward drift",
			n:      600,
			inject: func(i int, x float64) float64 { return x + drift*float64(i+1) },
			want: []want{{detector: "thermal.drift", severity: pipeline.Warning, from: 0, by: drift6,
				msg: []string{"Drift of temperature above the baseline"}}},
			forbid: []string{"thermal.rate", "thermal.fluctuation"},
		},
		{
			name:   "slow downward drift",
			n:      600,
			inject: func(i int, x float64) float64 { return x - drift*float64(i+1) },
			want: []want{{detector: "thermal.drift", severity: pipeline.Warning, from: 0, by: drift6, below: true,
				msg: []string{"Drift of temperature below the baseline"}}},
			forbid: []string{"thermal.rate", "thermal.fluctuation"},
		},
		{
			name: "fast rise",
			n:    3, after: 30,
			// 4 °C/s; the fastest normal change of 0.25 °C noise is about
			// 4 * 0.25 * sqrt(2) = 1.4 °C/s, so the limit is about 3.5 °C/s.
			inject: func(i int, x float64) float64 { return x + 4*float64(i+1) },
			want: []want{{detector: "thermal.rate", severity: pipeline.Warning, from: 0, by: 1,
				msg: []string{"temperature changes at", "°C/s"}}},
		},
		{
			name: "fast fall",
			n:    3, after: 30,
			// The rate check is two-sided: Value is |rate|.
			inject: func(i int, x float64) float64 { return x - 4*float64(i+1) },
			want: []want{{detector: "thermal.rate", severity: pipeline.Warning, from: 0, by: 1,
				msg: []string{"temperature changes at", "°C/s"}}},
			check: func(t *testing.T, g *rig, start int) {
				if a, _, _ := g.first("thermal.rate", pipeline.Firing, start); a.Observed >= t0C-2 {
					t.Errorf("got observed %v; want the fallen temperature", a.Observed)
				}
			},
		},
		{
			name: "oscillation ±3 °C period 6 s",
			n:    60, after: 60,
			inject: func(i int, x float64) float64 { return x + 3*math.Sin(2*math.Pi*float64(i)/6) },
			// Hold 3; the 8-sample window needs a few samples to fill.
			want: []want{{detector: "thermal.fluctuation", severity: pipeline.Warning, from: 2, by: 12, resolves: true,
				msg: []string{"temperature fluctuates"}}},
		},
		{
			name:   "10000 samples of clean noise",
			n:      10000,
			forbid: []string{"*"},
		},
		{
			name: "slow sinusoid of 1 sigma, period 15 min",
			clean: func(nz noise, i int) float64 {
				return nz.gauss(t0C+tSig*math.Sin(2*math.Pi*float64(i)/900), tSig)
			},
			before: -1, // the cycle is normal operation from the start
			n:      20 * 900,
			forbid: []string{"*"},
		},
	})
}

// TestDriftTrendFolds: a machine warming up for two hours, its
// temperature rising by 6 σ an hour while it wanders around the trend (an
// AR(1) of 2 σ with a 3-minute time constant), as the SKAB test bed's
// thermocouple and vibration do. The drift CUSUM crosses on a surge of the
// trend, clears once the baseline has caught up, and crosses again minutes
// later. With the default keep_firing_for those crossings are fewer alerts,
// one of which says how often it came back; without it, an alert each time.
func TestDriftTrendFolds(t *testing.T) {
	run := func(keep bool) (fired int, g *rig) {
		g = newRig(t, newSet(t, func(c *detectors.Config) {
			if !keep {
				c.Params.Thermal.Drift.KeepFiringFor = 0
			}
		}))
		nz := newNoise(21)
		phi := math.Exp(-1.0 / 180)
		wander := 0.0
		value := func(level float64) pipeline.Value {
			wander = phi*wander + math.Sqrt(1-phi*phi)*nz.gauss(0, 2*tSig)
			return temperature(nz.gauss(level+wander, tSig))
		}
		for range warmup + 3600 {
			g.feed(value(t0C))
		}
		level := t0C
		for range 2 * 3600 {
			level += 6 * tSig / 3600
			g.feed(value(level))
		}
		for range 1800 {
			g.feed(value(level))
		}
		for _, a := range g.alerts {
			if a.Detector == "thermal.drift" && a.State == pipeline.Firing && !a.Escalation {
				fired++
			}
		}
		return fired, g
	}
	without, _ := run(false)
	with, g := run(true)
	t.Logf("thermal.drift alerts: %d without keep_firing_for, %d with the default", without, with)
	if without < 7 || with > 5 {
		t.Errorf("got %d drift alerts without keep_firing_for and %d with it; want the wander to re-raise it (7 or more) and keep_firing_for to fold the returns (5 or fewer):%s",
			without, with, fmtAlerts(g.alerts))
	}
	flapped := false
	for _, a := range g.alerts {
		if a.Detector == "thermal.drift" && a.State == pipeline.Resolved && strings.Contains(a.Message, "It flapped") {
			flapped = true
		}
	}
	if !flapped {
		t.Errorf("no drift resolution says it flapped:%s", fmtAlerts(g.alerts))
	}
}
