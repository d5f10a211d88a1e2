package detectors

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// FleetConfig configures the judgement of the fleet as a whole: after the
// learning period, a burst of more than MaxNew device IDs never seen before
// within Window of stream time is flagged as identity spraying
// (traffic.spray). It resolves when the burst ends.
type FleetConfig struct {
	Enabled  bool          `yaml:"enabled"`
	Learning time.Duration `yaml:"learning"`
	Window   time.Duration `yaml:"window"`
	MaxNew   int           `yaml:"max_new"`
	Rule     `yaml:",inline"`
}

// DefaultFleet returns the documented defaults: more than 20 new devices in
// a minute, after the first 10 minutes of the stream.
func DefaultFleet() FleetConfig {
	return FleetConfig{Enabled: true, Learning: 10 * time.Minute, Window: time.Minute, MaxNew: 20, Rule: Rule{Hold: 1, Clear: 1}}
}

// Validate checks the configuration; errors name the offending key. A
// disabled fleet configuration is always valid.
func (c *FleetConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.Learning < 0 || c.Window < fleetBuckets*time.Millisecond || c.MaxNew < 1 {
		errs = append(errs, fmt.Errorf("need learning >= 0, window >= %v and max_new >= 1, got %v, %v and %d",
			fleetBuckets*time.Millisecond, c.Learning, c.Window, c.MaxNew))
	}
	if err := c.Rule.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// fleetBuckets is the resolution of the fleet's sliding window.
const fleetBuckets = 30

// Fleet judges the fleet as a whole: the number of devices first seen in a
// sliding window of stream time. It is called in stream order by the
// pipeline's merge stage (pipeline.FleetFunc: at every frame with new
// devices and at every batch's end), so its state needs no lock and its
// decisions do not depend on the sharding or the batching. In the
// scale-out, a judge on one worker calls it with the partitions' summed
// counts per report window (cmd/vigil, fleetjudge.go).
type Fleet struct {
	cfg     FleetConfig
	hyst    float64
	width   int64 // bucket width, ns
	start   int64 // the first clock seen
	head    int64 // absolute index of the current bucket
	counts  [fleetBuckets]int
	sum     int
	episode Episode
}

// NewFleet returns the fleet judge of the set's configuration, or nil when
// it is disabled.
func (s *Set) NewFleet() *Fleet {
	if !s.fleet.Enabled {
		return nil
	}
	return &Fleet{cfg: s.fleet, hyst: s.hyst, width: max(int64(s.fleet.Window)/fleetBuckets, 1)}
}

// FleetFunc returns the Judge of a new Fleet, or nil when fleet judgement is
// off: the value for pipeline.Config.Fleet.
func (s *Set) FleetFunc() pipeline.FleetFunc {
	if f := s.NewFleet(); f != nil {
		return f.Judge
	}
	return nil
}

// Judge implements pipeline.FleetFunc: clock is the stream clock, newDevices
// the devices seen for the first time in the batch.
func (f *Fleet) Judge(clock int64, newDevices int, out []pipeline.Alert) []pipeline.Alert {
	if f.start == 0 {
		f.start = clock
		f.head = clock / f.width
	}
	b := clock / f.width
	if b > f.head {
		for i := f.head + 1; i <= b && i <= f.head+fleetBuckets; i++ {
			k := i % fleetBuckets
			f.sum -= f.counts[k]
			f.counts[k] = 0
		}
		f.head = b
	}
	if clock-f.start < int64(f.cfg.Learning) {
		return out // the fleet is still being learned: every device is new
	}
	f.counts[b%fleetBuckets] += newDevices
	f.sum += newDevices
	v := Verdict{Score: float64(f.sum) / float64(f.cfg.MaxNew), Severity: pipeline.Warning, Stat: float64(f.sum), Threshold: float64(f.cfg.MaxNew)}
	if v.Score >= 10 {
		v.Severity = pipeline.Critical
	}
	if !f.episode.Active() && !v.Anomalous() {
		return out
	}
	tr, esc := f.episode.stepEsc(v, clock, f.cfg.Rule, f.hyst)
	if tr == 0 {
		return out
	}
	a := pipeline.Alert{
		ID:        episodeID("", "traffic.spray", "", f.episode.Started),
		Time:      clock,
		Started:   f.episode.Started,
		Kind:      "traffic.spray",
		Detector:  "traffic.spray",
		Severity:  f.episode.Severity,
		State:     tr,
		Signal:    "node_id",
		Value:     v.Stat,
		Threshold: v.Threshold,
		Unit:      "devices",
		Observed:  v.Stat,
		Score:     v.Score,

		Escalation: esc,
	}
	if tr == pipeline.Firing {
		a.Message = fmt.Sprintf("%d device IDs never seen before appeared in the last %s; at most %d are expected after the learning period (identity spraying?).",
			f.sum, f.cfg.Window, f.cfg.MaxNew)
	} else {
		a.Message = fmt.Sprintf("traffic.spray resolved: %d new device IDs in the last %s.", f.sum, f.cfg.Window)
	}
	return append(out, a)
}
