package detectors_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// A daily cycle: 50 ± 10 over 288 samples (a day of 5-minute readings) with
// noise of 1. Its range over the record horizon is about 26.
const cycleAmp, cyclePeriod = 10.0, 288

func cycle(nz noise, i int) float64 {
	return f0 + cycleAmp*math.Sin(2*math.Pi*float64(i)/cyclePeriod) + nz.gauss(0, fSigma)
}

// withRecord turns the record check on: 1000 readings, a margin of 10% of
// their range, resolving after 10 readings back inside.
func withRecord(p *detectors.Params) {
	p.Signal.Record = detectors.Record{Samples: 1000, Margin: 0.1, Rule: detectors.Rule{Hold: 1, Clear: 10}}
}

var cycleTable = table{
	value: flow,
	op:    f0,
	sigma: 7.5, // the cycle's standard deviation, about 7.1
	clean: cycle,
	checks: map[string]stat{
		"signal.spike":  {"", statValue},
		"signal.drift":  {"sigma", statSigma},
		"signal.record": {"", statValue},
	},
}

func TestRecord(t *testing.T) {
	at := func(v float64) func(int, float64) float64 { return func(int, float64) float64 { return v } }
	cycleTable.run(t, []injection{
		{
			// 66 is 6 above the cycle's peak (about 63): past the margin of
			// 2.6 and new, yet only about 2 std above the mean, far inside
			// the spike band.
			name: "a new high inside the band", edit: withRecord,
			before: 1200, n: 2, inject: at(66), after: 40,
			want: []want{{detector: "signal.record", severity: pipeline.Warning, from: 0, by: 1, resolves: true,
				msg: []string{"new record", "highest of the last 1000 readings"}}},
			forbid: []string{"signal.spike"},
		},
		{
			name: "a new low", edit: withRecord,
			before: 1200, n: 1, inject: at(33), after: 40,
			want: []want{{detector: "signal.record", severity: pipeline.Warning, from: 0, by: 1, below: true, resolves: true,
				msg: []string{"lowest of the last 1000 readings"}}},
		},
		{
			// Beyond the range by more than its own width.
			name: "far beyond the range is critical", edit: withRecord,
			before: 1200, n: 1, inject: at(100), after: 40,
			want: []want{{detector: "signal.record", severity: pipeline.Critical, from: 0, by: 1, resolves: true}},
		},
		{
			name: "the cycle itself, 20 days", edit: withRecord,
			before: -1, n: 20 * cyclePeriod,
			forbid: []string{"*"},
		},
		{
			// The horizon slides: a high older than the horizon no longer
			// counts, so a smaller one later is a record again.
			name: "an old record expires", edit: withRecord,
			before: 1200, n: 1, inject: at(90), after: 1300,
			check: func(t *testing.T, g *rig, start int) {
				if _, _, ok := g.first("signal.record", pipeline.Firing, start); !ok {
					t.Fatalf("the first high did not fire: %s", fmtAlerts(g.alerts))
				}
				second := g.n
				g.feed(flow(75))
				a, at, ok := g.first("signal.record", pipeline.Firing, second)
				if !ok || at != second || a.Threshold >= 75 {
					t.Errorf("75, 1300 readings after a 90: got %s; want a record (the 90 has left the horizon)", fmtAlerts(g.since(second)))
				}
			},
		},
	})
}

func TestRecordOffByDefault(t *testing.T) {
	g := newRig(t, newSet(t, nil))
	nz := newNoise(3)
	for range 1500 {
		g.feed(flow(cycle(nz, g.n)))
	}
	g.feed(flow(66))
	if d := g.eng.Device(g.device); d.Extra != nil && len(d.Extra.Records) != 0 || g.signal("flow").Record != 0 {
		t.Errorf("default configuration: got extra memory %+v; want none", d.Extra)
	}
	for _, a := range g.alerts {
		if a.Detector == "signal.record" {
			t.Errorf("record check off: got %s", fmtAlerts(g.alerts))
		}
	}
}

