package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Noise and timing.
const (
	relSigmaP   = 0.015 // σp / p0
	sigmaT      = 0.25  // °C
	relSigmaV   = 0.04  // σv / v0
	noiseClip   = 5     // noise is truncated at ±noiseClip σ
	maxJitter   = 20    // ms
	devsPerLine = 8
)

// Injection timing, in milliseconds.
const (
	guard       = 2000   // margin between an injection and its cycle's bounds
	faultLen    = 10000  // status fault
	driftReturn = 60000  // return of a drift to normal
	wearRamp    = 600000 // mechanical wear: rise to 2.5×v0
)

type eventKind uint8

const (
	evNone eventKind = iota
	evOverpressure
	evThermal
	evVibration
	evFault
	evCooling
	evWear
	evRelation
)

var eventNames = [...]struct{ kind, detail string }{
	evOverpressure: {KindOverpressure, DetailSpike},
	evThermal:      {KindThermal, DetailFluctuation},
	evVibration:    {KindVibration, DetailJump},
	evFault:        {KindStatus, DetailFault},
	evCooling:      {KindThermal, DetailDrift},
	evWear:         {KindVibration, DetailWear},
	evRelation:     {KindRelation, ""}, // detail: the signal that broke away
}

// event is an injection, planned or in progress. It changes the samples
// strictly between start and end (ms after Start).
type event struct {
	kind       eventKind
	start, end int64
	rise, hold int64   // trapezoid shapes: rise and plateau; the fall takes the rest
	amp        float64 // size of the change; relation break: bound of m
	omega      float64 // thermal fluctuation: angular frequency, rad/ms
	sigma      float64 // vibration jump: extra noise

	sig     int8    // relation break: the signal that breaks away
	started bool    // relation break: m is set
	m       float64 // relation break: the broken signal's own load
	mAt     int64   // and its time

	seen        bool  // a sample was changed
	first, last int64 // first and last changed sample
}

// wave is the slow process variation of a signal.
type wave struct{ amp, omega, phase float64 }

func (w *wave) at(t float64) float64 { return w.amp * math.Sin(w.omega*t+w.phase) }

// device is the state of one simulated device. Times are milliseconds after
// Config.Start.
type device struct {
	name, topic string
	noise       *rand.Rand // operating point, timing, baseline noise
	events      *rand.Rand // everything injected, so injections leave the baseline alone

	p0, t0, v0 float64
	sp, st, sv float64
	wave       [3]wave

	phase int64 // nominal time of sample 0
	k     int64 // index of the next sample
	next  int64 // time of the next sample

	anomalous bool
	turn      int64 // offset of the kind rotation
	cycle     int64 // next cycle to plan
	planAt    int64 // start of that cycle
	ev        event

	driftKind   eventKind // evNone, evCooling or evWear
	driftCycle  int64     // first cycle of the drift
	driftCycles int64     // cycles it takes
	driftRamp   int64     // cooling: ramp length
	driftAmp    float64   // cooling: rise in °C
	driftPos    float64   // position within its cycles, 0..1
	hasFault    bool      // the device reports a status fault
	faultCycle  int64     // its cycle
	faultPos    float64   // its position within the cycle, 0..1

	shaped bool  // cycles or a load (Config.Cycles, Config.Relation)
	sh     shape // their state

	// Extra streams of traffic scenarios (phantom != phNone) publish at
	// base + k·interval/den, with their timestamps off by skew, until until.
	phantom    uint8
	den        int64
	base, skew int64
	until      int64
}

