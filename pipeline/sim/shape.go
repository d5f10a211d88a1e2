package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Signal indices of per-signal arrays (DeviceInfo.Cycles, DeviceInfo.Load):
// pressure, temperature, vibration.
const (
	Pressure = iota
	Temperature
	Vibration
	numSignals
)

var signalNames = [numSignals]string{"pressure", "temperature", "vibration"}

// Cycle is the normal periodic variation of one signal: a sinusoid whose
// period and amplitude each device draws from a range, and whose phase is
// random per device (by seed) unless fixed. The zero Cycle is off.
type Cycle struct {
	// Period and MaxPeriod bound the period each device draws uniformly;
	// MaxPeriod 0 means Period exactly. Period 0 turns the cycle off.
	Period, MaxPeriod time.Duration
	// Amp and MaxAmp bound the amplitude (half the peak-to-peak swing) each
	// device draws uniformly, in units of the signal's noise σ, or of the
	// signal (bar, °C, mm/s) when Absolute; MaxAmp 0 means Amp exactly.
	Amp, MaxAmp float64
	Absolute    bool
	// Phase, with FixedPhase, is where in its cycle every device is at
	// Config.Start, as a fraction of the period (0 ≤ Phase < 1; 0 is the
	// rising zero crossing). Without FixedPhase each device draws its own.
	Phase      float64
	FixedPhase bool
}

// On reports whether the cycle is configured.
func (c Cycle) On() bool { return c.Period != 0 }

// String formats c as ParseCycle reads it ("" when off).
func (c Cycle) String() string {
	if !c.On() {
		return ""
	}
	var b strings.Builder
	b.WriteString(fmtDuration(c.Period))
	if c.MaxPeriod != 0 && c.MaxPeriod != c.Period {
		b.WriteString("-" + fmtDuration(c.MaxPeriod))
	}
	b.WriteString(":" + strconv.FormatFloat(c.Amp, 'g', -1, 64))
	if c.MaxAmp != 0 && c.MaxAmp != c.Amp {
		b.WriteString("-" + strconv.FormatFloat(c.MaxAmp, 'g', -1, 64))
	}
	if c.Absolute {
		b.WriteString("abs")
	}
	if c.FixedPhase {
		b.WriteString("@" + strconv.FormatFloat(c.Phase, 'g', -1, 64))
	}
	return b.String()
}

// fmtDuration prints d without the trailing zero units of time.Duration's
// String ("20m", not "20m0s").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseCycle reads a cycle as PERIOD[-MAXPERIOD]:AMP[-MAXAMP][abs][@PHASE]:
// "20m-40m:3-4" is a period of 20 to 40 minutes and an amplitude of 3 to 4σ
// per device, at a random phase; "24h:1.5abs@0.25" a 24-hour cycle of 1.5
// units, a quarter period in at the start. "" and "off" are no cycle.
func ParseCycle(s string) (Cycle, error) {
	var c Cycle
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return c, nil
	}
	bad := func(why string) (Cycle, error) {
		return Cycle{}, fmt.Errorf("sim: cycle %q: %s (want PERIOD[-MAXPERIOD]:AMP[-MAXAMP][abs][@PHASE], e.g. 20m-40m:3-4)", s, why)
	}
	periods, rest, ok := strings.Cut(s, ":")
	if !ok {
		return bad("no amplitude")
	}
	lo, hi, ranged := strings.Cut(periods, "-")
	var err error
	if c.Period, err = time.ParseDuration(lo); err != nil {
		return bad("period: " + err.Error())
	}
	if ranged {
		if c.MaxPeriod, err = time.ParseDuration(hi); err != nil {
			return bad("maximum period: " + err.Error())
		}
	}
	if amp, phase, ok := strings.Cut(rest, "@"); ok {
		c.FixedPhase = true
		if c.Phase, err = strconv.ParseFloat(phase, 64); err != nil {
			return bad("phase: " + err.Error())
		}
		rest = amp
	}
	if amp, ok := strings.CutSuffix(rest, "abs"); ok {
		c.Absolute = true
		rest = amp
	}
	lo, hi, ranged = strings.Cut(rest, "-")
	if c.Amp, err = strconv.ParseFloat(lo, 64); err != nil {
		return bad("amplitude: " + err.Error())
	}
	if ranged {
		if c.MaxAmp, err = strconv.ParseFloat(hi, 64); err != nil {
			return bad("maximum amplitude: " + err.Error())
		}
	}
	if err := c.validate("cycle"); err != nil {
		return Cycle{}, err
	}
	return c, nil
}

