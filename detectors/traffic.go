package detectors

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"path"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

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

// TrafficConfig configures the traffic detectors of a device class: how a
// device talks (interval, rate, topics, fields, payload size, clock) is
// learned per device, and departures from it are flagged. Durations are of
// stream time (arrival time live, the stream clock in replay).
type TrafficConfig struct {
	// Enabled switches the traffic detectors of the class on or off.
	Enabled bool `yaml:"enabled"`
	// Warmup is the number of messages a device's traffic profile learns
	// from before the learned checks (flood, silence, learned topics,
	// replay, clock, schema) fire. Rogue devices and topic-pattern
	// mismatches are flagged from the first message.
	Warmup int `yaml:"warmup"`
	// RelearnAfter: after this many consecutive messages kept from teaching
	// (because they were anomalous), the device's traffic profile is learned
	// again from scratch, so a lasting change alerts first and then becomes
	// the new normal. 0: never.
	RelearnAfter int `yaml:"relearn_after"`

	Flood    FloodConfig    `yaml:"flood"`
	Silence  SilenceConfig  `yaml:"silence"`
	Rogue    RogueConfig    `yaml:"rogue"`
	Identity IdentityConfig `yaml:"identity"`
	Replay   ReplayConfig   `yaml:"replay"`
	Clock    ClockConfig    `yaml:"clock"`
	Schema   SchemaConfig   `yaml:"schema"`
}

// FloodConfig flags a burst: the message rate over a short window above
// Factor times the device's learned rate. The rate is an exponentially
// weighted count with time constant Window, or Intervals learned intervals
// when that is longer (so slow devices are judged on enough messages).
type FloodConfig struct {
	Factor    float64       `yaml:"factor"`
	Window    time.Duration `yaml:"window"`
	Intervals float64       `yaml:"intervals"`
	Rule      `yaml:",inline"`
}

// SilenceConfig flags a device that sent nothing for Intervals learned
// intervals, and at least MinGap. It is judged on the stream clock (a timer
// live), and resolves when the device is heard again.
type SilenceConfig struct {
	Intervals float64       `yaml:"intervals"`
	MinGap    time.Duration `yaml:"min_gap"`
	Rule      `yaml:",inline"`
}

// RogueConfig flags a node_id first seen more than Learning after the
// stream started (0: never), or, when Allow lists patterns (path.Match, like
// device classes), one that matches none of them. A new device's alert
// resolves once its traffic profile is learned; a device off the allow-list
// stays flagged.
type RogueConfig struct {
	Learning time.Duration `yaml:"learning"`
	Allow    []string      `yaml:"allow,omitempty"`
	Rule     `yaml:",inline"`
}

// IdentityConfig flags signs that a node_id is used by someone else: a topic
// the device never used during its warm-up; a topic whose device level
// (TopicPattern, e.g. "plant/+/{device}/telemetry"; "" disables) names
// another device; timestamps that jump back and forth (Alternations of the
// last 7 successive pairs of messages switching between in order and behind);
// or, for Persist messages, a rate between RateLow and RateHigh times the
// learned rate (two streams sending at the device's pace).
type IdentityConfig struct {
	TopicPattern string  `yaml:"topic_pattern"`
	Alternations int     `yaml:"alternations"`
	RateLow      float64 `yaml:"rate_low"`
	RateHigh     float64 `yaml:"rate_high"`
	Persist      int     `yaml:"persist"`
	Rule         `yaml:",inline"`
}

// ReplayConfig flags a message whose timestamp is behind the device's
// latest by more than Tolerance, or Intervals learned intervals when that is
// longer (reordering and buffered sends stay within it), and a payload
// identical to one of the device's last four.
type ReplayConfig struct {
	Tolerance time.Duration `yaml:"tolerance"`
	Intervals float64       `yaml:"intervals"`
	Rule      `yaml:",inline"`
}

// ClockConfig flags a device whose timestamps are further than Tolerance from
// arrival time compared with the offset it learned.
type ClockConfig struct {
	Tolerance time.Duration `yaml:"tolerance"`
	Rule      `yaml:",inline"`
}

