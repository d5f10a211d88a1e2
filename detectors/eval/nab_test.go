package eval

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// The NAB cases use one file ("f") of 1000 rows one minute apart, so its
// probation period is min(⌊0.15·1000⌋, 750) = 150 rows, and one window over
// rows 400..500: L = 400, R = 500, R − L = 100 rows. Row i is at row(i).
const (
	nabRows = 1000
	winL    = 400
	winR    = 500
)

var t0 = time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func row(i int) int64 { return t0 + int64(i)*int64(time.Minute) }

func rowTimes(n int) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = row(i)
	}
	return ts
}

// firing returns a firing record of device at t; each has its own episode.
func firing(device string, t int64) pipeline.Alert {
	return pipeline.Alert{ID: fmt.Sprint(device, "/", t), Device: device, Kind: "signal", State: pipeline.Firing, Time: t, Started: t}
}

// nabOne evaluates firing records at the given rows of file "f" against the
// window rows winL..winR, with the three profiles.
func nabOne(t *testing.T, rows ...int) NAB {
	t.Helper()
	labels := NewLabels()
	if err := labels.Add(Window{Device: "f", Start: row(winL), End: row(winR)}); err != nil {
		t.Fatal(err)
	}
	var alerts []pipeline.Alert
	for _, i := range rows {
		alerts = append(alerts, firing("f", row(i)))
	}
	data := DataInfo{Times: map[string][]int64{"f": rowTimes(nabRows)}}
	return Evaluate(alerts, labels, data, Options{}).Overall.NAB
}

func TestSigmoidAtStart(t *testing.T) {
	// σ(−1) = 2/(1+e^(−5)) − 1 = 2/1.006737947 − 1 = 0.986614298.
	if got, want := sigmoidAtStart, 0.986614298; math.Abs(got-want) > 1e-9 {
		t.Errorf("σ(-1) = %.10f; want %.9f", got, want)
	}
	if got := Probation(1000); got != 150 {
		t.Errorf("Probation(1000) = %d; want 150", got)
	}
	if got := Probation(22695); got != 750 { // machine_temperature_system_failure.csv
		t.Errorf("Probation(22695) = %d; want 750", got)
	}
	if got := Probation(6); got != 0 {
		t.Errorf("Probation(6) = %d; want 0", got)
	}
}

