package report

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
)

// Defaults of Input.
const (
	DefaultZ           = 6
	DefaultMaxEpisodes = 25
	DefaultTitle       = "Vigil replay report"
)

// Input is what a report shows. Only Stats is needed; the rest adds sections.
type Input struct {
	// Title heads the page (default DefaultTitle).
	Title string
	// Files are the replayed inputs.
	Files []string
	// Stats are the counters of the run.
	Stats pipeline.Stats
	// Alerts are the alert records of the run, in stream order: the charts
	// and episode tables of the recorded devices come from them.
	Alerts []pipeline.Alert
	// Labels are the label windows, when labels were given.
	Labels []eval.Window
	// Eval is the evaluation against the labels, if any.
	Eval *eval.Report
	// Recording holds the series to chart (Merge); nil: no charts.
	Recording *Recording
	// Units maps signal names to units; signals not in it get their kind's
	// unit (bar, °C, mm/s; none for generic signals).
	Units map[string]string
	// Z is the half-width of the drawn band in spreads (default DefaultZ).
	Z float64
	// MaxEpisodes bounds the rows of each device's episode table (default
	// DefaultMaxEpisodes; negative: all).
	MaxEpisodes int
	// DeviceHint tells, when not all devices are charted, how to chart
	// others ("Choose them with --report-devices.").
	DeviceHint string
	// Config summarises the configuration of the run, in order: the file,
	// the pipeline's workers, the detector settings that matter (see the
	// caller). Empty: no configuration section.
	Config []Setting
}

// Setting is one line of the configuration summary.
type Setting struct{ Key, Value string }

// Write renders the report as one self-contained HTML page: inline CSS and
// SVG, no scripts, nothing loaded from elsewhere. It does not read the clock:
// the same input gives the same bytes.
func Write(w io.Writer, in Input) error {
	pg, err := build(&in)
	if err != nil {
		return err
	}
	if err := pageTemplate.Execute(w, pg); err != nil {
		return fmt.Errorf("report: write: %w", err)
	}
	return nil
}

type page struct {
	Title      string
	Subtitle   string
	Files      []string
	Summary    []kv
	Config     []Setting
	Rejections []kv
	Alerts     []alertRow
	Eval       *evalView
	DeviceNote string
	Overview   []overviewRow
	Devices    []deviceView
	Z          string
	HasEval    bool
	HasLabels  bool
	CSS        template.CSS
}

type kv struct{ Key, Value string }

type alertRow struct{ Kind, Firing, Resolved string }

type overviewRow struct {
	ID, Name, Signals, Readings string
	Warning, Critical, Windows  int
	Recall, Precision, FP       string
}

type deviceView struct {
	ID, Name string
	Meta     []string
	Eval     string
	Charts   []chartView
	Episodes []episodeRow
	More     int
	Windows  []windowRow
}

type chartView struct {
	Signal, Kind, Caption string
	SVG                   template.HTML
}

type episodeRow struct {
	Start, Duration, Severity, Detector, Kind, Signal, Score, Message string
}

type windowRow struct{ Start, Duration, Kind, Detail string }

type evalView struct {
	Events []eventsRow
	Points []kv
	NAB    []kv
	Notes  []string
	Text   string
}

type eventsRow struct {
	Scope                                             string
	Windows, Detected, Missed, Episodes, TP, FP       string
	Recall, Precision, F1, DelayP50, DelayP90, FARate string
}

