package detectors

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/baselines"
	"github.com/vigil-iot/vigil/baselines/relation"
	"github.com/vigil-iot/vigil/pipeline"
)

// Params are the detection parameters of one device class.
type Params struct {
	Baseline     baselines.Config   `yaml:"baseline"`
	Overpressure OverpressureConfig `yaml:"overpressure"`
	Thermal      ThermalConfig      `yaml:"thermal"`
	Vibration    VibrationConfig    `yaml:"vibration"`
	Signal       SignalConfig       `yaml:"signal"`
	// Traffic configures the traffic detectors: how each device talks.
	Traffic TrafficConfig `yaml:"traffic"`
	// Cycles configures cycle-aware baselines: the checks of a signal with a
	// dominant period judge its residual from the learned profile.
	Cycles CycleConfig `yaml:"cycles"`
	// Relation configures the relation check: a per-device model of how
	// the device's signals move together.
	Relation RelationConfig `yaml:"relation"`
	// Status is the lifecycle of the device's own status flag.
	Status Rule `yaml:"status"`
	// Hysteresis is the score below which a firing alert counts a sample as
	// normal (towards Clear): 0.8 means 20% back inside the threshold.
	Hysteresis float64 `yaml:"hysteresis"`
	// LearnBelow: a sample teaches the baseline only if every check on its
	// signal scores below this (the poisoning guard).
	LearnBelow float64 `yaml:"learn_below"`
	// Fold makes the checks on one signal raise one alert per episode: the
	// first check to fire leads, checks that fire while it is firing join it
	// (an escalation of severity is reported under the same alert ID), and the
	// alert resolves when none of them is firing any more. Off, every check
	// raises its own alerts.
	Fold bool `yaml:"fold"`
}

// DefaultParams returns the documented defaults.
func DefaultParams() Params {
	return Params{
		Baseline:     baselines.DefaultConfig(),
		Overpressure: DefaultOverpressure(),
		Thermal:      DefaultThermal(),
		Vibration:    DefaultVibration(),
		Signal:       DefaultSignal(),
		Traffic:      DefaultTraffic(),
		Cycles:       DefaultCycles(),
		Relation:     DefaultRelation(),
		Status:       Rule{Hold: 1, Clear: 1, KeepFiringFor: 2 * time.Minute},
		Hysteresis:   0.8,
		LearnBelow:   0.6,
	}
}

// Validate checks every parameter; errors name the offending key.
func (p *Params) Validate() error {
	var hyst error
	if !(p.Hysteresis > 0 && p.Hysteresis <= 1) {
		hyst = fmt.Errorf("hysteresis must be in (0, 1], got %v", p.Hysteresis)
	}
	var lb error
	if !(p.LearnBelow > 0 && p.LearnBelow <= 1) {
		lb = fmt.Errorf("learn_below must be in (0, 1], got %v", p.LearnBelow)
	}
	return errors.Join(hyst, lb,
		prefix("baseline", p.Baseline.Validate()),
		prefix("overpressure", p.Overpressure.Validate()),
		prefix("thermal", p.Thermal.Validate()),
		prefix("vibration", p.Vibration.Validate()),
		prefix("signal", p.Signal.Validate()),
		prefix("traffic", p.Traffic.Validate()),
		prefix("cycles", p.validateCycles()),
		prefix("relation", p.validateRelation()),
		prefix("status", p.Status.Validate()),
	)
}

// validateCycles checks the cycle parameters when they are used.
func (p *Params) validateCycles() error {
	if !p.Cycles.Enabled {
		return nil
	}
	return p.Cycles.Validate()
}

// validateRelation checks the relation parameters when they are used.
func (p *Params) validateRelation() error {
	if !p.Relation.Enabled {
		return nil
	}
	return p.Relation.Validate()
}

// Class gives devices their own parameters: those whose node_id matches one
// of Devices (path.Match patterns, e.g. "press-*") or whose first message
// arrived on a topic matching one of Topics (MQTT filters, e.g.
// "plant/hydraulics/#"). The first matching class wins; a device keeps its
// class for life.
type Class struct {
	Name    string   `yaml:"name"`
	Devices []string `yaml:"devices"`
	Topics  []string `yaml:"topics"`
	Params  Params   `yaml:"detectors"`
}

