package detectors

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

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