// initDevice draws device i's fixed properties. The draws do not depend on the
// rest of the fleet, so a device's series survives changes to the fleet.
func (g *Generator) initDevice(i int, seed uint64, width int) {
	d := &g.devs[i]
	d.name = fmt.Sprintf("sensor-node-%0*d", width, i+1)
	d.topic = "plant/" + lineName(i/devsPerLine) + "/" + d.name + "/telemetry"
	d.noise = newRand(seed, uint64(i), 0)
	d.events = newRand(seed, uint64(i), 1)

	r := d.noise
	d.p0 = uniform(r, 3, 6)
	d.t0 = uniform(r, 45, 75)
	d.v0 = uniform(r, 1, 2.8)
	d.sp, d.st, d.sv = relSigmaP*d.p0, sigmaT, relSigmaV*d.v0
	for j, sigma := range [3]float64{d.sp, d.st, d.sv} {
		period := uniform(r, 10, 20) * float64(time.Minute/time.Millisecond)
		d.wave[j] = wave{amp: sigma, omega: 2 * math.Pi / period, phase: uniform(r, 0, 2*math.Pi)}
	}
	d.phase = g.jitter + r.Int64N(g.interval-2*g.jitter)
	d.next = d.phase + g.drawJitter(d)

	// The same draws for every device, used or not.
	r = d.events
	d.turn = int64(i % 3)
	d.planAt = g.leadIn
	d.driftCycle = 1 + r.Int64N(2)
	d.driftRamp = int64(uniform(r, 8, 12) * float64(time.Minute/time.Millisecond))
	d.driftAmp = uniform(r, 8, 12)
	d.driftPos = r.Float64()
	d.faultCycle = r.Int64N(5)
	d.faultPos = r.Float64()
}

// setDrift makes d drift once, with kind evCooling or evWear.
func (d *device) setDrift(kind eventKind, cycle int64) {
	d.driftKind = kind
	if kind == evWear {
		d.driftRamp = wearRamp
	}
	d.driftCycles = (d.driftRamp + driftReturn + 2*guard + cycle - 1) / cycle
}

// setFault gives d its status fault, after its drift if they would collide.
func (d *device) setFault() {
	if d.driftKind != evNone && d.faultCycle >= d.driftCycle && d.faultCycle < d.driftCycle+d.driftCycles {
		d.faultCycle = d.driftCycle + d.driftCycles
	}
	d.hasFault = true
}

// drawJitter returns the timing jitter of one sample.
func (g *Generator) drawJitter(d *device) int64 {
	if g.jitter == 0 {
		return 0
	}
	return d.noise.Int64N(2*g.jitter+1) - g.jitter
}

// advance schedules d's next sample.
func (g *Generator) advance(d *device) {
	d.k++
	switch d.phantom {
	case phNone:
		d.next = d.phase + d.k*g.interval + g.drawJitter(d)
	case phFlood:
		d.next = d.base + d.k*g.interval/d.den // no jitter: the burst stays in order
	default:
		d.next = d.base + d.k*g.interval/d.den + g.drawJitter(d)
	}
}

// sample returns d's values at time t.
func (g *Generator) sample(d *device, t int64) (p, tc, v float64, status int) {
	ft := float64(t)
	p = d.p0 + d.wave[0].at(ft) + d.sp*clippedNorm(d.noise)
	tc = d.t0 + d.wave[1].at(ft) + d.st*clippedNorm(d.noise)
	v = d.v0 + d.wave[2].at(ft) + d.sv*clippedNorm(d.noise)
	if d.shaped {
		x := [numSignals]float64{p, tc, v}
		g.applyShape(d, t, &x)
		p, tc, v = x[0], x[1], x[2]
	}
	if d.anomalous {
		g.inject(d, t, &p, &tc, &v, &status)
	}
	return p, tc, max(v, 0), status
}

// inject applies d's injection at time t, planning cycles as time reaches them.
func (g *Generator) inject(d *device, t int64, p, tc, v *float64, status *int) {
	for {
		if d.ev.kind != evNone && t >= d.ev.end {
			g.closeEvent(d)
		}
		if d.ev.kind == evNone && t >= d.planAt {
			g.plan(d)
			continue
		}
		break
	}
	e := &d.ev
	if e.kind == evNone || t <= e.start {
		return
	}
	if !e.seen {
		e.seen, e.first = true, t
	}
	e.last = t
	u := t - e.start
	switch e.kind {
	case evOverpressure:
		*p += e.amp * e.trapezoid(u)
	case evThermal:
		*tc += e.amp * math.Sin(e.omega*float64(u))
	case evVibration:
		*v += e.amp + e.sigma*clippedNorm(d.events)
	case evFault:
		*status = 2
	case evCooling:
		*tc += e.amp * e.trapezoid(u)
	case evWear:
		*v += e.amp * e.trapezoid(u)
	case evRelation:
		x := [numSignals]float64{*p, *tc, *v}
		g.relationBreak(d, e, t, u, &x)
		*p, *tc, *v = x[0], x[1], x[2]
	}
}

