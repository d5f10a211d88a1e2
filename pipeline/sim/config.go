package sim

import (
	"errors"
	"fmt"
	"time"
)

// MaxDevices bounds Config.Devices.
const MaxDevices = 1 << 20

// MinCycle is the shortest Config.Cycle: the longest injection (30 s) plus the
// margins that keep injections of consecutive cycles apart.
const MinCycle = 40 * time.Second

// Config describes a simulated fleet and run. Durations are used at millisecond
// resolution.
type Config struct {
	// Devices is the fleet size, 1 to MaxDevices.
	Devices int
	// Anomalous is how many devices get anomalies, 0 to Devices. They are
	// spread evenly over the fleet; the others stay clean.
	Anomalous int

	// Interval is the publishing period of every device: a whole number of
	// milliseconds from 1ms to 1s (the injected anomalies last seconds).
	Interval time.Duration
	// Cycle is the operating cycle; each anomalous device injects at most one
	// anomaly per cycle. At least MinCycle.
	Cycle time.Duration
	// LeadIn is the clean period at the start of the run, in which detectors
	// can learn the baseline. Cycles are counted from its end.
	LeadIn time.Duration
	// Duration is the length of the run; 0 makes the stream infinite.
	Duration time.Duration
	// Start is the event time at which the run starts (truncated to the
	// millisecond). It must not be zero: the generator never reads the clock.
	Start time.Time
	// Seed determines everything else.
	Seed uint64

	// InjectProb is the probability that a device injects its anomaly in a
	// cycle, 0 to 1.
	InjectProb float64
	// Drifts enables the slow drifts (cooling failure, mechanical wear) on two
	// anomalous devices.
	Drifts bool
	// Faults enables the status fault on one anomalous device.
	Faults bool

	// Topics makes WriteLog write "topic payload" lines instead of payloads.
	Topics bool

	// Traffic selects traffic scenarios (flood, silence, replay, spoof,
	// rogue), all off by default.
	Traffic Traffic

	// Cycles adds normal cycles to the signals (and a rhythm change), all
	// off by default.
	Cycles Cycles
	// Relation makes the signals follow a common load, and injects relation
	// breaks; off by default.
	Relation Relation
}

// DefaultConfig returns a 30-minute run of 12 devices, 8 of them anomalous,
// publishing every second from 2026-11-21T10:00:00Z, with a 10-minute lead-in
// and a 120-second cycle.
func DefaultConfig() Config {
	return Config{
		Devices:    12,
		Anomalous:  8,
		Interval:   time.Second,
		Cycle:      120 * time.Second,
		LeadIn:     10 * time.Minute,
		Duration:   30 * time.Minute,
		Start:      time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
		Seed:       1,
		InjectProb: 0.6,
		Drifts:     true,
		Faults:     true,
	}
}

// Validate reports every invalid field of c, each error naming the field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("sim: "+format, args...))
	}
	if c.Devices < 1 || c.Devices > MaxDevices {
		bad("Devices must be between 1 and %d, got %d", MaxDevices, c.Devices)
	}
	if c.Anomalous < 0 || c.Anomalous > max(c.Devices, 0) {
		bad("Anomalous must be between 0 and Devices (%d), got %d", c.Devices, c.Anomalous)
	}
	if c.Interval < time.Millisecond || c.Interval > time.Second || c.Interval%time.Millisecond != 0 {
		bad("Interval must be a whole number of milliseconds between 1ms and 1s, got %v", c.Interval)
	}
	if c.Cycle < MinCycle {
		bad("Cycle must be at least %v, got %v", MinCycle, c.Cycle)
	}
	if c.LeadIn < 0 {
		bad("LeadIn must not be negative, got %v", c.LeadIn)
	}
	if c.Duration < 0 {
		bad("Duration must not be negative (0 means infinite), got %v", c.Duration)
	}
	if c.Start.IsZero() {
		bad("Start must be set")
	}
	if !(c.InjectProb >= 0 && c.InjectProb <= 1) {
		bad("InjectProb must be between 0 and 1, got %v", c.InjectProb)
	}
	errs = append(errs, c.Cycles.validate(c.Devices), c.Relation.validate(c))
	return errors.Join(errs...)
}