// Cycle limits.
const (
	MinCyclePeriod = 10 * time.Second
	MaxCyclePeriod = 7 * 24 * time.Hour
	maxAmp         = 1000 // σ, or units
)

func (c Cycle) validate(field string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("sim: "+field+"."+format, args...))
	}
	if c.Period == 0 {
		if c != (Cycle{}) {
			bad("Period must be set when the cycle has other fields (%+v)", c)
		}
		return errors.Join(errs...)
	}
	if c.Period < MinCyclePeriod || c.Period > MaxCyclePeriod {
		bad("Period must be between %v and %v, got %v", MinCyclePeriod, MaxCyclePeriod, c.Period)
	}
	if c.MaxPeriod != 0 && (c.MaxPeriod < c.Period || c.MaxPeriod > MaxCyclePeriod) {
		bad("MaxPeriod must be 0 or between Period (%v) and %v, got %v", c.Period, MaxCyclePeriod, c.MaxPeriod)
	}
	if !(c.Amp > 0 && c.Amp <= maxAmp) {
		bad("Amp must be above 0 and at most %d, got %v", maxAmp, c.Amp)
	}
	if c.MaxAmp != 0 && !(c.MaxAmp >= c.Amp && c.MaxAmp <= maxAmp) {
		bad("MaxAmp must be 0 or between Amp (%v) and %d, got %v", c.Amp, maxAmp, c.MaxAmp)
	}
	if !(c.Phase >= 0 && c.Phase < 1) {
		bad("Phase must be a fraction of the period, 0 ≤ Phase < 1, got %v", c.Phase)
	}
	return errors.Join(errs...)
}

// Cycles is the normal periodic behaviour of the signals, all off by default.
type Cycles struct {
	Pressure, Temperature, Vibration Cycle
	// Daily adds a 24-hour load cycle to every signal, of this amplitude in
	// units of the signal's noise σ, peaking at 14:00 UTC on every device (0 is
	// off).
	Daily float64
	// Rhythm makes some devices change the period of their cycles.
	Rhythm Rhythm
}

// Rhythm is a change of period: from At after Config.Start, the cycles of
// Devices devices (spread over the fleet) change their period by Factor,
// gradually over Ramp (0: at once), with the phase continuous. Each such
// device gets a label of kind "rhythm", detail "period", from At to At +
// Ramp + 8 × its longest cycle period (old or new), or the end of the run:
// the time a detector needs to see the new rhythm (the signal.rhythm alert).
type Rhythm struct {
	At      time.Duration
	Factor  float64 // new period / old period
	Ramp    time.Duration
	Devices int
}

// On reports whether a rhythm change is configured.
func (r Rhythm) On() bool { return r.At != 0 }

// Any reports whether any cycle is on.
func (c Cycles) Any() bool {
	return c.Pressure.On() || c.Temperature.On() || c.Vibration.On() || c.Daily != 0
}

func (c Cycles) signal(i int) Cycle {
	return [numSignals]Cycle{c.Pressure, c.Temperature, c.Vibration}[i]
}

