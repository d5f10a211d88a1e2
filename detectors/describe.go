package detectors

import (
	"fmt"
	"math"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// The describe functions write the one-sentence message of a firing alert.
// They run only on transitions, never per sample.

func describeUpperLimit(a *pipeline.Alert, unit string) string {
	return fmt.Sprintf("%s %s is above the configured limit of %s.",
		a.Signal, withUnit(a.Observed, unit), withUnit(a.Threshold, unit))
}

func describeLimits(a *pipeline.Alert, unit string) string {
	side := "above the configured high"
	if a.Observed < a.Threshold {
		side = "below the configured low"
	}
	return fmt.Sprintf("%s %s is %s limit of %s.", a.Signal, withUnit(a.Observed, unit), side, withUnit(a.Threshold, unit))
}

func describeSpike(a *pipeline.Alert, unit string) string {
	side := "above"
	if a.Observed < a.Threshold {
		side = "below"
	}
	return fmt.Sprintf("%s %s is %s the learned band: threshold %s (baseline mean %s, std %s), %s× the allowed deviation.",
		a.Signal, withUnit(a.Observed, unit), side, withUnit(a.Threshold, unit),
		withUnit(a.Mean, unit), withUnit(a.Std, unit), num(a.Score))
}

func describeCUSUM(what string) func(a *pipeline.Alert, unit string) string {
	return func(a *pipeline.Alert, unit string) string {
		dir := "above"
		if a.Value < 0 {
			dir = "below"
		}
		return fmt.Sprintf("%s of %s %s the baseline: %s is at %s while the baseline mean is %s (std %s); the cumulative deviation reached %s sigma, limit %s.",
			capitalise(what), a.Signal, dir, a.Signal, withUnit(a.Observed, unit), withUnit(a.Mean, unit),
			withUnit(a.Std, unit), num(abs(a.Value)), num(a.Threshold))
	}
}

func describeRate(verb string, factor float64) func(a *pipeline.Alert, unit string) string {
	return func(a *pipeline.Alert, unit string) string {
		u := StatRate.Unit(unit)
		return fmt.Sprintf("%s %s at %s, faster than the limit of %s (%s× the fastest normal change); now %s.",
			a.Signal, verb, withUnit(a.Value, u), withUnit(a.Threshold, u), num(factor), withUnit(a.Observed, unit))
	}
}

func describeFluctuation(a *pipeline.Alert, unit string) string {
	return fmt.Sprintf("%s fluctuates: short-term standard deviation %s exceeds %s (learned std %s); now %s.",
		a.Signal, withUnit(a.Value, unit), withUnit(a.Threshold, unit), withUnit(a.Std, unit), withUnit(a.Observed, unit))
}

func describeZone(z Zones) func(a *pipeline.Alert, unit string) string {
	return func(a *pipeline.Alert, unit string) string {
		zone := z.Zone(a.Observed)
		meaning := "operation should be restricted"
		if zone == 'D' {
			meaning = "damage is likely"
		}
		return fmt.Sprintf("%s %s is in severity zone %s (boundary %s): %s.",
			a.Signal, withUnit(a.Observed, unit), string(zone), withUnit(a.Threshold, unit), meaning)
	}
}

func describeResolved(a *pipeline.Alert, unit string) string {
	return fmt.Sprintf("%s resolved: %s is back to %s.", a.Detector, a.Signal, withUnit(a.Observed, unit))
}

// describeFlaps completes the resolution of an episode that flapped: its
// condition cleared and came back within keep_firing_for.
func describeFlaps(n uint8, keep time.Duration) string {
	times := fmt.Sprintf("%d times", n)
	switch {
	case n == 1:
		times = "once"
	case n == math.MaxUint8:
		times = "at least 255 times"
	}
	return fmt.Sprintf(" It flapped %s (cleared and came back within %v, the keep_firing_for); quiet since.", times, keep)
}

func capitalise(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func describeRecord(c Record) func(a *pipeline.Alert, unit string) string {
	margin := fmt.Sprintf("%s%% of their range", num(100*c.Margin))
	switch {
	case c.LongMargin > 0 && c.Margin > 0:
		margin = fmt.Sprintf("the larger of %s%% of their range and %s%% of the range of the last %d", num(100*c.Margin), num(100*c.LongMargin), recordLong*c.Samples/recordShort)
	case c.LongMargin > 0:
		margin = fmt.Sprintf("%s%% of the range of the last %d", num(100*c.LongMargin), recordLong*c.Samples/recordShort)
	}
	return func(a *pipeline.Alert, unit string) string {
		side, ext, sign := "above", "highest", "plus"
		if a.Observed < a.Threshold {
			side, ext, sign = "below", "lowest", "minus"
		}
		return fmt.Sprintf("%s %s is a new record: %s %s, the %s of the last %d readings %s a margin of %s.",
			a.Signal, withUnit(a.Observed, unit), side, withUnit(a.Threshold, unit), ext, c.Samples, sign, margin)
	}
}

func describeDaily(a *pipeline.Alert, unit string) string {
	dir := "above"
	if a.Value < 0 {
		dir = "below"
	}
	return fmt.Sprintf("%s has stayed %s its usual level for this time of day: now %s; the cumulative deviation from the daily profile reached %s spreads, limit %s.",
		a.Signal, dir, withUnit(a.Observed, unit), num(abs(a.Value)), num(a.Threshold))
}