// SchemaConfig flags payloads whose fields differ from the learned set, whose
// size is more than SizeRatio times the largest (or less than the smallest
// divided by it) learned, and a fraction of rejected payloads among the
// device's recent ones (exponentially weighted over about 16) above
// Malformed.
type SchemaConfig struct {
	SizeRatio float64 `yaml:"size_ratio"`
	Malformed float64 `yaml:"malformed"`
	Rule      `yaml:",inline"`
}

// DefaultTraffic returns the documented defaults.
func DefaultTraffic() TrafficConfig {
	return TrafficConfig{
		Enabled:      true,
		Warmup:       50,
		RelearnAfter: 3000,
		Flood:        FloodConfig{Factor: 5, Window: 10 * time.Second, Intervals: 10, Rule: Rule{Hold: 3, Clear: 3}},
		Silence:      SilenceConfig{Intervals: 5, MinGap: 2 * time.Second, Rule: Rule{Hold: 1, Clear: 1}},
		Rogue:        RogueConfig{Learning: 10 * time.Minute, Rule: Rule{Hold: 3, Clear: 1}},
		Identity:     IdentityConfig{Alternations: 5, RateLow: 1.6, RateHigh: 2.6, Persist: 30, Rule: Rule{Hold: 1, Clear: 5}},
		Replay:       ReplayConfig{Tolerance: 10 * time.Second, Intervals: 20, Rule: Rule{Hold: 2, Clear: 3}},
		Clock:        ClockConfig{Tolerance: 5 * time.Second, Rule: Rule{Hold: 3, Clear: 3}},
		Schema:       SchemaConfig{SizeRatio: 2, Malformed: 0.2, Rule: Rule{Hold: 1, Clear: 3}},
	}
}

// Validate checks the configuration; errors name the offending key.
func (c *TrafficConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Warmup < 2 || c.Warmup > math.MaxUint16 {
		bad("warmup must be between 2 and %d messages, got %d", math.MaxUint16, c.Warmup)
	}
	if c.RelearnAfter < 0 || c.RelearnAfter > math.MaxUint16 {
		bad("relearn_after must be between 0 and %d messages, got %d", math.MaxUint16, c.RelearnAfter)
	}
	rule := func(name string, r Rule) {
		if err := r.Validate(); err != nil {
			bad("%s: %w", name, err)
		}
	}
	if !(c.Flood.Factor > 1) || c.Flood.Window <= 0 || !(c.Flood.Intervals >= 1) {
		bad("flood: need factor > 1, window > 0 and intervals >= 1, got %v, %v and %v", c.Flood.Factor, c.Flood.Window, c.Flood.Intervals)
	}
	rule("flood", c.Flood.Rule)
	if !(c.Silence.Intervals > 1) || c.Silence.MinGap < 0 {
		bad("silence: need intervals > 1 and min_gap >= 0, got %v and %v", c.Silence.Intervals, c.Silence.MinGap)
	}
	rule("silence", c.Silence.Rule)
	if c.Rogue.Learning < 0 {
		bad("rogue: learning must not be negative, got %v", c.Rogue.Learning)
	}
	for _, pat := range c.Rogue.Allow {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			bad("rogue: allow: bad device pattern %q", pat)
		}
	}
	rule("rogue", c.Rogue.Rule)
	if c.Identity.TopicPattern != "" {
		if _, _, err := compileTopicPattern(c.Identity.TopicPattern); err != nil {
			bad("identity: topic_pattern %q: %w", c.Identity.TopicPattern, err)
		}
	}
	if c.Identity.Alternations < 1 || c.Identity.Alternations > 7 {
		bad("identity: alternations must be between 1 and 7, got %d", c.Identity.Alternations)
	}
	if !(c.Identity.RateLow > 1 && c.Identity.RateHigh > c.Identity.RateLow) || c.Identity.Persist < 1 || c.Identity.Persist > math.MaxUint8 {
		bad("identity: need 1 < rate_low < rate_high and persist between 1 and 255, got %v, %v and %d",
			c.Identity.RateLow, c.Identity.RateHigh, c.Identity.Persist)
	}
	rule("identity", c.Identity.Rule)
	if c.Replay.Tolerance <= 0 || !(c.Replay.Intervals >= 0) {
		bad("replay: need tolerance > 0 and intervals >= 0, got %v and %v", c.Replay.Tolerance, c.Replay.Intervals)
	}
	rule("replay", c.Replay.Rule)
	if c.Clock.Tolerance <= 0 {
		bad("clock: tolerance must be positive, got %v", c.Clock.Tolerance)
	}
	rule("clock", c.Clock.Rule)
	if !(c.Schema.SizeRatio > 1) || !(c.Schema.Malformed > 0 && c.Schema.Malformed <= 1) {
		bad("schema: need size_ratio > 1 and malformed in (0, 1], got %v and %v", c.Schema.SizeRatio, c.Schema.Malformed)
	}
	rule("schema", c.Schema.Rule)
	return errors.Join(errs...)
}