func (c Cycles) validate(devices int) error {
	errs := []error{
		c.Pressure.validate("Cycles.Pressure"),
		c.Temperature.validate("Cycles.Temperature"),
		c.Vibration.validate("Cycles.Vibration"),
	}
	if !(c.Daily >= 0 && c.Daily <= maxAmp) {
		errs = append(errs, fmt.Errorf("sim: Cycles.Daily must be between 0 and %d (σ), got %v", maxAmp, c.Daily))
	}
	if r := c.Rhythm; r != (Rhythm{}) {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("sim: Cycles.Rhythm."+format, args...))
		}
		if r.At <= 0 {
			bad("At must be positive, got %v", r.At)
		}
		if !(r.Factor >= 0.2 && r.Factor <= 5) || r.Factor == 1 {
			bad("Factor must be between 0.2 and 5 and not 1, got %v", r.Factor)
		}
		if r.Ramp < 0 {
			bad("Ramp must not be negative, got %v", r.Ramp)
		}
		if r.Devices < 1 || r.Devices > devices {
			bad("Devices must be between 1 and Devices (%d), got %d", devices, r.Devices)
		}
		if !c.Pressure.On() && !c.Temperature.On() && !c.Vibration.On() {
			bad("At needs a cycle on at least one signal")
		}
	}
	return errors.Join(errs...)
}

// Relation makes the signals of every device follow a common load, so they
// move together: signal s gets k_s·σ_s·L(t), where L is the device's load, a
// stationary Gauss–Markov (Ornstein–Uhlenbeck) process of unit variance and
// time constant Tau, and k_s the signal's coupling. With noise and the 1σ
// process wave, the Pearson correlation of two coupled signals is about
// k₁k₂ / √((1.5 + k₁²)(1.5 + k₂²)) (3 and 3: 0.86), less any cycles.
// The zero Relation is off.
type Relation struct {
	// Pressure, Temperature and Vibration are the couplings k, in units of
	// the signal's noise σ per unit of load (negative: the signal falls as
	// the load rises; 0: independent of the load).
	Pressure, Temperature, Vibration float64
	// Tau is the load's time constant, at least 10 s.
	Tau time.Duration
	// Breaks adds relation breaks to the kinds anomalous devices inject in
	// turn (overpressure, thermal, vibration, relation): one coupled signal
	// follows a load of its own for 50–80 s, starting on the other side of
	// the load's mean, while the others keep following the device's load
	// and every signal stays within its normal band. Label kind
	// "process.relation", detail the signal that broke away. Needs two
	// coupled signals and a Config.Cycle of at least MinBreakCycle.
	Breaks bool
}

// MinBreakCycle is the shortest Config.Cycle with Relation.Breaks.
const MinBreakCycle = 90 * time.Second

// On reports whether any signal follows the load.
func (r Relation) On() bool { return r.Pressure != 0 || r.Temperature != 0 || r.Vibration != 0 }

func (r Relation) coupling() [numSignals]float64 {
	return [numSignals]float64{r.Pressure, r.Temperature, r.Vibration}
}

// String formats r's couplings as ParseRelation reads them.
func (r Relation) String() string {
	var parts []string
	for i, k := range r.coupling() {
		if k != 0 {
			parts = append(parts, signalNames[i][:1]+"="+strconv.FormatFloat(k, 'g', -1, 64))
		}
	}
	return strings.Join(parts, ",")
}

// ParseRelation reads couplings as a comma-separated list of SIGNAL=K, SIGNAL
// one of p, t, v (or pressure, temperature, vibration): "p=3,t=3,v=2". It
// sets Tau to DefaultLoadTau; Breaks stays off.
func ParseRelation(s string) (Relation, error) {
	var r Relation
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return r, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil {
			return Relation{}, fmt.Errorf("sim: relation %q: %q is not SIGNAL=K (e.g. p=3,t=3,v=2)", s, part)
		}
		switch name {
		case "p", "pressure":
			r.Pressure = k
		case "t", "temperature":
			r.Temperature = k
		case "v", "vibration":
			r.Vibration = k
		default:
			return Relation{}, fmt.Errorf("sim: relation %q: unknown signal %q (want p, t or v)", s, name)
		}
	}
	r.Tau = DefaultLoadTau
	return r, r.validate(Config{Cycle: MinBreakCycle})
}

