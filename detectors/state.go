package detectors

import (
	"errors"
	"fmt"
	"math"

	"github.com/vigil-iot/vigil/baselines/relation"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/wire"
)

// StateVersion is the version of the device state encoding written by
// AppendDevice. DecodeDevice reads every version up to it.
//
// Version 2 adds each signal's cycle memory (CycleState) after its daily
// profile; version 1 devices restore with none (it is learned afresh).
// Version 3 adds the relation check's memory after the signals: the names
// of the signals it relates, the named signal, whether its episode is
// silent, the open alert, the episode, the drift sums and the model
// (relation.State's own versioned encoding), then the signals' runs towards
// a new normal; older devices learn the relation afresh.
// Version 4 adds the flapping of firing episodes (Rule.KeepFiringFor): an
// episode with flaps or a last anomalous time sets flapBit in its state
// byte, followed by Flaps and LastBad; earlier formats never set it, so
// versions 1-3 read as before (no flaps). It also adds the traffic state's
// burst count after Doubled.
// Version 5 adds the severity of the relation check's open alert
// (RelationState.Level) after its start; older devices take the episode's.
const StateVersion = 5

// A device's state is encoded by name, not by position: the class by its
// name, each check's episode by the check's detector name, traffic episodes
// by their kind. A snapshot taken under one configuration therefore restores
// under another that adds, removes or reorders checks or classes: episodes
// of checks that no longer exist are dropped (and counted), a class that no
// longer exists is chosen again from the device's name and topic.

// Snapshot calls fn with the state of every device the engine tracks, least
// recently seen first, so that restoring them in that order rebuilds the
// engine's recency (which device a cap evicts first). b is reused between
// calls: fn must copy what it keeps.
func (e *Engine) Snapshot(fn func(device string, state []byte) error) error {
	due := make(map[*Device]int64, len(e.quiet))
	for _, q := range e.quiet {
		due[q.d] = q.due
	}
	var b []byte
	for d := e.oldest; d != nil; d = d.prev {
		b = e.appendDevice(b[:0], d, due[d])
		if err := fn(d.Name, b); err != nil {
			return err
		}
	}
	return nil
}

// SnapshotTo implements pipeline.Snapshotter: the engine-wide state, then
// every device (see Snapshot).
func (e *Engine) SnapshotTo(w pipeline.RecordWriter) error {
	if err := w.Add(pipeline.RecordEngine, "", e.State().Append(nil)); err != nil {
		return err
	}
	return e.Snapshot(func(device string, b []byte) error { return w.Add(pipeline.RecordDevice, device, b) })
}

// EngineState is the engine-wide state beside the devices.
type EngineState struct {
	Start      int64 // the stream start the engine was ticked with
	NewDevices int   // first sightings not yet collected by NewDevices
	Evicted    uint64
}

// State returns the engine-wide state.
func (e *Engine) State() EngineState {
	return EngineState{Start: e.start, NewDevices: e.newDevices, Evicted: e.evicted}
}

// SetState restores the engine-wide state (before or after the devices).
func (e *Engine) SetState(s EngineState) {
	e.start, e.newDevices, e.evicted = s.Start, s.NewDevices, s.Evicted
}

// RestoreReport counts what a restore could not carry over.
type RestoreReport struct {
	Devices         int
	DroppedEpisodes int // episodes of checks the configuration no longer has
	Reclassed       int // devices whose class no longer exists
}

// Restore adds the device encoded in state (by Snapshot) to the engine as
// its most recently seen device, replacing one of the same name.
func (e *Engine) Restore(state []byte, rep *RestoreReport) error {
	d, due, err := e.decodeDevice(state, rep)
	if err != nil {
		return err
	}
	if old := e.devices[d.Name]; old != nil {
		e.unlink(old)
		old.Traffic.Flags |= TrafficGone
	} else {
		e.cap.add(1)
	}
	e.devices[d.Name] = d
	e.touch(d)
	if due != 0 {
		e.queue(d, due)
	}
	if rep != nil {
		rep.Devices++
	}
	return nil
}

