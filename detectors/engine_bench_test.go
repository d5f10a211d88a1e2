package detectors_test

import (
	"fmt"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

// benchReadings returns n samples of the three noisy signals.
func benchReadings(n int, nz noise) [][3]float64 {
	xs := make([][3]float64, n)
	for i := range xs {
		xs[i] = [3]float64{nz.gauss(p0, pSigma), nz.gauss(t0C, tSig), nz.gauss(v0, vSigma)}
	}
	return xs
}

// BenchmarkEngineProcess measures one reading of a warmed-up device with three
// signals and no alert: the steady-state hot path.
func BenchmarkEngineProcess(b *testing.B) {
	eng := newSet(b, nil).NewEngine()
	xs := benchReadings(4096, newNoise(1))
	r := pipeline.Reading{Device: "sensor-node-01", Status: 0, Values: plant(newNoise(2))}
	var out []pipeline.Alert
	n := 0
	process := func() {
		x := &xs[n%len(xs)]
		r.Seq, r.Time = uint64(n), t0+int64(n)*sec
		r.Values[0].V, r.Values[1].V, r.Values[2].V = x[0], x[1], x[2]
		out = eng.Process(&r, out[:0])
		n++
	}
	for range 2 * warmup {
		process()
	}
	alerts := 0
	b.ReportAllocs()
	for b.Loop() {
		process()
		alerts += len(out)
	}
	if alerts != 0 {
		b.Fatalf("got %d alerts; want a clean run", alerts)
	}
}

// BenchmarkEngineProcess10kDevices round-robins over 10,000 warmed-up devices,
// so each reading's state is cold in cache, as in a large shard.
func BenchmarkEngineProcess10kDevices(b *testing.B) {
	const devices = 10000
	eng := newSet(b, nil).NewEngine()
	names := make([]string, devices)
	for i := range names {
		names[i] = fmt.Sprintf("sensor-node-%05d", i)
	}
	xs := benchReadings(8191, newNoise(1)) // odd length: devices see different samples
	r := pipeline.Reading{Status: 0, Values: plant(newNoise(2))}
	var out []pipeline.Alert
	n := 0
	process := func() {
		x := &xs[n%len(xs)]
		r.Device = names[n%devices]
		r.Seq, r.Time = uint64(n), t0+int64(n/devices)*sec
		r.Values[0].V, r.Values[1].V, r.Values[2].V = x[0], x[1], x[2]
		out = eng.Process(&r, out[:0])
		n++
	}
	for range (warmup + 50) * devices {
		process()
	}
	if eng.Devices() != devices {
		b.Fatalf("got %d devices; want %d", eng.Devices(), devices)
	}
	alerts := 0
	b.ReportAllocs()
	for b.Loop() {
		process()
		alerts += len(out)
	}
	if alerts != 0 {
		b.Fatalf("got %d alerts; want a clean run", alerts)
	}
}

// BenchmarkEngineProcessCyclic is BenchmarkEngineProcess on a device whose
// temperature and pressure follow cycles (30 and 7 minutes, 4 and 3 σ) that
// the engine has learned: the hot path with the profile lookup on two
// signals, and the period search amortised (it runs every 32 bins).
func BenchmarkEngineProcessCyclic(b *testing.B) {
	eng := newSet(b, nil).NewEngine()
	d := cyclicPlant()[0]
	nz := newNoise(1)
	var vals []pipeline.Value
	r := pipeline.Reading{Device: d.name, Status: pipeline.NoStatus}
	var out []pipeline.Alert
	n := 0
	process := func() {
		vals = d.values(n, nz, nil, vals)
		r.Seq, r.Time, r.Values = uint64(n), t0+int64(n)*sec, vals
		out = eng.Process(&r, out[:0])
		n++
	}
	for range 3 * 3600 {
		process()
	}
	if _, _, ok := eng.Cycle(d.name, "temperature"); !ok {
		b.Fatal("no temperature cycle learned")
	}
	b.ReportAllocs()
	for b.Loop() {
		process()
	}
}
