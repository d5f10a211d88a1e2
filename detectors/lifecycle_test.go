package detectors_test

import (
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// TestEpisodeStep steps an episode through time like Prometheus'
// TestAlertingRule: after each sample it checks the transition reported and
// the state, severity and start time left behind.
func TestEpisodeStep(t *testing.T) {
	const (
		none     = pipeline.SeverityNone
		warning  = pipeline.Warning
		critical = pipeline.Critical
		firing   = pipeline.Firing
		resolved = pipeline.Resolved
		inactive = detectors.Inactive
		pending  = detectors.Pending
		fire     = detectors.FiringState
	)
	type step struct {
		at    int64 // seconds after t0
		score float64
		sev   pipeline.Severity // of the verdict
		// want: the transition, then the episode after the step.
		tr      pipeline.AlertState
		state   detectors.EpisodeState
		wantSev pipeline.Severity
		started int64 // seconds after t0; -1: Started is 0 (a fresh episode)
	}
	for _, tc := range []struct {
		name       string
		rule       detectors.Rule
		hysteresis float64
		steps      []step
	}{
		{
			name: "hold 1 fires on the first anomalous sample",
			rule: detectors.Rule{Hold: 1, Clear: 1}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 0.5, sev: warning, state: inactive, wantSev: none, started: -1},
				{at: 1, score: 1, sev: warning, tr: firing, state: fire, wantSev: warning, started: 1},
				{at: 2, score: 0.1, sev: warning, tr: resolved, state: inactive, wantSev: warning, started: 1},
			},
		},
		{
			name: "hold 3 needs three consecutive anomalous samples",
			rule: detectors.Rule{Hold: 3, Clear: 2}, hysteresis: 0.8,
			steps: []step{
				{at: 10, score: 1.5, sev: warning, state: pending, wantSev: warning, started: 10},
				{at: 11, score: 1.2, sev: warning, state: pending, wantSev: warning, started: 10},
				// Started is the first anomalous sample's time, not the firing time.
				{at: 12, score: 1.1, sev: warning, tr: firing, state: fire, wantSev: warning, started: 10},
				{at: 13, score: 3, sev: warning, state: fire, wantSev: warning, started: 10},
			},
		},
		{
			name: "a normal sample while pending resets silently",
			rule: detectors.Rule{Hold: 3, Clear: 2}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 2, sev: warning, state: pending, wantSev: warning, started: 0},
				{at: 1, score: 2, sev: warning, state: pending, wantSev: warning, started: 0},
				{at: 2, score: 0.99, sev: warning, state: inactive, wantSev: none, started: -1},
				// The count starts again: two more anomalous samples are not enough.
				{at: 3, score: 2, sev: warning, state: pending, wantSev: warning, started: 3},
				{at: 4, score: 2, sev: warning, state: pending, wantSev: warning, started: 3},
				{at: 5, score: 2, sev: warning, tr: firing, state: fire, wantSev: warning, started: 3},
			},
		},
		{
			name: "firing resolves after clear samples below the hysteresis",
			rule: detectors.Rule{Hold: 1, Clear: 3}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 1.4, sev: warning, tr: firing, state: fire, wantSev: warning, started: 0},
				{at: 1, score: 0.5, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 2, score: 0.5, sev: warning, state: fire, wantSev: warning, started: 0},
				// Between the hysteresis and 1: not normal, so the clear count restarts.
				{at: 3, score: 0.85, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 4, score: 0.1, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 5, score: 0.1, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 6, score: 0.1, sev: warning, tr: resolved, state: inactive, wantSev: warning, started: 0},
				// A new episode starts afresh.
				{at: 7, score: 1, sev: warning, tr: firing, state: fire, wantSev: warning, started: 7},
			},
		},
		{
			name: "a value oscillating around the threshold does not flap",
			rule: detectors.Rule{Hold: 1, Clear: 1}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 1.1, sev: warning, tr: firing, state: fire, wantSev: warning, started: 0},
				{at: 1, score: 0.9, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 2, score: 1.1, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 3, score: 0.9, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 4, score: 1.1, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 5, score: 0.9, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 6, score: 1.1, sev: warning, state: fire, wantSev: warning, started: 0},
				{at: 7, score: 0.79, sev: warning, tr: resolved, state: inactive, wantSev: warning, started: 0},
			},
		},
		{
			name: "escalation fires again and keeps Started",
			rule: detectors.Rule{Hold: 2, Clear: 2}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 1.2, sev: warning, state: pending, wantSev: warning, started: 0},
				{at: 1, score: 1.3, sev: warning, tr: firing, state: fire, wantSev: warning, started: 0},
				{at: 2, score: 2.5, sev: critical, tr: firing, state: fire, wantSev: critical, started: 0},
				// Already critical: no further transition.
				{at: 3, score: 3, sev: critical, state: fire, wantSev: critical, started: 0},
				// Severity does not come down while firing.
				{at: 4, score: 1.5, sev: warning, state: fire, wantSev: critical, started: 0},
				{at: 5, score: 0, sev: none, state: fire, wantSev: critical, started: 0},
				// Resolved keeps Started and Severity, which the resolved alert reports.
				{at: 6, score: 0, sev: none, tr: resolved, state: inactive, wantSev: critical, started: 0},
			},
		},
		{
			name: "severity rises while pending fires at the highest",
			rule: detectors.Rule{Hold: 3, Clear: 1}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 1, sev: warning, state: pending, wantSev: warning, started: 0},
				{at: 1, score: 2, sev: critical, state: pending, wantSev: critical, started: 0},
				{at: 2, score: 1, sev: warning, tr: firing, state: fire, wantSev: critical, started: 0},
			},
		},
		{
			name: "a critical verdict below the threshold does not escalate",
			rule: detectors.Rule{Hold: 1, Clear: 5}, hysteresis: 0.8,
			steps: []step{
				{at: 0, score: 1, sev: warning, tr: firing, state: fire, wantSev: warning, started: 0},
				{at: 1, score: 0.9, sev: critical, state: fire, wantSev: warning, started: 0},
			},
		},
		{
			name: "hysteresis 1 resolves as soon as the score is below the threshold",
			rule: detectors.Rule{Hold: 1, Clear: 1}, hysteresis: 1,
			steps: []step{
				{at: 0, score: 1.1, sev: warning, tr: firing, state: fire, wantSev: warning, started: 0},
				{at: 1, score: 0.99, sev: warning, tr: resolved, state: inactive, wantSev: warning, started: 0},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e detectors.Episode
			for i, s := range tc.steps {
				v := detectors.Verdict{Score: s.score, Severity: s.sev}
				tr := e.Step(v, t0+s.at*sec, tc.rule, tc.hysteresis)
				wantStarted := t0 + s.started*sec
				if s.started < 0 {
					wantStarted = 0
				}
				if tr != s.tr || e.State != s.state || e.Severity != s.wantSev || e.Started != wantStarted {
					t.Fatalf("step %d (t=+%ds, score %v %v): got %v, episode %v/%v started %d; want %v, episode %v/%v started %d",
						i, s.at, s.score, s.sev, tr, e.State, e.Severity, e.Started, s.tr, s.state, s.wantSev, wantStarted)
				}
				if got, want := e.Active(), s.state != inactive; got != want {
					t.Fatalf("step %d: got Active() %v; want %v", i, got, want)
				}
			}
		})
	}
}