func (e *Engine) appendDevice(b []byte, d *Device, due int64) []byte {
	w := stateWriter{wire.Writer{B: b}}
	w.Byte(StateVersion)
	w.Str(d.Name)
	w.Str(d.Topic)
	w.Str(e.set.profiles[d.profile].name)
	w.episode(&d.Status)
	e.appendTraffic(&w, &d.Traffic, due)
	p := e.set.profiles[d.profile]
	w.Uvarint(uint64(len(d.Signals)))
	for i := range d.Signals {
		s := &d.Signals[i]
		checks := p.detectors[s.Kind].Checks()
		w.Str(s.Name)
		w.Byte(byte(s.Kind))
		lead := ""
		if s.Lead > 0 && int(s.Lead) <= len(checks) {
			lead = checks[s.Lead-1].Detector
		}
		w.Str(lead)
		b := &s.Base
		w.Uvarint(uint64(b.N))
		w.Uvarint(uint64(b.Gated))
		w.Bool(b.Warm)
		w.Varint(b.First)
		w.Varint(b.LastT)
		w.F64(b.Mean, b.Var, b.Median, b.MAD, b.Last, b.RateMean, b.RateVar, b.RiseMax, b.FallMax,
			s.CusumHi, s.CusumLo, float64(s.ExcHi), float64(s.ExcLo), s.CusumPeak, s.ShortMean, s.ShortVar)
		n := 0
		for c := range checks {
			if s.Episodes[c].State != Inactive {
				n++
			}
		}
		w.Uvarint(uint64(n))
		for c := range checks {
			if s.Episodes[c].State != Inactive {
				w.Str(checks[c].Detector)
				w.episode(&s.Episodes[c])
			}
		}
		var rec *RecordState
		var day *DailyState
		if s.Record > 0 && d.Extra != nil && int(s.Record) <= len(d.Extra.Records) {
			rec = &d.Extra.Records[s.Record-1]
		}
		if s.Daily > 0 && d.Extra != nil && int(s.Daily) <= len(d.Extra.Dailies) {
			day = &d.Extra.Dailies[s.Daily-1]
		}
		w.Bool(rec != nil)
		if rec != nil {
			for i := range rec.Hi {
				w.F32(rec.Hi[i])
				w.F32(rec.Lo[i])
			}
			w.Uvarint(uint64(rec.N))
			w.Byte(rec.Cur)
			w.Byte(rec.Filled)
		}
		w.Bool(day != nil)
		if day != nil {
			for i := range day.Mean {
				w.F32(day.Mean[i])
				w.F32(day.Dev[i])
				w.Byte(day.Count[i])
			}
			w.F64(day.GMean, day.GDev, day.Hi, day.Lo)
			w.Varint(day.First)
			w.Bool(day.Started)
		}
		cs := d.cycleOf(s)
		w.Bool(cs != nil)
		if cs != nil {
			w.cycle(cs)
		}
	}
	var rs *RelationState
	if d.Extra != nil {
		rs = d.Extra.Relation
	}
	w.Bool(rs != nil)
	if rs != nil {
		w.Uvarint(uint64(rs.N))
		for j := range rs.N {
			w.Str(d.Signals[rs.Of[j]-1].Name)
		}
		w.Byte(rs.Top)
		w.Bool(rs.Silent)
		w.Varint(rs.Open)
		w.Byte(byte(rs.Level))
		w.episode(&rs.Episode)
		for j := range rs.N {
			w.F32(rs.Hi[j])
			w.F32(rs.Lo[j])
		}
		m, _ := rs.Model.MarshalBinary() // a zero State encodes too
		w.Str(string(m))
	}
	n := 0
	if d.Extra != nil {
		for k := range d.Extra.Accepts {
			if d.Extra.Accepts[k].N > 0 {
				n++
			}
		}
	}
	w.Uvarint(uint64(n))
	for k := 0; n > 0 && k < len(d.Extra.Accepts); k++ {
		if a := &d.Extra.Accepts[k]; a.N > 0 {
			w.Uvarint(uint64(k))
			w.F64(a.Level, a.From)
			w.Varint(a.Since)
			w.Uvarint(uint64(a.N))
		}
	}
	return w.B
}

