package sim

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Message is one simulated telemetry message. Payload is owned by the
// Generator and valid only until the next call to Next.
type Message struct {
	Time    time.Time // event time, UTC, millisecond resolution
	Device  string    // node_id
	Topic   string    // plant/<line>/<node_id>/telemetry
	Payload []byte
}

// DeviceInfo describes one simulated device.
type DeviceInfo struct {
	Name, Topic string
	// Anomalous reports whether the device gets injected anomalies.
	Anomalous bool
	// P0, T0 and V0 are the operating point, SigmaP, SigmaT and SigmaV the
	// standard deviations of the noise around it (before truncation at 5σ).
	P0, T0, V0             float64
	SigmaP, SigmaT, SigmaV float64
	// Cycles are the device's cycles, indexed by Pressure, Temperature and
	// Vibration (zero when off), before any rhythm change.
	Cycles [numSignals]SignalCycle
	// Load is each signal's response to one unit of the load, in the
	// signal's units (Config.Relation's couplings times σ).
	Load [numSignals]float64
}

// SignalCycle is the cycle one device drew for one signal.
type SignalCycle struct {
	Period    time.Duration // rounded to the millisecond
	Amplitude float64       // in the signal's units
	Phase     float64       // where in its cycle the signal is at Config.Start, 0 ≤ Phase < 1
}

// Generator produces the messages of a simulated fleet in timestamp order. It
// is not safe for concurrent use.
type Generator struct {
	start    int64 // Unix milliseconds of Config.Start; times below are relative to it
	end      int64 // first excluded time, math.MaxInt64 for an infinite stream
	interval int64
	jitter   int64
	cycle    int64
	leadIn   int64
	prob     float64
	kinds    int64 // kinds injected in turn: 3, or 4 with relation breaks

	devs []device
	heap []int32 // device indices, ordered by (next, index)
	done bool

	buf  []byte // payload of the last message
	day  int64  // day of the cached date, in days since the Unix epoch
	date []byte // "2006-01-02T" of day

	labels []Label // finished injections, not yet drained

	// Traffic scenarios (see traffic.go).
	trafficOn    bool
	scen         [numScenarios]scenario
	nextClose    int64    // the earliest end of a scenario not yet labelled
	replayBuf    [][]byte // the replay victim's payloads to re-send
	replayAt     []int64  // and their timestamps (ms after Start)
	replayNext   int
	recordReplay bool
}

// New returns a Generator for cfg, or the error of cfg.Validate.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		start:    cfg.Start.UnixMilli(),
		end:      math.MaxInt64,
		interval: cfg.Interval.Milliseconds(),
		cycle:    cfg.Cycle.Milliseconds(),
		leadIn:   cfg.LeadIn.Milliseconds(),
		prob:     cfg.InjectProb,
		kinds:    3,
		devs:     make([]device, cfg.Devices),
		buf:      make([]byte, 0, 256),
		day:      math.MinInt64,
		date:     make([]byte, 0, 16),
	}
	if cfg.Duration > 0 {
		g.end = cfg.Duration.Milliseconds()
	}
	g.jitter = min(maxJitter, g.interval/4)

	width := max(2, len(strconv.Itoa(cfg.Devices)))
	shaped := cfg.Cycles.Any() || cfg.Relation.On()
	for i := range g.devs {
		g.initDevice(i, cfg.Seed, width)
		if shaped {
			g.initShape(i, cfg)
		}
	}
	if cfg.Relation.Breaks {
		g.kinds = 4
	}
	if rh := cfg.Cycles.Rhythm; rh.On() {
		for j := range rh.Devices {
			g.devs[j*cfg.Devices/rh.Devices].setRhythm(rh, g.end)
		}
	}
	// Spread the anomalous devices evenly; give drifts and the fault to
	// devices a quarter, three quarters and half-way into that list.
	anomalous := make([]int, cfg.Anomalous)
	for j := range anomalous {
		anomalous[j] = (2*j + 1) * cfg.Devices / (2 * cfg.Anomalous)
		g.devs[anomalous[j]].anomalous = true
	}
	if n := len(anomalous); n > 0 {
		if cfg.Drifts {
			g.devs[anomalous[n/4]].setDrift(evCooling, g.cycle)
			if w := anomalous[3*n/4]; w != anomalous[n/4] {
				g.devs[w].setDrift(evWear, g.cycle)
			}
		}
		if cfg.Faults {
			g.devs[anomalous[n/2]].setFault()
		}
	}

	if cfg.Traffic.Any() {
		g.setupTraffic(cfg, width)
	}
	g.heap = make([]int32, len(g.devs))
	for i := range g.heap {
		g.heap[i] = int32(i)
	}
	for i := len(g.heap)/2 - 1; i >= 0; i-- {
		g.down(i)
	}
	return g, nil
}

// Device describes device i, 0 ≤ i < Config.Devices.
func (g *Generator) Device(i int) DeviceInfo {
	d := &g.devs[i]
	return DeviceInfo{
		Name: d.name, Topic: d.topic, Anomalous: d.anomalous,
		P0: d.p0, T0: d.t0, V0: d.v0,
		SigmaP: d.sp, SigmaT: d.st, SigmaV: d.sv,
		Cycles: d.sh.info(), Load: d.sh.k,
	}
}

