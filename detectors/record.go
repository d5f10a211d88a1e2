package detectors

import (
	"fmt"
	"math"

	"github.com/vigil-iot/vigil/pipeline"
)

// recordBlocks is the number of blocks the record check's horizon is kept in.
// The horizon thus slides in steps of Samples/recordBlocks readings: the range
// judged covers between 7/8 and all of the last Samples readings.
const recordBlocks = 8

// Record flags a new record: a value above the highest (or below the lowest)
// of the signal's last Samples readings by more than Margin times their
// range. It catches what a band around the mean misses on signals whose
// normal is wide or skewed (daily cycles, bursty counts): the value has simply
// never been this high, lately. Samples 0 turns the check off.
type Record struct {
	Samples int     `yaml:"samples"`
	Margin  float64 `yaml:"margin"`
	Rule    `yaml:",inline"`
}

func (r Record) validate(name string) error {
	if r.Samples == 0 {
		return nil
	}
	if r.Samples < recordBlocks || r.Samples > 1<<30 {
		return fmt.Errorf("%s: samples must be 0 (off) or between %d and %d, got %d", name, recordBlocks, 1<<30, r.Samples)
	}
	if !(r.Margin >= 0) || math.IsInf(r.Margin, 1) {
		return fmt.Errorf("%s: margin must be a finite fraction of the range, at least 0, got %v", name, r.Margin)
	}
	if err := r.Rule.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// RecordState is the record check's memory: the extremes of the last readings
// in recordBlocks blocks, Cur being filled. Extremes are float32 rounded
// outwards, so a value equal to a past record is never a new one. Plain data:
// 72 bytes.
type RecordState struct {
	Hi, Lo [recordBlocks]float32
	// N counts the readings in block Cur; Filled the blocks completed (at
	// most recordBlocks).
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

// Range returns the lowest and highest of the readings remembered.
func (r *RecordState) Range() (lo, hi float64) {
	l, h := float32(math.Inf(1)), float32(math.Inf(-1))
	for i := range r.Hi {
		l, h = min(l, r.Lo[i]), max(h, r.Hi[i])
	}
	return float64(l), float64(h)
}

// add remembers x, starting a new block after every blockLen readings.
func (r *RecordState) add(x float64, blockLen uint32) {
	if r.N >= blockLen {
		r.Cur = (r.Cur + 1) % recordBlocks
		r.Hi[r.Cur], r.Lo[r.Cur] = float32(math.Inf(-1)), float32(math.Inf(1))
		r.N = 0
		r.Filled = min(r.Filled+1, recordBlocks)
	}
	r.Hi[r.Cur] = max(r.Hi[r.Cur], up32(x))
	r.Lo[r.Cur] = min(r.Lo[r.Cur], down32(x))
	r.N++
}

// blockLen is the number of readings per block.
func (c Record) blockLen() uint32 {
	return uint32((c.Samples + recordBlocks - 1) / recordBlocks)
}

// judge compares x with the remembered range and then remembers it. The check
// speaks once a block (an eighth of the horizon) is complete and the range is
// not empty; a
// flat signal has no range to be a margin of (the spike check covers it).
// Stat is x, Threshold the value it had to exceed (below the range: to fall
// under). Beyond the range by more than its width is critical.
func (c Record) judge(x float64, r *RecordState) Verdict {
	var v Verdict
	lo, hi := r.Range()
	if width := hi - lo; r.Filled >= 1 && width > 0 && !math.IsInf(width, 0) {
		m := c.Margin * width
		scale := max(m, width*1e-3) // the score's unit: the margin, or 0.1% of the range
		switch {
		case x > hi:
			v = Verdict{Score: (x - hi) / scale, Stat: x, Threshold: hi + m}
		case x < lo:
			v = Verdict{Score: (lo - x) / scale, Stat: x, Threshold: lo - m}
		default:
			v = Verdict{Stat: x, Threshold: hi + m}
		}
		if c.Margin == 0 && v.Score > 0 {
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