// compileTopicPattern turns "plant/+/{device}/telemetry" into the MQTT filter
// "plant/+/+/telemetry" and the index of the device level.
func compileTopicPattern(p string) (filter string, level int, err error) {
	levels := strings.Split(p, "/")
	level = -1
	for i, l := range levels {
		if l == "{device}" {
			if level >= 0 {
				return "", 0, errors.New("{device} must appear once")
			}
			level = i
			levels[i] = "+"
		} else if strings.Contains(l, "{device}") {
			return "", 0, errors.New("{device} must be a whole level")
		}
	}
	if level < 0 {
		return "", 0, errors.New("it must contain a {device} level")
	}
	filter = strings.Join(levels, "/")
	if err := validFilter(filter); err != nil {
		return "", 0, err
	}
	if strings.Contains(filter, "#") && strings.Index(filter, "#") < strings.Index(filter, "+") {
		return "", 0, errors.New("{device} must come before #")
	}
	return filter, level, nil
}

// trafficProfile is the compiled traffic configuration of a class.
type trafficProfile struct {
	cfg        TrafficConfig
	checks     [numTraffic]Check
	window     float64 // flood window, s
	minGap     float64 // silence floor, s
	replayTol  float64 // s
	clockTol   float64 // s
	learning   int64   // rogue learning period, ns
	filter     string  // topic pattern as an MQTT filter, "" when none
	level      int     // its device level
	hysteresis float64
	learnBelow float64
	// relevant is the lowest score that matters: below it a verdict neither
	// keeps a message from teaching nor keeps an episode firing.
	relevant float64
	// Reciprocals, so the hot path multiplies.
	invFactor, invClockTol, invMalformed, invSizeRatio float64
}

func compileTraffic(p *Params) trafficProfile {
	c := p.Traffic
	tp := trafficProfile{
		cfg:        c,
		window:     c.Flood.Window.Seconds(),
		minGap:     c.Silence.MinGap.Seconds(),
		replayTol:  c.Replay.Tolerance.Seconds(),
		clockTol:   c.Clock.Tolerance.Seconds(),
		learning:   int64(c.Rogue.Learning),
		level:      -1,
		hysteresis: p.Hysteresis,
		learnBelow: p.LearnBelow,

		relevant:     min(p.Hysteresis, p.LearnBelow),
		invFactor:    1 / c.Flood.Factor,
		invClockTol:  1 / c.Clock.Tolerance.Seconds(),
		invMalformed: 1 / c.Schema.Malformed / 65536,
		invSizeRatio: 1 / c.Schema.SizeRatio,
	}
	if c.Identity.TopicPattern != "" {
		tp.filter, tp.level, _ = compileTopicPattern(c.Identity.TopicPattern) // validated
	}
	rules := [numTraffic]Rule{c.Flood.Rule, c.Silence.Rule, c.Rogue.Rule, c.Identity.Rule, c.Replay.Rule, c.Clock.Rule, c.Schema.Rule}
	for k := range tp.checks {
		tp.checks[k] = Check{Detector: trafficKinds[k], Kind: trafficKinds[k], Rule: rules[k], Warm: k != trRogue}
	}
	return tp
}

