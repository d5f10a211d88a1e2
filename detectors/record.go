package detectors

import (
	"fmt"
	"math"

	"github.com/vigil-iot/vigil/pipeline"
)

// The record check's memory is a ring of blocks of Samples/recordShort
// readings: the block being filled and the recordLong completed before it.
// The horizon judged is the current block and the last recordShort completed
// ones (between Samples and 5/4 Samples readings); the long range, for
// LongMargin, spans all of them (4 to 4 1/4 horizons).
const (
	recordShort = 4
	recordLong  = 16
	recordSlots = recordLong + 1
)

// Record flags a new record: a value above the highest (or below the lowest)
// of the signal's last Samples readings by more than a margin: Margin times
// their range, or LongMargin times the range of the last four horizons,
// whichever is larger. It catches what a band around the mean misses on
// signals whose normal is wide or skewed (daily cycles, bursty counts): the
// value has simply not been this high lately. Measuring the margin against
// the long range keeps a quiet few days from making every small excursion a
// record. Samples 0 turns the check off.
type Record struct {
	Samples    int     `yaml:"samples"`
	Margin     float64 `yaml:"margin"`
	LongMargin float64 `yaml:"long_margin"`
	Rule       `yaml:",inline"`
}

func (r Record) validate(name string) error {
	if r.Samples == 0 {
		return nil
	}
	if r.Samples < recordShort || r.Samples > 1<<30 {
		return fmt.Errorf("%s: samples must be 0 (off) or between %d and %d, got %d", name, recordShort, 1<<30, r.Samples)
	}
	for _, m := range []float64{r.Margin, r.LongMargin} {
		if !(m >= 0) || math.IsInf(m, 1) {
			return fmt.Errorf("%s: margin and long_margin must be finite fractions of a range, at least 0, got %v and %v", name, r.Margin, r.LongMargin)
		}
	}
	if err := r.Rule.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// RecordState is the record check's memory: the extremes of the readings in
// a ring of blocks, Cur being filled. Extremes are float32 rounded outwards,
// so a value equal to a past record is never a new one. Plain data: 144
// bytes.
type RecordState struct {
	Hi, Lo [recordSlots]float32
	// N counts the readings in block Cur; Filled the blocks completed (at
	// most recordLong).
	N      uint32
	Cur    uint8
	Filled uint8
}

// newRecordState returns an empty memory.
func newRecordState() *RecordState {
	r := &RecordState{}
	for i := range r.Hi {
		r.Hi[i], r.Lo[i] = float32(math.Inf(-1)), float32(math.Inf(1))
	}
	return r
}

// ranges returns the lowest and highest readings of the horizon (the
// current block and the last recordShort completed) and of all blocks.
func (r *RecordState) ranges() (lo, hi, longLo, longHi float64) {
	l, h := float32(math.Inf(1)), float32(math.Inf(-1))
	i := int(r.Cur)
	for k := 0; k <= recordShort; k++ {
		l, h = min(l, r.Lo[i]), max(h, r.Hi[i])
		i = (i + recordSlots - 1) % recordSlots
	}
	ll, lh := l, h
	for k := recordShort + 1; k < recordSlots; k++ {
		ll, lh = min(ll, r.Lo[i]), max(lh, r.Hi[i])
		i = (i + recordSlots - 1) % recordSlots
	}
	return float64(l), float64(h), float64(ll), float64(lh)
}

// add remembers x, starting a new block after every blockLen readings.
func (r *RecordState) add(x float64, blockLen uint32) {
	if r.N >= blockLen {
		r.Cur = (r.Cur + 1) % recordSlots
		r.Hi[r.Cur], r.Lo[r.Cur] = float32(math.Inf(-1)), float32(math.Inf(1))
		r.N = 0
		r.Filled = min(r.Filled+1, recordLong)
	}
	r.Hi[r.Cur] = max(r.Hi[r.Cur], up32(x))
	r.Lo[r.Cur] = min(r.Lo[r.Cur], down32(x))
	r.N++
}

// blockLen is the number of readings per block.
func (c Record) blockLen() uint32 {
	return uint32((c.Samples + recordShort - 1) / recordShort)
}

// judge compares x with the remembered range and then remembers it. The check
// speaks once a block (a quarter of the horizon) is complete and the range is
// not empty; a flat signal has no range to be a margin of (the spike check
// covers it).
// Stat is x, Threshold the value it had to exceed (below the range: to fall
// under). Beyond the range by more than its width is critical.
func (c Record) judge(x float64, r *RecordState) Verdict {
	var v Verdict
	lo, hi, llo, lhi := r.ranges()
	if width := hi - lo; r.Filled >= 1 && width > 0 && !math.IsInf(lhi-llo, 0) {
		m := max(c.Margin*width, c.LongMargin*(lhi-llo))
		scale := max(m, width*1e-3) // the score's unit: the margin, or 0.1% of the range
		switch {
		case x > hi:
			v = Verdict{Score: (x - hi) / scale, Stat: x, Threshold: hi + m}
		case x < lo:
			v = Verdict{Score: (lo - x) / scale, Stat: x, Threshold: lo - m}
		default:
			v = Verdict{Stat: x, Threshold: hi + m}
		}
		if m == 0 && v.Score > 0 {
			v.Score = max(v.Score, 1) // any new record is one
		}
		v.Severity = pipeline.Warning
		if x > hi+width || x < lo-width {
			v.Severity = pipeline.Critical // beyond the range by its own width
		}
	}
	r.add(x, c.blockLen())
	return v
}