// DefaultLoadTau is the load's time constant ParseRelation sets.
const DefaultLoadTau = 2 * time.Minute

const maxCoupling = 20

func (r Relation) validate(c Config) error {
	if r == (Relation{}) {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("sim: Relation."+format, args...))
	}
	coupled := 0
	for i, k := range r.coupling() {
		if !(math.Abs(k) <= maxCoupling) {
			bad("%s must be between -%d and %d (σ per unit of load), got %v",
				strings.ToUpper(signalNames[i][:1])+signalNames[i][1:], maxCoupling, maxCoupling, k)
		}
		if k != 0 {
			coupled++
		}
	}
	if r.Tau < 10*time.Second || r.Tau > 24*time.Hour {
		bad("Tau must be between 10s and 24h, got %v", r.Tau)
	}
	if r.Breaks && coupled < 2 {
		bad("Breaks needs at least two coupled signals, got %d", coupled)
	}
	if r.Breaks && c.Cycle < MinBreakCycle {
		bad("Breaks needs a Cycle of at least %v, got %v", MinBreakCycle, c.Cycle)
	}
	return errors.Join(errs...)
}

// Profiles are the presets ApplyProfile knows.
var profileNames = []string{"cyclic", "related", "rhythm"}

// ApplyProfile turns on a realistic set of features in cfg, by name, for a
// comma-separated list of:
//
//   - cyclic: temperature follows a 20–40 minute cooling cycle of 3–4σ,
//     pressure a 5–15 minute pump cycle of 3σ (phases random per device); the
//     run lasts 8 hours with a 2-hour lead-in, so detectors can learn the
//     cycles before the first injection.
//   - related: pressure, temperature and vibration follow a common load
//     (couplings 3, 3 and 2σ, time constant 2 minutes; r ≈ 0.86 between
//     pressure and temperature) and relation breaks are injected in turn.
//   - rhythm: with cyclic, the first device's cycles run 40 % faster from
//     hour 5 on.
//
// Fields the profiles do not name keep their values.
func ApplyProfile(cfg *Config, names string) error {
	for _, name := range strings.Split(names, ",") {
		switch strings.TrimSpace(name) {
		case "":
		case "cyclic":
			cfg.Cycles.Temperature = Cycle{Period: 20 * time.Minute, MaxPeriod: 40 * time.Minute, Amp: 3, MaxAmp: 4}
			cfg.Cycles.Pressure = Cycle{Period: 5 * time.Minute, MaxPeriod: 15 * time.Minute, Amp: 3}
			cfg.Duration = max(cfg.Duration, 8*time.Hour)
			cfg.LeadIn = max(cfg.LeadIn, 2*time.Hour)
		case "related":
			cfg.Relation = Relation{Pressure: 3, Temperature: 3, Vibration: 2, Tau: DefaultLoadTau, Breaks: true}
			cfg.Cycle = max(cfg.Cycle, MinBreakCycle)
		case "rhythm":
			cfg.Cycles.Rhythm = Rhythm{At: 5 * time.Hour, Factor: 0.6, Devices: 1}
		default:
			return fmt.Errorf("sim: unknown profile %q (want %s)", name, strings.Join(profileNames, ", "))
		}
	}
	return nil
}

// signalCycle is one signal's cycle on one device.
type signalCycle struct {
	amp, omega, phase float64 // absolute amplitude, rad/ms, phase at Start
}

// shape is a device's normal behaviour beyond noise and waves: cycles, the
// daily load cycle, the load its signals follow, and a rhythm change.
type shape struct {
	cyc   [numSignals]signalCycle
	daily [numSignals]float64 // absolute amplitudes of the daily cycle
	k     [numSignals]float64 // absolute couplings to the load

	load    *rand.Rand // innovations of the load
	tau     float64    // ms
	l       float64    // load at lastAt
	lastAt  int64
	started bool

	// Rhythm change: from rhAt the frequency multiplier moves from 1 to
	// rhMul over rhRamp ms. Label window [rhAt, rhUntil).
	rhythm          bool
	rhAt, rhRamp    int64
	rhMul           float64
	rhUntil         int64
	rhSeen, rhDone  bool
	rhFirst, rhLast int64
}

