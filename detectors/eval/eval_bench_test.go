package eval

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// benchFleet is 1,000 devices with 1,000 readings each (one a second), three
// label windows per device and 10,000 alert records: five episodes per
// device, each a firing and a resolved record, some inside windows.
func benchFleet(b *testing.B) ([]pipeline.Alert, *Labels, DataInfo) {
	b.Helper()
	const devices, readings = 1000, 1000
	var data DataInfo
	labels := NewLabels()
	alerts := make([]pipeline.Alert, 0, 10_000)
	for d := range devices {
		dev := fmt.Sprintf("sensor-node-%04d", d)
		for s := range readings {
			data.Add(dev, sec(float64(s)))
		}
		for w := range 3 {
			start := float64(200 + 250*w + d%50)
			if err := labels.Add(Window{Device: dev, Kind: "thermal", Start: sec(start), End: sec(start + 40)}); err != nil {
				b.Fatal(err)
			}
		}
		for e := range 5 {
			fire := float64(190 + 170*e + d%37)
			id := fmt.Sprintf("%s/%d", dev, e)
			alerts = append(alerts,
				pipeline.Alert{ID: id, Device: dev, Kind: "thermal", State: pipeline.Firing, Time: sec(fire)},
				pipeline.Alert{ID: id, Device: dev, Kind: "thermal", State: pipeline.Resolved, Time: sec(fire + 15)})
		}
	}
	return alerts, labels, data
}

// BenchmarkEvaluate evaluates 10,000 alert records against 1,000,000 readings
// of 1,000 devices. Replaying those readings takes about a second; Evaluate
// should cost a small fraction of that.
func BenchmarkEvaluate(b *testing.B) {
	alerts, labels, data := benchFleet(b)
	opts := Options{After: 30 * time.Second, MatchKind: true}
	n := data.Readings()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Evaluate(alerts, labels, data, opts)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkDataInfoAdd is the caller's cost of recording one reading.
func BenchmarkDataInfoAdd(b *testing.B) {
	devs := make([]string, 1000)
	for i := range devs {
		devs[i] = fmt.Sprintf("sensor-node-%04d", i)
	}
	var data DataInfo
	i := 0
	for b.Loop() {
		data.Add(devs[i%len(devs)], int64(i))
		i++
	}
}