// TestRecordWarmup: the check speaks only once the baseline is warm and the
// first of its eight blocks is complete; a flat signal has no range to break.
func TestRecordWarmup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples int
		clean   func(noise, int) float64
	}{
		{"first block not yet complete", 2000, cycle}, // warm at 300, the first block complete at 500
		{"flat signal", 100, func(noise, int) float64 { return 42 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, newSet(t, func(c *detectors.Config) {
				withRecord(&c.Params)
				c.Params.Signal.Record.Samples = tc.samples
				c.Params.Signal.Spike.Z = 1e6 // leave the record check alone
				c.Params.Signal.Drift.H = 1e6
			}))
			nz := newNoise(5)
			for range 400 {
				g.feed(flow(tc.clean(nz, g.n)))
			}
			g.feed(flow(80))
			if len(g.alerts) != 0 {
				t.Errorf("got %s; want nothing", fmtAlerts(g.alerts))
			}
		})
	}
}

func TestRecordValidate(t *testing.T) {
	for _, tc := range []struct {
		r    detectors.Record
		want string
	}{
		{detectors.Record{Samples: 3, Margin: 0.1, Rule: detectors.Rule{Hold: 1, Clear: 1}}, "samples must be 0 (off) or between 4"},
		{detectors.Record{Samples: 100, Margin: -1, Rule: detectors.Rule{Hold: 1, Clear: 1}}, "margin and long_margin must be"},
		{detectors.Record{Samples: 100, Margin: math.NaN(), Rule: detectors.Rule{Hold: 1, Clear: 1}}, "margin and long_margin must be"},
		{detectors.Record{Samples: 100, Margin: 0.1}, "hold and clear"},
	} {
		cfg := detectors.DefaultConfig()
		cfg.Params.Signal.Record = tc.r
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "signal: record: "+tc.want) {
			t.Errorf("%+v: got %v; want an error naming signal: record: %q", tc.r, err, tc.want)
		}
	}
	cfg := detectors.DefaultConfig()
	cfg.Params.Signal.Record = detectors.Record{} // off: nothing else is checked
	if err := cfg.Validate(); err != nil {
		t.Errorf("record off: got %v", err)
	}
}

// TestFold: with Fold, the checks on one signal raise one alert per episode.
// A step that the spike, drift and record checks all see gives one ID, one
// resolution, after the last check clears; without Fold each check alerts.
func TestFold(t *testing.T) {
	run := func(fold bool) *rig {
		g := newRig(t, newSet(t, func(c *detectors.Config) {
			withRecord(&c.Params)
			c.Params.Fold = fold
			c.Params.Signal.Drift.Clear = 30        // drift outlasts the others
			c.Params.Signal.Drift.KeepFiringFor = 0 // but not by its default 10 minutes
		}))
		nz := newNoise(9)
		for range 1200 {
			g.feed(flow(cycle(nz, g.n)))
		}
		for range 40 {
			g.feed(flow(cycle(nz, g.n) + 60))
		}
		for range 400 {
			g.feed(flow(cycle(nz, g.n)))
		}
		return g
	}
	apart, folded := run(false), run(true)

	ids := map[string]bool{}
	for _, a := range apart.alerts {
		ids[a.Detector] = true
	}
	if len(ids) < 3 {
		t.Fatalf("without fold: got %s; want spike, drift and record alerts", fmtAlerts(apart.alerts))
	}

	as := folded.alerts
	if len(as) < 2 {
		t.Fatalf("with fold: got %s; want one alert firing and resolving", fmtAlerts(as))
	}
	first, last := as[0], as[len(as)-1]
	for i, a := range as {
		if a.ID != first.ID || a.Started != first.Started {
			t.Errorf("alert %d: got ID %s started %d; want all %s, %d: %s", i, a.ID, a.Started, first.ID, first.Started, fmtAlerts(as))
		}
		if a.State == pipeline.Resolved && i != len(as)-1 {
			t.Errorf("alert %d resolves before the end: %s", i, fmtAlerts(as))
		}
	}
	if first.State != pipeline.Firing || last.State != pipeline.Resolved {
		t.Fatalf("with fold: got %s; want firing first and resolved last", fmtAlerts(as))
	}
	// It fires with the first check that fired apart and resolves with the
	// last one that resolved.
	if first.Time != apart.alerts[0].Time || first.Detector != apart.alerts[0].Detector {
		t.Errorf("folded alert fires at +%ds by %s; apart the first fired at +%ds by %s",
			(first.Time-t0)/sec, first.Detector, (apart.alerts[0].Time-t0)/sec, apart.alerts[0].Detector)
	}
	lastApart := apart.alerts[len(apart.alerts)-1]
	if last.Time != lastApart.Time || lastApart.State != pipeline.Resolved {
		t.Errorf("folded alert resolves at +%ds; apart the last resolution is at +%ds (%s)", (last.Time-t0)/sec, (lastApart.Time-t0)/sec, fmtAlerts(apart.alerts))
	}
	// Severity: the folded alert reaches the highest any check reached.
	var want pipeline.Severity
	for _, a := range apart.alerts {
		want = max(want, a.Severity)
	}
	if got := lastSeverity(as, first.ID); got != want || last.Severity != want {
		t.Errorf("folded severity: got %v (resolved %v); want %v", got, last.Severity, want)
	}
}

