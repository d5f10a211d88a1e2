package report

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// benchReadings returns readings of 100 devices with three signals each, one
// per second per device, to be cycled through.
func benchReadings() []pipeline.Reading {
	const devices, steps = 100, 50
	rs := make([]pipeline.Reading, 0, devices*steps)
	for i := range steps {
		for d := range devices {
			x := float64(i*devices + d)
			rs = append(rs, pipeline.Reading{
				Device: fmt.Sprintf("press-%03d", d),
				Time:   t0 + int64(i)*int64(time.Second),
				Status: pipeline.NoStatus,
				Values: []pipeline.Value{
					{Name: "pressure", Kind: pipeline.Pressure, V: 4 + 0.05*math.Sin(x)},
					{Name: "temperature", Kind: pipeline.Temperature, V: 60 + 0.2*math.Cos(x)},
					{Name: "vibration", Kind: pipeline.Vibration, V: 2 + 0.05*math.Sin(3*x)},
				},
			})
		}
	}
	return rs
}

// BenchmarkRecorder measures the recorder's cost per reading (three
// signals): alone, for a device it does not record, and in front of the
// engine, compared with the engine alone.
func BenchmarkRecorder(b *testing.B) {
	rs := benchReadings()
	const span = 50 * int64(time.Second) // of benchReadings
	run := func(b *testing.B, f func(r *pipeline.Reading)) {
		b.Helper()
		b.ReportAllocs()
		var shift int64
		i := 0
		for b.Loop() {
			r := &rs[i]
			t := r.Time
			r.Time += shift // time moves on as the readings repeat
			f(r)
			r.Time = t
			if i++; i == len(rs) {
				i, shift = 0, shift+span
			}
		}
	}
	b.Run("record", func(b *testing.B) {
		e := engine(b)
		rc := NewRecorder(Options{MaxDevices: -1}, e.Band)
		for i := range rs {
			e.Process(&rs[i], nil) // the engine knows the devices: bands exist
		}
		run(b, rc.Record)
	})
	b.Run("declined", func(b *testing.B) {
		rc := NewRecorder(Options{Devices: []string{"pump-*"}}, nil)
		run(b, rc.Record)
	})
	b.Run("engine", func(b *testing.B) {
		e := engine(b)
		var out []pipeline.Alert
		run(b, func(r *pipeline.Reading) { out = e.Process(r, out[:0]) })
	})
	b.Run("engine+recorder", func(b *testing.B) {
		e := engine(b)
		p := tapped(NewRecorder(Options{MaxDevices: -1}, e.Band), e)
		var out []pipeline.Alert
		run(b, func(r *pipeline.Reading) { out = p.Process(r, out[:0]) })
	})
}

// BenchmarkWrite measures the rendering of a report of 10 devices with three
// full series each (30 charts).
func BenchmarkWrite(b *testing.B) {
	e := engine(b)
	rc := NewRecorder(Options{}, e.Band)
	p := tapped(rc, e)
	rs := benchReadings()[:10*50]
	var alerts []pipeline.Alert
	for round := range int64(100) {
		for i := range rs {
			r := rs[i]
			r.Time += round * 50 * int64(time.Second)
			alerts = p.Process(&r, alerts)
		}
	}
	in := Input{Recording: Merge(rc), Alerts: alerts}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Write(&buf, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/report")
}
