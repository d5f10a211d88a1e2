package detectors

import (
	"math"
	"math/bits"
	"path"
	"strings"

	"github.com/vigil-iot/vigil/pipeline"
)

// The traffic detectors judge how a device talks. They are split by
// concern: judging each message and rejected frame (this file), their
// configuration and compiled profile (traffic_config.go), what is learned
// per device (traffic_state.go), silence and the other timer-driven checks
// (traffic_silence.go), and alert texts (traffic_describe.go).

// The Engine is what the pipeline ticks, tells about rejected frames and asks
// for new devices; Fleet.Judge is a pipeline.FleetFunc.
var (
	_ pipeline.Ticker    = (*Engine)(nil)
	_ pipeline.Rejecter  = (*Engine)(nil)
	_ pipeline.Newcomer  = (*Engine)(nil)
	_ pipeline.Evictor   = (*Engine)(nil)
	_ pipeline.FleetFunc = (*Fleet)(nil).Judge
)

// Traffic reasons: each is an alert kind "traffic.<reason>" with its own
// Episode per device.
const (
	trFlood = iota
	trSilence
	trRogue
	trIdentity
	trReplay
	trClock
	trSchema
	numTraffic
)

// trafficSignals are the signal and unit of each reason's alerts.
var trafficSignals = [numTraffic][2]string{
	{"rate", "msg/s"}, {"interval", "s"}, {"node_id", ""}, {"node_id", ""},
	{"timestamp", "s"}, {"clock_offset", "s"}, {"payload", ""},
}

var trafficKinds = [numTraffic]string{
	"traffic.flood", "traffic.silence", "traffic.rogue", "traffic.identity",
	"traffic.replay", "traffic.clock", "traffic.schema",
}

// trafficWhy records what a traffic verdict was about, for the message.
type trafficWhy struct {
	code int8
	x, y float64
	bits uint32
}

// Causes of identity, replay and schema verdicts.
const (
	whyNone int8 = iota
	whyForeign
	whyMismatch
	whyAlternate
	whyDouble
	whyBehind
	whyDuplicate
	whyFields
	whySize
	whyMalformed
	whyDenied
	whyNew
)

// expNeg returns e^-x for x >= 0. Messages come much more often than the
// flood window, so x is small and a Taylor polynomial (relative error below
// 3e-5 for x < 0.25) serves without a division or a call to math.Exp.
func expNeg(x float64) float64 {
	if x < 0.25 {
		return 1 - x*(1-x*(0.5-x*(1.0/6-x*(1.0/24))))
	}
	return math.Exp(-x)
}

// topicHash is a 16-bit FNV-1a hash of a topic, never 0 (0 is an empty slot).
func topicHash(s string) uint16 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	h16 := uint16(h ^ h>>16)
	if h16 == 0 {
		h16 = 1
	}
	return h16
}

// topicDevice returns the device level of topic under the class's topic
// pattern, and false when the pattern does not apply to topic.
func (tp *trafficProfile) topicDevice(topic string) (string, bool) {
	if tp.filter == "" || !topicMatch(tp.filter, topic) {
		return "", false
	}
	rest := topic
	for range tp.level {
		_, rest, _ = strings.Cut(rest, "/")
	}
	lvl, _, _ := strings.Cut(rest, "/")
	return lvl, true
}