// Config is the detection configuration: default parameters, classes, and
// the fleet-level judgement (global: it sees every device).
type Config struct {
	Params  Params
	Classes []Class
	Fleet   FleetConfig
}

// DefaultConfig returns the defaults with no classes.
func DefaultConfig() Config { return Config{Params: DefaultParams(), Fleet: DefaultFleet()} }

// Validate checks the configuration.
func (c *Config) Validate() error {
	errs := []error{c.Params.Validate(), prefix("fleet", c.Fleet.Validate())}
	names := map[string]bool{}
	for i := range c.Classes {
		cl := &c.Classes[i]
		if names[cl.Name] {
			errs = append(errs, fmt.Errorf("classes[%d]: duplicate class name %q", i, cl.Name))
		}
		names[cl.Name] = true
		if err := cl.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("classes[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks one class.
func (cl *Class) Validate() error {
	var errs []error
	if cl.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if len(cl.Devices) == 0 && len(cl.Topics) == 0 {
		errs = append(errs, fmt.Errorf("%s: devices or topics must list at least one pattern", cl.Name))
	}
	for _, f := range cl.Topics {
		if err := validFilter(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad topic filter %q: %w", cl.Name, f, err))
		}
	}
	for _, pat := range cl.Devices {
		if _, err := path.Match(pat, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad device pattern %q: %w", cl.Name, pat, err))
		}
	}
	if err := cl.Params.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: detectors: %w", cl.Name, err))
	}
	return errors.Join(errs...)
}

// profile is the compiled, immutable form of one class's Params.
type profile struct {
	name       string
	params     Params
	learner    *baselines.Learner
	detectors  [4]SignalDetector // indexed by pipeline.SignalKind
	extended   [4]Extended       // the detectors that need Memory, or nil
	needs      [4][2]bool        // what they need: record, daily
	status     Check
	traffic    trafficProfile
	cycles     *cycles    // nil: off
	cycleKinds [4]bool    // the signal kinds with checks on the residual
	relations  *relations // nil: off
}

func compile(name string, p Params) (*profile, error) {
	l, err := baselines.NewLearner(p.Baseline)
	if err != nil {
		return nil, err
	}
	pr := &profile{name: name, params: p, learner: l}
	pr.detectors[pipeline.Generic] = NewSignal(p.Signal)
	pr.detectors[pipeline.Pressure] = NewOverpressure(p.Overpressure)
	pr.detectors[pipeline.Temperature] = NewThermal(p.Thermal)
	pr.detectors[pipeline.Vibration] = NewVibration(p.Vibration)
	for k, d := range pr.detectors {
		if ext, ok := d.(Extended); ok {
			if rec, day := ext.Needs(); rec || day {
				pr.extended[k], pr.needs[k] = ext, [2]bool{rec, day}
			}
		}
	}
	pr.status = Check{Detector: "status", Kind: "status", Rule: p.Status, describe: describeStatus}
	pr.cycles = compileCycles(p.Cycles)
	if pr.cycles != nil {
		// Cycles serve the checks on the residual: a signal kind whose
		// checks on it are all off (as in the NAB configurations) needs no
		// cycle memory.
		for k, d := range pr.detectors {
			for _, c := range d.Checks() {
				pr.cycleKinds[k] = pr.cycleKinds[k] || c.Residual && !c.Rule.Off
			}
		}
	}
	pr.traffic = compileTraffic(&p)
	if pr.relations, err = compileRelation(p.Relation); err != nil {
		return nil, err
	}
	return pr, nil
}

// Set is a compiled detection configuration. It is immutable and shared by the
// engines of all shards.
type Set struct {
	profiles []*profile // [0] is the default
	classes  []Class
	fleet    FleetConfig
	hyst     float64 // the default hysteresis, for the fleet
}

// New validates cfg and compiles it.
func New(cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("detectors: %w", err)
	}
	def, err := compile("default", cfg.Params)
	if err != nil {
		return nil, err
	}
	s := &Set{profiles: []*profile{def}, classes: cfg.Classes, fleet: cfg.Fleet, hyst: cfg.Params.Hysteresis}
	for _, cl := range cfg.Classes {
		p, err := compile(cl.Name, cl.Params)
		if err != nil {
			return nil, fmt.Errorf("detectors: class %s: %w", cl.Name, err)
		}
		s.profiles = append(s.profiles, p)
	}
	return s, nil
}

// profileFor returns the index of the profile for a device first seen on
// topic ("" when unknown).
func (s *Set) profileFor(device, topic string) int {
	for i, cl := range s.classes {
		for _, pat := range cl.Devices {
			if ok, _ := path.Match(pat, device); ok {
				return i + 1
			}
		}
		if topic != "" {
			for _, f := range cl.Topics {
				if topicMatch(f, topic) {
					return i + 1
				}
			}
		}
	}
	return 0
}

// validFilter checks an MQTT topic filter: "#" only as the last level, "+"
// and "#" only as whole levels.
func validFilter(f string) error {
	if f == "" {
		return errors.New("empty filter")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New(`"#" must be the last level`)
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return errors.New(`"+" and "#" must stand alone in a level`)
		}
	}
	return nil
}