func build(in *Input) (*page, error) {
	z := in.Z
	if z <= 0 {
		z = DefaultZ
	}
	maxEp := in.MaxEpisodes
	if maxEp == 0 {
		maxEp = DefaultMaxEpisodes
	}
	pg := &page{
		Title:     cmp.Or(in.Title, DefaultTitle),
		Files:     in.Files,
		Z:         strconv.FormatFloat(z, 'g', -1, 64),
		HasEval:   in.Eval != nil,
		HasLabels: len(in.Labels) > 0,
		Config:    in.Config,
		CSS:       template.CSS(css),
	}
	s := in.Stats

	// Summary.
	rejected := uint64(0)
	for _, n := range s.Rejected {
		rejected += n
	}
	pg.Summary = []kv{
		{"Messages", fmt.Sprintf("%s read, %s decoded, %s rejected", group(s.Frames), group(s.Decoded), group(rejected))},
		{"Bytes", group(s.Bytes)},
		{"Readings judged", group(s.Processed)},
		{"Devices", group(uint64(s.Devices))},
	}
	rec := in.Recording
	if rec != nil && len(rec.Devices) > 0 {
		from, to := int64(math.MaxInt64), int64(math.MinInt64)
		for _, d := range rec.Devices {
			for _, sr := range d.Signals {
				from, to = min(from, sr.From), max(to, sr.To)
			}
		}
		if from <= to {
			span := fmt.Sprintf("%s to %s (%s)", clock(from), clock(to), time.Duration(to-from).Round(time.Second))
			pg.Summary = append(pg.Summary, kv{"Event time (charted devices)", span})
			pg.Subtitle = span
		}
	}
	rate := ""
	if s.Elapsed > 0 {
		rate = fmt.Sprintf(" (%s messages/s)", group(uint64(float64(s.Frames)/s.Elapsed.Seconds())))
	}
	pg.Summary = append(pg.Summary, kv{"Elapsed", s.Elapsed.Round(time.Millisecond).String() + rate})
	for _, k := range sortedKeys(s.Rejected) {
		pg.Rejections = append(pg.Rejections, kv{k, group(s.Rejected[k])})
	}
	kinds, firing, resolved := s.AlertsByKind()
	for _, k := range kinds {
		pg.Alerts = append(pg.Alerts, alertRow{k, group(firing[k]), group(resolved[k])})
	}

	// Evaluation.
	perDevice := map[string]*eval.DeviceSummary{}
	if r := in.Eval; r != nil {
		ev, err := evaluation(r)
		if err != nil {
			return nil, err
		}
		pg.Eval = ev
		for i := range r.PerDevice {
			perDevice[r.PerDevice[i].Device] = &r.PerDevice[i]
		}
	}

	// Devices.
	if rec == nil {
		return pg, nil
	}
	if omitted := rec.Seen - len(rec.Devices); omitted > 0 {
		why := fmt.Sprintf("the first %d by name", len(rec.Devices))
		if len(rec.Options.Devices) > 0 {
			why = fmt.Sprintf("the first %d by name matching %s", len(rec.Devices), strings.Join(rec.Options.Devices, ", "))
		}
		pg.DeviceNote = strings.TrimSpace(fmt.Sprintf("Charts show %d of %d devices: %s. %s",
			len(rec.Devices), rec.Seen, why, in.DeviceHint))
	}
	episodes := episodesByDevice(in.Alerts)
	windows := map[string][]eval.Window{}
	for _, w := range in.Labels {
		windows[w.Device] = append(windows[w.Device], w)
	}
	for i := range rec.Devices {
		d := &rec.Devices[i]
		dv, row, err := deviceSection(in, d, i, z, maxEp, episodes[d.Device], windows[d.Device], perDevice[d.Device])
		if err != nil {
			return nil, err
		}
		pg.Devices = append(pg.Devices, dv)
		pg.Overview = append(pg.Overview, row)
	}
	return pg, nil
}