// decodeRelation reads the relation memory appendDevice wrote and keeps it
// when the profile runs the check over the same signals.
func (e *Engine) decodeRelation(r *stateReader, d *Device, p *profile, version byte) {
	n := r.Uvarint()
	if n > relation.MaxSignals {
		r.Err = fmt.Errorf("relation of %d signals", n)
		return
	}
	names := make([]string, n)
	for j := range names {
		names[j] = r.Str()
	}
	var rs RelationState
	rs.Top = r.Byte()
	rs.Silent = r.Bool()
	rs.Open = r.Varint()
	if version >= 5 {
		rs.Level = pipeline.Severity(r.Byte())
	}
	r.episode(&rs.Episode)
	if version < 5 && rs.Open != 0 {
		rs.Level = rs.Episode.Severity
	}
	var hi, lo [relation.MaxSignals]float32
	for j := range names {
		hi[j], lo[j] = r.F32(), r.F32()
	}
	model := r.Str()
	if r.Err != nil || p.relations == nil {
		return
	}
	p.relations.relate(d, &rs)
	same := int(rs.N) == len(names) && int(rs.Top) < max(len(names), 1)
	for j := 0; same && j < len(names); j++ {
		same = d.Signals[rs.Of[j]-1].Name == names[j]
	}
	if !same || rs.Model.UnmarshalBinary([]byte(model)) != nil {
		return // learned afresh
	}
	rs.Hi, rs.Lo = hi, lo
	if d.Extra == nil {
		d.Extra = &DeviceExtra{}
	}
	d.Extra.Relation = &rs
}

func (w *stateWriter) cycle(c *CycleState) {
	w.Varint(c.Bin)
	w.F64(c.BinMean, c.BinM2)
	w.Uvarint(uint64(c.BinN))
	w.Uvarint(uint64(c.BinKept))
	w.Byte(c.Level)
	g := c.Ring
	w.F64(g.Ref, g.Cand)
	w.Varint(int64(g.Exp))
	w.Uvarint(uint64(g.Head))
	w.Uvarint(uint64(g.Filled))
	w.Uvarint(uint64(g.Since))
	w.Byte(g.Found)
	w.Byte(g.Misses)
	for _, f := range [...]float32{g.Gone, g.Within, g.PerBin} {
		w.F32(f)
	}
	// All of the ring: bins past Filled still count when it is rescaled.
	for _, q := range g.Bins {
		w.Varint(int64(q))
	}
	m := c.Model
	w.Bool(m != nil)
	if m == nil {
		return
	}
	w.F64(m.Period)
	w.Varint(m.T0)
	for _, f := range [...]float32{m.Gain, m.Strength, m.Amp, m.Low, m.High} {
		w.F32(f)
	}
	w.episode(&m.Rhythm)
	for _, f := range m.Profile {
		w.F32(f)
	}
}

func (r *stateReader) cycle(c *CycleState) {
	c.Bin = r.Varint()
	r.F64(&c.BinMean, &c.BinM2)
	c.BinN = uint32(r.Uvarint())
	c.BinKept = uint32(r.Uvarint())
	c.Level = r.Byte()
	g := new(CycleRing)
	c.Ring = g
	r.F64(&g.Ref, &g.Cand)
	g.Exp = int16(r.Varint())
	g.Head = uint16(r.Uvarint())
	g.Filled = uint16(r.Uvarint())
	g.Since = uint16(r.Uvarint())
	g.Found = r.Byte()
	g.Misses = r.Byte()
	for _, f := range [...]*float32{&g.Gone, &g.Within, &g.PerBin} {
		*f = r.F32()
	}
	for i := range g.Bins {
		g.Bins[i] = int16(r.Varint())
	}
	if r.Err == nil && (g.Head >= cycleBins || g.Filled > cycleBins || c.Level > cycleMaxLvl) {
		r.Err = errors.New("cycle memory out of range")
	}
	if !r.Bool() {
		return
	}
	m := new(CycleModel)
	c.Model = m
	r.F64(&m.Period)
	m.T0 = r.Varint()
	for _, f := range [...]*float32{&m.Gain, &m.Strength, &m.Amp, &m.Low, &m.High} {
		*f = r.F32()
	}
	r.episode(&m.Rhythm)
	for i := range m.Profile {
		m.Profile[i] = r.F32()
	}
	if r.Err == nil && (m.Period < 0 || math.IsNaN(m.Period)) {
		r.Err = errors.New("cycle period out of range")
	}
}