// shapeSalt separates the shape's random streams from the noise and event
// streams, so turning shapes on leaves every other draw alone.
const shapeSalt = 0x6a09e667f3bcc908

// initShape draws device i's cycles and couplings; called only when cfg has
// cycles or relations, so the default fleet draws nothing more.
func (g *Generator) initShape(i int, cfg Config) {
	d := &g.devs[i]
	s := &d.sh
	r := newRand(cfg.Seed^shapeSalt, uint64(i), 0)
	s.load = newRand(cfg.Seed^shapeSalt, uint64(i), 1)
	sigma := [numSignals]float64{d.sp, d.st, d.sv}
	for j := range numSignals {
		c := cfg.Cycles.signal(j)
		// The same draws for every signal, on or off.
		up, ua, uf := r.Float64(), r.Float64(), r.Float64()
		if !c.On() {
			continue
		}
		period := float64(c.Period.Milliseconds())
		if c.MaxPeriod > c.Period {
			period += up * float64((c.MaxPeriod - c.Period).Milliseconds())
		}
		amp := c.Amp
		if c.MaxAmp > c.Amp {
			amp += ua * (c.MaxAmp - c.Amp)
		}
		if !c.Absolute {
			amp *= sigma[j]
		}
		phase := uf
		if c.FixedPhase {
			phase = c.Phase
		}
		s.cyc[j] = signalCycle{amp: amp, omega: 2 * math.Pi / period, phase: 2 * math.Pi * phase}
	}
	k := cfg.Relation.coupling()
	for j := range numSignals {
		s.daily[j] = cfg.Cycles.Daily * sigma[j]
		s.k[j] = k[j] * sigma[j]
	}
	s.tau = float64(cfg.Relation.Tau.Milliseconds())
	d.shaped = true
}

// setRhythm makes d change its rhythm as rh says; end is the end of the run.
func (d *device) setRhythm(rh Rhythm, end int64) {
	s := &d.sh
	s.rhythm = true
	s.rhAt, s.rhRamp, s.rhMul = rh.At.Milliseconds(), rh.Ramp.Milliseconds(), 1/rh.Factor
	longest := 0.0
	for _, c := range s.cyc {
		if c.omega > 0 {
			longest = max(longest, 2*math.Pi/c.omega*max(1, rh.Factor))
		}
	}
	until := s.rhAt + s.rhRamp + int64(8*longest)
	if until < s.rhAt || until > end { // overflow, or past the run
		until = end
	}
	s.rhUntil = until
}

// warped returns the time t (ms) as the cycles see it: t itself before the
// rhythm change, and after it the integral of the frequency multiplier.
func (s *shape) warped(t int64) float64 {
	if !s.rhythm || t <= s.rhAt {
		return float64(t)
	}
	u := float64(t - s.rhAt)
	ramp := float64(s.rhRamp)
	m := s.rhMul - 1
	if u <= ramp {
		return float64(s.rhAt) + u + m*u*u/(2*ramp)
	}
	return float64(s.rhAt) + ramp + m*ramp/2 + (u-ramp)*s.rhMul
}

// stepLoad advances d's load to time t and returns it.
func (s *shape) stepLoad(t int64) float64 {
	if !s.started {
		s.started, s.lastAt = true, t
		s.l = clippedNorm(s.load)
		return s.l
	}
	a := math.Exp(-float64(t-s.lastAt) / s.tau)
	s.l = a*s.l + math.Sqrt(1-a*a)*clippedNorm(s.load)
	s.lastAt = t
	return s.l
}

