package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// liveView is a Sink that keeps what is firing now and the latest alerts, and
// renders them as a terminal screen. It is used by the demo.
type liveView struct {
	mu       sync.Mutex
	firing   map[string]map[string]pipeline.Alert // device → episode id → alert
	recent   []pipeline.Alert                     // newest last, at most recentMax
	all      []pipeline.Alert                     // firing transitions, for the scorecard
	fired    map[string]int                       // kind → firing transitions
	resolved int
	lastTime int64 // latest event time seen in an alert
}

const recentMax = 8

func newLiveView() *liveView {
	return &liveView{firing: map[string]map[string]pipeline.Alert{}, fired: map[string]int{}}
}

// Write implements pipeline.Sink.
func (v *liveView) Write(_ context.Context, batch []pipeline.Alert) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range batch {
		v.lastTime = max(v.lastTime, a.Time)
		switch a.State {
		case pipeline.Firing:
			if v.firing[a.Device] == nil {
				v.firing[a.Device] = map[string]pipeline.Alert{}
			}
			if _, again := v.firing[a.Device][a.ID]; !again {
				v.fired[a.Kind]++
				v.all = append(v.all, a)
			}
			v.firing[a.Device][a.ID] = a
		case pipeline.Resolved:
			delete(v.firing[a.Device], a.ID)
			v.resolved++
		}
		v.recent = append(v.recent, a)
		if len(v.recent) > recentMax {
			v.recent = v.recent[1:]
		}
	}
	return nil
}

// Close implements pipeline.Sink.
func (v *liveView) Close() error { return nil }

// viewHeader is what the screen says about the run.
type viewHeader struct {
	title   string
	stats   pipeline.Stats
	rate    float64 // messages per second since the last frame
	elapsed time.Duration
}

// render draws the screen. With clear set it starts with the ANSI sequence
// that homes the cursor and clears the terminal.
func (v *liveView) render(w io.Writer, h viewHeader, clear bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	if clear {
		b.WriteString("\x1b[H\x1b[2J")
	}
	rejected := uint64(0)
	for _, n := range h.stats.Rejected {
		rejected += n
	}
	plant := "—"
	if v.lastTime > 0 {
		plant = time.Unix(0, v.lastTime).UTC().Format(time.TimeOnly)
	}
	fmt.Fprintf(&b, "%s\n", h.title)
	fmt.Fprintf(&b, "running %s · plant time %s · %d devices · %d messages (%.0f/s) · %d rejected\n",
		h.elapsed.Round(time.Second), plant, h.stats.Devices, h.stats.Frames, h.rate, rejected)
	kinds := sortedKeys(v.fired)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, v.fired[k]))
	}
	if len(parts) == 0 {
		parts = []string{"none yet (baselines warm up first)"}
	}
	fmt.Fprintf(&b, "alerts fired: %s · resolved %d\n\n", strings.Join(parts, ", "), v.resolved)

	fmt.Fprintf(&b, "%-18s %s\n", "DEVICE", "FIRING NOW")
	devices := sortedKeys(v.firing)
	shown := 0
	for _, d := range devices {
		eps := v.firing[d]
		if len(eps) == 0 {
			continue
		}
		var as []pipeline.Alert
		for _, a := range eps {
			as = append(as, a)
		}
		slices.SortFunc(as, func(x, y pipeline.Alert) int { return strings.Compare(x.Detector, y.Detector) })
		var cells []string
		for _, a := range as {
			cells = append(cells, fmt.Sprintf("%s (%s)", a.Detector, a.Severity))
		}
		fmt.Fprintf(&b, "%-18s %s\n", d, strings.Join(cells, ", "))
		shown++
	}
	if shown == 0 {
		fmt.Fprintf(&b, "%-18s %s\n", "—", "nothing firing")
	}
	fmt.Fprintf(&b, "\nlatest alerts\n")
	for i := len(v.recent) - 1; i >= 0; i-- {
		a := v.recent[i]
		msg := a.Message
		if len(msg) > 110 {
			msg = msg[:107] + "..."
		}
		fmt.Fprintf(&b, "  %s %-14s %-8s %-8s %s\n", time.Unix(0, a.Time).UTC().Format(time.TimeOnly), a.Device, a.State, a.Severity, msg)
	}
	fmt.Fprintf(&b, "\nCtrl-C stops and prints what was injected versus what was caught.\n")
	io.WriteString(w, b.String())
}

// scorecard compares the anomalies a simulator injected with the alerts that
// fired: per kind, how many injections an alert of that kind caught (within
// the injection window, allowing grace for hold counts), and how many
// episodes fired outside every injection on their device.
type scorecard struct {
	kinds    []string
	injected map[string]int
	caught   map[string]int
	false_   int
}

func score(labels []sim.Label, fired []pipeline.Alert, upTo int64) scorecard {
	const grace = 30 * time.Second
	sc := scorecard{injected: map[string]int{}, caught: map[string]int{}}
	for _, l := range labels {
		if l.End.Add(grace).UnixNano() > upTo {
			continue // still in progress or too recent to judge
		}
		sc.injected[l.Kind]++
		for _, a := range fired {
			t := time.Unix(0, a.Time)
			if a.Device == l.Device && a.Kind == l.Kind && !t.Before(l.Start.Add(-2*time.Second)) && !t.After(l.End.Add(grace)) {
				sc.caught[l.Kind]++
				break
			}
		}
	}
	for _, a := range fired {
		t := time.Unix(0, a.Time)
		inside := false
		for _, l := range labels {
			if a.Device == l.Device && !t.Before(l.Start.Add(-5*time.Second)) && !t.After(l.End.Add(time.Minute)) {
				inside = true
				break
			}
		}
		if !inside && a.Time <= upTo {
			sc.false_++
		}
	}
	sc.kinds = sortedKeys(sc.injected)
	return sc
}

func (sc scorecard) print(w io.Writer) {
	fmt.Fprintf(w, "\n%-14s %9s %7s\n", "KIND", "INJECTED", "CAUGHT")
	tot, totc := 0, 0
	for _, k := range sc.kinds {
		fmt.Fprintf(w, "%-14s %9d %7d\n", k, sc.injected[k], sc.caught[k])
		tot += sc.injected[k]
		totc += sc.caught[k]
	}
	fmt.Fprintf(w, "%-14s %9d %7d\n", "all", tot, totc)
	fmt.Fprintf(w, "alerts outside any injection (false alarms): %d\n", sc.false_)
}
