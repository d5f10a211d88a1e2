package detectors_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// rateStream feeds one device at hz readings a second for dur: event times
// quantised to the millisecond with ±0.4 ms of jitter (so steps of 0 ms and
// of a few ms mix at high rates), delivered in bursts as a busy broker does
// (arrival times advance in 20 ms steps, every reading of a step arriving
// together). inject, when not nil, may change reading i's values. It returns
// the firing alerts by detector from reading skip on.
func rateStream(t *testing.T, hz float64, dur time.Duration, skip int, inject func(i int, v []pipeline.Value)) (map[string]int, []pipeline.Alert) {
	t.Helper()
	eng := newSet(t, nil).NewEngine()
	nz := newNoise(uint64(hz) + 7)
	n := int(hz * dur.Seconds())
	var out, firing []pipeline.Alert
	by := map[string]int{}
	for i := range n {
		ideal := float64(i) / hz * 1e9
		jit := (nz.rng.Float64() - 0.5) * 0.8e6
		ts := t0 + (int64(ideal+jit)/1e6)*1e6
		arr := t0 + (int64(ideal)/20e6+1)*20e6
		v := plant(nz)
		if inject != nil {
			inject(i, v)
		}
		r := pipeline.Reading{Seq: uint64(i), Time: ts, Arrival: arr, Device: "dev-1", Topic: "plant/a/dev-1/telemetry", Status: 0, Values: v}
		out = eng.Process(&r, out[:0])
		for _, a := range out {
			if a.State == pipeline.Firing && i >= skip {
				by[a.Detector]++
				firing = append(firing, a)
			}
		}
	}
	return by, firing
}

var rates = []float64{1, 10, 100, 1000}

// TestCleanAtAnyRate: a clean stream raises no alert at 1 Hz, 10 Hz, 100 Hz
// or 1 kHz per device, with millisecond timestamps and bursty delivery.
func TestCleanAtAnyRate(t *testing.T) {
	for _, hz := range rates {
		t.Run(fmt.Sprint(hz, "Hz"), func(t *testing.T) {
			n := max(2000, int(hz*60))
			by, _ := rateStream(t, hz, time.Duration(float64(n)/hz*float64(time.Second)), 0, nil)
			if len(by) != 0 {
				t.Errorf("%v Hz, %d clean readings: alerts %v; want none", hz, n, by)
			}
		})
	}
}

// TestSpikesAtAnyRate: one-reading pressure spikes of 12 σ, every 500
// readings after warm-up, are each caught at every rate.
func TestSpikesAtAnyRate(t *testing.T) {
	for _, hz := range rates {
		t.Run(fmt.Sprint(hz, "Hz"), func(t *testing.T) {
			n := 5000
			spikes := map[int]bool{}
			_, firing := rateStream(t, hz, time.Duration(float64(n)/hz*float64(time.Second)), 1000, func(i int, v []pipeline.Value) {
				if i >= 1000 && i%500 == 0 {
					v[0].V += 12 * pSigma
					spikes[i] = true
				}
			})
			caught := 0
			for _, a := range firing {
				if a.Kind == "overpressure" {
					caught++
				}
			}
			if caught < len(spikes) {
				t.Errorf("%v Hz: %d overpressure alerts for %d one-reading spikes; want each caught (alerts %v)", hz, caught, len(spikes), kinds(firing))
			}
		})
	}
}

func kinds(as []pipeline.Alert) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a.Detector]++
	}
	return m
}

var _ = detectors.RelationKind

// TestBunchedTimestamps: a publisher that falls behind stamps several
// messages of a device a millisecond apart, then catches up (50 Hz; after
// the warm-up, now and then one message 1 ms after the one before and the
// next 39 ms after it). Rates over such steps must not read as fast changes.
func TestBunchedTimestamps(t *testing.T) {
	eng := newSet(t, nil).NewEngine()
	nz := newNoise(99)
	var out []pipeline.Alert
	by := map[string]int{}
	ts := t0
	for i := range 20000 {
		step := int64(20e6)
		if i >= 5000 && i%50 == 0 {
			step = 1e6
		} else if i >= 5000 && i%50 == 1 {
			step = 39e6
		}
		ts += step
		r := pipeline.Reading{Seq: uint64(i), Time: ts, Arrival: ts, Device: "dev-1", Status: 0, Values: plant(nz)}
		out = eng.Process(&r, out[:0])
		for _, a := range out {
			if a.State == pipeline.Firing {
				by[a.Detector]++
			}
		}
	}
	if len(by) != 0 {
		t.Errorf("alerts on a clean stream with bunched timestamps: %v; want none", by)
	}
}
