package eval

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Window is one labelled anomaly: a device, optionally the kind of anomaly
// (the alert kinds: overpressure, thermal, …; empty when the label does not
// say) and the closed interval [Start, End] of event time it covers, in Unix
// nanoseconds.
type Window struct {
	Device string `json:"device"`
	Kind   string `json:"kind,omitempty"`
	Detail string `json:"detail,omitempty"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
}

// Labels is the ground truth of an evaluation: the labelled devices and their
// anomaly windows. A device can be labelled with no window at all (the series
// has no anomaly, as six NAB files do); every alert on it is then a false
// alarm. The zero value is empty labels, ready to use. Labels is not safe for
// concurrent mutation; Evaluate only reads it.
type Labels struct {
	windows []Window
	devices map[string]struct{}
	runs    map[string]*run // point labels: the current run per device
}

// run is the state of AddPoint for one device.
type run struct {
	open       bool
	start, end int64
}

// NewLabels returns empty labels.
func NewLabels() *Labels {
	return &Labels{}
}

func (l *Labels) addDevice(device string) {
	if l.devices == nil {
		l.devices = map[string]struct{}{}
	}
	l.devices[device] = struct{}{}
}

// LabelError reports a malformed label entry. Entry names it as it appears in
// the file: `"realKnownCause/x.csv"[1]` is the second window of that key of a
// windows file, `[3] (device "sensor-node-04")` the fourth entry of a list.
type LabelError struct {
	Entry string
	Field string // "start", "end", "device", …; empty for the entry as a whole
	Err   error
}

func (e *LabelError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("eval: label %s: %v", e.Entry, e.Err)
	}
	return fmt.Sprintf("eval: label %s: %s: %v", e.Entry, e.Field, e.Err)
}

func (e *LabelError) Unwrap() error { return e.Err }

var (
	errEndBeforeStart = errors.New("end is before start")
	errNoDevice       = errors.New("device is missing or empty")
)

// Add adds a window. Its device becomes labelled.
func (l *Labels) Add(w Window) error {
	if w.Device == "" {
		return fmt.Errorf("eval: window: %w", errNoDevice)
	}
	if w.End < w.Start {
		return fmt.Errorf("eval: window of %q: %w", w.Device, errEndBeforeStart)
	}
	l.addDevice(w.Device)
	l.windows = append(l.windows, w)
	return nil
}

// AddDevice marks a device as labelled without adding a window: a series known
// to contain no anomaly.
func (l *Labels) AddDevice(device string) {
	l.addDevice(device)
}

// AddPoint adds a point label: the reading of device at t is (or is not)
// anomalous, as a CSV label column or a device's own status field says. Each
// run of consecutive anomalous points of one device becomes a window from the
// run's earliest to its latest time; a non-anomalous point ends the run. Runs
// are taken in the order points are added, which for a replay is each
// device's stream order; a device's points need not be in time order, but a
// window then spans the times of its run whatever lies between them. A run
// still open is included by Windows, so points can be added after an
// evaluation.
func (l *Labels) AddPoint(device string, t int64, anomalous bool) {
	r := l.runs[device]
	if r == nil {
		if l.runs == nil {
			l.runs = map[string]*run{}
		}
		r = &run{}
		l.runs[device] = r
		l.addDevice(device)
	}
	switch {
	case anomalous && !r.open:
		*r = run{open: true, start: t, end: t}
	case anomalous:
		r.start, r.end = min(r.start, t), max(r.end, t)
	case r.open:
		l.windows = append(l.windows, Window{Device: device, Start: r.start, End: r.end})
		r.open = false
	}
}

// Point is one point label: whether the reading of Device at Time (Unix
// nanoseconds) is anomalous.
type Point struct {
	Device    string
	Time      int64
	Anomalous bool
}

// FromPoints turns point labels into windows: each run of consecutive
// anomalous points of a device (in slice order) becomes one window, as
// AddPoint describes. Every device with a point is labelled.
func FromPoints(points []Point) *Labels {
	l := NewLabels()
	for _, p := range points {
		l.AddPoint(p.Device, p.Time, p.Anomalous)
	}
	return l
}

// Windows returns all windows, including those of point runs still open,
// ordered by device, start, end and kind. The slice is the caller's.
func (l *Labels) Windows() []Window {
	ws := slices.Clone(l.windows)
	for dev, r := range l.runs {
		if r.open {
			ws = append(ws, Window{Device: dev, Start: r.start, End: r.end})
		}
	}
	slices.SortFunc(ws, func(a, b Window) int {
		return cmp.Or(strings.Compare(a.Device, b.Device), cmp.Compare(a.Start, b.Start),
			cmp.Compare(a.End, b.End), strings.Compare(a.Kind, b.Kind))
	})
	return ws
}

// Devices returns the labelled devices, sorted.
func (l *Labels) Devices() []string {
	ds := make([]string, 0, len(l.devices))
	for d := range l.devices {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
}

// UnknownDevices returns, sorted, the labelled devices that are not in seen:
// labels for devices that never appeared in the data (usually a misspelt name
// or a label file for other data). Evaluate ignores their windows and lists
// them in Report.UnknownDevices.
func (l *Labels) UnknownDevices(seen map[string]bool) []string {
	var out []string
	for _, d := range l.Devices() {
		if !seen[d] {
			out = append(out, d)
		}
	}
	return out
}

// LoadLabels reads a label file; see ParseLabels.
func LoadLabels(name string) (*Labels, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("eval: load labels: %w", err)
	}
	l, err := ParseLabels(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// ReadLabels reads labels from r; see ParseLabels.
func ReadLabels(r io.Reader) (*Labels, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("eval: read labels: %w", err)
	}
	return ParseLabels(b)
}

// ParseLabels parses labels in either of two JSON forms, told apart by their
// first character.
//
// The windows form, NAB's combined_windows.json, maps a series or device to its
// windows; a key with no window labels its device as free of anomalies:
//
//	{"realKnownCause/machine_temperature_system_failure.csv": [["2013-12-10 06:25:00.000000", "2013-12-12 05:35:00.000000"]],
//	 "artificialNoAnomaly/art_flatline.csv": []}
//
// Its keys go through NormalizeDevice, so a file's key names the device that
// replaying the file creates; two keys naming the same device are an error.
//
// The list form, the one `vigil simulate` writes, has one object per window;
// kind and detail are optional and other fields are ignored. Device names are
// taken as they are:
//
//	[{"device": "sensor-node-01", "kind": "overpressure", "start": "2026-11-21T10:10:08.576Z", "end": "2026-11-21T10:10:17.584Z"}]
//
// A time is a string, RFC 3339 or the same with a space for the T, with or
// without fractional seconds and zone (no zone means UTC, as Vigil's decoder
// reads it), or a Unix epoch (a JSON number or a string of digits) scaled by
// magnitude as the decoder does: seconds below 1e11, milliseconds below 1e14,
// microseconds below 1e17, else nanoseconds. Errors are *LabelError naming the
// entry.
func ParseLabels(data []byte) (*Labels, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("eval: labels: empty input")
	}
	switch data[0] {
	case '{':
		return parseWindowsForm(data)
	case '[':
		return parseListForm(data)
	}
	return nil, errors.New("eval: labels: want a JSON object (windows form) or array (list form)")
}

func parseWindowsForm(data []byte) (*Labels, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("eval: labels (windows form): %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	l := NewLabels()
	owner := make(map[string]string, len(keys)) // device → key
	for _, key := range keys {
		entry := strconv.Quote(key)
		dev := NormalizeDevice(key)
		if dev == "" {
			return nil, &LabelError{Entry: entry, Err: errNoDevice}
		}
		if prev, ok := owner[dev]; ok {
			return nil, &LabelError{Entry: entry, Err: fmt.Errorf("names device %q, as %q does", dev, prev)}
		}
		owner[dev] = key
		var ws []json.RawMessage
		if err := json.Unmarshal(m[key], &ws); err != nil {
			return nil, &LabelError{Entry: entry, Err: errors.New("want a list of [start, end] pairs")}
		}
		l.AddDevice(dev)
		for i, raw := range ws {
			entry := fmt.Sprintf("%s[%d]", entry, i)
			var pair []json.RawMessage
			if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
				return nil, &LabelError{Entry: entry, Err: errors.New("want a [start, end] pair")}
			}
			w := Window{Device: dev}
			var err error
			if w.Start, err = parseTimeJSON(pair[0]); err != nil {
				return nil, &LabelError{Entry: entry, Field: "start", Err: err}
			}
			if w.End, err = parseTimeJSON(pair[1]); err != nil {
				return nil, &LabelError{Entry: entry, Field: "end", Err: err}
			}
			if w.End < w.Start {
				return nil, &LabelError{Entry: entry, Err: errEndBeforeStart}
			}
			l.windows = append(l.windows, w)
		}
	}
	return l, nil
}

func parseListForm(data []byte) (*Labels, error) {
	var list []struct {
		Device *string          `json:"device"`
		Kind   string           `json:"kind"`
		Detail string           `json:"detail"`
		Start  *json.RawMessage `json:"start"`
		End    *json.RawMessage `json:"end"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("eval: labels (list form): %w", err)
	}
	l := NewLabels()
	for i, e := range list {
		entry := fmt.Sprintf("[%d]", i)
		if e.Device == nil || *e.Device == "" {
			return nil, &LabelError{Entry: entry, Field: "device", Err: errNoDevice}
		}
		entry += fmt.Sprintf(" (device %q)", *e.Device)
		w := Window{Device: *e.Device, Kind: e.Kind, Detail: e.Detail}
		for _, f := range []struct {
			name string
			raw  *json.RawMessage
			dst  *int64
		}{{"start", e.Start, &w.Start}, {"end", e.End, &w.End}} {
			if f.raw == nil {
				return nil, &LabelError{Entry: entry, Field: f.name, Err: errors.New("missing")}
			}
			t, err := parseTimeJSON(*f.raw)
			if err != nil {
				return nil, &LabelError{Entry: entry, Field: f.name, Err: err}
			}
			*f.dst = t
		}
		if w.End < w.Start {
			return nil, &LabelError{Entry: entry, Err: errEndBeforeStart}
		}
		l.addDevice(w.Device)
		l.windows = append(l.windows, w)
	}
	return l, nil
}