// judgeTraffic judges one reading's traffic, learns from it and appends the
// alert transitions. mask holds the fields the reading carried; prevTopic is
// the device's topic before this reading.
func (e *Engine) judgeTraffic(d *Device, tp *trafficProfile, r *pipeline.Reading, mask uint32, prevTopic string, isNew bool, out []pipeline.Alert) []pipeline.Alert {
	c := &tp.cfg
	ts := &d.Traffic
	arr := r.Arrival
	if arr == 0 {
		arr = r.Time // the engine used without a pipeline
	}
	if isNew {
		if e.start != 0 && c.Rogue.Learning > 0 && arr-e.start >= tp.learning {
			ts.Flags |= TrafficRogue
		}
		if len(c.Rogue.Allow) > 0 && !allowed(c.Rogue.Allow, d.Name) {
			ts.Flags |= TrafficDenied
		}
	}
	warm := ts.warm(c.Warmup)
	var (
		vs  [numTraffic]Verdict
		why [numTraffic]trafficWhy
	)

	// Interval and rate, on arrival time.
	first := ts.LastArrival == 0
	interval := float64(ts.Interval)
	var dt float64
	w := tp.window
	if interval > 0 {
		w = max(w, c.Flood.Intervals*interval)
	}
	// Messages a busy broker delivers together arrive within microseconds
	// of each other: they are one burst, and the gap before the next burst
	// is shared by its messages (members), so the interval learned is the
	// time per message whether they come one by one or in bursts.
	members, gapped := 1.0, false
	if !first {
		dt = max(float64(arr-ts.LastArrival)*1e-9, 0)
		iw := 1 / w
		ts.Rate = float32(float64(ts.Rate)*expNeg(dt*iw) + iw)
		if dt < burstGap {
			ts.Burst = min(ts.Burst+1, math.MaxUint16)
		} else {
			members, gapped = float64(ts.Burst)+1, true
			ts.Burst = 0
		}
	}
	ratio := float64(ts.Rate) * interval
	gap := false
	thr := tp.silence(ts)
	if warm && interval > 0 {
		gap = dt > thr
		if score := ratio * tp.invFactor; score >= tp.relevant {
			sev := pipeline.Warning
			if score >= 2 {
				sev = pipeline.Critical
			}
			vs[trFlood] = Verdict{Score: score, Severity: sev, Stat: float64(ts.Rate), Threshold: c.Flood.Factor / interval}
			why[trFlood].x, why[trFlood].y = float64(ts.Rate)*w, w
		}
		if ratio >= c.Identity.RateLow && ratio <= c.Identity.RateHigh {
			ts.Doubled = uint8(min(int(ts.Doubled)+1, math.MaxUint8))
		} else {
			ts.Doubled = 0
		}
	}

	// Order of timestamps: behind the latest, and how often that switches.
	var lag float64 // s
	if !first {
		lag = float64(ts.MaxTime-r.Time) * 1e-9
	}
	behind := lag > 0
	ts.Order <<= 1
	if behind {
		ts.Order |= 1
	}

	// Identity: topics, alternation, doubled rate.
	topicChanged := r.Topic != "" && (isNew || r.Topic != prevTopic)
	var th uint16
	if topicChanged {
		ts.Flags &^= TrafficForeign | TrafficMismatch
		if dev, ok := tp.topicDevice(r.Topic); ok && dev != d.Name {
			ts.Flags |= TrafficMismatch
		}
		th = topicHash(r.Topic)
		if warm && ts.Flags&TrafficManyTopics == 0 && th != ts.Topics[0] && th != ts.Topics[1] {
			ts.Flags |= TrafficForeign
		}
	}
	iv := &vs[trIdentity]
	if ts.Flags&TrafficMismatch != 0 {
		*iv = Verdict{Score: 2, Severity: pipeline.Critical, Stat: 1, Threshold: 1}
		why[trIdentity] = trafficWhy{code: whyMismatch}
	} else if ts.Flags&TrafficForeign != 0 {
		*iv = Verdict{Score: 1.5, Severity: pipeline.Warning, Stat: 1, Threshold: 1}
		why[trIdentity] = trafficWhy{code: whyForeign}
	}
	if warm && ts.Order|ts.Doubled != 0 {
		alt := bits.OnesCount8((ts.Order ^ ts.Order>>1) & 0x7f)
		if s := float64(alt) / float64(c.Identity.Alternations); s > iv.Score {
			*iv = Verdict{Score: s, Severity: pipeline.Warning, Stat: float64(alt), Threshold: float64(c.Identity.Alternations)}
			why[trIdentity] = trafficWhy{code: whyAlternate, x: lag}
		}
		if s := float64(ts.Doubled) / float64(c.Identity.Persist); s > iv.Score {
			*iv = Verdict{Score: s, Severity: pipeline.Warning, Stat: ratio, Threshold: c.Identity.RateLow}
			why[trIdentity] = trafficWhy{code: whyDouble, x: float64(ts.Rate), y: float64(ts.Doubled)}
		}
	}

	// Replay: far behind, or a payload seen in the last four.
	h := uint32(r.Hash)
	if h == 0 && r.Hash != 0 {
		h = 1
	}
	dup := false
	if h != 0 && ts.Flags&TrafficNoDup == 0 {
		for _, x := range ts.Hashes {
			if x == h {
				dup = true
			}
		}
	}
	if warm {
		tol := max(tp.replayTol, c.Replay.Intervals*interval)
		if lag > tol {
			vs[trReplay] = Verdict{Score: lag / tol, Severity: pipeline.Warning, Stat: lag, Threshold: tol}
			why[trReplay] = trafficWhy{code: whyBehind, x: float64(r.Time), y: float64(ts.MaxTime)}
		}
		if dup {
			vs[trReplay] = Verdict{Score: max(2, vs[trReplay].Score), Severity: pipeline.Critical, Stat: max(lag, 0), Threshold: tol}
			why[trReplay] = trafficWhy{code: whyDuplicate, x: float64(r.Time)}
		}
	} else if dup {
		// A device that repeats payloads while it is learned does so normally.
		if ts.Flags&TrafficDupSeen != 0 {
			ts.Flags |= TrafficNoDup
		}
		ts.Flags |= TrafficDupSeen
	}
	pos := ts.Flags >> trafficHashShift
	ts.Hashes[pos] = h
	ts.Flags = ts.Flags&(1<<trafficHashShift-1) | (pos+1)&3<<trafficHashShift

	// Clock: only messages that advance the device's timeline say where its
	// clock is; the others are judged by order. The learned offset moves
	// with the learned clock rate since the last message.
	off := float64(r.Time-arr) * 1e-9
	pred := float64(ts.Offset)
	if lr := ts.ClockRate; dt > 0 && (lr > clockInStep || lr < -clockInStep) {
		pred += (math.Exp2(float64(lr)/1024) - 1) * dt
	}
	if warm && !behind {
		dev := off - pred
		vs[trClock] = Verdict{Score: math.Abs(dev) * tp.invClockTol, Severity: pipeline.Warning, Stat: off, Threshold: pred + math.Copysign(tp.clockTol, dev)}
	}

	// Schema: fields, size, malformed payloads.
	ts.Malformed -= ts.Malformed >> 4
	size := min(max(r.Size, 0), math.MaxUint16)
	if warm {
		sv := &vs[trSchema]
		if appeared, gone := mask&^ts.FieldsAny, ts.FieldsAll&^mask; appeared|gone != 0 {
			*sv = Verdict{Score: 1, Severity: pipeline.Warning, Stat: float64(bits.OnesCount32(appeared) + bits.OnesCount32(gone)), Threshold: 1}
			why[trSchema] = trafficWhy{code: whyFields, bits: appeared, x: float64(gone)}
		}
		lo, hi, sz := float64(ts.SizeLo), float64(ts.SizeHi), float64(size)
		s := sz * tp.invSizeRatio / max(hi, 1)
		if sz < lo {
			s = lo * tp.invSizeRatio / max(sz, 1)
		}
		if s > sv.Score && s >= tp.relevant {
			*sv = Verdict{Score: s, Severity: pipeline.Warning, Stat: float64(r.Size), Threshold: c.Schema.SizeRatio * hi}
			if float64(size) < lo {
				sv.Threshold = lo / c.Schema.SizeRatio
			}
			why[trSchema] = trafficWhy{code: whySize, x: lo, y: hi}
		}
		if s := float64(ts.Malformed) * tp.invMalformed; s > sv.Score && s >= tp.relevant {
			*sv = Verdict{Score: s, Severity: pipeline.Warning, Stat: float64(ts.Malformed) / 65536, Threshold: c.Schema.Malformed}
			why[trSchema] = trafficWhy{code: whyMalformed}
		}
	}

	// Rogue: a new device until learned, or one off the allow-list.
	if ts.Flags&TrafficDenied != 0 {
		vs[trRogue] = Verdict{Score: 1, Severity: pipeline.Critical, Stat: 1, Threshold: 1}
		why[trRogue].code = whyDenied
	} else if ts.Flags&TrafficRogue != 0 {
		vs[trRogue] = Verdict{Score: 1, Severity: pipeline.Warning, Stat: 1, Threshold: 1}
		why[trRogue].code = whyNew
	}

	// The poisoning guard: a message teaches the profile only if no learned
	// check scores at learn_below, and it does not come at an elevated rate.
	learn := !warm || max(vs[trFlood].Score, vs[trIdentity].Score, vs[trReplay].Score, vs[trClock].Score, vs[trSchema].Score) < tp.learnBelow &&
		ratio < c.Identity.RateLow
	relearn := false
	if learn {
		ts.Gated = 0
	} else {
		ts.Gated++
		relearn = c.RelearnAfter > 0 && int(ts.Gated) >= c.RelearnAfter
	}
	if learn {
		g := 1 / float64(min(int(ts.N)+1, 32))
		per := dt / members
		switch {
		case !gapped || gap:
		case interval == 0:
			ts.Interval, ts.Rate = float32(per), float32(1/per)
		case !warm:
			ts.Interval = float32(interval + g*(min(max(per, interval/2), 2*interval)-interval))
		case per >= fastArrival*interval:
			// Once learned, a message arriving much sooner than usual does
			// not teach: the first messages of a burst or of a second
			// stream would otherwise pull the interval down before their
			// rate is judged anomalous. A real speed-up is learned when
			// relearn_after anomalous messages restart the profile.
			ts.Interval = float32(interval + g*(min(per, 2*interval)-interval))
		}
		if ts.N == 0 {
			ts.Offset = float32(off)
			ts.SizeLo, ts.SizeHi = uint16(size), uint16(size)
			ts.FieldsAny, ts.FieldsAll = mask, mask
		} else {
			ts.Offset = float32(pred)
			if !behind {
				if warm {
					q := tp.clockTol / 4
					ts.Offset = float32(pred + g*min(max(off-pred, -q), q))
				} else {
					// While the clock rate is still being learned, follow
					// the offset closely: a lag would outlast the warm-up.
					ts.Offset = float32(pred + max(g, 0.25)*(off-pred))
				}
				// The clock's rate against arrival only from messages
				// that arrive one by one: across a burst the arrival gap
				// covers several messages, the event time one.
				if gapped && members == 1 && r.Time > ts.MaxTime && (!warm || dt >= fastArrival*interval) {
					ts.ClockRate = learnClockRate(ts.ClockRate, float64(r.Time-ts.MaxTime)*1e-9/dt, g, warm)
				}
			}
			switch s := uint16(size); {
			case !warm:
				ts.SizeLo, ts.SizeHi = min(ts.SizeLo, s), max(ts.SizeHi, s)
			case s > ts.SizeHi:
				ts.SizeHi += (s - ts.SizeHi + 7) / 8
			case s < ts.SizeLo:
				ts.SizeLo -= (ts.SizeLo - s + 7) / 8
			}
			ts.FieldsAny |= mask
			ts.FieldsAll &= mask
		}
		if !warm && r.Topic != "" && (topicChanged || ts.N == 0) {
			if th == 0 {
				th = topicHash(r.Topic)
			}
			switch {
			case th == ts.Topics[0] || th == ts.Topics[1]:
			case ts.Topics[0] == 0:
				ts.Topics[0] = th
			case ts.Topics[1] == 0:
				ts.Topics[1] = th
			default:
				ts.Flags |= TrafficManyTopics
			}
		}
		if ts.N < math.MaxUint16 {
			ts.N++
		}
		if ts.warm(c.Warmup) {
			ts.Flags &^= TrafficRogue
		}
	}
	if !learn && ts.N > 0 {
		ts.Offset = float32(pred) // keep it at the last arrival
	}
	if r.Time > ts.MaxTime && (!warm || vs[trClock].Score < 1) {
		ts.MaxTime = r.Time
	}
	ts.LastArrival = arr

	for k := range ts.Episodes {
		ep := &ts.Episodes[k]
		if !ep.Active() && !vs[k].Anomalous() {
			continue
		}
		// Traffic is about when messages arrive: episodes are stepped by
		// arrival time (the stream clock in replay), which a replayed or
		// spoofed timestamp cannot move.
		if tr, esc := ep.stepEsc(vs[k], arr, tp.checks[k].Rule, tp.hysteresis); tr != 0 {
			if k == trRogue {
				why[k].x = float64(ep.Started - e.start)
			}
			a := e.trafficAlert(d, tp, k, vs[k], why[k], tr, arr, r.Seq, r.Topic)
			a.Escalation = esc
			out = append(out, a)
		}
	}
	if relearn {
		ts.restart(d.Topic)
	}
	if ts.Flags&TrafficQueued == 0 && ts.warm(c.Warmup) {
		e.queue(d, ts.LastArrival+int64(tp.silence(ts)*1e9))
	}
	return out
}

