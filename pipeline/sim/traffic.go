package sim

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Traffic selects the traffic scenarios to inject. Each is off by default,
// happens once, after the lead-in, on its own device, and is labelled with
// kind "traffic" and, as detail, the traffic alert reason that should catch
// it. They change how devices talk, not what they measure.
type Traffic struct {
	// Flood: a device publishes at 20× its rate for 20 s (detail flood).
	Flood bool
	// Silence: a device stops publishing for 60 s (detail silence).
	Silence bool
	// Replay: a device re-sends, at its normal pace, the 20 s of its own
	// messages it sent a minute earlier, byte for byte, instead of new ones
	// (detail replay).
	Replay bool
	// Spoof: for 60 s a second stream publishes under an existing node_id,
	// half an interval out of phase, with a clock 3.7 s behind, on the topic
	// the device would have on the next production line (detail identity).
	Spoof bool
	// Rogue: a node_id never seen before (the next device number) appears
	// and publishes until the end (detail rogue; the label covers its first
	// minute).
	Rogue bool
}

// Any reports whether any traffic scenario is on.
func (t Traffic) Any() bool { return t.Flood || t.Silence || t.Replay || t.Spoof || t.Rogue }

// String lists the scenarios that are on, as ParseTraffic reads them.
func (t Traffic) String() string {
	var on []string
	for i, b := range [...]bool{t.Flood, t.Silence, t.Replay, t.Spoof, t.Rogue} {
		if b {
			on = append(on, trafficNames[i])
		}
	}
	return strings.Join(on, ",")
}

var trafficNames = [...]string{"flood", "silence", "replay", "spoof", "rogue"}

// ParseTraffic reads a comma-separated list of scenarios: flood, silence,
// replay, spoof, rogue, or "all" ("" is none).
func ParseTraffic(s string) (Traffic, error) {
	var t Traffic
	if s == "" {
		return t, nil
	}
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "flood":
			t.Flood = true
		case "silence":
			t.Silence = true
		case "replay":
			t.Replay = true
		case "spoof":
			t.Spoof = true
		case "rogue":
			t.Rogue = true
		case "all":
			t = Traffic{true, true, true, true, true}
		default:
			return Traffic{}, fmt.Errorf("sim: unknown traffic scenario %q (want flood, silence, replay, spoof, rogue or all)", name)
		}
	}
	return t, nil
}

// KindTraffic labels the traffic scenarios; their detail is the reason of
// the traffic alert that should catch them.
const KindTraffic = "traffic"

// Traffic label details.
const (
	DetailFlood    = "flood"
	DetailSilence  = "silence"
	DetailReplay   = "replay"
	DetailIdentity = "identity"
	DetailRogue    = "rogue"
)

// Traffic scenario timing, in milliseconds after the lead-in (starts) or
// their start (lengths).
const (
	floodAt, floodLen     = 30_000, 20_000
	silenceAt, silenceLen = 60_000, 60_000
	replayAt, replayLen   = 150_000, 20_000
	replayBack            = 60_000 // how old the replayed messages are
	spoofAt, spoofLen     = 200_000, 60_000
	spoofSkew             = -3_700 // the second stream's clock
	rogueAt, rogueLabel   = 270_000, 60_000
	floodFactor           = 20
)

// Scenario indices, in label order of detail.
const (
	scFlood = iota
	scSilence
	scReplay
	scSpoof
	scRogue
	numScenarios
)

var scenarioDetails = [numScenarios]string{DetailFlood, DetailSilence, DetailReplay, DetailIdentity, DetailRogue}

// scenario is one traffic scenario of a run: its window of stream time (ms
// after Start), the device whose name it concerns, and what it did.
type scenario struct {
	on          bool
	from, until int64
	dev         int32 // the device it concerns (victim, or the rogue)
	seen        bool
	first, last int64
	closed      bool
}

func (s *scenario) mark(t int64) {
	if !s.seen {
		s.seen, s.first = true, t
	}
	s.last = t
}

// phantom kinds: extra streams that are not devices of the fleet.
const (
	phNone uint8 = iota
	phFlood
	phSpoof
	phRogue
)

