package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
)

// labelMode says where ground truth comes from.
type labelMode int

const (
	labelsNone   labelMode = iota
	labelsFile             // a windows or list JSON file
	labelsStatus           // the devices' own status field: status >= 1 is anomalous
	labelsColumn           // a label column in CSV input (a "label" field in the payload)
)

// parseLabelSpec interprets --labels: "status", "column", or a file path.
func parseLabelSpec(spec string) (labelMode, error) {
	switch spec {
	case "":
		return labelsNone, nil
	case "status":
		return labelsStatus, nil
	case "column":
		return labelsColumn, nil
	}
	if _, err := os.Stat(spec); err != nil {
		return 0, fmt.Errorf("--labels: %w (give a labels file, \"status\" or \"column\")", err)
	}
	return labelsFile, nil
}

// collector wraps one shard's processor: it records every reading's time per
// device (what evaluation needs to score point-wise and NAB) and, for point
// labels, whether the reading is labelled anomalous. It belongs to its
// shard's goroutine; the shards' collectors are merged after the run.
type collector struct {
	mode   labelMode
	data   eval.DataInfo
	points []eval.Point
}

// Observe implements pipeline.Tap.
func (c *collector) Observe(r *pipeline.Reading) {
	c.data.Add(r.Device, r.Time)
	switch c.mode {
	case labelsStatus:
		if r.Status != pipeline.NoStatus {
			c.points = append(c.points, eval.Point{Device: r.Device, Time: r.Time, Anomalous: r.Status >= 1})
		}
	case labelsColumn:
		if r.Label != pipeline.NoLabel {
			c.points = append(c.points, eval.Point{Device: r.Device, Time: r.Time, Anomalous: r.Label == 1})
		}
	}
}

// collectors gathers the collectors made for a run's shards.
type collectors struct {
	mu   sync.Mutex
	all  []*collector
	mode labelMode
}

// tap makes the collector of one shard.
func (cs *collectors) tap() *collector {
	c := &collector{mode: cs.mode, data: eval.DataInfo{Times: map[string][]int64{}}}
	cs.mu.Lock()
	cs.all = append(cs.all, c)
	cs.mu.Unlock()
	return c
}

// merge joins the shards' data (their devices are disjoint) and point labels
// (each device's points stay in stream order).
func (cs *collectors) merge() (eval.DataInfo, []eval.Point) {
	data := eval.DataInfo{Times: map[string][]int64{}}
	var points []eval.Point
	for _, c := range cs.all {
		for d, ts := range c.data.Times {
			data.Times[d] = ts
		}
		points = append(points, c.points...)
	}
	return data, points
}

// alertLog is a Sink that keeps a copy of every alert, for evaluation.
type alertLog struct {
	mu     sync.Mutex
	alerts []pipeline.Alert
}

func (l *alertLog) Write(_ context.Context, batch []pipeline.Alert) error {
	l.mu.Lock()
	l.alerts = append(l.alerts, batch...)
	l.mu.Unlock()
	return nil
}

func (l *alertLog) Close() error { return nil }

// evalOptions are the evaluation flags of replay.
type evalOptions struct {
	labels    string
	json      string
	before    time.Duration
	after     time.Duration
	matchKind bool
	devices   int
}

// evaluate scores a run's alerts against its labels and writes the table
// (to w) and, if asked, the JSON report. Labels that name devices the data
// never had are reported; if no labelled device was seen at all, that is an
// error (most likely the device names do not match).
func evaluate(w io.Writer, o evalOptions, mode labelMode, alerts []pipeline.Alert, data eval.DataInfo, points []eval.Point) (*eval.Report, []eval.Window, error) {
	var labels *eval.Labels
	switch mode {
	case labelsFile:
		var err error
		if labels, err = eval.LoadLabels(o.labels); err != nil {
			return nil, nil, err
		}
	default:
		labels = eval.FromPoints(points)
	}
	seen := data.Seen()
	if unknown := labels.UnknownDevices(seen); len(unknown) > 0 {
		labelled := labels.Devices()
		if len(unknown) == len(labelled) && len(labelled) > 0 {
			return nil, nil, fmt.Errorf("labels: none of the %d labelled devices appear in the data (e.g. %q; the data has %s)",
				len(labelled), unknown[0], sample(data.Devices(), 3))
		}
		if mode == labelsFile {
			fmt.Fprintf(w, "labels: %d labelled devices are not in the data and are ignored: %s\n", len(unknown), sample(unknown, 5))
		}
	}
	rep := eval.Evaluate(alerts, labels, data, eval.Options{Before: o.before, After: o.after, MatchKind: o.matchKind})
	if err := rep.WriteTableDevices(w, o.devices); err != nil {
		return nil, nil, err
	}
	if o.json != "" {
		f, err := createFile(o.json)
		if err != nil {
			return nil, nil, fmt.Errorf("--eval-json: %w", err)
		}
		if err := rep.WriteJSON(f); err != nil {
			f.Close()
			return nil, nil, err
		}
		if err := f.Close(); err != nil {
			return nil, nil, err
		}
	}
	return rep, labels.Windows(), nil
}

func sample(xs []string, n int) string {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs) > n {
		return strings.Join(xs[:n], ", ") + fmt.Sprintf(" and %d more", len(xs)-n)
	}
	return strings.Join(xs, ", ")
}