func (e *Engine) appendTraffic(w *stateWriter, t *TrafficState, due int64) {
	n := 0
	for k := range t.Episodes {
		if t.Episodes[k].State != Inactive {
			n++
		}
	}
	w.Uvarint(uint64(n))
	for k := range t.Episodes {
		if t.Episodes[k].State != Inactive {
			w.Str(trafficKinds[k])
			w.episode(&t.Episodes[k])
		}
	}
	w.Varint(t.LastArrival)
	w.Varint(t.MaxTime)
	for _, h := range t.Hashes {
		w.U32(h)
	}
	w.F32(t.Interval)
	w.F32(t.Rate)
	w.F32(t.Offset)
	w.U32(t.FieldsAny)
	w.U32(t.FieldsAll)
	for _, v := range [...]uint16{t.SizeLo, t.SizeHi, t.Topics[0], t.Topics[1], t.N, t.Gated, t.Malformed, uint16(t.ClockRate), uint16(t.Flags &^ (TrafficQueued | TrafficGone))} {
		w.Uvarint(uint64(v))
	}
	w.Byte(t.Order)
	w.Byte(t.Doubled)
	w.Uvarint(uint64(t.Burst))
	w.Varint(due)
}

func (e *Engine) decodeDevice(b []byte, rep *RestoreReport) (*Device, int64, error) {
	r := stateReader{wire.Reader{B: b}}
	version := r.Byte()
	if r.Err == nil && (version == 0 || version > StateVersion) {
		return nil, 0, fmt.Errorf("detectors: device state version %d is not supported (this build reads 1 to %d)", version, StateVersion)
	}
	d := &Device{Name: r.Str(), Topic: r.Str()}
	class := r.Str()
	d.profile = -1
	for i, p := range e.set.profiles {
		if p.name == class {
			d.profile = i
			break
		}
	}
	if d.profile < 0 {
		d.profile = e.set.profileFor(d.Name, d.Topic)
		if rep != nil {
			rep.Reclassed++
		}
	}
	p := e.set.profiles[d.profile]
	r.episode(&d.Status)
	due := e.decodeTraffic(&r, &d.Traffic, version, rep)
	ns := r.Uvarint()
	if ns > 1<<16 {
		return nil, 0, errors.New("detectors: device state: too many signals")
	}
	d.Signals = make([]SignalState, int(ns))
	for i := range d.Signals {
		s := &d.Signals[i]
		s.Name = r.Str()
		s.Kind = pipeline.SignalKind(r.Byte())
		if int(s.Kind) >= len(p.detectors) {
			return nil, 0, fmt.Errorf("detectors: device state: signal %q has unknown kind %d", s.Name, s.Kind)
		}
		checks := p.detectors[s.Kind].Checks()
		index := func(name string) int {
			for c := range checks {
				if checks[c].Detector == name {
					return c
				}
			}
			return -1
		}
		if c := index(r.Str()); c >= 0 {
			s.Lead = uint8(c + 1)
		}
		b := &s.Base
		b.N = uint32(r.Uvarint())
		b.Gated = uint32(r.Uvarint())
		b.Warm = r.Bool()
		b.First = r.Varint()
		b.LastT = r.Varint()
		var exHi, exLo float64
		r.F64(&b.Mean, &b.Var, &b.Median, &b.MAD, &b.Last, &b.RateMean, &b.RateVar, &b.RiseMax, &b.FallMax,
			&s.CusumHi, &s.CusumLo, &exHi, &exLo, &s.CusumPeak, &s.ShortMean, &s.ShortVar)
		s.ExcHi, s.ExcLo = float32(exHi), float32(exLo)
		for n := r.Uvarint(); n > 0 && r.Err == nil; n-- {
			name := r.Str()
			var ep Episode
			r.episode(&ep)
			if c := index(name); c >= 0 && c < maxChecks {
				s.Episodes[c] = ep
			} else if rep != nil {
				rep.DroppedEpisodes++
			}
		}
		if s.Lead > 0 && s.Episodes[s.Lead-1].State != FiringState {
			s.Lead = 0
		}
		if r.Bool() {
			rec := RecordState{}
			for i := range rec.Hi {
				rec.Hi[i] = r.F32()
				rec.Lo[i] = r.F32()
			}
			rec.N = uint32(r.Uvarint())
			rec.Cur = r.Byte()
			rec.Filled = r.Byte()
			if p.needs[s.Kind][0] {
				if d.Extra == nil {
					d.Extra = &DeviceExtra{}
				}
				d.Extra.Records = append(d.Extra.Records, rec)
				s.Record = uint8(len(d.Extra.Records))
			}
		}
		if r.Bool() {
			day := DailyState{}
			for i := range day.Mean {
				day.Mean[i] = r.F32()
				day.Dev[i] = r.F32()
				day.Count[i] = r.Byte()
			}
			r.F64(&day.GMean, &day.GDev, &day.Hi, &day.Lo)
			day.First = r.Varint()
			day.Started = r.Bool()
			if p.needs[s.Kind][1] {
				if d.Extra == nil {
					d.Extra = &DeviceExtra{}
				}
				d.Extra.Dailies = append(d.Extra.Dailies, day)
				s.Daily = uint8(len(d.Extra.Dailies))
			}
		}
		if version >= 2 && r.Bool() {
			var cs CycleState
			r.cycle(&cs) // makes Ring (and Model when the snapshot has one)
			if p.cycles != nil && p.cycleKinds[s.Kind] {
				if d.Extra == nil {
					d.Extra = &DeviceExtra{}
				}
				if d.Extra.Cycles == nil {
					d.Extra.Cycles = make([]CycleState, 0, len(d.Signals))
				}
				d.Extra.Cycles = append(d.Extra.Cycles, cs)
				s.Cycle = uint8(len(d.Extra.Cycles))
			}
		}
	}
	if version >= 3 && r.Bool() {
		e.decodeRelation(&r, d, p, version)
	}
	if r.Err == nil && (d.Extra == nil || d.Extra.Relation == nil) {
		// Checks that joined a relation alert this configuration does not
		// restore (relations off, another signal set, a model it cannot
		// read) have no alert to report under: dropped, like the episodes
		// of checks it lacks.
		for i := range d.Signals {
			for c := range d.Signals[i].Episodes {
				if ep := &d.Signals[i].Episodes[c]; ep.Joined {
					*ep = Episode{} // never a fold's leader: joined checks do not fold
					if rep != nil {
						rep.DroppedEpisodes++
					}
				}
			}
		}
	}
	if version >= 3 {
		for n := r.Uvarint(); n > 0 && r.Err == nil; n-- {
			k := r.Uvarint()
			var a AcceptState
			r.F64(&a.Level, &a.From)
			a.Since = r.Varint()
			a.N = uint32(r.Uvarint())
			if r.Err != nil || k >= uint64(len(d.Signals)) || a.N == 0 {
				if r.Err == nil {
					r.Err = fmt.Errorf("new-normal run of signal %d of %d", k, len(d.Signals))
				}
				break
			}
			if d.Extra == nil {
				d.Extra = &DeviceExtra{}
			}
			for uint64(len(d.Extra.Accepts)) <= k {
				d.Extra.Accepts = append(d.Extra.Accepts, AcceptState{})
			}
			d.Extra.Accepts[k] = a
		}
	}
	if r.Err == nil && len(r.B) != 0 {
		r.Err = fmt.Errorf("%d unexpected bytes", len(r.B))
	}
	if r.Err != nil {
		return nil, 0, fmt.Errorf("detectors: device state of %q: %w", d.Name, r.Err)
	}
	return d, due, nil
}