// topicMatch reports whether topic matches the MQTT filter.
func topicMatch(filter, topic string) bool {
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			return !fmore && !tmore || fmore && frest == "#"
		}
		filter, topic = frest, trest
	}
}

// Device is everything Vigil keeps about one device. Plain data. Its class
// is not stored (Engine.Class derives it), to keep the state within 1 KiB.
type Device struct {
	Name    string
	Topic   string // the last topic seen, "" if none
	Status  Episode
	Signals []SignalState
	// Extra is the memory of checks that need more than SignalState holds;
	// nil for devices whose signals run none.
	Extra   *DeviceExtra
	Traffic TrafficState

	profile    int
	prev, next *Device // recency list: most recently seen first
}

// Engine runs detection and the alert lifecycle for the devices of one shard.
// It owns their state exclusively: it is not safe for concurrent use, and needs
// no locks because each shard worker has its own.
type Engine struct {
	set      *Set
	devices  map[string]*Device
	vs       [maxChecks]Verdict           // scratch: an array passed to an interface method would escape
	cyc      *cycleScratch                // scratch of the period search, made on first use
	seas     [relation.MaxSignals]float64 // scratch: the seasonal components of the related signals
	off      [32]float64                  // scratch: what the relation explains of each signal
	offMask  uint32                       // the signals with an offset in off
	ew       [relation.MaxSignals]float64 // scratch: expectations without the broken signal
	rx       [relation.MaxSignals]float64
	rr       relation.Result // scratch: the relation check's verdict
	phases   [32]phaseMemo   // scratch: the cycle phase of each signal's reading, by signal index
	phaseAny phaseMemo       // scratch: the same for the signals past the 32nd
	relDrift int             // scratch: the position whose drift CUSUM leads the verdict, or -1

	// Devices by recency, for eviction when the cap is reached.
	newest, oldest *Device
	cap            *DeviceCap // never nil
	evicted        uint64

	start      int64        // the stream start (from Tick)
	newDevices int          // first sightings since NewDevices was called
	quiet      []quietEntry // silence queue: a min-heap by due time
}

// NewEngine returns an empty engine for one shard.
func (s *Set) NewEngine() *Engine {
	return &Engine{set: s, devices: make(map[string]*Device), cap: NewDeviceCap(0)}
}

// SetMaxDevices caps the devices this engine tracks (0: no cap). When a new
// device arrives at the cap, the device seen least recently is forgotten and
// counted, so memory stays bounded when a compromised client sprays node IDs.
// A forgotten device that returns starts learning again from scratch. The
// shards of a pipeline share one cap instead: see ShareCap.
func (e *Engine) SetMaxDevices(n int) { e.ShareCap(NewDeviceCap(n)) }

// ShareCap makes the engine count its devices against c, shared with other
// engines, instead of its own cap.
func (e *Engine) ShareCap(c *DeviceCap) {
	e.cap.add(-len(e.devices))
	e.cap = c
	c.add(len(e.devices))
}

// Devices reports the number of devices tracked.
func (e *Engine) Devices() int { return len(e.devices) }

// Evictions reports how many devices were forgotten because of the cap.
func (e *Engine) Evictions() uint64 { return e.evicted }

// touch moves d to the front of the recency list.
func (e *Engine) touch(d *Device) {
	if e.newest == d {
		return
	}
	e.unlink(d)
	d.next = e.newest
	if e.newest != nil {
		e.newest.prev = d
	}
	e.newest = d
	if e.oldest == nil {
		e.oldest = d
	}
}

