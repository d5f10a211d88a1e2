package tune

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// benchFleet is 200 devices (40 with anomalies) publishing every second for
// 5,000 s: 1,000,000 readings of three signals, about 118 MB of JSON lines.
func benchFleet() sim.Config {
	c := sim.DefaultConfig()
	c.Devices, c.Anomalous = 200, 40
	c.Duration = 5000 * time.Second
	return c
}

var benchLog struct {
	once   sync.Once
	path   string
	labels *eval.Labels
	err    error
}

// benchLogFile writes the benchmark fleet's log once per process, into a
// temporary directory that TestMain removes.
func benchLogFile(b *testing.B) (string, *eval.Labels) {
	b.Helper()
	benchLog.once.Do(func() {
		dir, err := os.MkdirTemp("", "tune-bench-")
		if err != nil {
			benchLog.err = err
			return
		}
		path := filepath.Join(dir, "fleet.log")
		f, err := os.Create(path)
		if err != nil {
			benchLog.err = err
			return
		}
		ls, err := sim.WriteLog(f, benchFleet())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			benchLog.err = err
			return
		}
		benchLog.path, benchLog.labels = path, simLabels(b, ls)
	})
	if benchLog.err != nil {
		b.Fatal(benchLog.err)
	}
	return benchLog.path, benchLog.labels
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchLog.path != "" {
		os.RemoveAll(filepath.Dir(benchLog.path))
	}
	os.Exit(code)
}

// BenchmarkLoad reads and decodes the 1,000,000-reading log into a Dataset.
func BenchmarkLoad(b *testing.B) {
	path, _ := benchLogFile(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	var ds *Dataset
	for b.Loop() {
		ds, err = Load([]string{path}, file.Options{}, pipeline.DefaultDecoderConfig())
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ds.Len())*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(ds.Bytes())/float64(ds.Len()), "B/reading")
	b.ReportMetric(float64(ds.Bytes())/(1<<20), "MiB")
}

const benchSpec = `
objective: event_f1
search: random
trials: 49            # and the baseline: 50
seed: 1
match_kind: true
after: 30s
parameters:
  overpressure.spike.z: {min: 4, max: 9}
  overpressure.spike.hold: {values: [1, 2, 3]}
  signal.drift.h: {min: 6, max: 24, steps: 4}
  thermal.fluctuation.ratio: {min: 4, max: 16}
  baseline.half_life: {values: [300, 1000, 3000]}
`

// BenchmarkTune runs 50 trials (the baseline and 49 random settings) over the
// 1,000,000-reading dataset on GOMAXPROCS goroutines.
func BenchmarkTune(b *testing.B) {
	path, labels := benchLogFile(b)
	start := time.Now()
	ds, err := Load([]string{path}, file.Options{}, pipeline.DefaultDecoderConfig())
	if err != nil {
		b.Fatal(err)
	}
	load := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc
	spec := mustSpec(b, benchSpec)
	var res *Result
	b.ResetTimer()
	for b.Loop() {
		res, err = Run(context.Background(), ds, labels, nil, spec, RunOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	total := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(total, "s/tune")
	b.ReportMetric(total/float64(res.Planned), "s/trial")
	b.ReportMetric(load.Seconds(), "s-load")
	b.ReportMetric(float64(heap)/(1<<20), "MiB-heap")
	b.ReportMetric(float64(ds.Len()), "readings")
	if res.Planned != 50 {
		b.Errorf("ran %d trials; want 50", res.Planned)
	}
	if testing.Verbose() {
		res.WriteTableRows(os.Stdout, 10)
	}
}
