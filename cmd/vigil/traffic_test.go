package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// trafficLog writes a generated log with every traffic scenario (and the
// usual value anomalies) and returns its path and labels.
func trafficLog(t *testing.T, topics bool) (string, []sim.Label) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Duration, cfg.Topics = 16*time.Minute, topics
	cfg.Traffic = sim.Traffic{Flood: true, Silence: true, Replay: true, Spoof: true, Rogue: true}
	path := filepath.Join(t.TempDir(), "traffic.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := sim.WriteLog(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, labels
}

// TestTrafficScenarios: in a generated log with every traffic scenario, each
// injected behaviour is caught by a traffic alert of its kind within its
// window, no other traffic alert fires, devices without a traffic scenario
// get none, and the output is the same for any number of workers. With
// topics, the spoofed stream is also seen on its foreign topic.
func TestTrafficScenarios(t *testing.T) {
	for _, topics := range []bool{false, true} {
		t.Run(fmt.Sprint("topics=", topics), func(t *testing.T) {
			path, labels := trafficLog(t, topics)
			var want string
			for _, w := range []string{"1", "3", "8"} {
				code, out, errs := runCLI(t, "replay", "--summary", "none", "--workers", w, "--decoders", "2", path)
				if code != 0 {
					t.Fatalf("workers=%s: exit %d: %s", w, code, errs)
				}
				if want == "" {
					want = out
				} else if out != want {
					t.Fatalf("workers=%s: output differs from workers=1", w)
				}
			}
			alerts := readAlerts(t, want)
			var traffic []sim.Label
			victims := map[string]bool{}
			for _, l := range labels {
				if l.Kind == sim.KindTraffic {
					traffic = append(traffic, l)
					victims[l.Device] = true
				}
			}
			if len(traffic) != 5 {
				t.Fatalf("got %d traffic labels; want one per scenario (5): %+v", len(traffic), traffic)
			}
			for _, l := range traffic {
				kind := "traffic." + l.Detail
				var hit *pipeline.Alert
				for i, a := range alerts {
					at := time.Unix(0, a.Time)
					if a.State == pipeline.Firing && a.Device == l.Device && a.Kind == kind &&
						!at.Before(l.Start.Add(-2*time.Second)) && !at.After(l.End.Add(30*time.Second)) {
						hit = &alerts[i]
						break
					}
				}
				if hit == nil {
					t.Errorf("missed: %s %s on %s, %s – %s", l.Kind, l.Detail, l.Device, l.Start.Format(time.TimeOnly), l.End.Format(time.TimeOnly))
					continue
				}
				t.Logf("%s on %s caught after %v: %s", kind, l.Device, time.Unix(0, hit.Time).Sub(l.Start).Round(time.Millisecond), hit.Message)
			}
			for _, a := range alerts {
				if !strings.HasPrefix(a.Kind, "traffic.") || a.State != pipeline.Firing {
					continue
				}
				if !victims[a.Device] {
					t.Errorf("device %s has no traffic scenario but got %s: %s", a.Device, a.Kind, a.Message)
					continue
				}
				ok := false
				at := time.Unix(0, a.Time)
				for _, l := range traffic {
					if l.Device == a.Device && a.Kind == "traffic."+l.Detail && !at.Before(l.Start.Add(-2*time.Second)) && !at.After(l.End.Add(time.Minute)) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s on %s at %s matches no scenario of that kind: %s", a.Kind, a.Device, at.Format(time.TimeOnly), a.Message)
				}
			}
			if topics {
				found := false
				for _, a := range alerts {
					found = found || a.Kind == "traffic.identity" && strings.Contains(a.Message, "a topic it never used")
				}
				if !found {
					t.Error("with topics: no traffic.identity alert for the spoofed stream's foreign topic")
				}
			}
		})
	}
}

