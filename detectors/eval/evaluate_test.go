package eval

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

var s0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano()

// sec is s seconds after s0.
func sec(s float64) int64 { return s0 + int64(s*float64(time.Second)) }

// secondly returns n readings one second apart from s0.
func secondly(n int) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = sec(float64(i))
	}
	return ts
}

func rec(id, device, kind string, state pipeline.AlertState, at float64) pipeline.Alert {
	return pipeline.Alert{ID: id, Device: device, Kind: kind, State: state, Time: sec(at)}
}

// scenario is device d1, readings at seconds 0..99 (100 readings, 99 s =
// 0.0275 h), with three windows (30 positive readings, 70 negative):
//
//	W1 [10, 19] overpressure    W2 [40, 49] thermal    W3 [70, 79] thermal
//
// and four episodes:
//
//	e1 overpressure fires at  5, resolves at 15: spans W1's start (readings 5..14)
//	e2 overpressure fires at 42, escalates at 44, resolves at 52: spans W2's end (42..51)
//	e3 thermal      fires at 60, resolves at 63: no window (60..62)
//	e4 thermal      fires at 90, never resolves: lasts to the end (90..99)
//
// W3 is missed by all.
func scenario(t *testing.T) ([]pipeline.Alert, *Labels, DataInfo) {
	t.Helper()
	labels := NewLabels()
	for _, w := range []Window{
		{Device: "d1", Kind: "overpressure", Start: sec(10), End: sec(19)},
		{Device: "d1", Kind: "thermal", Start: sec(40), End: sec(49)},
		{Device: "d1", Kind: "thermal", Start: sec(70), End: sec(79)},
	} {
		if err := labels.Add(w); err != nil {
			t.Fatal(err)
		}
	}
	alerts := []pipeline.Alert{
		rec("e1", "d1", "overpressure", pipeline.Firing, 5),
		rec("e1", "d1", "overpressure", pipeline.Resolved, 15),
		rec("e2", "d1", "overpressure", pipeline.Firing, 42),
		rec("e2", "d1", "overpressure", pipeline.Firing, 44),
		rec("e2", "d1", "overpressure", pipeline.Resolved, 52),
		rec("e3", "d1", "thermal", pipeline.Firing, 60),
		rec("e3", "d1", "thermal", pipeline.Resolved, 63),
		rec("e4", "d1", "thermal", pipeline.Firing, 90),
	}
	return alerts, labels, DataInfo{Times: map[string][]int64{"d1": secondly(100)}}
}

func near(got Number, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(float64(got))
	}
	return math.Abs(float64(got)-want) < 1e-9
}

func checkEvents(t *testing.T, name string, got Events, windows, detected, episodes, tp int, delayMedian, delayP90 float64) {
	t.Helper()
	if got.Windows != windows || got.Detected != detected || got.Missed != windows-detected ||
		got.Episodes != episodes || got.TruePositives != tp || got.FalsePositives != episodes-tp {
		t.Errorf("%s: windows %d, detected %d, missed %d, episodes %d, TP %d, FP %d; want %d, %d, %d, %d, %d, %d", name,
			got.Windows, got.Detected, got.Missed, got.Episodes, got.TruePositives, got.FalsePositives,
			windows, detected, windows-detected, episodes, tp, episodes-tp)
	}
	wantRecall, wantPrecision := math.NaN(), math.NaN()
	if windows > 0 {
		wantRecall = float64(detected) / float64(windows)
	}
	if episodes > 0 {
		wantPrecision = float64(tp) / float64(episodes)
	}
	if !near(got.Recall, wantRecall) || !near(got.Precision, wantPrecision) {
		t.Errorf("%s: recall %v, precision %v; want %v, %v", name, got.Recall, got.Precision, wantRecall, wantPrecision)
	}
	if !near(got.DelayMedian, delayMedian) || !near(got.DelayP90, delayP90) {
		t.Errorf("%s: delay median %v s, p90 %v s; want %v, %v", name, got.DelayMedian, got.DelayP90, delayMedian, delayP90)
	}
}