// silence returns the silence threshold of a device, in seconds.
func (tp *trafficProfile) silence(ts *TrafficState) float64 {
	return max(tp.cfg.Silence.Intervals*float64(ts.Interval), tp.minGap)
}

// TrafficState is what Vigil learns about how one device talks, and one
// alert episode per traffic reason. Plain data, compact: it is kept for every
// device (see TestDeviceSize).
type TrafficState struct {
	Episodes [numTraffic]Episode
	// LastArrival is the arrival time of the last message (Unix ns), MaxTime
	// the latest event time the device has sent.
	LastArrival, MaxTime int64
	// Hashes are the low 32 bits of the hashes of the last four payloads.
	Hashes [4]uint32
	// Interval is the learned typical time between messages (s, a winsorized
	// EW mean of arrival intervals); Rate the EW message rate over the flood
	// window (1/s); Offset the learned event time minus arrival time (s).
	Interval, Rate, Offset float32
	// FieldsAny and FieldsAll are the fields seen in any, and in every,
	// learned message: bit i for the device's signal i (i < 31), bit 31 for
	// the status flag.
	FieldsAny, FieldsAll uint32
	// SizeLo and SizeHi are the learned range of payload sizes (bytes,
	// saturating at 65535).
	SizeLo, SizeHi uint16
	// Topics are 16-bit hashes of the topics learned during warm-up.
	Topics [2]uint16
	// N counts the messages learned; Gated the consecutive messages kept
	// from learning.
	N, Gated uint16
	// Malformed is the EW fraction of rejected payloads, in 1/65536.
	Malformed uint16
	// ClockRate is log2 of the learned rate of the device's clock against
	// arrival time, in 1/1024 (0: in step; a simulator running plant time
	// 20× faster: about 4424), so Offset is extrapolated between messages.
	ClockRate int16
	// Order records, in bit i, whether the i-th last message was behind the
	// device's latest timestamp.
	Order uint8
	// Doubled counts consecutive messages at about twice the learned rate.
	Doubled uint8
	Flags   TrafficFlags
}

// TrafficFlags are the flags of a TrafficState.
type TrafficFlags uint16

// Traffic flags. The top two bits hold the position of the next payload hash.
const (
	TrafficRogue      TrafficFlags = 1 << iota // first seen after the learning period
	TrafficDenied                              // not on the class's allow-list
	TrafficManyTopics                          // more topics than learned slots: topic check off
	TrafficNoDup                               // repeats payloads normally: duplicate check off
	TrafficDupSeen                             // one duplicate seen during warm-up
	TrafficForeign                             // the current topic was not learned
	TrafficMismatch                            // the current topic names another device
	TrafficQueued                              // in the engine's silence queue
	TrafficGone                                // evicted from the engine

	trafficHashShift = 14
)

// warm reports whether the traffic profile has learned from warmup messages.
func (ts *TrafficState) warm(warmup int) bool { return int(ts.N) >= warmup }

// fastArrival: after warm-up, an interval shorter than this fraction of the
// learned one does not teach it. With ±20 % timing jitter on each message,
// about 3 % of normal intervals fall below it.
const fastArrival = 0.7

// clockInStep: a learned clock rate within 2^±0.1 (±7 %) of arrival time is
// taken as exactly in step, so noise in its estimate is not extrapolated over
// long gaps; the offset's own learning follows slow drift.
const clockInStep = 102

// learnClockRate moves the log2 clock rate lr (in 1/1024) towards the
// observed rate q (event-time progress over arrival-time progress) with gain
// g: during warm-up a running mean, then by at most one octave per message.
func learnClockRate(lr int16, q, g float64, warm bool) int16 {
	var lq float64
	if q > 0.95 && q < 1.05 {
		lq = (q - 1) * (1024 / math.Ln2) // log2 near 1, without the call
	} else {
		lq = math.Log2(max(q, 1e-9)) * 1024
	}
	cur := float64(lr)
	if warm {
		lq = min(max(lq, cur-1024), cur+1024)
	}
	return int16(min(max(math.Round(cur+g*(lq-cur)), math.MinInt16), math.MaxInt16))
}