func (e *Engine) decodeTraffic(r *stateReader, t *TrafficState, version byte, rep *RestoreReport) (due int64) {
	for n := r.Uvarint(); n > 0 && r.Err == nil; n-- {
		name := r.Str()
		var ep Episode
		r.episode(&ep)
		k := -1
		for i, kind := range trafficKinds {
			if kind == name {
				k = i
			}
		}
		if k >= 0 {
			t.Episodes[k] = ep
		} else if rep != nil {
			rep.DroppedEpisodes++
		}
	}
	t.LastArrival = r.Varint()
	t.MaxTime = r.Varint()
	for i := range t.Hashes {
		t.Hashes[i] = r.U32()
	}
	t.Interval, t.Rate, t.Offset = r.F32(), r.F32(), r.F32()
	t.FieldsAny, t.FieldsAll = r.U32(), r.U32()
	var v [9]uint16
	for i := range v {
		v[i] = uint16(r.Uvarint())
	}
	t.SizeLo, t.SizeHi, t.Topics[0], t.Topics[1], t.N, t.Gated, t.Malformed = v[0], v[1], v[2], v[3], v[4], v[5], v[6]
	t.ClockRate, t.Flags = int16(v[7]), TrafficFlags(v[8])
	t.Order = r.Byte()
	t.Doubled = r.Byte()
	if version >= 4 {
		t.Burst = uint16(min(r.Uvarint(), math.MaxUint16))
	}
	return r.Varint()
}