// setupTraffic plans the scenarios of cfg and adds their extra streams.
func (g *Generator) setupTraffic(cfg Config, width int) {
	t := cfg.Traffic
	g.trafficOn = true
	g.nextClose = math.MaxInt64
	// Victims: devices without value anomalies when there are enough.
	var clean []int32
	for i := range g.devs {
		if !g.devs[i].anomalous {
			clean = append(clean, int32(i))
		}
	}
	n := len(g.devs)
	victim := func(k int) int32 {
		if len(clean) >= 4 {
			return clean[(2*k+1)*len(clean)/8]
		}
		return int32((2*k + 1) * n / 8)
	}
	L := g.leadIn
	on := [numScenarios]bool{t.Flood, t.Silence, t.Replay, t.Spoof, t.Rogue}
	at := [numScenarios][2]int64{
		{floodAt, floodLen}, {silenceAt, silenceLen}, {replayAt, replayLen}, {spoofAt, spoofLen}, {rogueAt, rogueLabel},
	}
	for k := range g.scen {
		if !on[k] {
			continue
		}
		s := &g.scen[k]
		*s = scenario{on: true, from: L + at[k][0], until: L + at[k][0] + at[k][1], dev: -1}
		if k != scRogue {
			s.dev = victim(k)
		}
		g.nextClose = min(g.nextClose, s.until)
	}
	if t.Replay {
		g.replayBuf = make([][]byte, 0, replayLen/g.interval+2)
	}
	// Extra streams, after the fleet, each with its own random streams.
	add := func(kind uint8, victim int32, den int64) int32 {
		i := int32(len(g.devs))
		g.devs = append(g.devs, device{})
		g.initDevice(int(i), cfg.Seed, width)
		d := &g.devs[i]
		if cfg.Cycles.Any() || cfg.Relation.On() {
			g.initShape(int(i), cfg) // its own load
		}
		d.phantom, d.den = kind, den
		if victim >= 0 {
			v := &g.devs[victim]
			d.name, d.topic = v.name, v.topic
			d.p0, d.t0, d.v0, d.sp, d.st, d.sv, d.wave = v.p0, v.t0, v.v0, v.sp, v.st, v.sv, v.wave
			d.sh.cyc, d.sh.daily, d.sh.k = v.sh.cyc, v.sh.daily, v.sh.k
		}
		return i
	}
	// The rogue first: it takes the next device number.
	if t.Rogue {
		s := &g.scen[scRogue]
		i := add(phRogue, -1, 1)
		s.dev = i
		d := &g.devs[i]
		d.base, d.until = d.phase, math.MaxInt64
		d.k = (s.from-d.base+g.interval-1)/g.interval - 1
		g.advance(d)
	}
	if t.Flood {
		s := &g.scen[scFlood]
		d := &g.devs[add(phFlood, s.dev, floodFactor-1)]
		d.base, d.k, d.until = s.from, 0, s.until
		g.advance(d)
	}
	if t.Spoof {
		s := &g.scen[scSpoof]
		i := add(phSpoof, s.dev, 1)
		d := &g.devs[i]
		d.topic = "plant/" + lineName(int(s.dev)/devsPerLine+1) + "/" + d.name + "/telemetry"
		d.skew, d.until = spoofSkew, s.until
		d.base = g.devs[s.dev].phase + g.interval/2
		d.k = (s.from-d.base+g.interval-1)/g.interval - 1
		g.advance(d)
	}
}

// trafficNext handles the traffic scenarios for device i's message at t:
// it returns skip when the message is not sent (a silence), and otherwise a
// payload to send instead (a replay) and its timestamp, if any.
func (g *Generator) trafficNext(i int32, d *device, t int64) (skip bool, replay []byte, at int64) {
	if t >= g.nextClose {
		g.closeScenarios(t)
	}
	switch d.phantom {
	case phFlood:
		g.scen[scFlood].mark(t)
	case phSpoof:
		g.scen[scSpoof].mark(t)
	case phRogue:
		if s := &g.scen[scRogue]; t < s.until {
			s.mark(t)
		}
	case phNone:
		if s := &g.scen[scSilence]; s.on && i == s.dev && t >= s.from && t < s.until {
			s.mark(t)
			return true, nil, 0
		}
		if s := &g.scen[scReplay]; s.on && i == s.dev {
			if t >= s.from-replayBack && t < s.until-replayBack {
				g.recordReplay = true
			}
			if t >= s.from && t < s.until && g.replayNext < len(g.replayBuf) {
				s.mark(t)
				b := g.replayBuf[g.replayNext]
				g.replayNext++
				return false, b, g.replayAt[g.replayNext-1]
			}
		}
	}
	return false, nil, 0
}

// closeScenarios records the labels of the scenarios that ended by t.
func (g *Generator) closeScenarios(t int64) {
	g.nextClose = math.MaxInt64
	for k := range g.scen {
		s := &g.scen[k]
		if !s.on || s.closed {
			continue
		}
		if t < s.until {
			g.nextClose = min(g.nextClose, s.until)
			continue
		}
		g.closeScenario(k)
	}
}

func (g *Generator) closeScenario(k int) {
	s := &g.scen[k]
	s.closed = true
	if !s.seen {
		return
	}
	g.labels = append(g.labels, Label{
		Device: g.devs[s.dev].name,
		Kind:   KindTraffic,
		Detail: scenarioDetails[k],
		Start:  time.UnixMilli(g.start + s.first).UTC(),
		End:    time.UnixMilli(g.start + s.last).UTC(),
	})
}
