package detectors

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"time"
)

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