func TestEpisodeStateString(t *testing.T) {
	for st, want := range map[detectors.EpisodeState]string{
		detectors.Inactive: "inactive", detectors.Pending: "pending", detectors.FiringState: "firing",
	} {
		if got := st.String(); got != want {
			t.Errorf("EpisodeState(%d).String() = %q; want %q", st, got, want)
		}
	}
}

// TestEpisodeFlapThroughBand: a slow statistic (a CUSUM) that has cleared
// and is held open by keep_firing_for passes through the hysteresis band on
// its way back over the threshold. That is one return, counted as a flap
// when it crosses; the band alone neither resets the clearing nor counts.
// The episode resolves once Clear normal samples have passed and no
// anomalous one came for keep_firing_for.
func TestEpisodeFlapThroughBand(t *testing.T) {
	rule := detectors.Rule{Hold: 1, Clear: 3, KeepFiringFor: 10 * time.Second}
	var e detectors.Episode
	sec := int64(time.Second)
	for i, tc := range []struct {
		score float64
		tr    pipeline.AlertState
		flaps uint8
	}{
		{score: 1.2, tr: pipeline.Firing},
		{score: 0.9}, {score: 0.5}, {score: 0.3}, {score: 0.2}, // cleared (3 below 0.8), held open
		{score: 0.85}, {score: 0.9}, // back in the band: still cleared, no flap
		{score: 1.1, flaps: 1}, // over the threshold again: one flap
		{score: 0.5, flaps: 1}, {score: 0.4, flaps: 1}, {score: 0.3, flaps: 1},
		{score: 0.9, flaps: 1}, // in the band
		{score: 0.3, flaps: 1}, {score: 0.3, flaps: 1}, {score: 0.3, flaps: 1}, {score: 0.3, flaps: 1},
		{score: 0.3, flaps: 1},                        // 9 s after the last anomalous sample: still held
		{score: 0.3, flaps: 1, tr: pipeline.Resolved}, // 10 s
	} {
		tr := e.Step(detectors.Verdict{Score: tc.score, Severity: pipeline.Warning}, int64(i)*sec, rule, 0.8)
		if tr != tc.tr || e.Flaps != tc.flaps {
			t.Fatalf("sample %d (score %v): transition %v, %d flaps; want %v, %d", i, tc.score, tr, e.Flaps, tc.tr, tc.flaps)
		}
	}
}
