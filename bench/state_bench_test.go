package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/state"
)

// BenchmarkSnapshot writes the learned state of N devices (three signals,
// traffic learned, 3 readings each) to a snapshot file and reads it back
// into a fresh engine, as "vigil replay --save-state" and "--load-state"
// do. One op is one save and one restore. Reported: bytes per device,
// snapshot and restore time (fsync included).
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			set := defaultSet(b)
			eng := fillEngine(set, n)
			path := filepath.Join(b.TempDir(), "vigil.state")
			var save, restore time.Duration
			var size int64
			for b.Loop() {
				t0 := time.Now()
				w, err := state.Create(path, state.Header{Sequence: 1, Created: t0})
				if err != nil {
					b.Fatal(err)
				}
				w.Add(state.KindPosition, "", pipeline.AppendPosition(nil, pipeline.Position{Seq: 1}))
				if err := eng.Snapshot(func(dev string, s []byte) error { return w.Add(state.KindDevice, dev, s) }); err != nil {
					b.Fatal(err)
				}
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				_, recs, err := state.Read(path)
				if err != nil {
					b.Fatal(err)
				}
				fresh := set.NewEngine()
				for _, r := range recs {
					if r.Kind == state.KindDevice {
						if err := fresh.Restore(r.Value, nil); err != nil {
							b.Fatal(err)
						}
					}
				}
				restore += time.Since(t1)
				save += t1.Sub(t0)
				if fresh.Devices() != n {
					b.Fatalf("restored %d devices; want %d", fresh.Devices(), n)
				}
				fi, _ := os.Stat(path)
				size = fi.Size()
			}
			b.ReportMetric(float64(size)/float64(n), "bytes/device")
			b.ReportMetric(save.Seconds()/float64(b.N), "save-s")
			b.ReportMetric(restore.Seconds()/float64(b.N), "restore-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// fillEngine makes an engine that has seen n devices three times each.
func fillEngine(set *detectors.Set, n int) *detectors.Engine {
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano()
	r := pipeline.Reading{Values: make([]pipeline.Value, 0, 3)}
	var out []pipeline.Alert
	eng := set.NewEngine()
	for k := range 3 {
		for i := range n {
			r.Reset()
			r.Device = deviceID(i)
			r.Time = start + int64(k)*int64(time.Second) + int64(i)
			r.Arrival = r.Time
			r.Status = 0
			x := float64(i%97) / 97
			r.Values = append(r.Values,
				pipeline.Value{Name: "pressure", Kind: pipeline.Pressure, V: 4 + x/10},
				pipeline.Value{Name: "temperature", Kind: pipeline.Temperature, V: 60 + x},
				pipeline.Value{Name: "vibration", Kind: pipeline.Vibration, V: 2 + x/10},
			)
			out = eng.Process(&r, out[:0])
		}
	}
	return eng
}
