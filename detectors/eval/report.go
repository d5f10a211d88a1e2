package eval

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Number is a metric that can be undefined (NaN): the precision of a detector
// that never alerted, the median delay when no window was detected. Its JSON
// form is a number, or null when undefined.
type Number float64

// Defined reports whether n is a number (not NaN or ±Inf).
func (n Number) Defined() bool {
	return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0)
}

// MarshalJSON writes n as a JSON number, or null when undefined.
func (n Number) MarshalJSON() ([]byte, error) {
	if !n.Defined() {
		return []byte("null"), nil
	}
	f := float64(n)
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(nil, f, 'e', -1, 64), nil
	}
	return strconv.AppendFloat(nil, f, 'f', -1, 64), nil
}

// UnmarshalJSON reads a JSON number, or null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// Report is the result of Evaluate: overall, per kind and per device.
type Report struct {
	Options ReportOptions `json:"options"`
	// Devices and Readings count the data evaluated.
	Devices  int `json:"devices"`
	Readings int `json:"readings"`
	// Alerts counts the alert records evaluated, IgnoredAlerts those that were
	// not: of devices not in the data, in no known state, or resolved records
	// of an episode without a firing record.
	Alerts        int `json:"alerts"`
	IgnoredAlerts int `json:"ignored_alerts"`
	// UnknownDevices are labelled devices that are not in the data.
	UnknownDevices []string `json:"unknown_devices"`

	Overall Summary `json:"overall"`
	// Kinds has the event-level metrics per kind: windows by the label's kind
	// ("" for windows without one), episodes by the alert's kind.
	Kinds []KindSummary `json:"per_kind"`
	// PerDevice has one entry per device of the data, sorted by name.
	PerDevice []DeviceSummary `json:"per_device"`
}

// ReportOptions records the options of the evaluation.
type ReportOptions struct {
	Before    string    `json:"before"`
	After     string    `json:"after"`
	MatchKind bool      `json:"match_kind"`
	Profiles  []Profile `json:"profiles"`
}

// Summary holds the three views of detection quality of a set of devices.
type Summary struct {
	Events Events `json:"events"`
	Points Points `json:"points"`
	NAB    NAB    `json:"nab"`
}

// KindSummary is the event-level result for one kind.
type KindSummary struct {
	Kind   string `json:"kind"`
	Events Events `json:"events"`
}

// DeviceSummary is the result for one device.
type DeviceSummary struct {
	Device   string `json:"device"`
	Readings int    `json:"readings"`
	Summary
}

// Events are the event-level (window-level) metrics. Recall is Detected /
// Windows, Precision TruePositives / Episodes, F1 their harmonic mean (0 when
// one is 0 and the other undefined). Delays
// are in seconds from a detected window's start to its first matching
// episode's firing (negative when the episode fired within Options.Before
// ahead of the window). Hours is the data span summed over the devices;
// FalseAlarmsPerHour is FalsePositives / Hours.
type Events struct {
	Windows            int     `json:"windows"`
	Detected           int     `json:"detected"`
	Missed             int     `json:"missed"`
	Episodes           int     `json:"episodes"`
	TruePositives      int     `json:"true_positives"`
	FalsePositives     int     `json:"false_positives"`
	Recall             Number  `json:"recall"`
	Precision          Number  `json:"precision"`
	F1                 Number  `json:"f1"`
	DelayMedian        Number  `json:"delay_median_s"`
	DelayP90           Number  `json:"delay_p90_s"`
	Hours              float64 `json:"hours"`
	FalseAlarmsPerHour Number  `json:"false_alarms_per_hour"`
}

// Points are the point-wise metrics: every reading is one sample, positive
// when inside a label window, predicted positive when an alert episode of its
// device is firing. F1 is 2·TP/(2·TP + FP + FN); FalseAlarmRate is
// FalsePositives / Negatives, MissedAlarmRate FalseNegatives / Positives.
type Points struct {
	Readings        int    `json:"readings"`
	Positives       int    `json:"positives"`
	Negatives       int    `json:"negatives"`
	TruePositives   int    `json:"true_positives"`
	FalsePositives  int    `json:"false_positives"`
	FalseNegatives  int    `json:"false_negatives"`
	TrueNegatives   int    `json:"true_negatives"`
	Precision       Number `json:"precision"`
	Recall          Number `json:"recall"`
	F1              Number `json:"f1"`
	FalseAlarmRate  Number `json:"false_alarm_rate"`
	MissedAlarmRate Number `json:"missed_alarm_rate"`
}