// applyShape adds d's cycles, daily cycle and load to the values at t.
func (g *Generator) applyShape(d *device, t int64, x *[numSignals]float64) {
	s := &d.sh
	wt := s.warped(t)
	day := 0.0
	if s.daily[0] != 0 || s.daily[1] != 0 || s.daily[2] != 0 {
		tod := float64((g.start+t)%msPerDay) - 14*3600*1000
		day = math.Cos(2 * math.Pi * tod / msPerDay)
	}
	l := 0.0
	if s.tau > 0 {
		l = s.stepLoad(t)
	}
	for j := range numSignals {
		c := &s.cyc[j]
		if c.amp != 0 {
			x[j] += c.amp * math.Sin(c.omega*wt+c.phase)
		}
		x[j] += s.daily[j]*day + s.k[j]*l
	}
	if s.rhythm && !s.rhDone && t >= s.rhAt {
		if t < s.rhUntil {
			if !s.rhSeen {
				s.rhSeen, s.rhFirst = true, t
			}
			s.rhLast = t
		} else {
			g.closeRhythm(d)
		}
	}
}

// closeRhythm records the label of d's rhythm change, once.
func (g *Generator) closeRhythm(d *device) {
	s := &d.sh
	if !s.rhythm || s.rhDone {
		return
	}
	s.rhDone = true
	if !s.rhSeen {
		return
	}
	g.labels = append(g.labels, Label{
		Device: d.name, Kind: KindRhythm, Detail: DetailPeriod,
		Start: time.UnixMilli(g.start + s.rhFirst).UTC(),
		End:   time.UnixMilli(g.start + s.rhLast).UTC(),
	})
}

// Relation break timing, in milliseconds.
const (
	breakRise     = 5000  // to 10 s
	breakHold     = 40000 // to 60 s
	breakFall     = 5000  // to 10 s
	breakMinStart = 1.5   // the broken signal's own load starts at least this far across the mean
	breakClip     = 2     // and stays within ±breakClip (±|start| if that is more)
)

// relationBreak applies a relation break at time t: signal e.sig follows its
// own load, blended in by the trapezoid.
func (g *Generator) relationBreak(d *device, e *event, t, u int64, x *[numSignals]float64) {
	s := &d.sh
	l := s.l
	if !e.started {
		// Start across the mean from where the load is, at least breakMinStart away.
		// It stays within ±breakClip, or ±|start|: the range the load
		// itself spans, so every value stays in the signal's normal band.
		e.started = true
		e.m = -math.Copysign(max(math.Abs(l), breakMinStart), l)
		e.amp = max(breakClip, math.Abs(e.m))
	} else {
		a := math.Exp(-float64(t-e.mAt) / s.tau)
		e.m = a*e.m + math.Sqrt(1-a*a)*clippedNorm(d.events)
		e.m = max(-e.amp, min(e.amp, e.m))
	}
	e.mAt = t
	w := e.trapezoid(u)
	x[e.sig] += s.k[e.sig] * w * (e.m - l)
}

// planBreak fills e with a relation break drawn from u1…u4.
func (d *device) planBreak(e *event, u1, u2, u3, u4 float64) {
	e.kind = evRelation
	e.rise = ms(breakRise + breakRise*u1)
	e.hold = ms(breakHold + breakHold/2*u2)
	e.end = e.rise + e.hold + ms(breakFall+breakFall*u3)
	var coupled [numSignals]int8
	n := 0
	for j, k := range d.sh.k {
		if k != 0 {
			coupled[n] = int8(j)
			n++
		}
	}
	e.sig = coupled[min(int(u4*float64(n)), n-1)]
}

// info describes the cycles of s.
func (s *shape) info() [numSignals]SignalCycle {
	var out [numSignals]SignalCycle
	for j, c := range s.cyc {
		if c.omega > 0 {
			out[j] = SignalCycle{
				Period:    time.Duration(math.Round(2*math.Pi/c.omega)) * time.Millisecond,
				Amplitude: c.amp,
				Phase:     c.phase / (2 * math.Pi),
			}
		}
	}
	return out
}
