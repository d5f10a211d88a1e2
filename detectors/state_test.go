package detectors_test

import (
	"bufio"
	"bytes"
	"cmp"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// logStream is a decoded log replayed through engines as the pipeline does
// in replay: arrival is the logStream clock, ticks every 64 readings.
type logStream struct {
	readings []pipeline.Reading
}

// message is a payload and its topic.
type message struct{ topic, payload []byte }

func fileMessages(t *testing.T, path string) []message {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms []message
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ms = append(ms, message{[]byte("plant/line-a"), bytes.Clone(sc.Bytes())})
	}
	return ms
}

// simMessages is a simulated fleet with every traffic scenario (floods,
// silences, replays, spoofed and rogue identities).
func simMessages(t *testing.T) []message {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous = 20, 8
	cfg.Traffic = sim.Traffic{Flood: true, Silence: true, Replay: true, Spoof: true, Rogue: true}
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ms []message
	for {
		m, ok := g.Next()
		if !ok {
			return ms
		}
		ms = append(ms, message{[]byte(m.Topic), bytes.Clone(m.Payload)})
	}
}

func loadStream(t *testing.T, msgs []message, dc pipeline.DecoderConfig) logStream {
	t.Helper()
	dec := pipeline.NewDecoder(dc)
	var s logStream
	var clock int64
	for _, m := range msgs {
		var r pipeline.Reading
		if err := dec.Decode(m.payload, string(m.topic), 0, &r); err != nil {
			continue
		}
		clock = max(clock, r.Time)
		r.Arrival = clock
		r.Values = slices.Clone(r.Values)
		s.readings = append(s.readings, r)
	}
	return s
}

// run feeds readings [from, to) to the engines (routed by partition) and
// returns the alerts, ticking every 64 readings.
func (s logStream) run(engines []*detectors.Engine, from, to int) []pipeline.Alert {
	var out []pipeline.Alert
	start := s.readings[0].Arrival
	for i := from; i < to; i++ {
		r := &s.readings[i]
		out = engines[pipeline.Partition(r.Device, len(engines))].Process(r, out)
		if (i+1)%64 == 0 {
			for _, e := range engines {
				out = e.Tick(start, r.Arrival, out)
			}
		}
	}
	return out
}

func jsonSet(as []pipeline.Alert) []string {
	var s []string
	for i := range as {
		s = append(s, string(as[i].AppendJSON(nil)))
	}
	slices.Sort(s)
	return s
}

// TestSnapshotContinues: an engine restored from a snapshot, into any
// number of engines, goes on exactly as the original would have.
func TestSnapshotContinues(t *testing.T) {
	generic := pipeline.DefaultDecoderConfig()
	generic.Signals = map[string]pipeline.SignalSpec{
		"p": {Name: "p", Kind: pipeline.Generic}, "t": {Name: "t", Kind: pipeline.Generic}, "v": {Name: "v", Kind: pipeline.Generic},
	}
	plant, traffic := fileMessages(t, "../fixtures/plant.log"), simMessages(t)
	for _, tc := range []struct {
		name string
		msgs []message
		dc   pipeline.DecoderConfig
		edit func(*detectors.Config)
	}{
		{"default", plant, pipeline.DefaultDecoderConfig(), nil},
		{"traffic", traffic, pipeline.DefaultDecoderConfig(), func(c *detectors.Config) { c.Params.Traffic.Enabled = true }},
		{"generic signals with record, daily and fold", plant, generic, func(c *detectors.Config) {
			c.Params.Fold = true
			c.Params.Signal.Record.Samples = 300
			c.Params.Signal.Daily.Enabled = true
			c.Params.Signal.Daily.Warmup = 10 * time.Minute
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadStream(t, tc.msgs, tc.dc)
			set := newSet(t, tc.edit)
			whole := s.run([]*detectors.Engine{set.NewEngine()}, 0, len(s.readings))
			if len(whole) < 20 {
				t.Fatalf("only %d alerts in the whole run; the test needs some", len(whole))
			}
			var splits []int
			for tenth := 1; tenth < 10; tenth++ {
				splits = append(splits, len(s.readings)*tenth/10)
			}
			// And just before each silence is noticed: the snapshot then
			// holds a device that is silent but not yet flagged, which
			// only the restored silence queue can notice.
			for _, a := range whole {
				if a.Kind == "traffic.silence" && a.State == pipeline.Firing {
					i, _ := slices.BinarySearchFunc(s.readings, a.Time, func(r pipeline.Reading, t int64) int { return cmp.Compare(r.Arrival, t) })
					splits = append(splits, max(i-64, 64))
				}
			}
			for _, split := range splits {
				split -= split % 64
				first := set.NewEngine()
				before := s.run([]*detectors.Engine{first}, 0, split)
				var snap [][]byte
				if err := first.Snapshot(func(_ string, b []byte) error { snap = append(snap, bytes.Clone(b)); return nil }); err != nil {
					t.Fatal(err)
				}
				for _, n := range []int{1, 3} {
					engines := make([]*detectors.Engine, n)
					for i := range engines {
						engines[i] = newSet(t, tc.edit).NewEngine()
						engines[i].SetState(first.State())
					}
					var rep detectors.RestoreReport
					for _, b := range snap {
						name := deviceOf(t, b)
						if err := engines[pipeline.Partition(name, n)].Restore(b, &rep); err != nil {
							t.Fatal(err)
						}
					}
					if rep.Devices != first.Devices() || rep.DroppedEpisodes != 0 || rep.Reclassed != 0 {
						t.Errorf("restore report %+v; want %d devices, nothing dropped", rep, first.Devices())
					}
					after := s.run(engines, split, len(s.readings))
					got := jsonSet(append(slices.Clone(before), after...))
					if want := jsonSet(whole); !slices.Equal(got, want) {
						t.Errorf("split at %d, %d engines: %d alerts; want the %d of the whole run", split, n, len(got), len(want))
					}
				}
			}
		})
	}
}