func TestEventLevel(t *testing.T) {
	alerts, labels, data := scenario(t)

	t.Run("no tolerance, kinds ignored", func(t *testing.T) {
		r := Evaluate(alerts, labels, data, Options{})
		// W1: e1 fires at 5, before W1 [10, 19]: W1 missed and e1 false.
		// W2: e2 (overpressure) fires at 42 inside the thermal W2: detected, delay 2 s.
		// W3: missed. e3, e4: false. Recall 1/3, precision 1/4.
		e := r.Overall.Events
		checkEvents(t, "overall", e, 3, 1, 4, 1, 2, 2)
		// F1 = 2·(1/4)(1/3)/(1/4 + 1/3) = 2/7.
		if !near(e.F1, 2.0/7) {
			t.Errorf("F1 = %v; want %v", e.F1, 2.0/7)
		}
		// 3 false alarms in 99 s = 0.0275 h: 109.0909 per device-hour.
		if math.Abs(e.Hours-0.0275) > 1e-12 || !near(e.FalseAlarmsPerHour, 3/0.0275) {
			t.Errorf("hours %v, false alarms per hour %v; want 0.0275, %v", e.Hours, e.FalseAlarmsPerHour, 3/0.0275)
		}
		// Per kind: overpressure has W1 (missed) and e1 (false), e2 (true);
		// thermal has W2 (detected, by an overpressure alert), W3 and e3, e4 (false).
		kinds := map[string]Events{}
		for _, k := range r.Kinds {
			kinds[k.Kind] = k.Events
		}
		if len(kinds) != 2 {
			t.Fatalf("kinds %v; want overpressure and thermal", r.Kinds)
		}
		checkEvents(t, "overpressure", kinds["overpressure"], 1, 0, 2, 1, math.NaN(), math.NaN())
		checkEvents(t, "thermal", kinds["thermal"], 2, 1, 2, 0, 2, 2)
		if !near(kinds["thermal"].FalseAlarmsPerHour, 2/0.0275) {
			t.Errorf("thermal false alarms per hour %v; want %v", kinds["thermal"].FalseAlarmsPerHour, 2/0.0275)
		}
	})

	t.Run("5 s before, kinds matched", func(t *testing.T) {
		r := Evaluate(alerts, labels, data, Options{Before: 5 * time.Second, MatchKind: true})
		// W1 widened to [5, 19]: e1 (overpressure) fires at 5: detected, delay −5 s.
		// W2 widened to [35, 49]: e2 is overpressure, W2 thermal: missed, e2 false.
		// W3 widened to [65, 79]: missed. Recall 1/3, precision 1/4 (e1).
		checkEvents(t, "overall", r.Overall.Events, 3, 1, 4, 1, -5, -5)
	})

	t.Run("kinds matched", func(t *testing.T) {
		r := Evaluate(alerts, labels, data, Options{MatchKind: true})
		// Nothing detects anything: e1 is early, e2 the wrong kind.
		checkEvents(t, "overall", r.Overall.Events, 3, 0, 4, 0, math.NaN(), math.NaN())
		if r.Overall.Events.F1 != 0 {
			t.Errorf("F1 = %v; want 0", r.Overall.Events.F1)
		}
	})

	t.Run("after tolerance", func(t *testing.T) {
		// 11 s after: W1 [10, 30] still misses e1 (5); W2 [40, 60] gets e2 (42,
		// delay 2 s) and e3 (60, now true); W3 [70, 90] gets e4 (90, delay 20 s).
		r := Evaluate(alerts, labels, data, Options{After: 11 * time.Second})
		// Delays: W2 2 s (e2), W3 20 s: median 11, p90 2 + 0.9·18 = 18.2.
		checkEvents(t, "overall", r.Overall.Events, 3, 2, 4, 3, 11, 18.2)
	})
}

