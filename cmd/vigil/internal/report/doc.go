// Package report writes the HTML report of a replay (`vigil replay --report
// report.html`): one self-contained file, readable offline, for an engineer
// tuning detectors.
//
// The report has an index of the charted devices at the top, a summary of
// the run (inputs, messages, rejections, alerts), the configuration it ran
// with (Input.Config), the evaluation when labels were given and, per
// device, one chart per signal: the signal over time, the learned band
// (median ± Z·spread, shaded) and the EW mean, the alert episodes as vertical
// spans coloured by severity and labelled with their detector, and the label
// windows as a hatched strip along the bottom of the chart of the signal
// their kind concerns (overpressure: pressure, thermal: temperature,
// vibration: vibration, signal: generic signals); windows about the device
// as a whole (status, traffic, no kind) are drawn on every chart. Charts are drawn with gonum.org/v1/plot and embedded as
// inline SVG; the page has no scripts and loads nothing.
//
// # Recording
//
// A replay may have millions of readings, so the series are downsampled while
// they stream. A Recorder sits in front of each shard's Processor (Wrap) and
// keeps, per (device, signal), at most Options.Columns buckets of one fixed
// time width, each with the first, minimum, maximum and last value of its
// readings and the learned band after its last reading. When a reading falls
// beyond the last bucket, adjacent pairs of buckets are merged and the width
// doubles, so memory per series is bounded whatever its length, and a
// one-sample spike survives as the maximum of its bucket. Charts draw each
// bucket as a vertical stroke through its four values (M4 aggregation), which
// at one bucket per pixel column looks like the full-resolution line.
//
//	engines := make([]*detectors.Engine, workers) // workers: pipeline.Config.Workers
//	recs := make([]*report.Recorder, workers)
//	for i := range engines {
//		engines[i] = set.NewEngine()
//		recs[i] = report.NewRecorder(opts, engines[i].Band)
//	}
//	cfg.NewProcessor = func(i int) pipeline.Processor { return engines[i] }
//	cfg.Taps = func(i int) []pipeline.Tap { return []pipeline.Tap{recs[i]} }
//	err := pl.Run(ctx, src, sink) // a Tee sink also keeps the alerts
//	rec := report.Merge(recs...)  // after Run returned
//	err = report.Write(f, report.Input{Files: paths, Stats: pl.Stats(), Alerts: alerts, Recording: rec})
//
// The Recorder is a tap (pipeline.Tap): it sees each reading just before the
// engine does, so it takes a bucket's band from the engine before the engine
// sees the reading that starts the next bucket, and the engine keeps all its
// other hooks (ticks, rejections, the fleet), so silence and spray alerts
// are in the report like any other.
//
// Only the first Options.MaxDevices devices by name (of those matching
// Options.Devices) are recorded: a Recorder keeps the smallest names it has
// seen, so memory does not grow with the fleet.
package report