// TestNABSingleFile checks raw scores of one file computed by hand, with
// σ(y) = 2/(1+e^(5y)) − 1 and σ(−1) = 0.9866143.
func TestNABSingleFile(t *testing.T) {
	tests := []struct {
		name string
		rows []int
		// standard, reward_low_FP, reward_low_FN raw scores
		want       [3]float64
		detected   int
		fps        int
		wantScores []float64 // normalised; nil: not checked
	}{
		{
			// y = −1: σ(−1)/σ(−1) = 1 = A_tp. Normalised: 100·(1 − (−1))/(1 − (−1)) = 100.
			name: "at window start", rows: []int{winL},
			want: [3]float64{1, 1, 1}, detected: 1,
			wantScores: []float64{100, 100, 100},
		},
		{
			// y = (500 − 500)/100 = 0: σ(0) = 2/2 − 1 = 0. Normalised: 100·(0+1)/2 = 50;
			// reward_low_FN: 100·(0+2)/(1+2) = 66.67.
			name: "at window end", rows: []int{winR},
			want: [3]float64{0, 0, 0}, detected: 1,
			wantScores: []float64{50, 50, 200.0 / 3},
		},
		{
			// y = (450 − 500)/100 = −0.5: σ = 2/(1+e^(−2.5)) − 1 = 2/1.0820850 − 1 = 0.8482836;
			// / 0.9866143 = 0.8597926.
			name: "mid window", rows: []int{450},
			want: [3]float64{0.8597926, 0.8597926, 0.8597926}, detected: 1,
			wantScores: []float64{92.98963, 92.98963, 95.32642},
		},
		{
			// A miss costs A_fn: −1, −1, −2. Normalised: 0.
			name:       "no detection",
			want:       [3]float64{-1, -1, -2},
			wantScores: []float64{0, 0, 0},
		},
		{
			// Window detected at its start (+1), and a false positive at row 900:
			// y = (900 − 500)/100 = 4, σ(4) = 2/(1+e^20) − 1 = −0.999999996, cost
			// ≈ |A_fp|: 1 − 0.11 = 0.89, 1 − 0.22 = 0.78, 1 − 0.11 = 0.89.
			name: "false positive long after", rows: []int{winL, 900},
			want: [3]float64{0.89, 0.78, 0.89}, detected: 1, fps: 1,
			wantScores: []float64{94.5, 89, 96.33333},
		},
		{
			// A false positive before the first window (row 200, after probation) costs
			// the full A_fp; with the window missed: −1 − 0.11, −1 − 0.22, −2 − 0.11.
			name: "false positive before the window", rows: []int{200},
			want: [3]float64{-1.11, -1.22, -2.11}, fps: 1,
			wantScores: []float64{-5.5, -11, -3.666667},
		},
		{
			// Row 510: y = (510 − 500)/100 = 0.1, σ(0.1) = 2/(1+e^0.5) − 1 =
			// 2/2.6487213 − 1 = −0.2449187; cost 0.11·0.2449187 = 0.0269411
			// (0.22·0.2449187 = 0.0538821). With the window detected at its start:
			// 1 − 0.0269411 = 0.9730589, 1 − 0.0538821 = 0.9461179.
			name: "false positive just after the window", rows: []int{winL, 510},
			want: [3]float64{0.9730589, 0.9461179, 0.9730589}, detected: 1, fps: 1,
		},
		{
			// Row 501, the first after the window: y = 0.01, σ = 2/(1+e^0.05) − 1 =
			// −0.0249948; cost 0.11·0.0249948 = 0.0027494: 1 − 0.0027494 = 0.9972506
			// (reward_low_FP: 1 − 0.22·0.0249948 = 0.9945011).
			name: "false positive on the next row", rows: []int{winL, winR + 1},
			want: [3]float64{0.9972506, 0.9945011, 0.9972506}, detected: 1, fps: 1,
		},
		{
			// Row 100 is in the probation period (rows 0..149): ignored, so no false
			// positive (it would cost the full A_fp) and the window is missed.
			name: "detection in probation", rows: []int{100},
			want: [3]float64{-1, -1, -2},
		},
		{
			// Row 149 is the probation's last row, 150 its first scored one
			// (before the window: full A_fp).
			name: "probation boundary", rows: []int{149, 150, winL},
			want: [3]float64{1 - 0.11, 1 - 0.22, 1 - 0.11}, detected: 1, fps: 1,
		},
		{
			// Rows 450 and 420, in that order: only the earliest counts, y = −0.8,
			// σ(−0.8) = 2/(1+e^(−4)) − 1 = 0.9640276; / 0.9866143 = 0.9771068. The
			// later one is neither rewarded nor a false positive.
			name: "two detections in one window", rows: []int{450, 420},
			want: [3]float64{0.9771068, 0.9771068, 0.9771068}, detected: 1,
		},
		{
			// Three records on row 400 are one detection: reward 1, no false positive.
			name: "same row thrice", rows: []int{winL, winL, winL},
			want: [3]float64{1, 1, 1}, detected: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := nabOne(t, tc.rows...)
			if n.Windows != 1 || n.Detected != tc.detected || n.FalsePositives != tc.fps || n.Probation != 150 {
				t.Errorf("windows, detected, false positives, probation = %d, %d, %d, %d; want 1, %d, %d, 150",
					n.Windows, n.Detected, n.FalsePositives, n.Probation, tc.detected, tc.fps)
			}
			for i, s := range n.Scores {
				if math.Abs(s.Raw-tc.want[i]) > 1e-6 {
					t.Errorf("%s raw = %.7f; want %.7f", s.Profile, s.Raw, tc.want[i])
				}
				if tc.wantScores != nil && math.Abs(float64(s.Score)-tc.wantScores[i]) > 1e-4 {
					t.Errorf("%s score = %.5f; want %.5f", s.Profile, float64(s.Score), tc.wantScores[i])
				}
			}
		})
	}
}