func TestPointwise(t *testing.T) {
	alerts, labels, data := scenario(t)
	r := Evaluate(alerts, labels, data, Options{MatchKind: true})
	// Predicted: e1 5..14 (10), e2 42..51 (10), e3 60..62 (3), e4 90..99 (10) = 33.
	// True positives: 10..14 (5) + 42..49 (8) = 13; FP = 33 − 13 = 20;
	// FN = 30 − 13 = 17; TN = 70 − 20 = 50. Kinds do not matter point-wise.
	p := r.Overall.Points
	want := Points{Readings: 100, Positives: 30, Negatives: 70, TruePositives: 13, FalsePositives: 20, FalseNegatives: 17, TrueNegatives: 50}
	if p.Readings != want.Readings || p.Positives != want.Positives || p.Negatives != want.Negatives ||
		p.TruePositives != want.TruePositives || p.FalsePositives != want.FalsePositives ||
		p.FalseNegatives != want.FalseNegatives || p.TrueNegatives != want.TrueNegatives {
		t.Errorf("got %+v; want counts %+v", p, want)
	}
	// Precision 13/33, recall 13/30, F1 2·13/(33+30) = 26/63, false-alarm rate
	// 20/70, missed-alarm rate 17/30.
	for _, c := range []struct {
		name string
		got  Number
		want float64
	}{
		{"precision", p.Precision, 13.0 / 33}, {"recall", p.Recall, 13.0 / 30}, {"F1", p.F1, 26.0 / 63},
		{"false-alarm rate", p.FalseAlarmRate, 20.0 / 70}, {"missed-alarm rate", p.MissedAlarmRate, 17.0 / 30},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	if len(r.PerDevice) != 1 || r.PerDevice[0].Points != p {
		t.Errorf("per device %+v; want one device with the overall points", r.PerDevice)
	}
}

// TestPointwiseEdges: a reading at the firing time is predicted, one at the
// resolved time is not; window ends are inclusive; overlapping episodes and
// windows count each reading once; an episode resolved in the slice before it
// fired is handled.
func TestPointwiseEdges(t *testing.T) {
	labels := NewLabels()
	for _, w := range []Window{
		{Device: "d", Start: sec(2), End: sec(4)},
		{Device: "d", Start: sec(3), End: sec(6)}, // overlaps: positives 2..6 (5)
	} {
		if err := labels.Add(w); err != nil {
			t.Fatal(err)
		}
	}
	alerts := []pipeline.Alert{
		rec("b", "d", "thermal", pipeline.Resolved, 7), // before its firing record
		rec("a", "d", "thermal", pipeline.Firing, 1),
		rec("a", "d", "thermal", pipeline.Resolved, 5),
		rec("b", "d", "vibration", pipeline.Firing, 4), // overlaps a: predicted 1..6 (6)
	}
	r := Evaluate(alerts, labels, DataInfo{Times: map[string][]int64{"d": secondly(10)}}, Options{})
	p := r.Overall.Points
	// Positives 2..6 (5); predicted 1..6 (6); TP 2..6 (5); FP 1 (reading 1).
	if p.Positives != 5 || p.TruePositives != 5 || p.FalsePositives != 1 || p.FalseNegatives != 0 || p.TrueNegatives != 4 {
		t.Errorf("got %+v; want positives 5, TP 5, FP 1, FN 0, TN 4", p)
	}
	if r.Alerts != 4 || r.IgnoredAlerts != 0 {
		t.Errorf("alerts %d, ignored %d; want 4, 0", r.Alerts, r.IgnoredAlerts)
	}
}

// TestDelayQuantiles: five windows detected 1, 2, 3, 4 and 10 s after their
// starts: median 3 s; p90 at rank 0.9·4 = 3.6: 4 + 0.6·(10 − 4) = 7.6 s.
func TestDelayQuantiles(t *testing.T) {
	delays := []float64{4, 1, 10, 3, 2}
	build := func(n int) ([]pipeline.Alert, *Labels) {
		labels := NewLabels()
		var alerts []pipeline.Alert
		for i, d := range delays {
			start := float64(100 * (i + 1))
			if err := labels.Add(Window{Device: "d", Start: sec(start), End: sec(start + 50)}); err != nil {
				t.Fatal(err)
			}
			if i < n {
				alerts = append(alerts, rec(string(rune('a'+i)), "d", "signal", pipeline.Firing, start+d))
			}
		}
		return alerts, labels
	}
	data := DataInfo{Times: map[string][]int64{"d": secondly(700)}}
	alerts, labels := build(5)
	checkEvents(t, "five", Evaluate(alerts, labels, data, Options{}).Overall.Events, 5, 5, 5, 5, 3, 7.6)
	alerts, labels = build(4) // the window with delay 2 s is missed
	// Detected: 4, 1, 10, 3: sorted 1, 3, 4, 10: median 3.5, p90 rank 2.7: 4 + 0.7·6 = 8.2.
	checkEvents(t, "four", Evaluate(alerts, labels, data, Options{}).Overall.Events, 5, 4, 4, 4, 3.5, 8.2)
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		p    float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{1, 2, 3, 4}, 0.9, 3.7},
		{[]float64{1, 2, 3, 4, 10}, 0.9, 7.6},
		{[]float64{5}, 0.9, 5},
		{[]float64{1, 2}, 1, 2},
		{nil, 0.5, math.NaN()},
	} {
		if got := quantile(tc.in, tc.p); !near(Number(got), tc.want) {
			t.Errorf("quantile(%v, %v) = %v; want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

// TestDevicesOutsideData: labels and alerts of devices without readings are
// reported and ignored; a device without labels has only false alarms.
func TestDevicesOutsideData(t *testing.T) {
	labels := NewLabels()
	for _, w := range []Window{
		{Device: "d1", Start: sec(10), End: sec(20)},
		{Device: "ghost", Start: sec(10), End: sec(20)},
	} {
		if err := labels.Add(w); err != nil {
			t.Fatal(err)
		}
	}
	labels.AddDevice("phantom")
	alerts := []pipeline.Alert{
		rec("a", "d1", "signal", pipeline.Firing, 12),
		rec("b", "d2", "signal", pipeline.Firing, 12), // d2 has no labels: false
		rec("c", "ghost", "signal", pipeline.Firing, 12),
		rec("c", "ghost", "signal", pipeline.Resolved, 13),
		rec("d", "d1", "signal", pipeline.Resolved, 30), // no firing record
		{ID: "e", Device: "d1", Time: sec(3)},           // no state
	}
	data := DataInfo{Times: map[string][]int64{"d1": secondly(100), "d2": secondly(100)}}
	r := Evaluate(alerts, labels, data, Options{})
	if !slices.Equal(r.UnknownDevices, []string{"ghost", "phantom"}) {
		t.Errorf("unknown devices %q; want ghost, phantom", r.UnknownDevices)
	}
	if r.Alerts != 2 || r.IgnoredAlerts != 4 {
		t.Errorf("alerts %d, ignored %d; want 2, 4", r.Alerts, r.IgnoredAlerts)
	}
	if r.Devices != 2 || r.Readings != 200 || len(r.PerDevice) != 2 {
		t.Fatalf("devices %d, readings %d, per device %d; want 2, 200, 2", r.Devices, r.Readings, len(r.PerDevice))
	}
	checkEvents(t, "overall", r.Overall.Events, 1, 1, 2, 1, 2, 2)
	checkEvents(t, "d2", r.PerDevice[1].Events, 0, 0, 1, 0, math.NaN(), math.NaN())
	// Two devices of 99 s each: 0.055 h; one false alarm.
	if !near(r.Overall.Events.FalseAlarmsPerHour, 1/0.055) {
		t.Errorf("false alarms per hour %v; want %v", r.Overall.Events.FalseAlarmsPerHour, 1/0.055)
	}
	// NAB: d2 has no window, so its NAB score is undefined; overall one window.
	if r.PerDevice[1].NAB.Scores[0].Score.Defined() || r.Overall.NAB.Windows != 1 {
		t.Errorf("d2 NAB %+v, overall windows %d; want undefined score, 1 window", r.PerDevice[1].NAB, r.Overall.NAB.Windows)
	}
}

// TestUnsortedData: unsorted reading times are sorted (in a copy) first.
func TestUnsortedData(t *testing.T) {
	alerts, labels, data := scenario(t)
	want := Evaluate(alerts, labels, data, Options{})
	ts := slices.Clone(data.Times["d1"])
	slices.Reverse(ts)
	shuffled := DataInfo{Times: map[string][]int64{"d1": ts}}
	got := Evaluate(alerts, labels, shuffled, Options{})
	if got.Overall.Points != want.Overall.Points || got.Overall.Events.Hours != want.Overall.Events.Hours {
		t.Errorf("unsorted: %+v; want %+v", got.Overall.Points, want.Overall.Points)
	}
	if ts[0] != sec(99) {
		t.Error("Evaluate modified DataInfo")
	}
}

func TestKindMatches(t *testing.T) {
	for _, tc := range []struct {
		label, alert string
		match, want  bool
	}{
		{"thermal", "overpressure", false, true},
		{"thermal", "overpressure", true, false},
		{"thermal", "thermal", true, true},
		{"", "thermal", true, true},
		{"traffic", "traffic.flood", true, true},
		{"traffic", "trafficx", true, false},
		{"traffic.flood", "traffic", true, false},
	} {
		if got := kindMatches(tc.label, tc.alert, tc.match); got != tc.want {
			t.Errorf("kindMatches(%q, %q, %v) = %v; want %v", tc.label, tc.alert, tc.match, got, tc.want)
		}
	}
}

func TestDataInfo(t *testing.T) {
	var d DataInfo
	d.Add("b", 3)
	d.Add("a", 1)
	d.Add("b", 2)
	if got := d.Devices(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Devices() = %q; want a, b", got)
	}
	if got := d.Readings(); got != 3 {
		t.Errorf("Readings() = %d; want 3", got)
	}
	if got := d.sortedTimes("b"); !slices.Equal(got, []int64{2, 3}) || d.Times["b"][0] != 3 {
		t.Errorf("sortedTimes(b) = %v (times %v); want [2 3], times unchanged", got, d.Times["b"])
	}
}

// TestRefinedEpisode: an alert whose later firing record reports another
// kind (a per-signal check that joined a relation alert refines it) matches
// windows of either kind when kinds are matched; its delay is that of its
// first record, and it is one episode.
func TestRefinedEpisode(t *testing.T) {
	labels := NewLabels()
	if err := labels.Add(Window{Device: "d1", Kind: "thermal", Start: sec(10), End: sec(30)}); err != nil {
		t.Fatal(err)
	}
	data := DataInfo{Times: map[string][]int64{"d1": secondly(100)}}
	refined := []pipeline.Alert{
		rec("r1", "d1", "process.relation", pipeline.Firing, 12),
		rec("r1", "d1", "thermal", pipeline.Firing, 15),
		rec("r1", "d1", "process.relation", pipeline.Resolved, 35),
	}
	r := Evaluate(refined, labels, data, Options{MatchKind: true})
	checkEvents(t, "refined", r.Overall.Events, 1, 1, 1, 1, 2, 2)

	// Without the refining record the relation alert is the wrong kind.
	r = Evaluate([]pipeline.Alert{refined[0], refined[2]}, labels, data, Options{MatchKind: true})
	checkEvents(t, "unrefined", r.Overall.Events, 1, 0, 1, 0, math.NaN(), math.NaN())
}
