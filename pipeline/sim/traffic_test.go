package sim_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

func TestParseTraffic(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sim.Traffic
		err  bool
	}{
		{"", sim.Traffic{}, false},
		{"flood", sim.Traffic{Flood: true}, false},
		{"silence, replay", sim.Traffic{Silence: true, Replay: true}, false},
		{"spoof,rogue", sim.Traffic{Spoof: true, Rogue: true}, false},
		{"all", sim.Traffic{Flood: true, Silence: true, Replay: true, Spoof: true, Rogue: true}, false},
		{"flood,dos", sim.Traffic{}, true},
	} {
		got, err := sim.ParseTraffic(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseTraffic(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			if back, _ := sim.ParseTraffic(got.String()); back != got {
				t.Errorf("ParseTraffic(%q.String() = %q) = %+v; want it back", tc.in, got.String(), back)
			}
		}
	}
}

// collect runs cfg to the end, returning every message (payload copied).
func collect(t *testing.T, cfg sim.Config) ([]sim.Message, []sim.Label) {
	t.Helper()
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ms []sim.Message
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		m.Payload = bytes.Clone(m.Payload)
		ms = append(ms, m)
	}
	return ms, g.Labels()
}

// TestTrafficScenarios: each scenario does what its label says, and nothing
// else changes: every other message is the one the run without traffic
// scenarios has.
func TestTrafficScenarios(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Duration = 16 * time.Minute
	clean, cleanLabels := collect(t, cfg)
	cfg.Traffic = sim.Traffic{Flood: true, Silence: true, Replay: true, Spoof: true, Rogue: true}
	ms, labels := collect(t, cfg)

	byDetail := map[string]sim.Label{}
	var value []sim.Label
	for _, l := range labels {
		if l.Kind == sim.KindTraffic {
			byDetail[l.Detail] = l
		} else {
			value = append(value, l)
		}
	}
	if len(byDetail) != 5 {
		t.Fatalf("traffic labels %+v; want one per scenario", byDetail)
	}
	if len(value) != len(cleanLabels) {
		t.Errorf("%d value labels; want the %d of the run without traffic", len(value), len(cleanLabels))
	}
	lead := cfg.Start.Add(cfg.LeadIn)
	devs := map[string]bool{}
	for _, l := range byDetail {
		if l.Start.Before(lead) || devs[l.Device] && l.Detail != sim.DetailRogue {
			t.Errorf("label %+v: want it after the lead-in, on a device of its own", l)
		}
		devs[l.Device] = true
	}
	in := func(detail string, m sim.Message, at time.Time) bool {
		l := byDetail[detail]
		return m.Device == l.Device && !at.Before(l.Start) && !at.After(l.End)
	}

	// Everything outside the scenarios is the clean run's, in order.
	var rest []string
	counts := map[string]int{}
	spoofed, replayed := 0, 0
	prev := map[string]time.Time{}
	for _, m := range ms {
		switch {
		case strings.HasPrefix(m.Device, "sensor-node-13"):
			if !strings.Contains(m.Topic, "/sensor-node-13/") || m.Time.Before(byDetail[sim.DetailRogue].Start) {
				t.Errorf("rogue message %s on %s before its label", m.Payload, m.Topic)
			}
			continue
		case m.Topic != "" && !strings.Contains(m.Topic, "line-"+lineOf(m.Device)):
			// The second stream: another line's topic, its clock 3.7 s behind.
			if !in(sim.DetailIdentity, m, m.Time.Add(3700*time.Millisecond)) {
				t.Errorf("spoofed message %s on %s outside its label", m.Payload, m.Topic)
			}
			spoofed++
			continue
		case m.Time.Before(prev[m.Device]):
			// Replayed: a byte-identical copy of a message a minute older.
			if !bytes.Contains(joined(clean), m.Payload) || m.Device != byDetail[sim.DetailReplay].Device {
				t.Errorf("message %s goes back in time but is not a replay", m.Payload)
			}
			replayed++
			continue
		}
		if m.Time.After(prev[m.Device]) {
			prev[m.Device] = m.Time
		}
		counts[m.Device]++
		rest = append(rest, string(m.Payload))
	}
	var want []string
	floodDev := byDetail[sim.DetailFlood].Device
	silent := 0
	for _, m := range clean {
		switch {
		case in(sim.DetailSilence, m, m.Time):
			silent++
			continue
		case in(sim.DetailReplay, m, m.Time):
			continue
		}
		want = append(want, string(m.Payload))
	}
	if silent < 55 || silent > 61 {
		t.Errorf("silence: %d messages not sent; want about 60", silent)
	}
	if replayed < 18 || replayed > 21 || spoofed < 55 || spoofed > 61 {
		t.Errorf("%d replayed and %d spoofed messages; want about 20 and 60", replayed, spoofed)
	}
	// The flood's extra messages are the only additions.
	extra := counts[floodDev] - (len(clean) / cfg.Devices)
	if extra < 360 || extra > 400 {
		t.Errorf("flood: %d extra messages from %s; want about 19 per second for 20 s", extra, floodDev)
	}
	got := rest[:0:0]
	for _, p := range rest {
		if !strings.Contains(p, `"`+floodDev+`"`) {
			got = append(got, p)
		}
	}
	var wantNoFlood []string
	for _, p := range want {
		if !strings.Contains(p, `"`+floodDev+`"`) {
			wantNoFlood = append(wantNoFlood, p)
		}
	}
	if strings.Join(got, "\n") != strings.Join(wantNoFlood, "\n") {
		t.Error("outside the scenarios the messages differ from the run without traffic scenarios")
	}
}

func lineOf(dev string) string {
	var n int
	for _, c := range strings.TrimPrefix(dev, "sensor-node-") {
		n = 10*n + int(c-'0')
	}
	return string(rune('a' + (n-1)/8))
}

func joined(ms []sim.Message) []byte {
	var b bytes.Buffer
	for _, m := range ms {
		b.Write(m.Payload)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
