package tune

import (
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// writeSim writes a simulated log into dir and returns its path and labels.
func writeSim(tb testing.TB, dir string, cfg sim.Config) (string, *eval.Labels) {
	tb.Helper()
	path := filepath.Join(dir, "plant.log")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	ls, err := sim.WriteLog(f, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, simLabels(tb, ls)
}

// simLabels converts the simulator's labels to evaluation windows.
func simLabels(tb testing.TB, ls []sim.Label) *eval.Labels {
	tb.Helper()
	labels := eval.NewLabels()
	for _, l := range ls {
		if err := labels.Add(eval.Window{Device: l.Device, Kind: l.Kind, Detail: l.Detail,
			Start: l.Start.UnixNano(), End: l.End.UnixNano()}); err != nil {
			tb.Fatal(err)
		}
	}
	return labels
}

// smallFleet is a quick labelled run: 6 devices, 4 with anomalies, 30
// minutes at one reading a second (10,800 readings, about 40 anomalies).
func smallFleet() sim.Config {
	c := sim.DefaultConfig()
	c.Devices, c.Anomalous = 6, 4
	c.Duration = 30 * time.Minute
	c.LeadIn = 8 * time.Minute
	c.Cycle = 60 * time.Second
	c.InjectProb = 0.8
	return c
}

var small struct {
	sync.Mutex
	ds     *Dataset
	labels *eval.Labels
}

// loadSmall loads smallFleet once per test binary.
func loadSmall(tb testing.TB) (*Dataset, *eval.Labels) {
	tb.Helper()
	small.Lock()
	defer small.Unlock()
	if small.ds != nil {
		return small.ds, small.labels
	}
	dir, err := os.MkdirTemp("", "tune-test-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path, labels := writeSim(tb, dir, smallFleet())
	ds, err := Load([]string{path}, file.Options{}, pipeline.DefaultDecoderConfig())
	if err != nil {
		tb.Fatal(err)
	}
	small.ds, small.labels = ds, labels
	return ds, labels
}

// badBase is a configuration that misses pressure spikes and vibration
// jumps: the spike thresholds at 30 spreads, and the other pressure and
// vibration checks that would catch them out of reach.
func badBase(tb testing.TB) *config.File {
	tb.Helper()
	f, err := config.Parse([]byte(`
detectors:
  overpressure:
    spike: {z: 30}
    rise: {h: 10000}
    rate: {factor: 1000}
  vibration:
    zones: {ab: 100, bc: 200, cd: 300}
    jump: {z: 30}
    elevation: {h: 10000}
`))
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func mustSpec(tb testing.TB, text string) *Spec {
	tb.Helper()
	s, err := ParseSpec([]byte(text))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// equalParams compares parameters, limits by value.
func equalParams(a, b detectors.Params) bool { return reflect.DeepEqual(a, b) }