// TestNABDetectionBetweenRows: a record between two rows lands on the next
// row, so one 30 s before the window's first row detects the window at its
// start, and one after the last row is dropped.
func TestNABDetectionBetweenRows(t *testing.T) {
	labels := NewLabels()
	if err := labels.Add(Window{Device: "f", Start: row(winL), End: row(winR)}); err != nil {
		t.Fatal(err)
	}
	data := DataInfo{Times: map[string][]int64{"f": rowTimes(nabRows)}}
	alerts := []pipeline.Alert{
		firing("f", row(winL)-int64(30*time.Second)),
		firing("f", row(nabRows-1)+int64(time.Second)), // after the last row
	}
	n := Evaluate(alerts, labels, data, Options{}).Overall.NAB
	if got := n.Scores[0].Raw; math.Abs(got-1) > 1e-9 || n.FalsePositives != 0 {
		t.Errorf("raw %.6f, %d false positives; want 1 and 0", got, n.FalsePositives)
	}
}

// nabFleet is three files: "a" (1000 rows) with windows on rows 300..350 and
// 600..700, "b" (2000 rows, probation 300) with one on rows 1000..1100, and
// "c" (500 rows) with none.
func nabFleet(t *testing.T) (*Labels, DataInfo, [][2]int64) {
	t.Helper()
	data := DataInfo{Times: map[string][]int64{"a": rowTimes(1000), "b": rowTimes(2000), "c": rowTimes(500)}}
	ws := []Window{
		{Device: "a", Start: row(300), End: row(350)},
		{Device: "a", Start: row(600), End: row(700)},
		{Device: "b", Start: row(1000), End: row(1100)},
	}
	labels := NewLabels()
	for _, w := range ws {
		if err := labels.Add(w); err != nil {
			t.Fatal(err)
		}
	}
	labels.AddDevice("c")
	var spans [][2]int64
	for _, w := range ws {
		spans = append(spans, [2]int64{w.Start, w.End})
	}
	return labels, data, spans
}

func TestNABNormalisation(t *testing.T) {
	labels, data, _ := nabFleet(t)
	tests := []struct {
		name   string
		alerts []pipeline.Alert
		check  func(score float64) bool
		want   string
	}{
		// Perfect: every window detected at its first row: S = 3·A_tp = S_perfect.
		{"perfect", []pipeline.Alert{firing("a", row(300)), firing("a", row(600)), firing("b", row(1000))},
			func(s float64) bool { return math.Abs(s-100) < 1e-9 }, "100"},
		// Null: no detection: S = 3·A_fn = S_null.
		{"null", nil, func(s float64) bool { return s == 0 }, "0"},
		// Only false positives: S = S_null + Σ A_fp·cost < S_null.
		{"false positives only", []pipeline.Alert{firing("a", row(200)), firing("a", row(900)), firing("b", row(1500)), firing("c", row(400))},
			func(s float64) bool { return s < 0 }, "< 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := Evaluate(tc.alerts, labels, data, Options{}).Overall.NAB
			if n.Windows != 3 {
				t.Fatalf("windows = %d; want 3", n.Windows)
			}
			if len(n.Scores) != 3 {
				t.Fatalf("%d profile scores; want 3", len(n.Scores))
			}
			for _, s := range n.Scores {
				if !tc.check(float64(s.Score)) {
					t.Errorf("%s score = %.4f (raw %.4f, null %.2f, perfect %.2f); want %s",
						s.Profile, float64(s.Score), s.Raw, s.Null, s.Perfect, tc.want)
				}
			}
		})
	}
}

