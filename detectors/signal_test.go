package detectors_test

import (
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

// The generic signal: a flow of 50 ± 1 (no unit).
const f0, fSigma = 50.0, 1.0

var flowTable = table{
	value: flow,
	op:    f0,
	sigma: fSigma,
	clean: func(nz noise, _ int) float64 { return nz.gauss(f0, fSigma) },
	checks: map[string]stat{
		"signal.spike": {"", statValue},
		"signal.drift": {"sigma", statSigma},
	},
}

func TestSignal(t *testing.T) {
	shift := func(d float64) func(int, float64) float64 { return func(_ int, x float64) float64 { return x + d } }
	ramp := func(perSample float64) func(int, float64) float64 {
		return func(i int, x float64) float64 { return x + perSample*float64(i+1) }
	}
	flowTable.run(t, []injection{
		{
			name: "spike up",
			n:    4, after: 30,
			inject: shift(9 * fSigma),
			// 9 sigma is 1.5 allowed deviations: a warning, after the hold of 2.
			want: []want{{detector: "signal.spike", severity: pipeline.Warning, from: 1, by: 2, resolves: true,
				msg: []string{"above the learned band"}}},
		},
		{
			name: "spike down",
			n:    4, after: 30,
			inject: shift(-15 * fSigma),
			want: []want{{detector: "signal.spike", severity: pipeline.Critical, from: 1, by: 2, below: true, resolves: true,
				msg: []string{"below the learned band"}}},
		},
		{
			name: "drift up",
			n:    400,
			// 0.05 sigma a sample reaches 6 sigma after 120 samples.
			inject: ramp(0.05 * fSigma),
			want: []want{{detector: "signal.drift", severity: pipeline.Warning, from: 0, by: 120,
				msg: []string{"Drift of flow above the baseline"}}},
		},
		{
			name:   "drift down",
			n:      400,
			inject: ramp(-0.05 * fSigma),
			want: []want{{detector: "signal.drift", severity: pipeline.Warning, from: 0, by: 120, below: true,
				msg: []string{"Drift of flow below the baseline"}}},
		},
		{
			name:   "10000 samples of clean noise",
			n:      10000,
			forbid: []string{"*"},
		},
		{
			// NAB's art_daily_perfect_square_wave: 20 and 80, switching every
			// 108 samples, one sample every 5 minutes.
			name: "perfect square wave",
			step: 300e9,
			clean: func(_ noise, i int) float64 {
				if i/108%2 == 1 {
					return 80
				}
				return 20
			},
			before: -1,
			n:      4000,
			forbid: []string{"*"},
		},
		{
			name:   "constant",
			clean:  func(noise, int) float64 { return 42 },
			before: -1,
			n:      4000,
			forbid: []string{"*"},
		},
		{
			name:   "constant, then a 10% step",
			clean:  func(noise, int) float64 { return 42 },
			before: 1000,
			n:      20,
			inject: func(int, float64) float64 { return 46.2 },
			want: []want{
				// The spread of a flat signal is its floor, 0.1% of the
				// median: a 10% step is far outside the band.
				{detector: "signal.spike", severity: pipeline.Critical, from: 1, by: 2},
				// One sample adds at most h/4 to a CUSUM, so a shift
				// needs at least four samples to count as sustained.
				{detector: "signal.drift", severity: pipeline.Warning, from: 3, by: 4},
			},
		},
	})
}