func (e *Engine) unlink(d *Device) {
	if d.prev != nil {
		d.prev.next = d.next
	} else if e.newest == d {
		e.newest = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else if e.oldest == d {
		e.oldest = d.prev
	}
	d.prev, d.next = nil, nil
}

// evictOldest forgets the device seen least recently.
func (e *Engine) evictOldest() {
	d := e.oldest
	if d == nil {
		return
	}
	e.unlink(d)
	delete(e.devices, d.Name)
	e.cap.add(-1)
	d.Traffic.Flags |= TrafficGone // it may still be in the silence queue
	e.evicted++
}

// Device returns the state of a device, or nil.
func (e *Engine) Device(name string) *Device { return e.devices[name] }

// Class returns the class of a device ("default" when none matched), or ""
// when the engine does not know it.
func (e *Engine) Class(device string) string {
	d := e.devices[device]
	if d == nil {
		return ""
	}
	return e.set.profiles[d.profile].name
}

// Process judges one reading: it updates the device's baselines and episodes
// and appends the alert transitions it causes to out. It allocates only for
// new devices, new signals and alerts.
func (e *Engine) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	d := e.devices[r.Device]
	isNew := d == nil
	if isNew {
		// Count the newcomer in first, then evict while over the cap: two
		// shards admitting at once both see the excess, so the total
		// never passes the cap (unless this shard has nothing to evict).
		for range e.cap.admit() { // one above the cap, two above a lowered one
			e.evictOldest()
		}
		pi := e.set.profileFor(r.Device, r.Topic)
		d = &Device{Name: r.Device, profile: pi, Signals: make([]SignalState, 0, 3)}
		e.devices[r.Device] = d
		e.newDevices++
	}
	e.touch(d)
	prevTopic := d.Topic
	if r.Topic != "" && r.Topic != d.Topic {
		d.Topic = r.Topic
	}
	p := e.set.profiles[d.profile]
	var fields uint32 // the fields the reading carries, for traffic.schema
	if r.Status != pipeline.NoStatus {
		fields |= statusField
		v := statusVerdict(r.Status)
		if tr, esc := d.Status.stepEsc(v, r.Time, p.status.Rule, p.params.Hysteresis); tr != 0 {
			a := e.alert(d, "status", "", &p.status, &d.Status, v, tr, r, float64(r.Status), nil, nil, 0)
			a.Escalation = esc
			out = append(out, a)
		}
	}
	var rel *RelationState
	e.offMask = 0
	if p.relations != nil {
		rel, out = e.prepareRelation(d, p, r, out)
	}
	for i := range r.Values {
		val := &r.Values[i]
		k := d.signal(val)
		if k < 31 {
			fields |= 1 << k
		}
		s := &d.Signals[k]
		det := p.detectors[s.Kind]
		checks := det.Checks()
		vs := e.vs[:len(checks)]
		clear(vs)
		var cs *CycleState
		var se Season
		// What the device's other signals explain of this one (the
		// relation check's offset) is taken off like its cycle.
		var off float64
		if k < 32 && e.offMask&(1<<k) != 0 {
			off = e.off[k]
		}
		if p.cycles != nil && p.cycleKinds[s.Kind] && cycleReady(s) {
			if cs = d.cycle(s); cs != nil {
				se = cs.judged(val.V-off, s.Base.Mean, r.Time, e.phaseMemo(k))
			}
		}
		se.At += off
		se.Near += off
		det.Judge(val.V, se, r.Time, s, p.learner, vs)
		if ext := p.extended[s.Kind]; ext != nil {
			ext.JudgeExtended(val.V, r.Time, s, d.memory(s, p.needs[s.Kind]), vs)
		}
		learn := true
		for c := range checks {
			if checks[c].Rule.Off {
				continue
			}
			v := vs[c]
			// The poisoning guard. A CUSUM builds up over many samples by
			// design, so it keeps samples out only once it crosses; gating its
			// build-up would bias the mean of any signal with set points.
			gate := p.params.LearnBelow
			rule := checks[c].Rule
			if checks[c].GateOnCross {
				gate = 1
			}
			if checks[c].Warm && !s.Base.Warm {
				// The warm-up spike checks (Spike.WarmupZ): conservative
				// thresholds, so a gross anomaly fires at once and is the
				// only thing they keep from teaching; but the baseline is
				// too young to hold a level out for long, so a run of
				// warmupStart kept-out samples is a level the signal has
				// moved to, and it teaches again (winsorized).
				gate, rule.Hold = 1, 1
				if s.Base.Gated >= warmupStart {
					gate = math.Inf(1)
				}
			}
			if v.Score >= gate {
				learn = false
			}
			ep := &s.Episodes[c]
			tr, esc := ep.stepEsc(v, r.Time, rule, p.params.Hysteresis)
			if tr == 0 {
				continue
			}
			if tr == pipeline.Firing && !esc && joinRelation(d, rel, k) {
				ep.Joined = true
			}
			if ep.Joined && (rel == nil || rel.Open == 0) {
				// Nothing to report under (cannot happen: restore drops
				// such episodes); never dereference a missing relation.
				*ep = Episode{}
				continue
			}
			if ep.Joined {
				// One alert for the device's event: the check reports
				// under the open relation alert's ID, refining it (its
				// kind, signal and values), and the relation check
				// resolves it once both are done.
				if tr == pipeline.Firing {
					a := e.alert(d, s.Name, unitOf(s.Kind), &checks[c], ep, v, tr, r, val.V, &s.Base, cs, off)
					a.ID, a.Started, a.Escalation = episodeID(d.Name, RelationKind, "", rel.Open), rel.Open, true
					rel.Level = max(rel.Level, a.Severity)
					out = append(out, a)
				}
				continue
			}
			if !p.params.Fold {
				a := e.alert(d, s.Name, unitOf(s.Kind), &checks[c], ep, v, tr, r, val.V, &s.Base, cs, off)
				a.Escalation = esc
				out = append(out, a)
				continue
			}
			if tr == pipeline.Firing && !esc && s.heldOnly(checks, c) {
				// The signal's alert is open only because keep_firing_for
				// holds it after its condition cleared: this is a new
				// event, not part of it. The held alert ends here.
				lead := int(s.Lead - 1)
				a := e.alert(d, s.Name, unitOf(s.Kind), &checks[lead], &s.Episodes[lead], vs[lead], pipeline.Resolved, r, val.V, &s.Base, cs, off)
				a.ID = episodeID(d.Name, checks[lead].Kind, s.Name, s.Episodes[lead].Started)
				out = append(out, a)
				for o := range checks {
					if o != c && s.Episodes[o].State == FiringState {
						s.Episodes[o] = Episode{}
					}
				}
				s.Lead = 0
			}
			if c, ep, tr, esc := s.fold(c, tr); tr != 0 {
				a := e.alert(d, s.Name, unitOf(s.Kind), &checks[c], ep, vs[c], tr, r, val.V, &s.Base, cs, off)
				a.ID = episodeID(d.Name, checks[c].Kind, s.Name, ep.Started)
				a.Escalation = esc
				out = append(out, a)
			}
		}
		if e.trackAccept(d, k, s, p, val.V-se.At, r.Time, learn) {
			out = e.acceptNormal(d, k, s, p, r, val.V, off, cs, out)
			learn = true
		}
		wasWarm := s.Base.Warm
		// The baseline learns the residual from the profile itself (the
		// noise around the cycle), not the one the checks judged, so its
		// scale is not shrunk by the phase tolerance.
		learned := p.learner.Observe(&s.Base, val.V-se.At, r.Time, learn)
		if s.Base.Warm && !wasWarm {
			s.endWarmup()
		}
		if cs != nil {
			// The cycle memory sees what the device's other signals do
			// not explain: the signal's own rhythm, without the load it
			// shares with them, which would otherwise hide the cycle from
			// the period search and be taught to the profile.
			out = e.observeCycle(d, k, s, cs, p, r, val.V-off, se.At-off, off, learned, out)
		}
	}
	if rel != nil {
		out = e.finishRelation(d, p, rel, r, out)
	}
	if p.traffic.cfg.Enabled {
		out = e.judgeTraffic(d, &p.traffic, r, fields, prevTopic, isNew, out)
	}
	return out
}