// NormalizeDevice maps a key of a windows file to the device name Vigil
// derives when it replays the file the key names: a key that looks like a file
// (it contains a path separator, or ends in .csv, .tsv, .log, .txt, .json,
// .jsonl or .ndjson, optionally followed by .gz) becomes its base name without
// .gz and one more extension, so
// "realKnownCause/machine_temperature_system_failure.csv" becomes
// "machine_temperature_system_failure". Any other key is a device name and is
// returned unchanged (device names may contain dots: "line.a.pump").
func NormalizeDevice(key string) string {
	if !strings.ContainsAny(key, `/\`) && !hasDataExt(key) {
		return key
	}
	base := key[strings.LastIndexAny(key, `/\`)+1:]
	if base == "" {
		return key
	}
	if len(base) > 3 && strings.EqualFold(base[len(base)-3:], ".gz") {
		base = base[:len(base)-3]
	}
	if stem := strings.TrimSuffix(base, path.Ext(base)); stem != "" {
		return stem
	}
	return base
}

func hasDataExt(name string) bool {
	name = strings.ToLower(name)
	name = strings.TrimSuffix(name, ".gz")
	switch path.Ext(name) {
	case ".csv", ".tsv", ".log", ".txt", ".json", ".jsonl", ".ndjson":
		return true
	}
	return false
}

// Years Vigil accepts (see pipeline/timeparse.go): int64 nanoseconds end in 2262.
const (
	minYear = 1970
	maxYear = 2261
)

var timeLayouts = []string{
	time.RFC3339, // fractional seconds are accepted when parsing
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
}

// parseTimeJSON parses a JSON time value (string or epoch number) to Unix
// nanoseconds.
func parseTimeJSON(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		return ParseTime(s)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("want a time string or a Unix epoch number, got %s", raw)
	}
	return parseEpoch(string(n))
}

// ParseTime parses a label time string to Unix nanoseconds: RFC 3339 or the
// same with a space for the T, fractional seconds and zone optional (no zone
// is UTC), or a string of digits read as a Unix epoch by magnitude.
func ParseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return parseEpoch(s)
	}
	for _, layout := range timeLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if y := t.Year(); y < minYear || y > maxYear {
			return 0, fmt.Errorf("time %q: year outside %d..%d", s, minYear, maxYear)
		}
		return t.UnixNano(), nil
	}
	return 0, fmt.Errorf("invalid time %q (want RFC 3339, \"2006-01-02 15:04:05[.fraction]\" or a Unix epoch)", s)
}

// parseEpoch reads a decimal Unix epoch: seconds below 1e11, milliseconds
// below 1e14, microseconds below 1e17, else nanoseconds.
func parseEpoch(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("invalid epoch %q", s)
	}
	unit := 1.0
	switch {
	case f < 1e11:
		unit = 1e9
	case f < 1e14:
		unit = 1e6
	case f < 1e17:
		unit = 1e3
	}
	// Integers are exact; fractions within float precision.
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		u := int64(unit)
		if n > math.MaxInt64/u {
			return 0, fmt.Errorf("epoch %q out of range", s)
		}
		return checkYear(s, n*u)
	}
	ns := f * unit
	if ns >= math.MaxInt64 {
		return 0, fmt.Errorf("epoch %q out of range", s)
	}
	return checkYear(s, int64(math.Round(ns)))
}

func checkYear(s string, ns int64) (int64, error) {
	if y := time.Unix(0, ns).UTC().Year(); y < minYear || y > maxYear {
		return 0, fmt.Errorf("time %q: year outside %d..%d", s, minYear, maxYear)
	}
	return ns, nil
}
