package detectors_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// stepRun feeds a healthy node for warm readings, then pressure moved by
// step noise σ (plus, when wobble is set, a ±wobble σ square wave of 60 s)
// for hold readings, one a second.
func stepRun(t testing.TB, edit func(*detectors.Config), step, wobble float64, hold int) (*rig, int) {
	g := newRig(t, newSet(t, edit))
	nz := newNoise(21)
	for range 1000 {
		g.feed(plant(nz)...)
	}
	from := g.n
	for i := range hold {
		v := plant(nz)
		v[0].V += step * pSigma
		if wobble > 0 && (i/30)%2 == 1 {
			v[0].V += wobble * pSigma
		}
		g.feed(v...)
	}
	return g, from
}

// TestNewNormalAccepted: pressure steps to a new level and stays there. The
// step alerts; after baseline.accept_after (15 min) at the level the alerts
// resolve saying a new normal was accepted, and the new level raises nothing
// more.
func TestNewNormalAccepted(t *testing.T) {
	g, from := stepRun(t, nil, 12, 0, 30*60)
	if _, _, ok := g.first("overpressure.spike", pipeline.Firing, from); !ok {
		t.Fatalf("no overpressure alert at a 12 σ step; alerts %+v", g.since(from))
	}
	var accepted []pipeline.Alert
	var at int
	for k, a := range g.alerts {
		if g.at[k] >= from && a.State == pipeline.Resolved && strings.Contains(a.Message, "new normal accepted") {
			accepted, at = append(accepted, a), g.at[k]
		}
	}
	if len(accepted) == 0 {
		t.Fatalf("no alert resolved as a new normal in 30 min at the new level; alerts %+v", g.since(from))
	}
	held := time.Duration(at-from) * time.Second
	if held < 15*time.Minute || held > 17*time.Minute {
		t.Errorf("new normal accepted after %v at the level; want about accept_after (15m)", held)
	}
	if !strings.Contains(accepted[0].Message, "has held 4.7") || !(strings.Contains(accepted[0].Message, "(the baseline was 3.99") || strings.Contains(accepted[0].Message, "(the baseline was 4.00")) {
		t.Errorf("message %q: want the new level and the old baseline", accepted[0].Message)
	}
	ids := map[string]bool{}
	for _, a := range g.since(from) {
		if a.State == pipeline.Firing {
			ids[a.ID] = true
		}
	}
	for _, a := range accepted {
		if !ids[a.ID] {
			t.Errorf("resolution %s (%s) of no firing alert", a.ID, a.Detector)
		}
	}
	if a := g.since(at + 1); len(a) != 0 {
		t.Errorf("alerts after the new normal was accepted: %+v; want none", a)
	}
	if s := g.signal("pressure"); s.Base.Median < p0+11*pSigma {
		t.Errorf("baseline median %v after acceptance; want the new level near %v", s.Base.Median, p0+12*pSigma)
	}
}

// TestNewNormalNotAccepted: a level that keeps jumping (±6 σ every 30 s on
// top of a 12 σ step) has not settled, and with accept_after 0 nothing is
// accepted early: either way the alert is still firing after 20 minutes.
func TestNewNormalNotAccepted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*detectors.Config)
		wobble float64
	}{
		{"unsteady", nil, 8},
		{"accept off", func(c *detectors.Config) { c.Params.Baseline.AcceptAfter = 0 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, from := stepRun(t, tc.edit, 12, tc.wobble, 20*60)
			for _, a := range g.since(from) {
				if strings.Contains(a.Message, "new normal accepted") {
					t.Fatalf("accepted: %s", a.Message)
				}
			}
			if eps := g.eng.OpenEpisodes(g.device); len(eps) == 0 {
				t.Error("no episode open after 20 min at an anomalous level")
			}
		})
	}
}

// TestNewNormalSnapshot: a run towards a new normal survives a snapshot: an
// engine restored five minutes into the run accepts at the same reading as
// the one that ran through.
func TestNewNormalSnapshot(t *testing.T) {
	whole, from := stepRun(t, nil, 12, 0, 20*60)
	set := newSet(t, nil)
	g := newRig(t, set)
	nz := newNoise(21)
	feed := func(i int) {
		v := plant(nz)
		if i >= from {
			v[0].V += 12 * pSigma
		}
		g.feed(v...)
	}
	split := from + 5*60
	for i := range split {
		feed(i)
	}
	var states [][]byte
	if err := g.eng.Snapshot(func(_ string, b []byte) error { states = append(states, append([]byte(nil), b...)); return nil }); err != nil {
		t.Fatal(err)
	}
	est := g.eng.State()
	g.eng = set.NewEngine()
	g.eng.SetState(est)
	for _, b := range states {
		if err := g.eng.Restore(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := split; i < from+20*60; i++ {
		feed(i)
	}
	accepted := func(r *rig) int {
		for k, a := range r.alerts {
			if strings.Contains(a.Message, "new normal accepted") {
				return r.at[k]
			}
		}
		return -1
	}
	if a, b := accepted(whole), accepted(g); a < 0 || a != b {
		t.Errorf("accepted at reading %d in one run, %d after a restore; want the same, and one", a, b)
	}
}