// TestTrafficScenariosEvaluated: replay --labels (and --report) scores the
// traffic scenarios like any other injection: every window detected (the
// wrapped engines still get ticks, rejections and the count of new devices).
func TestTrafficScenariosEvaluated(t *testing.T) {
	path, labels := trafficLog(t, false)
	var traffic []sim.Label
	for _, l := range labels {
		if l.Kind == sim.KindTraffic {
			traffic = append(traffic, l)
		}
	}
	lf := filepath.Join(t.TempDir(), "labels.json")
	f, err := os.Create(lf)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.WriteLabels(f, traffic); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "eval.json")
	html := filepath.Join(t.TempDir(), "report.html")
	code, _, errs := runCLI(t, "replay", "--summary", "none", "--alerts", os.DevNull, "--labels", lf, "--eval-json", out, "--report", html, path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Overall struct {
			Events struct{ Windows, Detected int }
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if e := rep.Overall.Events; e.Windows != 5 || e.Detected != 5 {
		t.Errorf("events %+v; want 5 traffic windows, all detected\n%s", e, errs)
	}
}

// simSource is a replay source reading straight from a generator, so a large
// fleet needs no log file.
type simSource struct {
	g      *sim.Generator
	topics bool
}

func (s *simSource) ReadBatch(_ context.Context, b *pipeline.FrameBatch, max int) error {
	for range max {
		m, ok := s.g.Next()
		if !ok {
			return io.EOF
		}
		topic := ""
		if s.topics {
			topic = m.Topic
		}
		b.Add(topic, m.Payload, 0, "sim", 0)
	}
	return nil
}

func (s *simSource) Close() error { return nil }

// TestTrafficFloodInLargeFleet: among 10,000 devices, the one that floods is
// the only one with a traffic alert.
func TestTrafficFloodInLargeFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("1.4 M messages")
	}
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous = 10_000, 0
	cfg.LeadIn, cfg.Duration = time.Minute, 140*time.Second
	cfg.Traffic.Flood = true
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	sink := &alertLog{}
	pl, err := pipeline.New(pipeline.Config{
		Workers:      2,
		NewProcessor: func(int) pipeline.Processor { return set.NewEngine() },
		Fleet:        set.FleetFunc(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Run(context.Background(), &simSource{g: g, topics: true}, sink); err != nil {
		t.Fatal(err)
	}
	var flood *sim.Label
	for _, l := range g.Labels() {
		if l.Detail == sim.DetailFlood {
			flood = &l
		}
	}
	if flood == nil {
		t.Fatal("no flood label")
	}
	caught := false
	for _, a := range sink.alerts {
		if a.Device != flood.Device {
			t.Errorf("%s on %s: %s; want alerts only for the flooding %s", a.Kind, a.Device, a.Message, flood.Device)
			continue
		}
		caught = caught || a.Kind == "traffic.flood" && a.State == pipeline.Firing
	}
	if !caught {
		t.Errorf("got %d alerts; want traffic.flood for %s", len(sink.alerts), flood.Device)
	}
	st := pl.Stats()
	t.Logf("%d messages from %d devices, %d alerts", st.Frames, st.Devices, len(sink.alerts))
}

// liveFleet is a live source: three devices d0..d2 publish in turn every
// 100 ms of (fake) wall clock, stamped with their arrival time; d1 skips
// [20 s, 25 s); after 30 s nothing more arrives.
type liveFleet struct {
	start time.Time
	i     int
}

func (s *liveFleet) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, _ int) error {
	for {
		at := s.start.Add(time.Duration(s.i+1) * 100 * time.Millisecond)
		if at.Sub(s.start) > 30*time.Second {
			<-ctx.Done()
			return ctx.Err()
		}
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
			return ctx.Err()
		}
		dev := s.i % 3
		s.i++
		if off := at.Sub(s.start); dev == 1 && off >= 20*time.Second && off < 25*time.Second {
			continue
		}
		now := time.Now()
		b.Add("plant/line-a/d/telemetry", fmt.Appendf(nil, `{"timestamp":%d,"node_id":"d%d","data":{"p":4.2}}`, now.UnixMilli(), dev), now.UnixNano(), "live", 0)
		return nil
	}
}

func (s *liveFleet) Close() error { return nil }

// TestTrafficSilenceLive: live, the real engine notices silence on the wall
// clock through the pipeline's ticks although no message arrives: d1 when it
// pauses (resolved when it returns), and every device once all stop, in
// device order.
func TestTrafficSilenceLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, err := detectors.New(detectors.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		sink := &alertLog{}
		pl, err := pipeline.New(pipeline.Config{
			Workers: 2, Decoders: 2, Tick: time.Second,
			NewProcessor: func(int) pipeline.Processor { return set.NewEngine() },
			Fleet:        set.FleetFunc(),
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- pl.Run(ctx, &liveFleet{start: start}, sink) }()
		time.Sleep(40 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		type rec struct {
			dev   string
			state pipeline.AlertState
			at    time.Duration
		}
		var got []rec
		for _, a := range sink.alerts {
			if a.Kind != "traffic.silence" {
				t.Errorf("unexpected %s on %s: %s", a.Kind, a.Device, a.Message)
				continue
			}
			got = append(got, rec{a.Device, a.State, time.Unix(0, a.Time).Sub(start)})
		}
		// d1 was last heard at 19.7 s; its threshold is the 2 s floor (its
		// interval is 300 ms); the others keep the stream clock moving.
		want := []struct {
			dev      string
			state    pipeline.AlertState
			from, to time.Duration
		}{
			{"d1", pipeline.Firing, 21700 * time.Millisecond, 21900 * time.Millisecond},
			{"d1", pipeline.Resolved, 25000 * time.Millisecond, 25200 * time.Millisecond},
			// All quiet after 30 s: ticks every second of wall clock find them.
			{"d0", pipeline.Firing, 32 * time.Second, 33100 * time.Millisecond},
			{"d1", pipeline.Firing, 32 * time.Second, 33100 * time.Millisecond},
			{"d2", pipeline.Firing, 32 * time.Second, 33100 * time.Millisecond},
		}
		if len(got) != len(want) {
			t.Fatalf("got %+v; want %d silence transitions", got, len(want))
		}
		for i, w := range want {
			if g := got[i]; g.dev != w.dev || g.state != w.state || g.at < w.from || g.at > w.to {
				t.Errorf("transition %d: got %s %v at %v; want %s %v between %v and %v", i, g.dev, g.state, g.at, w.dev, w.state, w.from, w.to)
			}
		}
	})
}
