package detectors_test

import (
	"github.com/vigil-iot/vigil/detectors"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

var vibrationTable = table{
	value: vibration,
	unit:  "mm/s",
	op:    v0,
	sigma: vSigma,
	clean: func(nz noise, _ int) float64 { return nz.gauss(v0, vSigma) },
	checks: map[string]stat{
		"vibration.zone":      {"mm/s", statValue},
		"vibration.jump":      {"mm/s", statValue},
		"vibration.elevation": {"sigma", statSigma},
	},
}

func TestVibration(t *testing.T) {
	// The default zones: C from 4.5 mm/s (warning), D from 7.1 mm/s (critical).
	constant := func(v float64) func(int, float64) float64 { return func(int, float64) float64 { return v } }
	// A linear rise to 2 v0 over 10 minutes, continued at the same slope
	// until it is well into zone C.
	const rampLen = 600
	ramp := func(i int, x float64) float64 { return x + v0*float64(i+1)/rampLen }
	vibrationTable.run(t, []injection{
		{
			name:   "zone C is a warning after the hold, even during warm-up",
			before: 50, n: 10, after: 10,
			inject: constant(5),
			want: []want{{detector: "vibration.zone", severity: pipeline.Warning, from: 2, by: 3, resolves: true,
				msg: []string{"severity zone C (boundary 4.5 mm/s)", "restricted"}}},
			forbid: []string{"vibration.jump", "vibration.elevation"},

			check: func(t *testing.T, g *rig, start int) {
				// Started is the first anomalous sample, not the firing one.
				a, at, _ := g.first("vibration.zone", pipeline.Firing, start)
				if a.Started != g.time(start) || a.Time != g.time(at) || a.Seq != uint64(at) {
					t.Errorf("got started +%ds, time +%ds, seq %d; want +%ds, +%ds, %d",
						(a.Started-t0)/sec, (a.Time-t0)/sec, a.Seq, (g.time(start)-t0)/sec, (g.time(at)-t0)/sec, at)
				}
			},
		},
		{
			name:   "zone C escalates to zone D",
			before: 50, n: 10, after: 10,
			inject: func(i int, _ float64) float64 { return []float64{5, 8}[i/5] },
			want:   []want{{detector: "vibration.zone", severity: pipeline.Warning, from: 2, by: 3, resolves: true}},
			check: func(t *testing.T, g *rig, start int) {
				got := g.since(start)
				if len(got) != 3 || got[1].State != pipeline.Firing || got[1].Severity != pipeline.Critical ||
					got[2].State != pipeline.Resolved || got[2].Severity != pipeline.Critical {
					t.Fatalf("got %s; want zone firing warning, firing critical, resolved critical", fmtAlerts(got))
				}
				if got[1].ID != got[0].ID || got[1].Started != got[0].Started || got[1].Started != g.time(start) {
					t.Errorf("escalation: got ID %s started +%ds; want %s, +%ds as the first firing", got[1].ID, (got[1].Started-t0)/sec, got[0].ID, (got[0].Started-t0)/sec)
				}
				// Zone D is escalated on its first sample: the episode is already firing.
				if got[1].Time != g.time(start+5) || got[1].Observed != 8 || got[1].Threshold != 7.1 {
					t.Errorf("escalation: got time +%ds observed %v threshold %v; want +%ds, 8, 7.1", (got[1].Time-t0)/sec, got[1].Observed, got[1].Threshold, (g.time(start+5)-t0)/sec)
				}
			},
		},
		{
			name:   "zone D is critical after the hold",
			before: 50, n: 10, after: 10,
			inject: constant(8),
			want: []want{{detector: "vibration.zone", severity: pipeline.Critical, from: 2, by: 3, resolves: true,
				msg: []string{"severity zone D (boundary 7.1 mm/s)", "damage is likely"}}},
		},
		{
			name:   "zone B just below C is quiet",
			before: 50, n: 100,
			inject: constant(4.4),
			forbid: []string{"vibration.zone"},
		},
		{
			name:   "a two-sample excursion into zone D is shorter than the hold",
			before: 50, n: 2, after: 10,
			inject: constant(9),
			forbid: []string{"*"},
		},
		{
			name: "jump to 2.5 v0",
			n:    6, after: 30,
			inject: func(_ int, x float64) float64 { return x + 1.5*v0 },
			// 3 mm/s is 6.25 allowed deviations (6 × 0.08): critical, after the
			// hold of 2.
			want: []want{
				{detector: "vibration.jump", severity: pipeline.Critical, from: 1, by: 2, resolves: true,
					msg: []string{"above the learned band"}},
				// 5 mm/s is in zone C too.
				{detector: "vibration.zone", severity: pipeline.Warning, from: 2, by: 3, resolves: true},
			},
		},
		{
			name:   "slow rise to 2 v0 over 10 minutes",
			n:      2 * rampLen,
			inject: ramp,
			want: []want{
				{detector: "vibration.elevation", severity: pipeline.Warning, from: 0, by: rampLen,
					msg: []string{"Sustained elevation of vibration above the baseline"}},
				{detector: "vibration.zone", severity: pipeline.Warning, from: rampLen, by: 2 * rampLen},
			},
			check: func(t *testing.T, g *rig, start int) {
				_, el, _ := g.first("vibration.elevation", pipeline.Firing, start)
				_, zone, _ := g.first("vibration.zone", pipeline.Firing, start)
				if !(el < zone) {
					t.Errorf("vibration.elevation fired on reading %d, vibration.zone on %d; want elevation first", el, zone)
				}
			},
		},
		{
			name:   "10000 samples of clean noise",
			n:      10000,
			forbid: []string{"*"},
		},
	})
}

// TestLimitScoreAtThreshold: an alert's score is 1 when the value is exactly
// on its threshold (docs/ALERTS.md), for every absolute limit.
func TestLimitScoreAtThreshold(t *testing.T) {
	for _, tc := range []struct {
		detector string
		value    pipeline.Value
		hold     int
	}{
		{"overpressure.limit", pressure(5), 1},
		{"thermal.limit", temperature(70), 1},
		{"thermal.limit", temperature(50), 1},
		{"vibration.zone", vibration(4.5), 3}, // the zone C boundary
		{"vibration.zone", vibration(7.1), 3}, // the zone D boundary
	} {
		g := newRig(t, newSet(t, func(c *detectors.Config) {
			c.Params.Overpressure.Limit = ptr(5)
			c.Params.Thermal.High, c.Params.Thermal.Low = ptr(70), ptr(50)
		}))
		for range tc.hold {
			g.feed(tc.value)
		}
		a, _, ok := g.first(tc.detector, pipeline.Firing, 0)
		if !ok {
			t.Errorf("%s %v: got %s; want %s firing", tc.value.Name, tc.value.V, fmtAlerts(g.alerts), tc.detector)
			continue
		}
		if a.Value != tc.value.V || a.Threshold != tc.value.V || a.Score != 1 {
			t.Errorf("%s %v: got %s value %v threshold %v score %v; want value = threshold = %v, score 1",
				tc.value.Name, tc.value.V, a.Detector, a.Value, a.Threshold, a.Score, tc.value.V)
		}
	}
}