// TestNABFalsePositivesOnlyByHand: the false-positives-only detector of
// TestNABNormalisation, by hand (standard profile). File a: row 200 precedes
// its first window (cost 1); row 900 follows the window 600..700 by y = 200/100
// = 2, σ(2) = 2/(1+e^10) − 1 = −0.9999092 (cost 0.9999092). File b: row 1500,
// y = 400/100 = 4, cost 0.99999999588. File c: no window, cost 1. Sum of costs
// 3.9999092; S = −3 − 0.11·3.9999092 = −3.4399900; S_null = −3, S_perfect = 3:
// 100·(−0.4399900)/6 = −7.333167.
func TestNABFalsePositivesOnlyByHand(t *testing.T) {
	labels, data, _ := nabFleet(t)
	alerts := []pipeline.Alert{firing("a", row(200)), firing("a", row(900)), firing("b", row(1500)), firing("c", row(400))}
	s := Evaluate(alerts, labels, data, Options{Profiles: []Profile{ProfileStandard}}).Overall.NAB.Scores[0]
	if math.Abs(s.Raw-(-3.4399900)) > 1e-6 || math.Abs(float64(s.Score)-(-7.333167)) > 1e-5 {
		t.Errorf("raw %.7f, score %.6f; want -3.4399900 and -7.333167", s.Raw, float64(s.Score))
	}
}

// TestNABWindowRows: windows become rows as NAB's do; a window without rows,
// one inside the probation period, and overlapping windows.
func TestNABWindowRows(t *testing.T) {
	data := DataInfo{Times: map[string][]int64{"f": rowTimes(nabRows)}}
	labels := NewLabels()
	for _, w := range []Window{
		{Device: "f", Start: row(10), End: row(20)},                                                // inside probation: not scored
		{Device: "f", Start: row(300) + int64(time.Second), End: row(300) + int64(2*time.Second)},  // between rows: no row
		{Device: "f", Kind: "thermal", Start: row(400), End: row(450)},                             // merged with the next:
		{Device: "f", Kind: "vibration", Start: row(450), End: row(500)},                           // rows 400..500
		{Device: "f", Start: row(700) - int64(time.Second), End: row(800) + int64(59*time.Second)}, // rows 700..800
	} {
		if err := labels.Add(w); err != nil {
			t.Fatal(err)
		}
	}
	// Row 450 in the merged window 400..500: y = −0.5, reward 0.8597926. Row 25,
	// in probation: ignored. Row 700: y = −1, reward 1. Row 810 after the window
	// 700..800: y = 0.1, cost 0.2449187·0.11 = 0.0269411. Raw: 1.8597926 − 0.0269411.
	alerts := []pipeline.Alert{firing("f", row(25)), firing("f", row(450)), firing("f", row(700)), firing("f", row(810))}
	n := Evaluate(alerts, labels, data, Options{}).Overall.NAB
	if n.Windows != 2 || n.Unscored != 2 || n.Detected != 2 || n.FalsePositives != 1 {
		t.Errorf("windows %d, unscored %d, detected %d, false positives %d; want 2, 2, 2, 1",
			n.Windows, n.Unscored, n.Detected, n.FalsePositives)
	}
	if got, want := n.Scores[0].Raw, 1.8597926-0.0269411; math.Abs(got-want) > 1e-6 {
		t.Errorf("raw = %.7f; want %.7f", got, want)
	}
}

// TestNABCustomProfile: weights apply linearly.
func TestNABCustomProfile(t *testing.T) {
	labels, data, _ := nabFleet(t)
	p := Profile{Name: "x", TP: 2, FP: -1, FN: -3}
	alerts := []pipeline.Alert{firing("a", row(300)), firing("c", row(100))} // c: 500 rows, probation 75
	n := Evaluate(alerts, labels, data, Options{Profiles: []Profile{p}}).Overall.NAB
	// One window at its start (2), two missed (−6), one false positive with no
	// preceding window (−1): −5. Null −9, perfect 6: 100·4/15 = 26.667.
	s := n.Scores[0]
	if s.Profile != "x" || math.Abs(s.Raw-(-5)) > 1e-9 || math.Abs(float64(s.Score)-400.0/15) > 1e-9 {
		t.Errorf("got %+v; want profile x, raw -5, score 26.667", s)
	}
}