// restart forgets the learned profile (not the episodes, the order of
// timestamps or the recent payloads): the device is learned again.
func (ts *TrafficState) restart(topic string) {
	ts.N, ts.Gated, ts.Doubled = 0, 0, 0
	ts.Interval, ts.Offset, ts.ClockRate = 0, 0, 0
	ts.SizeLo, ts.SizeHi = 0, 0
	ts.FieldsAny, ts.FieldsAll = 0, 0
	ts.Topics = [2]uint16{}
	ts.Flags &^= TrafficManyTopics | TrafficForeign | TrafficNoDup | TrafficDupSeen
	if topic != "" {
		ts.Topics[0] = topicHash(topic)
	}
}

// allowed reports whether name matches one of the patterns.
func allowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Reject implements pipeline.Rejecter: a rejected payload of a known device
// counts towards its rate of malformed payloads (traffic.schema). Unknown
// devices are ignored, so malformed traffic cannot create state.
func (e *Engine) Reject(r *pipeline.Reading, reason pipeline.Reason, out []pipeline.Alert) []pipeline.Alert {
	d := e.devices[r.Device]
	if d == nil {
		return out
	}
	tp := &e.set.profiles[d.profile].traffic
	if !tp.cfg.Enabled {
		return out
	}
	e.touch(d)
	ts := &d.Traffic
	ts.Malformed = ts.Malformed - ts.Malformed>>4 + 4095
	var v Verdict
	if ts.warm(tp.cfg.Warmup) {
		frac := float64(ts.Malformed) / 65536
		v = Verdict{Score: frac / tp.cfg.Schema.Malformed, Severity: pipeline.Warning, Stat: frac, Threshold: tp.cfg.Schema.Malformed}
	}
	t := r.Arrival
	if t == 0 {
		t = r.Time
	}
	ep := &ts.Episodes[trSchema]
	if !ep.Active() && !v.Anomalous() {
		return out
	}
	if tr, esc := ep.stepEsc(v, t, tp.checks[trSchema].Rule, tp.hysteresis); tr != 0 {
		why := trafficWhy{code: whyMalformed, x: float64(reason)}
		a := e.trafficAlert(d, tp, trSchema, v, why, tr, t, r.Seq, d.Topic)
		a.Escalation = esc
		out = append(out, a)
	}
	return out
}