// stateWriter appends the fields of a device's state.
type stateWriter struct{ wire.Writer }

func (w *stateWriter) episode(e *Episode) {
	st := byte(e.State)
	if e.Joined {
		st |= joinedBit
	}
	if e.Flaps != 0 || e.LastBad != 0 {
		st |= flapBit
	}
	w.Byte(st)
	w.Byte(byte(e.Severity))
	w.Uvarint(uint64(e.Count))
	w.Varint(e.Started)
	if st&flapBit != 0 {
		w.Byte(e.Flaps)
		w.Uvarint(uint64(e.LastBad))
	}
}

// stateReader reads what stateWriter wrote; the first error sticks.
type stateReader struct{ wire.Reader }

// joinedBit marks a joined episode in its state byte (format 3; earlier
// formats never set it).
const joinedBit = 0x80

// flapBit marks an episode followed by its flap count and last anomalous
// time (format 4).
const flapBit = 0x40

func (r *stateReader) episode(e *Episode) {
	st := r.Byte()
	e.State, e.Joined = EpisodeState(st&^(joinedBit|flapBit)), st&joinedBit != 0
	e.Severity = pipeline.Severity(r.Byte())
	e.Count = uint16(r.Uvarint())
	e.Started = r.Varint()
	if st&flapBit != 0 {
		e.Flaps = r.Byte()
		lb := r.Uvarint()
		if lb > math.MaxUint16 && r.Err == nil {
			r.Err = fmt.Errorf("episode last anomaly %d", lb)
		}
		e.LastBad = uint16(lb)
	}
	if e.State > FiringState && r.Err == nil {
		r.Err = fmt.Errorf("episode state %d", e.State)
	}
}

// AppendState appends the fleet judge's state (its window of first
// sightings and its episode).
func (f *Fleet) AppendState(b []byte) []byte {
	w := stateWriter{wire.Writer{B: b}}
	w.Byte(StateVersion)
	w.Varint(f.start)
	w.Varint(f.head)
	w.Varint(int64(f.sum))
	w.Uvarint(fleetBuckets)
	for _, c := range f.counts {
		w.Varint(int64(c))
	}
	w.episode(&f.episode)
	return w.B
}

// RestoreState restores what AppendState wrote. A window of another
// number of buckets (another release) starts empty.
func (f *Fleet) RestoreState(b []byte) error {
	r := stateReader{wire.Reader{B: b}}
	if v := r.Byte(); r.Err == nil && (v == 0 || v > StateVersion) {
		return fmt.Errorf("detectors: fleet state version %d is not supported", v)
	}
	start, head, sum := r.Varint(), r.Varint(), int(r.Varint())
	n := r.Uvarint()
	counts := make([]int, 0, min(n, 1024))
	for i := uint64(0); i < n && r.Err == nil; i++ {
		counts = append(counts, int(r.Varint()))
	}
	var ep Episode
	r.episode(&ep)
	if r.Err != nil {
		return fmt.Errorf("detectors: fleet state: %w", r.Err)
	}
	f.start, f.head, f.episode = start, head, ep
	if n == fleetBuckets {
		copy(f.counts[:], counts)
		f.sum = sum
	}
	return nil
}