// phaseMemo returns the phase memo of the reading's signal k (one shared
// past the 32nd signal: a memo that misses only costs the computation).
func (e *Engine) phaseMemo(k int) *phaseMemo {
	if k >= 0 && k < len(e.phases) {
		return &e.phases[k]
	}
	return &e.phaseAny
}

// observeCycle teaches the cycle memory of signal s (index k) the reading
// and raises a signal.rhythm alert when its learned cycle changed or stopped.
// x and nominal are the reading and the profile's value without off, what
// the device's other signals explain; the alert reports the reading as
// read.
func (e *Engine) observeCycle(d *Device, k int, s *SignalState, cs *CycleState, p *profile, r *pipeline.Reading, x, nominal, off float64, learned bool, out []pipeline.Alert) []pipeline.Alert {
	if e.cyc == nil {
		e.cyc = newCycleScratch()
	}
	var note rhythmNote
	ev := p.cycles.observe(cs, s, p.learner, x, nominal, r.Time, learned, e.cyc, e.phaseMemo(k), &note)
	ck := &p.cycles.rhythm
	ep := cs.rhythm()
	if ck.Rule.Off || ep == nil || (ev == cycleNone && ep.State == Inactive) {
		return out
	}
	var v Verdict
	if ev == cycleChanged || ev == cycleLost {
		v = Verdict{Score: 1, Severity: pipeline.Warning, Stat: note.to / 1e9, Threshold: note.from / 1e9}
	}
	if tr, esc := ep.stepEsc(v, r.Time, ck.Rule, p.params.Hysteresis); tr != 0 {
		a := e.alert(d, s.Name, unitOf(s.Kind), ck, ep, v, tr, r, x+off, nil, nil, 0)
		a.Escalation = esc
		out = append(out, a)
	}
	return out
}