// TestRecordLongMargin: measured against the range of the last four
// horizons, a small excursion after a quiet spell is no record; measured
// against the quiet spell's own range, it is.
func TestRecordLongMargin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		margin float64
		long   float64
		fires  bool
	}{
		{"margin of the horizon's range", 0.1, 0, true},
		{"margin of the long range", 0, 0.05, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, newSet(t, func(c *detectors.Config) {
				c.Params.Signal.Record = detectors.Record{Samples: 500, Margin: tc.margin, LongMargin: tc.long, Rule: detectors.Rule{Hold: 1, Clear: 10}}
				c.Params.Signal.Spike.Off, c.Params.Signal.Drift.Off = true, true
			}))
			nz := newNoise(11)
			for range 1000 { // a busy spell: 50 ± 40
				g.feed(flow(f0 + 40*math.Sin(float64(g.n)/20) + nz.gauss(0, fSigma)))
			}
			for range 700 { // a quiet one: 50 ± 1, longer than the horizon
				g.feed(flow(nz.gauss(f0, fSigma)))
			}
			quiet := len(g.alerts)
			g.feed(flow(f0 + 6*fSigma)) // above the quiet spell's range (about ±3.5) by 2.5
			fired := len(g.alerts) > quiet && g.alerts[len(g.alerts)-1].Detector == "signal.record"
			if fired != tc.fires {
				t.Errorf("got %s after the quiet spell; want a record %v", fmtAlerts(g.alerts[quiet:]), tc.fires)
			}
		})
	}
}

// The daily check's table: a daily cycle sampled every 5 minutes, with the
// record check off and the daily check on (it speaks after two days).
func withDaily(p *detectors.Params) {
	p.Signal.Daily.Enabled = true
	p.Signal.Spike.Off, p.Signal.Drift.Off = true, true
}

var dailyTable = table{
	value: flow,
	op:    f0,
	sigma: 7.5,
	clean: cycle,
	checks: map[string]stat{
		"signal.daily": {"sigma", statSigma},
	},
}