// statusField is the field bit of the status flag.
const statusField = 1 << 31

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
	if !first {
		dt = max(float64(arr-ts.LastArrival)*1e-9, 0)
		iw := 1 / w
		ts.Rate = float32(float64(ts.Rate)*expNeg(dt*iw) + iw)
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
		switch {
		case dt <= 0 || gap:
		case interval == 0:
			ts.Interval, ts.Rate = float32(dt), float32(1/dt)
		case !warm:
			ts.Interval = float32(interval + g*(min(max(dt, interval/2), 2*interval)-interval))
		case dt >= fastArrival*interval:
			// Once learned, a message arriving much sooner than usual does
			// not teach: the first messages of a burst or of a second
			// stream would otherwise pull the interval down before their
			// rate is judged anomalous. A real speed-up is learned when
			// relearn_after anomalous messages restart the profile.
			ts.Interval = float32(interval + g*(min(dt, 2*interval)-interval))
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
				if dt > 0 && r.Time > ts.MaxTime && (!warm || dt >= fastArrival*interval) {
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

// quietEntry is a device in the silence queue: a min-heap by due, the
// earliest stream time at which the device can have been silent too long. Due
// times are lower bounds (a device that sent since is re-queued when popped),
// so a message costs no heap operation.
type quietEntry struct {
	due int64
	d   *Device
}

func (e *Engine) queue(d *Device, due int64) {
	d.Traffic.Flags |= TrafficQueued
	e.quiet = append(e.quiet, quietEntry{due: due, d: d})
	h := e.quiet
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].due <= h[i].due {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (e *Engine) dequeue() *Device {
	h := e.quiet
	d := h[0].d
	n := len(h) - 1
	h[0] = h[n]
	h[n] = quietEntry{}
	h = h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1].due < h[c].due {
			c++
		}
		if h[i].due <= h[c].due {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	e.quiet = h
	d.Traffic.Flags &^= TrafficQueued
	return d
}

// Tick implements pipeline.Ticker: it flags devices that have been silent
// for longer than their silence threshold at stream time clock. Live it runs
// on a timer although no message arrives; in replay the stream's own clock
// makes the same decisions. The first start it is given is the stream start
// that the rogue learning period is measured from. Alerts are appended in
// device order.
func (e *Engine) Tick(start, clock int64, out []pipeline.Alert) []pipeline.Alert {
	if e.start == 0 {
		e.start = start
	}
	n := len(out)
	for len(e.quiet) > 0 && e.quiet[0].due <= clock {
		d := e.dequeue()
		ts := &d.Traffic
		tp := &e.set.profiles[d.profile].traffic
		if ts.Flags&TrafficGone != 0 || !tp.cfg.Enabled || !ts.warm(tp.cfg.Warmup) {
			continue
		}
		thr := tp.silence(ts)
		due := ts.LastArrival + int64(thr*1e9)
		if due > clock {
			e.queue(d, due)
			continue
		}
		gap := float64(clock-ts.LastArrival) / 1e9
		v := Verdict{Score: gap / thr, Severity: pipeline.Warning, Stat: gap, Threshold: thr}
		if v.Score >= 10 {
			v.Severity = pipeline.Critical
		}
		ep := &ts.Episodes[trSilence]
		if tr, esc := ep.stepEsc(v, clock, tp.checks[trSilence].Rule, tp.hysteresis); tr != 0 {
			a := e.trafficAlert(d, tp, trSilence, v, trafficWhy{}, tr, clock, 0, d.Topic)
			a.Escalation = esc
			out = append(out, a)
		}
		if ep.State != FiringState || ep.Severity < pipeline.Critical {
			// Look again while the device is silent, for the hold and to
			// escalate at 10× the threshold. clock + thr stays a lower
			// bound of the device's deadline should it send again.
			e.queue(d, clock+int64(thr*1e9))
		}
	}
	if len(out)-n > 1 {
		sortByDevice(out[n:])
	}
	return out
}

// sortByDevice sorts alerts by device (insertion sort: a tick rarely has
// more than a few).
func sortByDevice(as []pipeline.Alert) {
	for i := 1; i < len(as); i++ {
		for j := i; j > 0 && as[j].Device < as[j-1].Device; j-- {
			as[j], as[j-1] = as[j-1], as[j]
		}
	}
}

// NewDevices implements pipeline.Newcomer: the devices seen for the first
// time since the last call.
func (e *Engine) NewDevices() int {
	n := e.newDevices
	e.newDevices = 0
	return n
}

// trafficAlert builds the alert of a traffic transition.
func (e *Engine) trafficAlert(d *Device, tp *trafficProfile, k int, v Verdict, why trafficWhy, tr pipeline.AlertState, t int64, seq uint64, topic string) pipeline.Alert {
	ep := &d.Traffic.Episodes[k]
	ts := &d.Traffic
	if topic == "" {
		topic = d.Topic
	}
	a := pipeline.Alert{
		ID:        episodeID(d.Name, trafficKinds[k], "", ep.Started),
		Seq:       seq,
		Time:      t,
		Started:   ep.Started,
		Device:    d.Name,
		Topic:     topic,
		Kind:      trafficKinds[k],
		Detector:  trafficKinds[k],
		Severity:  ep.Severity,
		State:     tr,
		Value:     v.Stat,
		Threshold: v.Threshold,
		Observed:  v.Stat,
		Score:     v.Score,
	}
	// The signal and unit are fixed per reason, so every record of an
	// episode has the same; what exactly was seen is in the message.
	a.Signal, a.Unit = trafficSignals[k][0], trafficSignals[k][1]
	switch iv := float64(ts.Interval); k {
	case trFlood:
		if iv > 0 {
			a.Mean = 1 / iv
		}
	case trSilence:
		a.Mean = iv
	case trRogue:
		a.Observed = float64(ts.N)
	case trClock:
		a.Mean = float64(ts.Offset)
	}
	if tr == pipeline.Firing {
		a.Message = describeTraffic(d, tp, k, &a, why)
	} else {
		a.Message = describeTrafficResolved(d, k, &a)
	}
	return a
}

// secs formats a number of seconds for messages.
func secs(s float64) string {
	switch a := math.Abs(s); {
	case a < 0.9995:
		return fmt.Sprintf("%.0f ms", s*1000)
	case a < 10:
		return fmt.Sprintf("%.1f s", s)
	case a < 120:
		return fmt.Sprintf("%.0f s", s)
	case a < 7200:
		return fmt.Sprintf("%.1f min", s/60)
	}
	return fmt.Sprintf("%.1f h", s/3600)
}

func stamp(ns float64) string {
	return time.Unix(0, int64(ns)).UTC().Format("2006-01-02T15:04:05.000Z")
}

// fieldNames lists the names of the fields in mask.
func fieldNames(d *Device, mask uint32) string {
	var names []string
	for i := range min(len(d.Signals), 31) {
		if mask&(1<<i) != 0 {
			names = append(names, d.Signals[i].Name)
		}
	}
	if mask&statusField != 0 {
		names = append(names, "status")
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func describeTraffic(d *Device, tp *trafficProfile, k int, a *pipeline.Alert, why trafficWhy) string {
	ts := &d.Traffic
	c := &tp.cfg
	iv := secs(float64(ts.Interval))
	switch k {
	case trFlood:
		return fmt.Sprintf("%s sent about %.0f messages in the last %s (%s messages/s); it normally sends one every %s (flood threshold %s× its rate).",
			d.Name, why.x, secs(why.y), num(a.Value), iv, num(c.Flood.Factor))
	case trSilence:
		return fmt.Sprintf("%s has sent nothing for %s; it normally sends one every %s (silence threshold %s).",
			d.Name, secs(a.Value), iv, secs(a.Threshold))
	case trRogue:
		if why.code == whyDenied {
			return fmt.Sprintf("%s is not on the allow-list of its class (%s).", d.Name, strings.Join(c.Rogue.Allow, ", "))
		}
		return fmt.Sprintf("%s is a device never seen before: it appeared %s after the stream started, after the learning period of %s.",
			d.Name, secs(why.x/1e9), secs(c.Rogue.Learning.Seconds()))
	case trIdentity:
		switch why.code {
		case whyMismatch:
			dev, _ := tp.topicDevice(a.Topic)
			return fmt.Sprintf("%s published on %s, a topic of device %q (topic pattern %s).", d.Name, a.Topic, dev, c.Identity.TopicPattern)
		case whyForeign:
			return fmt.Sprintf("%s published on %s, a topic it never used while it was learned.", d.Name, a.Topic)
		case whyAlternate:
			return fmt.Sprintf("%s's timestamps jump back and forth (%s switches in its last 8 messages, now %s behind its latest): two streams seem to share this node_id.",
				d.Name, num(a.Value), secs(why.x))
		case whyDouble:
			return fmt.Sprintf("%s has been sending %s messages/s, %s× its rate of one every %s, for %.0f messages: two streams may share this node_id.",
				d.Name, num(why.x), num(a.Value), iv, why.y)
		}
	case trReplay:
		if why.code == whyDuplicate {
			return fmt.Sprintf("%s sent a payload identical to one of its last 4 (stamped %s): a replayed message.", d.Name, stamp(why.x))
		}
		return fmt.Sprintf("%s sent a message stamped %s, %s behind its latest timestamp %s (tolerance %s): old messages replayed?",
			d.Name, stamp(why.x), secs(a.Value), stamp(why.y), secs(a.Threshold))
	case trClock:
		return fmt.Sprintf("%s's clock is %s off arrival time; it is normally %s off (tolerance %s).",
			d.Name, secs(a.Value), secs(a.Mean), secs(c.Clock.Tolerance.Seconds()))
	case trSchema:
		switch why.code {
		case whyFields:
			var parts []string
			if why.bits != 0 {
				parts = append(parts, fieldNames(d, why.bits)+" appeared")
			}
			if g := uint32(why.x); g != 0 {
				parts = append(parts, fieldNames(d, g)+" disappeared")
			}
			return fmt.Sprintf("%s's fields changed: %s (learned: %s).", d.Name, strings.Join(parts, "; "), fieldNames(d, ts.FieldsAny))
		case whySize:
			return fmt.Sprintf("%s sent a %.0f-byte payload; its payloads are normally %.0f–%.0f bytes (threshold %s× outside).",
				d.Name, a.Value, why.x, why.y, num(c.Schema.SizeRatio))
		case whyMalformed:
			last := ""
			if why.x != 0 {
				last = fmt.Sprintf(" (last: %s)", pipeline.Reason(why.x))
			}
			return fmt.Sprintf("%.0f%% of %s's recent payloads were rejected%s; the threshold is %.0f%%.",
				100*a.Value, d.Name, last, 100*c.Schema.Malformed)
		}
	}
	return fmt.Sprintf("%s: %s.", a.Detector, d.Name)
}

func describeTrafficResolved(d *Device, k int, a *pipeline.Alert) string {
	switch k {
	case trSilence:
		return fmt.Sprintf("traffic.silence resolved: %s is sending again.", d.Name)
	case trRogue:
		return fmt.Sprintf("traffic.rogue resolved: %s has been learned (%d messages).", d.Name, d.Traffic.N)
	case trFlood:
		return fmt.Sprintf("traffic.flood resolved: %s is back to %s messages/s.", d.Name, num(float64(d.Traffic.Rate)))
	}
	return fmt.Sprintf("%s resolved: %s's traffic is back to its learned profile.", a.Detector, d.Name)
}