// heldOnly reports whether the signal's folded alert is open only because
// keep_firing_for holds its episodes after their conditions cleared: it has
// a leader other than check c, and no episode but c's is live.
func (s *SignalState) heldOnly(checks []Check, c int) bool {
	if s.Lead == 0 || int(s.Lead-1) == c {
		return false
	}
	for o := range checks {
		if o != c && s.Episodes[o].live(checks[o].Rule) {
			return false
		}
	}
	return true
}

// fold folds the transition tr of check c into the signal's one alert (see
// Params.Fold). It returns the check and episode the alert reports, and the
// transition to report (0: none). An episode that joins the alert takes its
// start, which with the kind identifies the alert, so that it can lead when
// the leader resolves first.
func (s *SignalState) fold(c int, tr pipeline.AlertState) (int, *Episode, pipeline.AlertState, bool) {
	ep := &s.Episodes[c]
	if s.Lead == 0 {
		if tr != pipeline.Firing {
			return c, ep, 0, false // cannot happen: a resolution without an alert
		}
		s.Lead = uint8(c + 1)
		return c, ep, tr, false
	}
	lead := int(s.Lead - 1)
	le := &s.Episodes[lead]
	switch {
	case tr == pipeline.Firing && c == lead:
		return c, ep, tr, true // the leader escalates
	case tr == pipeline.Firing:
		if ep.Severity > le.Severity { // a joining check escalates the alert
			ep.Started = le.Started
			le.Severity = ep.Severity
			return c, ep, tr, true
		}
		ep.Started = le.Started
		return c, ep, 0, false
	case c != lead:
		return c, ep, 0, false // a joined check resolves
	}
	// The leader resolves: another firing check takes over, or the alert ends.
	for o := range s.Episodes {
		if o != c && s.Episodes[o].State == FiringState {
			s.Lead = uint8(o + 1)
			s.Episodes[o].Severity = max(s.Episodes[o].Severity, ep.Severity)
			return c, ep, 0, false
		}
	}
	s.Lead = 0
	return c, ep, tr, false
}

// endWarmup clears the detectors' running sums when the baseline becomes warm:
// they ran silently during warm-up to learn their envelopes, and whatever
// happened in the last warm-up samples must not fire on the first warm one.
func (s *SignalState) endWarmup() {
	s.CusumHi, s.CusumLo, s.ExcHi, s.ExcLo = 0, 0, 0, 0
	s.ShortMean, s.ShortVar = s.Base.Mean, s.Base.Var
}

// signal returns the index of a reading's signal in d.Signals, adding it on
// first sight.
func (d *Device) signal(v *pipeline.Value) int {
	for i := range d.Signals {
		if d.Signals[i].Name == v.Name {
			return i
		}
	}
	d.Signals = append(d.Signals, SignalState{Name: v.Name, Kind: v.Kind})
	return len(d.Signals) - 1
}

