package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// BenchmarkDeviceMemory measures the state Vigil keeps per device: it feeds
// three readings, each with pressure, temperature and vibration, for each of
// N distinct device IDs through one detectors.Engine (the state of one shard;
// shards only split the same devices), and reports the live heap it grew by —
// runtime.MemStats.HeapAlloc after runtime.GC(), before and after — per
// device. The device IDs are made inside the measurement, as the engine keeps
// its own reference to each; everything else (the reading, the detector set)
// exists before it. The target is at most 1 KiB per device.
//
// Each measurement runs in a child process (this test binary running
// TestDeviceMemoryChild): a fresh heap measures cleanly, and the 2 GB the
// million-device case peaks at would otherwise stay mapped in this process
// and slow the garbage collector in the benchmarks that follow. ns/op is the
// child's whole run; ns/reading is its mean Engine.Process time, first sight
// of the device included.
func BenchmarkDeviceMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			var m memResult
			for b.Loop() {
				m = childMemory(b, n, 3, 3)
			}
			b.ReportMetric(m.perDevice, "B/device")
			b.ReportMetric(m.perDevice*float64(n)/(1<<20), "MiB")
			b.ReportMetric(m.perReading, "ns/reading")
		})
	}
}

// BenchmarkDeviceMemoryWarm is BenchmarkDeviceMemory for devices that have
// sent 400 readings each: past the 64th reading, when a signal gets its
// cycle memory and the device its relation memory, and past the relation
// model's warm-up. Issue 11's target is at most 2 KiB per device with three
// signals; the runs with more signals give the cost of each added one.
func BenchmarkDeviceMemoryWarm(b *testing.B) {
	const n = 10_000
	for _, k := range []int{3, 4, 6} {
		b.Run(fmt.Sprintf("signals=%d", k), func(b *testing.B) {
			var m memResult
			for b.Loop() {
				m = childMemory(b, n, 400, k)
			}
			b.ReportMetric(m.perDevice, "B/device")
			b.ReportMetric(m.perReading, "ns/reading")
		})
	}
}

const (
	readingsEnv = "VIGIL_BENCH_READINGS" // set in the child: readings per device
	signalsEnv  = "VIGIL_BENCH_SIGNALS"  // set in the child: signals per reading
	childEnv    = "VIGIL_BENCH_DEVICES"  // set in the child: how many devices
	childPrefix = "vigil-bench-memory:"  // the child's result line
)

type memResult struct{ perDevice, perReading float64 }

// childMemory runs deviceMemory for n devices of k readings of sigs
// signals in a child process.
func childMemory(b *testing.B, n, k, sigs int) memResult {
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeviceMemoryChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(n), readingsEnv+"="+strconv.Itoa(k), signalsEnv+"="+strconv.Itoa(sigs))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(line, childPrefix); ok {
			var m memResult
			if _, err := fmt.Sscan(rest, &m.perDevice, &m.perReading); err != nil {
				b.Fatalf("child: %q: %v", line, err)
			}
			return m
		}
	}
	b.Fatalf("child printed no result:\n%s", out)
	return memResult{}
}

// TestDeviceMemoryChild is BenchmarkDeviceMemory's child; it skips unless
// run as one.
func TestDeviceMemoryChild(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(childEnv))
	if err != nil {
		t.Skip("run by BenchmarkDeviceMemory")
	}
	k, err := strconv.Atoi(os.Getenv(readingsEnv))
	if err != nil {
		k = 3
	}
	sigs, err := strconv.Atoi(os.Getenv(signalsEnv))
	if err != nil {
		sigs = 3
	}
	m := deviceMemory(defaultSet(t), n, k, sigs)
	fmt.Println(childPrefix, m.perDevice, m.perReading)
}

// extraSignals are the signals a reading carries beyond the plant's three
// (deviceMemory with more than three signals).
var extraSignals = [...]string{"flow", "current", "level", "speed", "humidity"}

// deviceMemory returns the live heap per device after feeding n devices k
// readings each (one a second, with some noise) of sigs signals (pressure,
// temperature, vibration, then extraSignals), and the mean time per reading
// fed.
func deviceMemory(set *detectors.Set, n, readings, sigs int) memResult {
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano()
	r := pipeline.Reading{Values: make([]pipeline.Value, 0, sigs)}
	var out []pipeline.Alert
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	t0 := time.Now()
	eng := set.NewEngine()
	for k := range readings {
		for i := range n {
			r.Reset()
			r.Device = deviceID(i)
			r.Time = start + int64(k)*int64(time.Second) + int64(i)
			r.Status = 0
			x := float64((i+k*31)%97) / 97
			r.Values = append(r.Values,
				pipeline.Value{Name: "pressure", Kind: pipeline.Pressure, V: 4 + x/10},
				pipeline.Value{Name: "temperature", Kind: pipeline.Temperature, V: 60 + x},
				pipeline.Value{Name: "vibration", Kind: pipeline.Vibration, V: 2 + x/10},
			)
			for j, name := range extraSignals[:max(sigs-3, 0)] {
				r.Values = append(r.Values, pipeline.Value{Name: name, Kind: pipeline.Generic, V: float64(10*(j+1)) + x})
			}
			out = eng.Process(&r, out[:0])
		}
	}

	elapsed := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if eng.Devices() != n {
		panic("BUG: engine tracks " + strconv.Itoa(eng.Devices()) + " devices")
	}
	runtime.KeepAlive(eng)
	return memResult{
		perDevice:  float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n),
		perReading: float64(elapsed.Nanoseconds()) / float64(readings*n),
	}
}

// deviceID names device i, making a new string each time: the engine keeps the
// first, later ones are short-lived, as from a decoder whose intern table was
// cleared.
func deviceID(i int) string {
	return "sensor-node-" + strconv.Itoa(1_000_000 + i)[1:]
}

// TestStateSize logs the fixed sizes that make up a device's state, for the
// README's breakdown. It is instant and checks only that the state of three
// signals stays under the 1 KiB budget before any map or name overhead.
func TestStateSize(t *testing.T) {
	dev := unsafe.Sizeof(detectors.Device{})
	sig := unsafe.Sizeof(detectors.SignalState{})
	t.Logf("Device %d B, SignalState %d B, Device + 3 SignalStates %d B", dev, sig, dev+3*sig)
	if total := dev + 3*sig; total > 1024 {
		t.Errorf("Device + 3 SignalStates = %d B; want at most 1024", total)
	}
}