// Append appends the engine-wide state.
func (s EngineState) Append(b []byte) []byte {
	w := stateWriter{wire.Writer{B: b}}
	w.Byte(StateVersion)
	w.Varint(s.Start)
	w.Varint(int64(s.NewDevices))
	w.Uvarint(s.Evicted)
	return w.B
}

// DecodeEngineState decodes what EngineState.Append wrote.
func DecodeEngineState(b []byte) (EngineState, error) {
	r := stateReader{wire.Reader{B: b}}
	if v := r.Byte(); r.Err == nil && (v == 0 || v > StateVersion) {
		return EngineState{}, fmt.Errorf("detectors: engine state version %d is not supported", v)
	}
	s := EngineState{Start: r.Varint(), NewDevices: int(r.Varint()), Evicted: r.Uvarint()}
	if r.Err != nil {
		return EngineState{}, fmt.Errorf("detectors: engine state: %w", r.Err)
	}
	return s, nil
}

// OpenEpisode is an episode that is pending or firing.
type OpenEpisode struct {
	Signal   string // "" for the status flag and traffic
	Detector string
	Episode
}

// OpenEpisodes lists the device's pending and firing episodes, by check:
// those whose alert is open or about to be.
func (e *Engine) OpenEpisodes(device string) []OpenEpisode {
	d := e.devices[device]
	if d == nil {
		return nil
	}
	var out []OpenEpisode
	if d.Status.Active() {
		out = append(out, OpenEpisode{Detector: "status", Episode: d.Status})
	}
	p := e.set.profiles[d.profile]
	for i := range d.Signals {
		s := &d.Signals[i]
		for c, ck := range p.detectors[s.Kind].Checks() {
			if s.Episodes[c].Active() {
				out = append(out, OpenEpisode{Signal: s.Name, Detector: ck.Detector, Episode: s.Episodes[c]})
			}
		}
	}
	for k := range d.Traffic.Episodes {
		if d.Traffic.Episodes[k].Active() {
			out = append(out, OpenEpisode{Detector: trafficKinds[k], Episode: d.Traffic.Episodes[k]})
		}
	}
	for i := range d.Signals {
		if cs := d.cycleOf(&d.Signals[i]); cs != nil && cs.rhythm() != nil && cs.rhythm().Active() {
			out = append(out, OpenEpisode{Signal: d.Signals[i].Name, Detector: "signal.rhythm", Episode: *cs.rhythm()})
		}
	}
	if d.Extra != nil && d.Extra.Relation != nil {
		// The relation's alert is open while rs.Open is set (a joined
		// check may hold it after the relation's episode ended); a
		// firing episode that stayed silent raised no alert.
		switch rs := d.Extra.Relation; {
		case rs.Open != 0:
			out = append(out, OpenEpisode{Detector: RelationKind,
				Episode: Episode{State: FiringState, Severity: rs.Level, Started: rs.Open}})
		case rs.Episode.State == Pending:
			out = append(out, OpenEpisode{Detector: RelationKind, Episode: rs.Episode})
		}
	}
	return out
}

var _ pipeline.Snapshotter = (*Engine)(nil)

