package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
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

// BenchmarkSnapshotUnderLoad: a live snapshot of a pipeline with n devices
// learned (two shards) while frames keep arriving. It reports how long the
// snapshot took and the longest pause between two readings judged by a
// shard while it ran (stall-ms), against the longest pause before it
// (base-stall-ms): the barrier holds each shard for as long as it takes to
// encode its devices into memory; the file is written after ingest resumed.
func BenchmarkSnapshotUnderLoad(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			set := defaultSet(b)
			const workers = 2
			engines := make([]*detectors.Engine, workers)
			for i := range engines {
				engines[i] = fillEngine(set, n/workers)
			}
			gaps := make([]gapTap, workers)
			pl, err := pipeline.New(pipeline.Config{
				Workers:      workers,
				NewProcessor: func(i int) pipeline.Processor { return engines[i] },
				Taps:         func(i int) []pipeline.Tap { return []pipeline.Tap{&gaps[i]} },
				Logger:       slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- pl.Run(ctx, &steadySource{devices: 1000}, discard{}) }()
			time.Sleep(300 * time.Millisecond) // flowing
			path := filepath.Join(b.TempDir(), "vigil.state")
			var took time.Duration
			var stall, base time.Duration
			for b.Loop() {
				for i := range gaps {
					base = max(base, gaps[i].reset())
				}
				time.Sleep(200 * time.Millisecond)
				for i := range gaps {
					base = max(base, gaps[i].reset())
				}
				t0 := time.Now()
				w, err := state.Create(path, state.Header{Sequence: 1, Created: t0})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := pl.Snapshot(ctx, w); err != nil {
					b.Fatal(err)
				}
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
				took += time.Since(t0)
				time.Sleep(100 * time.Millisecond)
				for i := range gaps {
					stall = max(stall, gaps[i].reset())
				}
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "snapshot-s")
			b.ReportMetric(float64(stall.Microseconds())/1000, "stall-ms")
			b.ReportMetric(float64(base.Microseconds())/1000, "base-stall-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// gapTap records the longest pause between two readings it observes.
type gapTap struct {
	mu   sync.Mutex
	last time.Time
	max  time.Duration
}

func (g *gapTap) Observe(*pipeline.Reading) {
	now := time.Now()
	g.mu.Lock()
	if !g.last.IsZero() {
		g.max = max(g.max, now.Sub(g.last))
	}
	g.last = now
	g.mu.Unlock()
}

// reset returns the longest pause since the last reset.
func (g *gapTap) reset() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.max
	g.max = 0
	return m
}

// steadySource yields telemetry of a few devices, 64 frames at a time, with
// a short sleep between batches (a live rate, not a flood).
type steadySource struct {
	devices int
	i       int
	buf     []byte
}

func (s *steadySource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	select {
	case <-ctx.Done():
		return io.EOF
	case <-time.After(time.Millisecond):
	}
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for range min(max, 64) {
		s.i++
		ts := start.Add(time.Duration(s.i) * time.Millisecond).Format(time.RFC3339Nano)
		s.buf = fmt.Appendf(s.buf[:0], `{"timestamp":%q,"node_id":"live-%d","data":{"p":4.2,"t":61.3,"v":2.7}}`, ts, s.i%s.devices)
		b.Add("plant/x", s.buf, 0, "bench", 0)
	}
	return nil
}

func (s *steadySource) Close() error { return nil }

// discard is a sink that drops alerts.
type discard struct{}

func (discard) Write(context.Context, []pipeline.Alert) error { return nil }
func (discard) Close() error                                  { return nil }
