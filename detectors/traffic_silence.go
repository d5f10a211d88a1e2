package detectors

import (
	"github.com/vigil-iot/vigil/pipeline"
)

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