// Reconfigure makes the engine judge with set from now on, keeping what it
// has learned: each device's state is carried over by name, as a snapshot
// restored under set would be. An alert firing for a check that set no
// longer runs (removed, switched off, traffic disabled) resolves now, at
// stream time clock, and is appended to out; such pending episodes are
// dropped. Call it between readings (pipeline.Pipeline.Reconfigure).
func (e *Engine) Reconfigure(set *Set, clock int64, out []pipeline.Alert) ([]pipeline.Alert, RestoreReport, error) {
	var rep RestoreReport
	due := make(map[*Device]int64, len(e.quiet))
	for _, q := range e.quiet {
		due[q.d] = q.due
	}
	var encoded [][]byte
	var b []byte
	for d := e.oldest; d != nil; d = d.prev {
		out = e.closeRetired(d, set, clock, out)
		b = e.appendDevice(b[:0], d, due[d])
		encoded = append(encoded, append([]byte(nil), b...))
	}
	st := e.State()
	e.cap.add(-len(e.devices)) // Restore counts them in again
	*e = Engine{set: set, devices: make(map[string]*Device, len(encoded)), cap: e.cap}
	e.SetState(st)
	for _, enc := range encoded {
		if err := e.Restore(enc, &rep); err != nil {
			return out, rep, err
		}
	}
	return out, rep, nil
}

// closeRetired resolves d's firing episodes of checks that set no longer
// runs, and clears them and its pending ones.
func (e *Engine) closeRetired(d *Device, set *Set, clock int64, out []pipeline.Alert) []pipeline.Alert {
	oldP := e.set.profiles[d.profile]
	newP := set.profiles[0]
	for _, p := range set.profiles {
		if p.name == oldP.name {
			newP = p
			break
		}
	}
	retire := func(ep *Episode, kind, detector, signal string, fold bool) {
		if ep.State == FiringState && !ep.Joined {
			id := detector
			if fold {
				id = kind
			}
			out = append(out, pipeline.Alert{
				ID: episodeID(d.Name, id, signal, ep.Started), Time: clock, Started: ep.Started,
				Device: d.Name, Topic: d.Topic, Kind: kind, Detector: detector, Severity: ep.Severity,
				State: pipeline.Resolved, Signal: signal,
				Value: math.NaN(), Threshold: math.NaN(), Observed: math.NaN(), Mean: math.NaN(), Std: math.NaN(), Score: math.NaN(),
				Message: detector + " resolved: the check was switched off by a configuration reload.",
			})
		}
		*ep = Episode{}
	}
	for i := range d.Signals {
		s := &d.Signals[i]
		newChecks := newP.detectors[s.Kind].Checks()
		for c, ck := range oldP.detectors[s.Kind].Checks() {
			if !s.Episodes[c].Active() {
				continue
			}
			runs := false
			for _, nc := range newChecks {
				if nc.Detector == ck.Detector && !nc.Rule.Off {
					runs = true
				}
			}
			if !runs {
				retire(&s.Episodes[c], ck.Kind, ck.Detector, s.Name, oldP.params.Fold)
				if int(s.Lead) == c+1 {
					s.Lead = 0
				}
			}
		}
	}
	if newP.cycles == nil || newP.cycles.rhythm.Rule.Off {
		for i := range d.Signals {
			if cs := d.cycleOf(&d.Signals[i]); cs != nil && cs.rhythm() != nil && cs.rhythm().Active() {
				retire(cs.rhythm(), "rhythm", "signal.rhythm", d.Signals[i].Name, false)
			}
		}
	}
	if newP.relations == nil && d.Extra != nil && d.Extra.Relation != nil {
		rs := d.Extra.Relation
		open := Episode{State: FiringState, Severity: rs.Level, Started: rs.Open}
		if rs.Open == 0 {
			open.State = Inactive
		}
		retire(&open, RelationKind, RelationKind, "", false)
		for i := range d.Signals { // the checks that joined it resolved with it
			for c := range d.Signals[i].Episodes {
				if ep := &d.Signals[i].Episodes[c]; ep.Joined {
					*ep = Episode{}
				}
			}
		}
	}
	if !newP.traffic.cfg.Enabled {
		for k := range d.Traffic.Episodes {
			if d.Traffic.Episodes[k].Active() {
				retire(&d.Traffic.Episodes[k], trafficKinds[k], trafficKinds[k], "", false)
			}
		}
	}
	return out
}

// Reconfigure gives the fleet judge a new configuration, keeping its
// window and episode.
func (f *Fleet) Reconfigure(set *Set) *Fleet {
	nf := set.NewFleet()
	if nf == nil || f == nil {
		return nf
	}
	nf.RestoreState(f.AppendState(nil))
	return nf
}