// NAB is the NAB result of one file (device) or, summed, of all. Windows
// counts the scored windows (after merging windows that share rows),
// Unscored those without rows or inside the probation period; Probation is
// the number of rows not scored; FalsePositives counts detections outside
// every window.
type NAB struct {
	Windows        int            `json:"windows"`
	Unscored       int            `json:"unscored_windows"`
	Detected       int            `json:"detected"`
	FalsePositives int            `json:"false_positives"`
	Probation      int            `json:"probation_rows"`
	Scores         []ProfileScore `json:"scores"`
}

// ProfileScore is the NAB score under one profile: the raw score S, the null
// detector's S_null = windows·A_fn, the perfect detector's S_perfect =
// windows·A_tp, and Score = 100·(S − S_null)/(S_perfect − S_null), undefined
// without windows.
type ProfileScore struct {
	Profile string  `json:"profile"`
	Raw     float64 `json:"raw"`
	Null    float64 `json:"null"`
	Perfect float64 `json:"perfect"`
	Score   Number  `json:"score"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("eval: write report: %w", err)
	}
	return nil
}

// DefaultTableDevices is how many devices WriteTable lists.
const DefaultTableDevices = 20

// WriteTable writes the report as fixed-width tables, listing at most
// DefaultTableDevices devices; see WriteTableDevices.
func (r *Report) WriteTable(w io.Writer) error {
	return r.WriteTableDevices(w, DefaultTableDevices)
}

// WriteTableDevices writes the report as fixed-width tables: event-level
// overall and per kind, point-wise and NAB overall, then at most maxDevices
// devices (all when negative, none when 0). When not all fit, the devices with
// the most missed windows and false alarms come first; otherwise they are in
// name order.
func (r *Report) WriteTableDevices(w io.Writer, maxDevices int) error {
	p := &printer{w: w}
	o := r.Options
	match := "kinds ignored"
	if o.MatchKind {
		match = "kinds matched"
	}
	p.printf("%d devices, %d readings, %d alert records (%d ignored); windows widened by %s before, %s after; %s\n",
		r.Devices, r.Readings, r.Alerts, r.IgnoredAlerts, o.Before, o.After, match)
	if n := len(r.UnknownDevices); n > 0 {
		const show = 5
		list := strings.Join(r.UnknownDevices[:min(n, show)], ", ")
		if n > show {
			list += fmt.Sprintf(", … (%d more)", n-show)
		}
		p.printf("labelled devices not in the data (ignored): %s\n", list)
	}

	// Event level.
	names := []string{"all"}
	for _, k := range r.Kinds {
		names = append(names, kindName(k.Kind))
	}
	nw := nameWidth(names, "EVENTS")
	p.printf("\n%-*s %8s %8s %7s %8s %6s %6s %9s %6s %9s %9s %9s\n", nw, "EVENTS",
		"windows", "detected", "recall", "episodes", "TP", "FP", "precision", "F1", "delay p50", "delay p90", "FA/dev-h")
	ev := func(name string, e Events) {
		p.printf("%s %8d %8d %7s %8d %6d %6d %9s %6s %9s %9s %9s\n", cell(name, nw),
			e.Windows, e.Detected, ratioCell(e.Recall), e.Episodes, e.TruePositives, e.FalsePositives,
			ratioCell(e.Precision), ratioCell(e.F1), e.DelayMedian.Delay(), e.DelayP90.Delay(),
			rateCell(e.FalseAlarmsPerHour))
	}
	ev("all", r.Overall.Events)
	for _, k := range r.Kinds {
		ev(kindName(k.Kind), k.Events)
	}

	// Point-wise.
	pt := r.Overall.Points
	p.printf("\n%-*s %9s %9s %9s %9s %9s %9s %7s %6s %11s %12s\n", nw, "POINTS",
		"readings", "positives", "TP", "FP", "FN", "precision", "recall", "F1", "false-alarm", "missed-alarm")
	p.printf("%s %9d %9d %9d %9d %9d %9s %7s %6s %11s %12s\n", cell("all", nw),
		pt.Readings, pt.Positives, pt.TruePositives, pt.FalsePositives, pt.FalseNegatives,
		ratioCell(pt.Precision), ratioCell(pt.Recall), ratioCell(pt.F1),
		ratioCell(pt.FalseAlarmRate), ratioCell(pt.MissedAlarmRate))

	// NAB.
	nab := r.Overall.NAB
	p.printf("\n%-*s %8s %8s %6s", nw, "NAB", "windows", "detected", "FP")
	for _, s := range nab.Scores {
		p.printf(" %*s", max(len(s.Profile), 8), s.Profile)
	}
	p.printf("\n%s %8d %8d %6d", cell("score", nw), nab.Windows, nab.Detected, nab.FalsePositives)
	for _, s := range nab.Scores {
		p.printf(" %*s", max(len(s.Profile), 8), scoreCell(s.Score))
	}
	p.printf("\n%s %8s %8s %6s", cell("raw", nw), "", "", "")
	for _, s := range nab.Scores {
		p.printf(" %*.2f", max(len(s.Profile), 8), s.Raw)
	}
	p.printf("\n")
	if nab.Unscored > 0 {
		p.printf("(%d windows not scored: no rows, or inside the probation period)\n", nab.Unscored)
	}

	// Devices.
	devs := r.PerDevice
	if maxDevices < 0 || maxDevices > len(devs) {
		maxDevices = len(devs)
	}
	if maxDevices == 0 {
		return p.err
	}
	heading := "DEVICE"
	if maxDevices < len(devs) {
		devs = slices.Clone(devs)
		slices.SortStableFunc(devs, func(a, b DeviceSummary) int {
			return cmp.Compare(b.Events.Missed+b.Events.FalsePositives, a.Events.Missed+a.Events.FalsePositives)
		})
		devs = devs[:maxDevices]
		p.printf("\n%d of %d devices, most missed windows and false alarms first (all are in the JSON report)\n", maxDevices, len(r.PerDevice))
	}
	names = names[:0]
	for _, d := range devs {
		names = append(names, d.Device)
	}
	dw := nameWidth(names, heading)
	nabName := ""
	if len(r.Options.Profiles) > 0 {
		nabName = "NAB " + r.Options.Profiles[0].Name
	}
	p.printf("\n%-*s %9s %8s %8s %7s %8s %6s %9s %9s %9s %6s %*s\n", dw, heading,
		"readings", "windows", "detected", "recall", "episodes", "FP", "precision", "delay p50", "FA/dev-h",
		"pt-F1", len(nabName), nabName)
	for _, d := range devs {
		e := d.Events
		nabScore := ""
		if len(d.NAB.Scores) > 0 {
			nabScore = scoreCell(d.NAB.Scores[0].Score)
		}
		p.printf("%s %9d %8d %8d %7s %8d %6d %9s %9s %9s %6s %*s\n", cell(d.Device, dw),
			d.Readings, e.Windows, e.Detected, ratioCell(e.Recall), e.Episodes, e.FalsePositives,
			ratioCell(e.Precision), e.DelayMedian.Delay(), rateCell(e.FalseAlarmsPerHour),
			ratioCell(d.Points.F1), len(nabName), nabScore)
	}
	return p.err
}

// printer remembers the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err != nil {
		return
	}
	if _, err := fmt.Fprintf(p.w, format, args...); err != nil {
		p.err = fmt.Errorf("eval: write table: %w", err)
	}
}

const maxNameWidth = 40

func nameWidth(names []string, heading string) int {
	w := utf8.RuneCountInString(heading)
	for _, n := range names {
		w = max(w, utf8.RuneCountInString(n))
	}
	return min(w, maxNameWidth)
}

// cell pads or truncates s to width runes.
func cell(s string, width int) string {
	n := utf8.RuneCountInString(s)
	if n > width {
		r := []rune(s)
		return string(r[:width-1]) + "…"
	}
	return s + strings.Repeat(" ", width-n)
}

func kindName(k string) string {
	if k == "" {
		return "(no kind)"
	}
	return k
}

func ratioCell(n Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 3, 64)
}

func rateCell(n Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 2, 64)
}

func scoreCell(n Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 1, 64)
}

// Delay formats a number of seconds (a detection delay) as a duration,
// rounded to the millisecond, or to the second from a minute up; "-" when
// undefined.
func (n Number) Delay() string {
	if !n.Defined() {
		return "-"
	}
	d := time.Duration(math.Round(float64(n)*1e3)) * time.Millisecond
	if d >= time.Minute || d <= -time.Minute {
		d = d.Round(time.Second)
	}
	return d.String()
}