func TestDaily(t *testing.T) {
	const fiveMin = 5 * time.Minute
	days := func(d int) int { return d * cyclePeriod }
	flat := func(int, float64) float64 { return f0 }
	dailyTable.run(t, []injection{
		{
			// The cycle stops: the signal stays at its mean, well inside the
			// range, where the spike and record checks see nothing wrong.
			name: "the cycle flattens", edit: withDaily, step: fiveMin,
			before: days(4), n: 100, inject: flat,
			// It starts as the cycle rises: the flat signal is below it.
			want: []want{{detector: "signal.daily", severity: pipeline.Warning, from: 5, by: 100, below: true,
				msg: []string{"usual level for this time of day"}}},
		},
		{
			// Shifted by 8: below the peak, so no record, but off the
			// pattern everywhere.
			name: "a shift within the range", edit: withDaily, step: fiveMin,
			before: days(4), n: 60, inject: func(_ int, x float64) float64 { return x - 8 },
			want: []want{{detector: "signal.daily", severity: pipeline.Warning, from: 5, by: 30, below: true}},
		},
		{
			name: "a lone spike", edit: withDaily, step: fiveMin,
			before: days(4), n: 1, inject: func(int, float64) float64 { return 500 }, after: 50,
			forbid: []string{"*"},
		},
		{
			name: "the cycle itself, 30 days", edit: withDaily, step: fiveMin,
			before: -1, n: days(30),
			forbid: []string{"*"},
		},
		{
			name: "silent for the first two days", edit: withDaily, step: fiveMin,
			before: -1, clean: func(_ noise, i int) float64 {
				if i > 350 {
					return f0 + 30 // a jump on day two: the profile is not ready
				}
				return f0
			},
			n: days(2) - 350, forbid: []string{"*"},
		},
	})
}

// TestCheckOff: a check switched off raises nothing and, for the record
// check, keeps no memory, although it is configured.
func TestCheckOff(t *testing.T) {
	g := newRig(t, newSet(t, func(c *detectors.Config) {
		withRecord(&c.Params)
		c.Params.Signal.Record.Off = true
		c.Params.Signal.Spike.Off = true
	}))
	nz := newNoise(3)
	for range 1500 {
		g.feed(flow(cycle(nz, g.n)))
	}
	g.feed(flow(500)) // far past the band and the range
	if d := g.eng.Device(g.device); d.Extra != nil && len(d.Extra.Records) != 0 || g.signal("flow").Record != 0 {
		t.Errorf("record check off: got extra memory %+v; want none", d.Extra)
	}
	for _, a := range g.alerts {
		if a.Detector == "signal.record" || a.Detector == "signal.spike" {
			t.Errorf("checks off: got %s", fmtAlerts(g.alerts))
			break
		}
	}
}

// TestFoldHeldAlertEndsOnNewEvent: with fold on, a pressure rise that has
// settled and is held open only by keep_firing_for (10 minutes by default)
// does not swallow a spike two minutes later: the held alert resolves and
// the spike raises an alert of its own, as it does without the hold.
func TestFoldHeldAlertEndsOnNewEvent(t *testing.T) {
	for _, keep := range []time.Duration{0, 10 * time.Minute} {
		t.Run(keep.String(), func(t *testing.T) {
			g := newRig(t, newSet(t, func(c *detectors.Config) {
				c.Params.Fold = true
				c.Params.Overpressure.Rise.Rule.KeepFiringFor = keep
			}))
			nz := newNoise(7)
			for range 2000 {
				g.feed(pressure(nz.gauss(p0, pSigma)))
			}
			// A 3σ step for 60 s: the rise CUSUM crosses, then the value returns.
			for range 60 {
				g.feed(pressure(nz.gauss(p0+3*pSigma, pSigma)))
			}
			for range 120 {
				g.feed(pressure(nz.gauss(p0, pSigma)))
			}
			rise, _, ok := g.first("overpressure.rise", pipeline.Firing, 0)
			if !ok {
				t.Fatalf("no rise alert: %s", fmtAlerts(g.alerts))
			}
			from := g.n
			g.feed(pressure(p0 + 12*pSigma)) // a spike, 2 minutes after
			g.feed(pressure(p0 + 12*pSigma))
			for range 30 {
				g.feed(pressure(nz.gauss(p0, pSigma)))
			}
			t.Logf("rise fired %s; alerts since the spike: %s", rise.ID, fmtAlerts(g.since(from)))
			fired := false
			for _, a := range g.since(from) {
				if a.State == pipeline.Firing && a.ID != rise.ID {
					fired = true
				}
			}
			if !fired {
				t.Errorf("the spike 2 min after the rise settled raised no alert of its own")
			}
		})
	}
}