func deviceSection(in *Input, d *DeviceSeries, i int, z float64, maxEp int, eps []*episode, ws []eval.Window, ds *eval.DeviceSummary) (deviceView, overviewRow, error) {
	dv := deviceView{ID: "device-" + strconv.Itoa(i+1), Name: d.Device}
	row := overviewRow{ID: dv.ID, Name: d.Device, Windows: len(ws), Recall: "", Precision: "", FP: ""}
	var names []string
	readings := uint64(0)
	from, to := int64(math.MaxInt64), int64(math.MinInt64)
	for j := range d.Signals {
		from, to = min(from, d.Signals[j].From), max(to, d.Signals[j].To)
	}
	charted := map[pipeline.SignalKind]bool{}
	for j := range d.Signals {
		charted[d.Signals[j].Kind] = true
	}
	// The charts of a device share their time axis, aligned on the page.
	plots := make([]*plot.Plot, len(d.Signals))
	chartWindows := make([][]eval.Window, len(d.Signals))
	left := vg.Length(0)
	for j := range d.Signals {
		s := &d.Signals[j]
		unit, ok := in.Units[s.Signal]
		if !ok {
			unit = kindUnit(s.Kind)
		}
		var mine []*episode
		for _, e := range eps {
			if e.signal == s.Signal || e.signal == "" {
				mine = append(mine, e)
			}
		}
		c := &chart{s: s, unit: unit, z: z, episodes: mine, windows: windowsOn(s.Kind, ws, charted), from: from, to: to}
		p, err := c.plot()
		if err != nil {
			return dv, row, fmt.Errorf("report: device %s: %w", d.Device, err)
		}
		plots[j] = p
		chartWindows[j] = c.windows
		left = max(left, dataLeft(p))
	}
	for j := range d.Signals {
		s := &d.Signals[j]
		names = append(names, s.Signal)
		readings = max(readings, s.Count)
		svg, err := renderSVG(plots[j], left)
		if err != nil {
			return dv, row, fmt.Errorf("report: device %s, signal %s: %w", d.Device, s.Signal, err)
		}
		svg = bytes.Replace(svg, []byte("<svg "), []byte(`<svg role="img" aria-label="`+template.HTMLEscapeString(d.Device+" "+s.Signal)+`" `), 1)
		caption := fmt.Sprintf("%s readings, %s per column", group(s.Count), bucketWidth(s.Width))
		if n := len(chartWindows[j]); n > 0 {
			caption += fmt.Sprintf("; %d label %s (%s)", n, plural(n, "window", "windows"), windowKinds(chartWindows[j]))
		}
		title := s.Signal
		if k := s.Kind.String(); k != s.Signal {
			title += " (" + k + ")"
		}
		dv.Charts = append(dv.Charts, chartView{Signal: title, Kind: s.Kind.String(), Caption: caption, SVG: template.HTML(svg)})
	}
	row.Signals = strings.Join(names, ", ")
	row.Readings = group(readings)
	dv.Meta = append(dv.Meta, fmt.Sprintf("%s readings", group(readings)))
	for _, e := range eps {
		if e.severity == pipeline.Critical {
			row.Critical++
		} else {
			row.Warning++
		}
	}
	dv.Meta = append(dv.Meta, fmt.Sprintf("%d alert episodes (%d critical)", len(eps), row.Critical))
	if len(ws) > 0 {
		dv.Meta = append(dv.Meta, fmt.Sprintf("%d label windows", len(ws)))
	}
	if ds != nil {
		e := ds.Events
		row.Recall, row.Precision, row.FP = ratio(e.Recall), ratio(e.Precision), strconv.Itoa(e.FalsePositives)
		dv.Eval = fmt.Sprintf("windows %d, detected %d, missed %d; episodes %d, false alarms %d; recall %s, precision %s, delay p50 %s",
			e.Windows, e.Detected, e.Missed, e.Episodes, e.FalsePositives, ratio(e.Recall), ratio(e.Precision), e.DelayMedian.Delay())
	}
	shown := eps
	if maxEp >= 0 && len(shown) > maxEp {
		shown = shown[:maxEp]
		dv.More = len(eps) - maxEp
	}
	for _, e := range shown {
		dur := "open"
		if !e.open {
			dur = time.Duration(e.resolved - e.fired).Round(time.Millisecond).String()
		}
		sig := e.signal
		if sig == "" {
			sig = "(device)"
		}
		dv.Episodes = append(dv.Episodes, episodeRow{
			Start: clock(e.fired), Duration: dur, Severity: e.severity.String(),
			Detector: e.detector, Kind: e.kind, Signal: sig,
			Score: strconv.FormatFloat(e.peak, 'f', 2, 64), Message: e.message,
		})
	}
	for _, w := range ws {
		dv.Windows = append(dv.Windows, windowRow{
			Start: clock(w.Start), Duration: time.Duration(w.End - w.Start).Round(time.Millisecond).String(),
			Kind: w.Kind, Detail: w.Detail,
		})
	}
	return dv, row, nil
}

