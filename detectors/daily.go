package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// dailyBins is the number of time-of-day bins of the daily profile: 15
// minutes each.
const dailyBins = 96

// Constants of the daily check that are not worth a knob.
const (
	dailyZClip      = 6     // a sample adds at most this many spreads to a sum
	dailyLearnClip  = 4     // a sample teaches its bin at most this many spreads away
	dailyFloorShare = 0.1   // the spread floor: this share of the overall deviation
	dailyGlobalRate = 0.001 // learning rate of the overall mean and deviation
)

// Daily compares each value with the usual level at that time of day: a
// profile of 96 bins (15 minutes of UTC time each) learns, per bin, an
// exponentially weighted mean and mean absolute deviation, and a two-sided
// CUSUM on the standardised deviation from the bin's mean fires when the
// signal stays off its daily pattern: a flat stretch where it should cycle, a
// missing peak, a jump within the usual range. Deviations are clipped at 6
// spreads before they are summed, so a lone spike cannot fire it.
//
// Bins forget at Rate per sample that falls in them (0.2: about the last five
// days when every bin gets a sample a day), so the profile follows slow
// changes. The check speaks after Warmup of event time. Its memory is about
// 0.9 KiB per signal, kept only for signals it runs on.
type Daily struct {
	Enabled bool          `yaml:"enabled"`
	K       float64       `yaml:"k"`      // slack, in spreads
	H       float64       `yaml:"h"`      // decision level, in spreads
	Rate    float64       `yaml:"rate"`   // per-bin learning rate
	Warmup  time.Duration `yaml:"warmup"` // event time before the check speaks
	Rule    `yaml:",inline"`
}

func (d Daily) validate(name string) error {
	if !d.Enabled {
		return nil
	}
	if !(d.K >= 0) || !(d.H > 0) || math.IsInf(d.H, 1) {
		return fmt.Errorf("%s: need k >= 0 and a finite h > 0, got %v and %v", name, d.K, d.H)
	}
	if !(d.Rate > 0 && d.Rate <= 1) {
		return fmt.Errorf("%s: rate must be in (0, 1], got %v", name, d.Rate)
	}
	if d.Warmup < 0 {
		return fmt.Errorf("%s: warmup must not be negative, got %v", name, d.Warmup)
	}
	if err := d.Rule.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// DailyState is the daily check's memory: the profile (float32: levels for
// comparison, not bookkeeping), the overall mean and deviation that floor the
// spreads, the two CUSUM sums and the time of the first sample. Plain data.
type DailyState struct {
	Mean, Dev [dailyBins]float32
	Count     [dailyBins]uint8 // samples learned per bin, saturating
	GMean     float64
	GDev      float64
	Hi, Lo    float64
	First     int64
	Started   bool
}

// bin returns the time-of-day bin of event time t (Unix ns).
func dailyBin(t int64) int {
	const day = int64(24 * time.Hour)
	tod := t % day
	if tod < 0 {
		tod += day
	}
	return int(tod / (day / dailyBins))
}

// judge scores x at event time t against the profile, then teaches it. The
// verdict's Stat is the stronger sum (negative below the profile), its
// Threshold H; a sum that crosses H starts both sums afresh, so an alert's
// sum says how long and how far the signal stayed off its pattern.
func (d Daily) judge(x float64, t int64, s *DailyState) Verdict {
	var v Verdict
	if !s.Started {
		*s = DailyState{First: t, Started: true, GMean: x}
	}
	b := dailyBin(t)
	floor := dailyFloorShare*s.GDev + 1e-9
	spread := float64(s.Dev[b]) + floor
	if s.Count[b] > 0 && t-s.First >= int64(d.Warmup) {
		z := (x - float64(s.Mean[b])) / spread
		z = max(-dailyZClip, min(dailyZClip, z))
		s.Hi = max(0, s.Hi+z-d.K)
		s.Lo = max(0, s.Lo-z-d.K)
		v = Verdict{Stat: s.Hi, Threshold: d.H, Score: s.Hi / d.H, Severity: pipeline.Warning}
		if s.Lo > s.Hi {
			v.Stat, v.Score = -s.Lo, s.Lo/d.H
		}
		if v.Score >= 1 {
			s.Hi, s.Lo = 0, 0
		}
	}
	// Learn: the overall level, then the bin (clipped, so an anomaly teaches
	// little); a bin's first samples average exactly.
	s.GDev += dailyGlobalRate * (math.Abs(x-s.GMean) - s.GDev)
	s.GMean += dailyGlobalRate * (x - s.GMean)
	if s.Count[b] < math.MaxUint8 {
		s.Count[b]++
	}
	if s.Count[b] == 1 {
		s.Mean[b], s.Dev[b] = float32(x), 0
		return v
	}
	rate := max(d.Rate, 1/float64(s.Count[b]))
	mean := float64(s.Mean[b])
	lim := dailyLearnClip * spread
	dev := min(max(x, mean-lim), mean+lim) - mean
	s.Mean[b] = float32(mean + rate*dev)
	s.Dev[b] = float32(float64(s.Dev[b]) + rate*(math.Abs(dev)-float64(s.Dev[b])))
	return v
}
