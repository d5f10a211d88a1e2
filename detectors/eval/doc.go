// Package eval measures detection quality offline: it scores the alerts of a
// replay against labelled anomalies, for `vigil replay --labels` (the report)
// and `vigil tune` (the scores to optimise).
//
//	labels, err := eval.LoadLabels("combined_windows.json") // or a list, or AddPoint
//	var data eval.DataInfo                                 // data.Add(device, t) per reading
//	report := eval.Evaluate(alerts, labels, data, eval.Options{After: 30 * time.Second})
//	report.WriteTable(os.Stdout)
//
// # Inputs
//
// Labels are windows [start, end] of event time per device, optionally with a
// kind. They come from a windows file (NAB's combined_windows.json, keys
// normalised by NormalizeDevice so that "realKnownCause/x.csv" names device
// "x", the device a replay of x.csv creates), from a list file (the labels
// `vigil simulate` writes), or from point labels (AddPoint, FromPoints: runs
// of anomalous readings become windows).
//
// DataInfo holds, per device, the event time of every reading: the rows NAB
// counts, the samples of the point-wise metrics, and the span (first to last
// reading) that false alarms per hour divide by. The devices in DataInfo are
// the devices evaluated: a device with readings but no labels has no anomaly,
// and labels of devices without readings are ignored and listed in
// Report.UnknownDevices (so one label file can serve a replay of a subset of
// its series).
//
// Alerts are the records of the alert stream (pipeline.Alert). An episode is
// the set of records with one ID (of one device): it starts at its earliest
// firing record (its kind is that record's) and ends at its resolved record
// (the latest, if several); an episode with no resolved record fires to the
// end of the data. Escalations (more firing records of one ID) do not start
// episodes. Resolved records of an episode without a firing record are
// ignored and counted in Report.IgnoredAlerts.
//
// # Event level
//
// A window is detected when an episode of its device starts firing in
// [start − Options.Before, end + Options.After] and, when Options.MatchKind is
// set and the window has a kind, the episode's kind matches it (the kind of
// its first firing record, or of a later one that refined the alert: a
// per-signal check that joined the device's relation alert). An episode is
// a true positive when it detects some window of its device, else a false
// positive: an episode that started firing before the widened window and is
// still firing inside it does not detect the window and is a false positive
// (the point-wise metrics credit its readings inside the window). Recall is
// detected windows over windows, precision true-positive episodes over
// episodes. A detected window's delay is its first matching episode's firing
// time minus the window's start; the report gives the median and the 90th
// percentile (linear interpolation between closest ranks). False alarms per
// device-hour divide false-positive episodes by the data span (first to last
// reading) summed over the devices. Per kind, windows count under the label's
// kind and episodes under the alert's kind; point-wise and NAB results are
// per device and overall only, since readings and NAB files belong to
// devices, not kinds.
//
// # Point-wise
//
// Every reading is a sample. It is labelled anomalous when its time lies in
// a window of its device (any kind; the windows as labelled, not widened), and
// predicted anomalous when an episode of its device is firing at its time:
// from the firing record (inclusive) to the resolved record (exclusive: the
// reading that resolves an episode is no longer anomalous). The report gives
// precision, recall, F1, the false-alarm rate FP / negatives and the
// missed-alarm rate FN / positives. The counts come from interval arithmetic
// with binary searches over the sorted reading times, not a pass over the
// readings.
//
// # NAB score
//
// The Numenta Anomaly Benchmark score is computed per device (a NAB file) and
// summed, as ../shared/datasets/README.md describes. Interpretations where the
// description leaves room:
//
//   - Rows are a device's readings in time order (readings with equal times
//     are separate rows). The probation period is the first
//     min(⌊0.15·n⌋, 750) rows of a file of n rows; detections on them are
//     ignored.
//   - A window covers the rows from the first at or after its start to the
//     last at or before its end (in NAB both are rows of the file). A window
//     with no row is not scored. Windows of a device that share a row are
//     merged into one (NAB windows never overlap; Vigil's list labels of
//     different kinds may), and kinds are ignored: NAB scores a file's
//     detections against all of its windows. A window that ends inside the
//     probation period is not scored; one that starts inside it and ends after
//     it (never the case in NAB) is scored on its whole length, with only the
//     detections after the probation period. Report NAB.Unscored counts the
//     windows not scored.
//   - A detection is a firing record (an episode's first and each escalation):
//     it lands on the first row at or after its time, and is dropped when no
//     row follows. Several records on one row make one detection, since NAB
//     asks a detector for one yes or no per row.
//   - Inside a window of rows L..R, a detection at row i has y = (i − R)/(R − L):
//     −1 at the window's first row, 0 at its last, in units of the window's
//     length in rows (a one-row window gives y = −1). Only the earliest
//     detection in a window counts; later ones in the same window are neither
//     rewarded nor penalised. The reward is A_tp·σ(y)/σ(−1), with
//     σ(y) = 2/(1+e^(5y)) − 1 and σ(−1) = 0.98661… computed, not written down:
//     A_tp at the first row, 0 at the last.
//   - A detection outside every window after a window of rows L..R costs
//     |A_fp|·σ(y) with y = (i − R)/(R − L) the distance past the window's last
//     row in the same units (at least one row is used as the length of a
//     one-row window). σ(y) runs from 0 just after the window towards −1, so
//     the cost runs from 0 to the full A_fp: it is not divided by σ(−1), which
//     would make far false positives cost more than A_fp. A detection before
//     a file's first window costs the full A_fp. The preceding window may be
//     one inside the probation period.
//   - A window without a counted detection costs A_fn.
//   - Raw scores S are summed over the devices evaluated, including devices
//     with no window (where every detection costs the full A_fp), and
//     normalised to 100·(S − S_null)/(S_perfect − S_null), with S_null =
//     windows·A_fn (the detector that never detects) and S_perfect =
//     windows·A_tp (one detection at each window's first row), over the scored
//     windows. It is undefined without scored windows. A device's own score is
//     normalised the same way over its own windows.
//
// Profiles are (A_tp, A_fp, A_fn): standard (1, −0.11, −1), reward_low_FP
// (1, −0.22, −1) and reward_low_FN (1, −0.11, −2). Vigil's alerts are
// thresholded already, so there is no threshold sweep: the score is the score
// of the alerts as emitted. Published NAB scores optimise each detector's
// threshold per profile, which favours them over a fixed configuration.
//
// # Cost
//
// Evaluate is O(R + (W + A)·log R) for R readings, W windows and A alert
// records: one pass over the times checks they are sorted, everything else is
// binary search. It allocates in proportion to W + A + devices, not readings.
package eval
