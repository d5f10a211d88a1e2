package detectors_test

import (
	"testing"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

var pressureTable = table{
	value: pressure,
	unit:  "bar",
	op:    p0,
	sigma: pSigma,
	clean: func(nz noise, _ int) float64 { return nz.gauss(p0, pSigma) },
	checks: map[string]stat{
		"overpressure.limit": {"bar", statValue},
		"overpressure.spike": {"bar", statValue},
		"overpressure.rise":  {"sigma", statSigma},
		"overpressure.rate":  {"bar/s", statRate},
	},
}

func TestOverpressure(t *testing.T) {
	limit := func(p *detectors.Params) { p.Overpressure.Limit = ptr(5) }
	pressureTable.run(t, []injection{
		{
			name:   "limit fires during warm-up",
			edit:   limit,
			before: 50, n: 3, after: 10,
			inject: func(int, float64) float64 { return 5.5 },
			want: []want{{detector: "overpressure.limit", severity: pipeline.Critical, from: 0, by: 1, resolves: true,
				msg: []string{"above the configured limit of 5 bar"}}},
			// Nothing else may fire during warm-up but the warm-up spike
			// check (5.5 bar is a gross outlier of the first 50 readings).
			forbid: []string{"overpressure.rise", "overpressure.rate"},
		},
		{
			name: "limit fires when warm",
			edit: limit,
			n:    5, after: 30,
			inject: func(int, float64) float64 { return 5.2 },
			want:   []want{{detector: "overpressure.limit", severity: pipeline.Critical, from: 0, by: 1, resolves: true}},
		},
		{
			name: "limit not crossed",
			edit: limit,
			n:    20,
			// 4.9 bar is 15 sigma above the operating point but below the limit;
			// the limit check itself stays silent.
			inject: func(int, float64) float64 { return 4.9 },
			forbid: []string{"overpressure.limit"},
		},
		{
			name: "spike to 1.5 p0",
			n:    6, after: 30,
			inject: func(_ int, x float64) float64 { return x + 0.5*p0 },
			// Hold 1: firing on the first spike sample; 2 bar is ~5.5 times
			// the allowed 6 sigma, so critical.
			want: []want{{detector: "overpressure.spike", severity: pipeline.Critical, from: 0, by: 1, resolves: true,
				msg: []string{"above the learned band"}}},
		},
		{
			name: "dip to 0.5 p0 is not an overpressure",
			n:    6, after: 100,
			inject: func(_ int, x float64) float64 { return x - 0.5*p0 },
			forbid: []string{"*"},
		},
		{
			// A one-reading excursion is an overpressure transient, at any
			// message rate (issue 15): hold 1.
			name: "single-sample spike is caught",
			n:    1, after: 50,
			inject: func(_ int, x float64) float64 { return x + 0.5*p0 },
			want: []want{{detector: "overpressure.spike", severity: pipeline.Critical, from: 0, by: 1, resolves: true,
				msg: []string{"above the learned band"}}},
		},
		{
			name: "sustained rise of 3 sigma",
			// It resolves once its keep_firing_for (10 minutes) has passed.
			n: 60, after: 700,
			inject: func(_ int, x float64) float64 { return x + 3*pSigma },
			// z ~ 3 against k = 1.5 adds ~1.5 a sample: the sum reaches h = 12
			// after about 8 samples (4 at the earliest, with the noise).
			want: []want{{detector: "overpressure.rise", severity: pipeline.Warning, from: 3, by: 15, resolves: true,
				msg: []string{"Sustained rise of pressure above the baseline"}}},
			// 3 sigma is half the spike band.
			forbid: []string{"overpressure.spike", "overpressure.rate"},
		},
		{
			name: "fast ramp",
			n:    4,
			// 1 bar/s; the fastest normal change of 0.06-bar noise is about
			// 4 * 0.06 * sqrt(2) = 0.34 bar/s, so the limit is about 0.85 bar/s.
			inject: func(i int, x float64) float64 { return x + float64(i+1)*1.0 },
			want: []want{{detector: "overpressure.rate", severity: pipeline.Warning, from: 0, by: 1,
				msg: []string{"pressure rises at", "bar/s"}}},
		},
		{
			name: "slow ramp is not a fast rate",
			n:    200,
			// 0.01 bar/s, well inside the noise's own rate of change.
			inject: func(i int, x float64) float64 { return x + float64(i+1)*0.01 },
			want:   []want{{detector: "overpressure.rise", severity: pipeline.Warning, from: 0, by: 200}},
			forbid: []string{"overpressure.rate"},
		},
		{
			name:   "10000 samples of clean noise",
			n:      10000,
			forbid: []string{"*"},
		},
	})
}