// Next returns the next message of the fleet in timestamp order (ties in
// device order). It reports ok=false once the run's Duration has passed; with
// Duration 0 the stream never ends.
func (g *Generator) Next() (m Message, ok bool) {
	if g.done {
		return Message{}, false
	}
	for {
		i := g.heap[0]
		d := &g.devs[i]
		t := d.next
		if t >= g.end {
			g.finish()
			return Message{}, false
		}
		if d.phantom != phNone && t >= d.until {
			d.next = math.MaxInt64 // an extra stream that has ended
			g.down(0)
			continue
		}
		var (
			skip     bool
			replay   []byte
			replayAt int64
		)
		if g.trafficOn {
			skip, replay, replayAt = g.trafficNext(i, d, t)
		}
		// Draw the sample even when it is not sent, so the device's series
		// stays the same outside the scenario.
		p, tc, v, status := g.sample(d, t)
		g.advance(d)
		g.down(0)
		switch {
		case skip:
			continue
		case replay != nil:
			g.buf = append(g.buf[:0], replay...)
			return Message{Time: time.UnixMilli(g.start + replayAt).UTC(), Device: d.name, Topic: d.topic, Payload: g.buf}, true
		}
		m = g.message(d, t+d.skew, p, tc, v, status)
		if g.recordReplay {
			g.recordReplay = false
			g.replayBuf = append(g.replayBuf, append([]byte(nil), m.Payload...))
			g.replayAt = append(g.replayAt, t+d.skew)
		}
		return m, true
	}
}

// message formats d's message stamped t (ms after Start).
func (g *Generator) message(d *device, t int64, p, tc, v float64, status int) Message {
	at := g.start + t
	b := append(g.buf[:0], `{"timestamp":"`...)
	b = g.appendTime(b, at)
	b = append(b, `","node_id":"`...)
	b = append(b, d.name...)
	b = append(b, `","data":{"p":`...)
	b = appendCenti(b, p)
	b = append(b, `,"t":`...)
	b = appendCenti(b, tc)
	b = append(b, `,"v":`...)
	b = appendCenti(b, v)
	b = append(b, `},"status":`...)
	b = append(b, byte('0'+status), '}')
	g.buf = b
	return Message{Time: time.UnixMilli(at).UTC(), Device: d.name, Topic: d.topic, Payload: b}
}

// Labels returns the labels of the injections finished so far (and not taken
// by DrainLabels), sorted by start, then device. A label is recorded when its
// injection ends, or when the stream does; after Next has reported the end of
// the stream the list is complete.
func (g *Generator) Labels() []Label {
	labels := slices.Clone(g.labels)
	sortLabels(labels)
	return labels
}

// DrainLabels appends the labels finished so far to dst, sorted as by Labels,
// and forgets them. Long-running live streams use it to keep the Generator's
// memory bounded; Next does not allocate once the drained buffer has grown.
func (g *Generator) DrainLabels(dst []Label) []Label {
	n := len(dst)
	dst = append(dst, g.labels...)
	clear(g.labels)
	g.labels = g.labels[:0]
	sortLabels(dst[n:])
	return dst
}

// finish ends the stream, closing the labels of injections in progress.
func (g *Generator) finish() {
	g.done = true
	for i := range g.devs {
		g.closeEvent(&g.devs[i])
		g.closeRhythm(&g.devs[i])
	}
	for k := range g.scen {
		if s := &g.scen[k]; s.on && !s.closed {
			g.closeScenario(k)
		}
	}
}

// closeEvent records the label of d's current injection, if it touched a
// sample, and clears it.
func (g *Generator) closeEvent(d *device) {
	if l, ok := g.current(d); ok {
		g.labels = append(g.labels, l)
	}
	d.ev = event{}
}

// current returns the label of d's injection in progress, if it has touched
// a sample; End is its last changed sample so far.
func (g *Generator) current(d *device) (Label, bool) {
	e := &d.ev
	if e.kind == evNone || !e.seen {
		return Label{}, false
	}
	detail := eventNames[e.kind].detail
	if e.kind == evRelation {
		detail = signalNames[e.sig]
	}
	return Label{
		Device: d.name,
		Kind:   eventNames[e.kind].kind,
		Detail: detail,
		Start:  time.UnixMilli(g.start + e.first).UTC(),
		End:    time.UnixMilli(g.start + e.last).UTC(),
	}, true
}

// Active appends to dst the injections in progress that have changed at
// least one sample, with End the last changed sample so far. A live consumer
// stopping mid-stream uses it to tell alerts on an ongoing injection from
// false alarms.
func (g *Generator) Active(dst []Label) []Label {
	for i := range g.devs {
		if l, ok := g.current(&g.devs[i]); ok {
			dst = append(dst, l)
		}
	}
	return dst
}

// less orders the heap by next sample time, then device index.
func (g *Generator) less(a, b int32) bool {
	ta, tb := g.devs[a].next, g.devs[b].next
	return ta < tb || ta == tb && a < b
}

// down restores the heap order below position i.
func (g *Generator) down(i int) {
	h := g.heap
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && g.less(h[r], h[c]) {
			c = r
		}
		if !g.less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