func evaluation(r *eval.Report) (*evalView, error) {
	ev := &evalView{}
	row := func(scope string, e eval.Events) eventsRow {
		return eventsRow{
			Scope: scope, Windows: strconv.Itoa(e.Windows), Detected: strconv.Itoa(e.Detected),
			Missed: strconv.Itoa(e.Missed), Episodes: strconv.Itoa(e.Episodes),
			TP: strconv.Itoa(e.TruePositives), FP: strconv.Itoa(e.FalsePositives),
			Recall: ratio(e.Recall), Precision: ratio(e.Precision), F1: ratio(e.F1),
			DelayP50: e.DelayMedian.Delay(), DelayP90: e.DelayP90.Delay(),
			FARate: rate(e.FalseAlarmsPerHour),
		}
	}
	ev.Events = append(ev.Events, row("overall", r.Overall.Events))
	for _, k := range r.Kinds {
		name := k.Kind
		if name == "" {
			name = "(no kind)"
		}
		ev.Events = append(ev.Events, row(name, k.Events))
	}
	p := r.Overall.Points
	ev.Points = []kv{
		{"readings", strconv.Itoa(p.Readings)}, {"labelled anomalous", strconv.Itoa(p.Positives)},
		{"true positives", strconv.Itoa(p.TruePositives)}, {"false positives", strconv.Itoa(p.FalsePositives)},
		{"false negatives", strconv.Itoa(p.FalseNegatives)},
		{"precision", ratio(p.Precision)}, {"recall", ratio(p.Recall)}, {"F1", ratio(p.F1)},
		{"false-alarm rate", ratio(p.FalseAlarmRate)}, {"missed-alarm rate", ratio(p.MissedAlarmRate)},
	}
	n := r.Overall.NAB
	for _, sc := range n.Scores {
		v := "-"
		if sc.Score.Defined() {
			v = strconv.FormatFloat(float64(sc.Score), 'f', 1, 64)
		}
		ev.NAB = append(ev.NAB, kv{sc.Profile, v})
	}
	ev.NAB = append(ev.NAB, kv{"windows scored (detected)", fmt.Sprintf("%d (%d)", n.Windows, n.Detected)})
	o := r.Options
	match := "kinds ignored"
	if o.MatchKind {
		match = "kinds matched"
	}
	ev.Notes = append(ev.Notes, fmt.Sprintf("%d devices, %d readings, %d alert records; windows widened by %s before and %s after; %s.",
		r.Devices, r.Readings, r.Alerts, o.Before, o.After, match))
	if len(r.UnknownDevices) > 0 {
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d labelled devices are not in the data: %s.", len(r.UnknownDevices), sample(r.UnknownDevices, 5)))
	}
	if r.IgnoredAlerts > 0 {
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d alert records were not evaluated.", r.IgnoredAlerts))
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		return nil, err
	}
	ev.Text = buf.String()
	return ev, nil
}

func kindUnit(k pipeline.SignalKind) string { return k.Unit() }

// group formats n with thin spaces between groups of three digits.
func group(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 4 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(c)
	}
	return b.String()
}

func clock(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000")
}

func bucketWidth(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.String()
}

func ratio(n eval.Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 3, 64)
}

func rate(n eval.Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 2, 64)
}

func sample(xs []string, n int) string {
	if len(xs) > n {
		return strings.Join(xs[:n], ", ") + fmt.Sprintf(" and %d more", len(xs)-n)
	}
	return strings.Join(xs, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// windowSignal returns the quantity a label window of kind concerns, when it
// concerns one: overpressure the pressure, thermal the temperature,
// vibration the vibration, signal the generic signals.
func windowSignal(kind string) (pipeline.SignalKind, bool) {
	switch kind {
	case "overpressure":
		return pipeline.Pressure, true
	case "thermal":
		return pipeline.Temperature, true
	case "vibration":
		return pipeline.Vibration, true
	case "signal":
		return pipeline.Generic, true
	}
	return 0, false
}

// windowsOn returns the label windows drawn on the chart of a signal of
// kind k: those whose kind concerns that quantity, and those that concern
// the device as a whole (status, traffic.*, a label without a kind) or a
// quantity the device has no chart of, which are drawn on every chart so
// that no window goes unseen.
func windowsOn(k pipeline.SignalKind, ws []eval.Window, charted map[pipeline.SignalKind]bool) []eval.Window {
	var on []eval.Window
	for _, w := range ws {
		if sk, ok := windowSignal(w.Kind); !ok || sk == k || !charted[sk] {
			on = append(on, w)
		}
	}
	return on
}

// windowKinds lists the kinds of windows, each once, in order of first
// appearance ("unlabelled" for a window without a kind).
func windowKinds(ws []eval.Window) string {
	var kinds []string
	for _, w := range ws {
		k := cmp.Or(w.Kind, "unlabelled")
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return strings.Join(kinds, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
