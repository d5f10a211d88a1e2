package eval_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
)

func Example() {
	labels, err := eval.ReadLabels(strings.NewReader(`[
		{"device": "pump-1", "kind": "overpressure", "start": "2026-11-21T10:03:20Z", "end": "2026-11-21T10:03:29Z"},
		{"device": "pump-1", "kind": "thermal", "start": "2026-11-21T10:05:00Z", "end": "2026-11-21T10:05:30Z"}
	]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	at := func(s int) int64 { return t0.Add(time.Duration(s) * time.Second).UnixNano() }

	// A replay records every reading's time, and the alerts.
	var data eval.DataInfo
	for s := range 600 { // one reading a second for 10 minutes
		data.Add("pump-1", at(s))
	}
	alerts := []pipeline.Alert{
		{ID: "a", Device: "pump-1", Kind: "overpressure", State: pipeline.Firing, Time: at(202)},
		{ID: "a", Device: "pump-1", Kind: "overpressure", State: pipeline.Resolved, Time: at(208)},
		{ID: "b", Device: "pump-1", Kind: "vibration", State: pipeline.Firing, Time: at(400)},
		{ID: "b", Device: "pump-1", Kind: "vibration", State: pipeline.Resolved, Time: at(402)},
	}

	r := eval.Evaluate(alerts, labels, data, eval.Options{After: 5 * time.Second, MatchKind: true})
	e, p := r.Overall.Events, r.Overall.Points
	fmt.Printf("windows %d/%d detected, episodes %d of %d true, delay %vs\n",
		e.Detected, e.Windows, e.TruePositives, e.Episodes, e.DelayMedian)
	fmt.Printf("readings: precision %.3f, recall %.3f\n", p.Precision, p.Recall)
	for _, s := range r.Overall.NAB.Scores {
		fmt.Printf("NAB %s: %.1f\n", s.Profile, s.Score)
	}
	r.WriteTableDevices(os.Stdout, 0)
	// Output:
	// windows 1/2 detected, episodes 1 of 2 true, delay 2s
	// readings: precision 0.750, recall 0.146
	// NAB standard: 46.6
	// NAB reward_low_FP: 43.8
	// NAB reward_low_FN: 47.7
	// 1 devices, 600 readings, 4 alert records (0 ignored); windows widened by 0s before, 5s after; kinds matched
	//
	// EVENTS        windows detected  recall episodes     TP     FP precision     F1 delay p50 delay p90  FA/dev-h
	// all                 2        1   0.500        2      1      1     0.500  0.500        2s        2s      6.01
	// overpressure        1        1   1.000        1      1      0     1.000  1.000        2s        2s      0.00
	// thermal             1        0   0.000        0      0      0         -  0.000         -         -      0.00
	// vibration           0        0       -        1      0      1     0.000  0.000         -         -      6.01
	//
	// POINTS        readings positives        TP        FP        FN precision  recall     F1 false-alarm missed-alarm
	// all                600        41         6         2        35     0.750   0.146  0.245       0.004        0.854
	//
	// NAB           windows detected     FP standard reward_low_FP reward_low_FN
	// score               2        1      1     46.6          43.8          47.7
	// raw                                      -0.14         -0.25         -1.14
}