// DeviceExtra is the memory of a device's signals that do not fit in
// SignalState: record memories, daily profiles and cycle memories, indexed
// from SignalState.Record, SignalState.Daily and SignalState.Cycle.
type DeviceExtra struct {
	Records []RecordState
	Dailies []DailyState
	Cycles  []CycleState
	// Relation is the relation check's memory, nil until the device has
	// sent enough readings (or when the check is off).
	Relation *RelationState
	// Accepts tracks, by signal index, runs of kept-out samples at one
	// level (a new normal in the making); nil until a signal has one.
	Accepts []AcceptState
}

// cycle returns the cycle memory of signal s, adding it on first use (nil
// past the 255th signal of the device). Its slice holds what every reading
// touches, side by side for the device's signals; the ring is a separate
// allocation, touched only when a bin closes.
func (d *Device) cycle(s *SignalState) *CycleState {
	if s.Cycle == 0 {
		if d.Extra == nil {
			d.Extra = &DeviceExtra{}
		}
		x := d.Extra
		if len(x.Cycles) >= math.MaxUint8 {
			return nil
		}
		if x.Cycles == nil {
			x.Cycles = make([]CycleState, 0, max(cap(d.Signals), 1))
		}
		x.Cycles = append(x.Cycles, newCycleState())
		s.Cycle = uint8(len(x.Cycles))
	}
	return &d.Extra.Cycles[s.Cycle-1]
}

// cycleOf returns the cycle memory of s, or nil.
func (d *Device) cycleOf(s *SignalState) *CycleState {
	if s.Cycle > 0 && d.Extra != nil && int(s.Cycle) <= len(d.Extra.Cycles) {
		return &d.Extra.Cycles[s.Cycle-1]
	}
	return nil
}

// memory returns the extra memory of signal s, adding what is needed on
// first use. Past the 255th signal of a device with such memory, signals go
// without (their record and daily checks do not run).
func (d *Device) memory(s *SignalState, needs [2]bool) Memory {
	var m Memory
	if d.Extra == nil {
		d.Extra = &DeviceExtra{}
	}
	x := d.Extra
	if needs[0] {
		if s.Record == 0 && len(x.Records) < math.MaxUint8 {
			x.Records = append(x.Records, *newRecordState())
			s.Record = uint8(len(x.Records))
		}
		if s.Record != 0 {
			m.Record = &x.Records[s.Record-1]
		}
	}
	if needs[1] {
		if s.Daily == 0 && len(x.Dailies) < math.MaxUint8 {
			x.Dailies = append(x.Dailies, DailyState{})
			s.Daily = uint8(len(x.Dailies))
		}
		if s.Daily != 0 {
			m.Daily = &x.Dailies[s.Daily-1]
		}
	}
	return m
}

// alert builds the alert of a transition; base is the signal's baseline (nil
// for the status flag), cs its cycle memory (nil: none), off what the
// device's other signals explain of it (the relation check's offset).
func (e *Engine) alert(d *Device, signal, unit string, c *Check, ep *Episode, v Verdict, tr pipeline.AlertState, r *pipeline.Reading, x float64, base *baselines.Stats, cs *CycleState, off float64) pipeline.Alert {
	a := pipeline.Alert{
		ID:        episodeID(d.Name, c.Detector, signal, ep.Started),
		Seq:       r.Seq,
		Time:      r.Time,
		Started:   ep.Started,
		Device:    d.Name,
		Topic:     d.Topic,
		Kind:      c.Kind,
		Detector:  c.Detector,
		Severity:  ep.Severity,
		State:     tr,
		Signal:    signal,
		Value:     v.Stat,
		Threshold: v.Threshold,
		Unit:      c.Stat.Unit(unit),
		Observed:  x,
		Score:     v.Score,
	}
	if base != nil {
		a.Mean, a.Std = base.Mean, base.Std()
	}
	cyclic := c.Residual && base != nil && cs != nil && cs.Active()
	if cyclic {
		a.Mean += cs.season(r.Time) // what is normal at this phase
	}
	if c.Residual && base != nil {
		a.Mean += off // and given the device's other signals
	}
	if tr == pipeline.Firing {
		a.Message = c.describe(&a, unit)
		if c.Warm && base != nil && !base.Warm {
			a.Message = fmt.Sprintf("Gross anomaly during warm-up (%d samples learned): ", base.N) + a.Message
		}
		if cyclic {
			a.Message = describeCycle(&a, unit, cs, e.set.profiles[d.profile].learner.Spread(base)) + a.Message
		}
	} else {
		a.Message = describeResolved(&a, unit)
		if ep.Flaps > 0 {
			a.Message += describeFlaps(ep.Flaps, c.Rule.KeepFiringFor)
		}
	}
	return a
}

