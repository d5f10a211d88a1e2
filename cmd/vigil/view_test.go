package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

func at(s int) time.Time { return time.Date(2026, 11, 21, 10, 0, s, 0, time.UTC) }

func TestLiveViewTracksFiring(t *testing.T) {
	v := newLiveView()
	fire := pipeline.Alert{ID: "a", Time: at(10).UnixNano(), Device: "d1", Kind: "overpressure", Detector: "overpressure.spike", Severity: pipeline.Warning, State: pipeline.Firing, Message: "pressure high"}
	esc := fire
	esc.Severity = pipeline.Critical
	res := fire
	res.State, res.Time = pipeline.Resolved, at(20).UnixNano()
	other := pipeline.Alert{ID: "b", Time: at(15).UnixNano(), Device: "d2", Kind: "thermal", Detector: "thermal.drift", Severity: pipeline.Warning, State: pipeline.Firing}
	v.Write(context.Background(), []pipeline.Alert{fire, esc, other})

	var b bytes.Buffer
	v.render(&b, viewHeader{title: "demo"}, false)
	screen := b.String()
	for _, want := range []string{"overpressure.spike (critical)", "thermal.drift (warning)", "overpressure 1", "thermal 1", "plant time 10:00:15"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	v.Write(context.Background(), []pipeline.Alert{res})
	b.Reset()
	v.render(&b, viewHeader{title: "demo"}, true)
	if strings.Contains(b.String(), "overpressure.spike (") || !strings.HasPrefix(b.String(), "\x1b[H") {
		t.Errorf("after resolve the spike still shows, or no clear sequence:\n%q", b.String())
	}
	if v.fired["overpressure"] != 1 {
		t.Errorf("escalation counted as a new episode: fired %v", v.fired)
	}
}

func TestScorecard(t *testing.T) {
	labels := []sim.Label{
		{Device: "d1", Kind: "overpressure", Start: at(10), End: at(18)},
		{Device: "d2", Kind: "thermal", Start: at(10), End: at(40)},
		{Device: "d3", Kind: "vibration", Start: at(100), End: at(110)}, // too recent to judge
	}
	fired := []pipeline.Alert{
		{Device: "d1", Kind: "overpressure", State: pipeline.Firing, Time: at(11).UnixNano()},
		{Device: "d2", Kind: "vibration", State: pipeline.Firing, Time: at(12).UnixNano()}, // wrong kind: inside the window, not a catch
		{Device: "d4", Kind: "thermal", State: pipeline.Firing, Time: at(30).UnixNano()},   // false alarm
	}
	sc := score(labels, fired, at(120).UnixNano())
	if sc.injected["overpressure"] != 1 || sc.caught["overpressure"] != 1 || sc.injected["thermal"] != 1 || sc.caught["thermal"] != 0 {
		t.Errorf("scorecard %+v; want overpressure 1/1, thermal 0/1", sc)
	}
	if sc.injected["vibration"] != 0 {
		t.Errorf("an injection whose grace has not passed was judged: %+v", sc)
	}
	if sc.false_ != 1 {
		t.Errorf("false alarms %d; want 1", sc.false_)
	}
	var b bytes.Buffer
	sc.print(&b)
	if !strings.Contains(b.String(), "all                    2       1") {
		t.Errorf("printed scorecard:\n%s", b.String())
	}
}

func TestProgressLine(t *testing.T) {
	st := pipeline.Stats{Frames: 500_000, Bytes: 50_000_000}
	got := progressLine(st, 100_000_000, 10*time.Second)
	for _, want := range []string{" 50%", "500000 messages, 50000/s", "ETA 10s", "███"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
	if got := progressLine(st, 0, time.Second); strings.Contains(got, "ETA") || !strings.Contains(got, "500000/s") {
		t.Errorf("progress line without a total %q; want the rate and no ETA", got)
	}
	var b bytes.Buffer
	stop := startProgress(&b, nil, nil) // not a terminal: draws nothing
	stop()
	if b.Len() != 0 {
		t.Errorf("progress drew %q on a non-terminal", b.String())
	}
}