// deviceOf reads the device name a snapshot record starts with.
func deviceOf(t *testing.T, b []byte) string {
	t.Helper()
	if len(b) < 2 {
		t.Fatal("short record")
	}
	n := int(b[1])
	return string(b[2 : 2+n])
}

// TestReconfigure: reconfiguring with the same parameters changes nothing
// that follows; switching a check off resolves its firing alert under its
// ID, and it fires no more, while the rest goes on as learned.
func TestReconfigure(t *testing.T) {
	s := loadStream(t, fileMessages(t, "../fixtures/plant.log"), pipeline.DefaultDecoderConfig())
	set := newSet(t, nil)
	whole := s.run([]*detectors.Engine{set.NewEngine()}, 0, len(s.readings))
	split := len(s.readings) / 2
	split -= split % 64
	e := set.NewEngine()
	before := s.run([]*detectors.Engine{e}, 0, split)
	clock := s.readings[split-1].Arrival
	out, rep, err := e.Reconfigure(newSet(t, nil), clock, nil)
	if err != nil || len(out) != 0 || rep.DroppedEpisodes != 0 || rep.Devices != e.Devices() {
		t.Fatalf("the same configuration: %d alerts, %+v, %v; want none and every device carried", len(out), rep, err)
	}
	after := s.run([]*detectors.Engine{e}, split, len(s.readings))
	if got, want := jsonSet(append(slices.Clone(before), after...)), jsonSet(whole); !slices.Equal(got, want) {
		t.Errorf("after reconfiguring with the same parameters: %d alerts; want the %d of an uninterrupted run", len(got), len(want))
	}

	// Find a moment when a thermal.drift alert is firing, and switch
	// thermal.drift off there.
	var firing pipeline.Alert
	for _, a := range whole {
		if a.Detector == "thermal.drift" && a.State == pipeline.Firing {
			firing = a
			break
		}
	}
	if firing.ID == "" {
		t.Fatal("the fixture has no thermal.drift alert")
	}
	at, _ := slices.BinarySearchFunc(s.readings, firing.Time, func(r pipeline.Reading, t int64) int { return cmp.Compare(r.Time, t) })
	at += 64 - at%64
	e = set.NewEngine()
	s.run([]*detectors.Engine{e}, 0, at)
	off := newSet(t, func(c *detectors.Config) { c.Params.Thermal.Drift.Off = true })
	out, _, err = e.Reconfigure(off, s.readings[at-1].Arrival, nil)
	if err != nil {
		t.Fatal(err)
	}
	var resolved bool
	for _, a := range out {
		if a.ID == firing.ID && a.State == pipeline.Resolved && strings.Contains(a.Message, "switched off") {
			resolved = true
		}
	}
	if !resolved {
		t.Fatalf("switching thermal.drift off while %s fires: got %s; want it resolved with a reason", firing.ID, fmtAlerts(out))
	}
	for _, a := range s.run([]*detectors.Engine{e}, at, len(s.readings)) {
		if a.Detector == "thermal.drift" {
			t.Errorf("thermal.drift alert after it was switched off: %s", fmtAlerts([]pipeline.Alert{a}))
		}
	}
}
