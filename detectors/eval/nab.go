package eval

import (
	"math"
	"slices"
)

// Profile is a NAB application profile: the weights of a true positive (TP,
// positive), a false positive (FP, negative) and a false negative, a missed
// window (FN, negative).
type Profile struct {
	Name string  `json:"name"`
	TP   float64 `json:"a_tp"`
	FP   float64 `json:"a_fp"`
	FN   float64 `json:"a_fn"`
}

// The three NAB profiles.
var (
	ProfileStandard = Profile{Name: "standard", TP: 1, FP: -0.11, FN: -1}
	ProfileLowFP    = Profile{Name: "reward_low_FP", TP: 1, FP: -0.22, FN: -1}
	ProfileLowFN    = Profile{Name: "reward_low_FN", TP: 1, FP: -0.11, FN: -2}
)

// DefaultProfiles returns the three NAB profiles: standard, reward_low_FP and
// reward_low_FN.
func DefaultProfiles() []Profile {
	return []Profile{ProfileStandard, ProfileLowFP, ProfileLowFN}
}

// Probation returns the number of leading rows of a file of n rows that NAB
// does not score: min(⌊0.15·n⌋, 750).
func Probation(n int) int {
	return min(n*15/100, 750)
}

// scaledSigmoid is NAB's 2/(1+e^(5y)) − 1: 0.98661 at y = −1 (a window's
// start), 0 at y = 0 (its end), towards −1 as y grows past the end.
func scaledSigmoid(y float64) float64 {
	return 2/(1+math.Exp(5*y)) - 1
}

// sigmoidAtStart is scaledSigmoid(-1) = 0.98661…, the reward of a detection at
// a window's first row before normalisation.
var sigmoidAtStart = scaledSigmoid(-1)

// TPReward returns the unweighted reward of a window's earliest detection at
// relative position y (−1 at the window's first row, 0 at its last):
// scaledSigmoid(y) / scaledSigmoid(−1), so 1 at the start. Multiply by A_tp.
func TPReward(y float64) float64 {
	return scaledSigmoid(y) / sigmoidAtStart
}

// FPCost returns the unweighted cost, in (0, 1], of a detection outside every
// window at y window lengths past the end of the preceding window (y > 0):
// −scaledSigmoid(y), near 0 just after the window and 1 far from it. Multiply
// by A_fp. A detection with no preceding window costs 1 (pass +Inf).
func FPCost(y float64) float64 {
	return -scaledSigmoid(y)
}

// rowWindow is a label window in rows of one file: rows L..R inclusive.
type rowWindow struct{ L, R int }

// nabFile is the profile-independent result of scoring one file (device).
type nabFile struct {
	probation int
	windows   int     // scored windows
	unscored  int     // windows with no row, or ending inside the probation period
	detected  int     // scored windows with a detection
	tpReward  float64 // Σ TPReward of the detected windows
	fps       int     // detections outside windows
	fpCost    float64 // Σ FPCost of those
}

func (f nabFile) raw(p Profile) float64 {
	return p.TP*f.tpReward + p.FP*f.fpCost + p.FN*float64(f.windows-f.detected)
}

// scoreNAB scores one file: times are its rows' times (sorted), windows its
// label windows (any kind, any order), detections the times of its firing
// alert records (any order).
//
// Windows are converted to rows (the first row at or after the start to the
// last at or before the end); windows that share a row are merged, since NAB
// windows never overlap; a window without rows is dropped. A detection is the
// first row at or after the record's time (none after the last row); several
// records on one row are one detection, as NAB asks each row for one yes or
// no. Detections in the probation period are ignored; a window that ends in
// it is not scored, and one that starts in it (never the case in NAB) is
// scored on its whole length with the detections after the probation period.
func scoreNAB(times []int64, windows []Window, detections []int64) nabFile {
	n := len(times)
	f := nabFile{probation: Probation(n)}

	rws := make([]rowWindow, 0, len(windows))
	for _, w := range windows {
		L, _ := slices.BinarySearch(times, w.Start)
		R := n - 1
		if w.End < math.MaxInt64 {
			i, _ := slices.BinarySearch(times, w.End+1)
			R = i - 1
		}
		if L > R {
			f.unscored++
			continue
		}
		rws = append(rws, rowWindow{L, R})
	}
	slices.SortFunc(rws, func(a, b rowWindow) int { return a.L - b.L })
	merged := rws[:0]
	for _, w := range rws {
		if k := len(merged) - 1; k >= 0 && w.L <= merged[k].R {
			merged[k].R = max(merged[k].R, w.R)
			continue
		}
		merged = append(merged, w)
	}
	scored := make([]bool, len(merged))
	for i, w := range merged {
		if w.R >= f.probation {
			scored[i] = true
			f.windows++
		} else {
			f.unscored++
		}
	}

	rows := make([]int, 0, len(detections))
	for _, t := range detections {
		if i, _ := slices.BinarySearch(times, t); i < n && i >= f.probation {
			rows = append(rows, i)
		}
	}
	slices.Sort(rows)
	rows = slices.Compact(rows)

	detected := make([]bool, len(merged))
	k := 0 // first window that does not end before the current row
	for _, i := range rows {
		for k < len(merged) && merged[k].R < i {
			k++
		}
		if k < len(merged) && merged[k].L <= i {
			if !scored[k] || detected[k] {
				continue // only the earliest detection in a window counts
			}
			detected[k] = true
			f.detected++
			w := merged[k]
			y := -1.0 // a one-row window: its start
			if w.R > w.L {
				y = float64(i-w.R) / float64(w.R-w.L)
			}
			f.tpReward += TPReward(y)
			continue
		}
		f.fps++
		if k == 0 {
			f.fpCost += FPCost(math.Inf(1)) // no preceding window
			continue
		}
		prev := merged[k-1]
		f.fpCost += FPCost(float64(i-prev.R) / float64(max(prev.R-prev.L, 1)))
	}
	return f
}