// trapezoid is 0 at the start, rises linearly to 1, holds, and falls linearly
// to 0 at the end; u is the time since the start.
func (e *event) trapezoid(u int64) float64 {
	switch {
	case u < e.rise:
		return float64(u) / float64(e.rise)
	case u < e.rise+e.hold:
		return 1
	}
	fall := e.end - e.start - e.rise - e.hold
	return float64(e.end-e.start-u) / float64(fall)
}

// plan sets d's injection for its next cycle, if it has one, and moves on to
// the cycle after.
func (g *Generator) plan(d *device) {
	c := d.cycle
	cs := g.leadIn + c*g.cycle
	switch {
	case d.driftKind != evNone && c == d.driftCycle:
		length := d.driftRamp + driftReturn
		s := cs + guard + int64(d.driftPos*float64(d.driftCycles*g.cycle-2*guard-length))
		amp := d.driftAmp
		if d.driftKind == evWear {
			amp = 1.5 * d.v0
		}
		d.ev = event{kind: d.driftKind, start: s, end: s + length, rise: d.driftRamp, amp: amp}
		d.cycle += d.driftCycles
	case d.hasFault && c == d.faultCycle:
		s := cs + guard + int64(d.faultPos*float64(g.cycle-2*guard-faultLen))
		d.ev = event{kind: evFault, start: s, end: s + faultLen}
		d.cycle++
	default:
		// Always the same draws, so InjectProb changes only which cycles inject.
		r := d.events
		inject, pos := r.Float64(), r.Float64()
		u1, u2, u3, u4 := r.Float64(), r.Float64(), r.Float64(), r.Float64()
		d.cycle++
		if inject >= g.prob {
			break
		}
		var e event
		switch (c + d.turn) % g.kinds {
		case 0:
			e.kind = evOverpressure
			e.rise = ms(1000 + 1000*u1)
			e.hold = ms(4000 + 4000*u2)
			fall := ms(1000 + 1000*u3)
			e.end = e.rise + e.hold + fall
			e.amp = d.p0 * (0.35 + 0.25*u4)
		case 1:
			e.kind = evThermal
			e.amp = 2.5 + 1.5*u1
			e.omega = 2 * math.Pi / (4000 + 4000*u2)
			e.end = ms(20000 + 10000*u3)
		case 2:
			e.kind = evVibration
			e.amp = d.v0 * (1.2 + 0.8*u1)
			e.end = ms(15000 + 10000*u2)
			e.sigma = 2 * d.sv
		case 3:
			d.planBreak(&e, u1, u2, u3, u4)
		}
		e.start = cs + guard + int64(pos*float64(g.cycle-2*guard-e.end))
		e.end += e.start
		d.ev = e
	}
	d.planAt = g.leadIn + d.cycle*g.cycle
}

// clippedNorm returns a standard normal variate truncated at ±noiseClip.
func clippedNorm(r *rand.Rand) float64 {
	for {
		if x := r.NormFloat64(); math.Abs(x) <= noiseClip {
			return x
		}
	}
}

func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

func ms(x float64) int64 { return int64(math.Round(x)) }

// newRand returns the random stream number stream of device i.
func newRand(seed, i, stream uint64) *rand.Rand {
	k := splitmix(seed ^ splitmix(i<<1|stream))
	return rand.New(rand.NewPCG(k, splitmix(k)))
}

// splitmix is the SplitMix64 finaliser.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// lineName names production line n: line-a … line-z, line-aa, line-ab, …
func lineName(n int) string {
	var b []byte
	for n++; n > 0; n = (n - 1) / 26 {
		b = append(b, byte('a'+(n-1)%26))
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return "line-" + string(b)
}