// episodeID derives a stable ID from what identifies an episode.
func episodeID(device, detector, signal string, started int64) string {
	h := fnv.New64a()
	h.Write([]byte(device))
	h.Write([]byte{0})
	h.Write([]byte(detector))
	h.Write([]byte{0})
	h.Write([]byte(signal))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, started, 10))
	var b [16]byte
	return string(strconv.AppendUint(b[:0], h.Sum64(), 16))
}

// statusVerdict maps the device's own status flag to a verdict.
func statusVerdict(status int8) Verdict {
	switch status {
	case 1:
		return Verdict{Score: 1, Severity: pipeline.Warning, Stat: 1, Threshold: 1}
	case 2:
		return Verdict{Score: 2, Severity: pipeline.Critical, Stat: 2, Threshold: 1}
	}
	return Verdict{Stat: float64(status), Threshold: 1}
}

func describeStatus(a *pipeline.Alert, _ string) string {
	if a.Severity == pipeline.Critical {
		return "The device reports status 2 (critical)."
	}
	return "The device reports status 1 (warning)."
}

// TopicMatch reports whether an MQTT topic matches a filter with + and #.
func TopicMatch(filter, topic string) bool { return topicMatch(filter, topic) }

// Cycle returns the learned cycle of a device's signal: its period and
// strength, and false when the signal has none (or the engine does not know
// it).
func (e *Engine) Cycle(device, signal string) (time.Duration, float64, bool) {
	d := e.devices[device]
	if d == nil {
		return 0, 0, false
	}
	for i := range d.Signals {
		if s := &d.Signals[i]; s.Name == signal {
			if cs := d.cycleOf(s); cs != nil && cs.Active() {
				return time.Duration(cs.Model.Period), float64(cs.Model.Strength), true
			}
		}
	}
	return 0, 0, false
}

// Correlation returns the correlation the relation check has learned
// between two signals of a device, and false when it relates not both (the
// check is off, the device has not sent enough readings, or a signal is not
// among those it relates).
func (e *Engine) Correlation(device, a, b string) (float64, bool) {
	d := e.devices[device]
	if d == nil || d.Extra == nil || d.Extra.Relation == nil {
		return 0, false
	}
	rs := d.Extra.Relation
	pos := func(name string) int {
		for p := range int(rs.N) {
			if i := int(rs.Of[p]) - 1; i < len(d.Signals) && d.Signals[i].Name == name {
				return p
			}
		}
		return -1
	}
	i, j := pos(a), pos(b)
	m := &rs.Model
	if i < 0 || j < 0 || int(m.K) != int(rs.N) || m.N < 2 {
		return 0, false
	}
	vi, vj := m.Cov(i, i), m.Cov(j, j)
	if !(vi > 0 && vj > 0) {
		return 0, false
	}
	return m.Cov(i, j) / math.Sqrt(vi*vj), true
}

// Band is the learned normal band of one signal of one device.
type Band struct {
	Median, Spread float64 // robust centre and scale
	Mean, Std      float64 // EW mean and standard deviation
	Warm           bool    // the baseline has finished warming up
}

// Band returns the learned band of a device's signal, and false when the
// engine has no such device or signal. For charts and reports.
func (e *Engine) Band(device, signal string) (Band, bool) {
	d := e.devices[device]
	if d == nil {
		return Band{}, false
	}
	l := e.set.profiles[d.profile].learner
	for i := range d.Signals {
		if s := &d.Signals[i]; s.Name == signal {
			return Band{Median: s.Base.Median, Spread: l.Spread(&s.Base), Mean: s.Base.Mean, Std: s.Base.Std(), Warm: s.Base.Warm}, true
		}
	}
	return Band{}, false
}
