package eval

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	plantLabels = "../../fixtures/plant.labels.json"
	nabWindows  = "../../../shared/datasets/nab/labels/combined_windows.json"
)

func utc(y int, mo time.Month, d, h, mi, s, ns int) int64 {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC).UnixNano()
}

func TestParseWindowsForm(t *testing.T) {
	l, err := ParseLabels([]byte(`{
		"realKnownCause/machine_temperature_system_failure.csv": [
			["2013-12-10 06:25:00.000000", "2013-12-12 05:35:00.000000"],
			["2013-12-15 17:50:00.000000", "2013-12-17 17:00:00.000000"]
		],
		"artificialNoAnomaly/art_flatline.csv": [],
		"sensor-node-01": [["2026-11-21T10:10:08.576Z", "2026-11-21T10:10:17.584Z"]]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Devices(), []string{"art_flatline", "machine_temperature_system_failure", "sensor-node-01"}; !slices.Equal(got, want) {
		t.Errorf("devices %q; want %q", got, want)
	}
	want := []Window{
		{Device: "machine_temperature_system_failure", Start: utc(2013, 12, 10, 6, 25, 0, 0), End: utc(2013, 12, 12, 5, 35, 0, 0)},
		{Device: "machine_temperature_system_failure", Start: utc(2013, 12, 15, 17, 50, 0, 0), End: utc(2013, 12, 17, 17, 0, 0, 0)},
		{Device: "sensor-node-01", Start: utc(2026, 11, 21, 10, 10, 8, 576e6), End: utc(2026, 11, 21, 10, 10, 17, 584e6)},
	}
	if got := l.Windows(); !slices.Equal(got, want) {
		t.Errorf("windows\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseListForm(t *testing.T) {
	l, err := ParseLabels([]byte(`[
		{"device":"n1","kind":"overpressure","detail":"spike","start":"2026-11-21T10:10:08.576Z","end":"2026-11-21T10:10:17.584Z"},
		{"device":"n2","start":1763719808,"end":"1763719818000"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Window{
		{Device: "n1", Kind: "overpressure", Detail: "spike", Start: utc(2026, 11, 21, 10, 10, 8, 576e6), End: utc(2026, 11, 21, 10, 10, 17, 584e6)},
		{Device: "n2", Start: 1763719808e9, End: 1763719818e9},
	}
	if got := l.Windows(); !slices.Equal(got, want) {
		t.Errorf("windows\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadPlantLabels(t *testing.T) {
	l, err := LoadLabels(plantLabels)
	if err != nil {
		t.Fatal(err)
	}
	ws := l.Windows()
	if len(ws) != 47 {
		t.Fatalf("%d windows; want 47", len(ws))
	}
	// The first entry of the file.
	first := Window{Device: "sensor-node-01", Kind: "overpressure", Detail: "spike",
		Start: utc(2026, 11, 21, 10, 10, 8, 576e6), End: utc(2026, 11, 21, 10, 10, 17, 584e6)}
	if !slices.Contains(ws, first) {
		t.Errorf("windows lack %+v", first)
	}
	if n := len(l.Devices()); n != 8 {
		t.Errorf("%d devices (%q); want 8", n, l.Devices())
	}
}

func TestParseTime(t *testing.T) {
	ms := utc(2026, 11, 21, 10, 10, 8, 576e6)
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"2026-11-21T10:10:08.576Z", ms},
		{"2026-11-21T11:10:08.576+01:00", ms},
		{"2026-11-21 11:10:08.576+01:00", ms},
		{"2026-11-21T10:10:08.576", ms},
		{"2026-11-21 10:10:08.576000", ms},
		{"2026-11-21T10:10:08Z", utc(2026, 11, 21, 10, 10, 8, 0)},
		{"2014-04-10 07:15:00.000000", utc(2014, 4, 10, 7, 15, 0, 0)},
		{"2014-04-10 07:15:00", utc(2014, 4, 10, 7, 15, 0, 0)},
		{" 2014-04-10 07:15:00 ", utc(2014, 4, 10, 7, 15, 0, 0)},
		{"1795255808", 1795255808e9}, // seconds
		{"1795255808576", ms},        // milliseconds
		{"1795255808576000", ms},     // microseconds
		{"1795255808576000000", ms},  // nanoseconds
		{"2026-11-21T10:10:08.123456789Z", utc(2026, 11, 21, 10, 10, 8, 123456789)},
	} {
		got, err := ParseTime(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTime(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "yesterday", "2014-13-10 07:15:00", "2014-04-10", "2014-04-10 25:00:00", "1900-01-01 00:00:00", "10/04/2014 07:15"} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %d; want an error", in, got)
		}
	}
	if got, err := parseTimeJSON([]byte("1795255808.576")); err != nil || got != ms {
		t.Errorf("parseTimeJSON(1795255808.576) = %d, %v; want %d", got, err, ms)
	}
}

func TestParseLabelsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		entry    string // LabelError.Entry; "" when not a LabelError
		field    string
		msg      string // in the message
	}{
		{"bad start", `{"realKnownCause/x.csv": [["2014-04-10 07:15:00", "2014-04-10 08:15:00"], ["2014-13-10 07:15:00", "2014-04-10 08:15:00"]]}`,
			`"realKnownCause/x.csv"[1]`, "start", `invalid time "2014-13-10 07:15:00"`},
		{"bad end", `{"a": [["2014-04-10 07:15:00", "soon"]]}`, `"a"[0]`, "end", `"soon"`},
		{"end before start", `{"a": [["2014-04-10 07:15:00", "2014-04-10 06:15:00"]]}`, `"a"[0]`, "", "end is before start"},
		{"not a pair", `{"a": [["2014-04-10 07:15:00"]]}`, `"a"[0]`, "", "[start, end] pair"},
		{"not a list", `{"a": "2014-04-10 07:15:00"}`, `"a"`, "", "list of [start, end] pairs"},
		{"same device twice", `{"x/m.csv": [], "y/m.csv": []}`, `"y/m.csv"`, "", `names device "m", as "x/m.csv" does`},
		{"list bad time", `[{"device":"n1","start":"2026-11-21T10:10:08Z","end":"2026-11-21T10:10:09Z"},
			{"device":"n2","start":"2026-11-21T10:10:08Z","end":"2026-11-21T25:10:09Z"}]`,
			`[1] (device "n2")`, "end", `invalid time "2026-11-21T25:10:09Z"`},
		{"list missing device", `[{"start":"2026-11-21T10:10:08Z","end":"2026-11-21T10:10:09Z"}]`, `[0]`, "device", "missing"},
		{"list missing end", `[{"device":"n1","start":"2026-11-21T10:10:08Z"}]`, `[0] (device "n1")`, "end", "missing"},
		{"list bool time", `[{"device":"n1","start":true,"end":"2026-11-21T10:10:09Z"}]`, `[0] (device "n1")`, "start", "time string or a Unix epoch"},
		{"not JSON", `{"a": [`, "", "", "windows form"},
		{"neither form", `"a"`, "", "", "want a JSON object"},
		{"empty", ` `, "", "", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLabels([]byte(tc.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q; want it to contain %q", err, tc.msg)
			}
			var le *LabelError
			if tc.entry == "" {
				if errors.As(err, &le) {
					t.Errorf("got a LabelError %+v; want another error", le)
				}
				return
			}
			if !errors.As(err, &le) {
				t.Fatalf("error %q is not a *LabelError", err)
			}
			if le.Entry != tc.entry || le.Field != tc.field {
				t.Errorf("entry %s, field %q; want %s, %q", le.Entry, le.Field, tc.entry, tc.field)
			}
			if !strings.Contains(err.Error(), tc.entry) {
				t.Errorf("error %q does not name the entry %s", err, tc.entry)
			}
		})
	}
}

func TestLoadLabelsErrorNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(p, []byte(`[{"device":"n1","start":"x","end":"y"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadLabels(p)
	var le *LabelError
	if err == nil || !strings.Contains(err.Error(), p) || !errors.As(err, &le) {
		t.Errorf("error %v; want a *LabelError naming %s", err, p)
	}
	if _, err := LoadLabels(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v; want os.ErrNotExist", err)
	}
}

func TestNormalizeDevice(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"realKnownCause/machine_temperature_system_failure.csv", "machine_temperature_system_failure"},
		{"machine_temperature_system_failure.csv", "machine_temperature_system_failure"},
		{"data/realKnownCause/ambient_temperature_system_failure.csv.gz", "ambient_temperature_system_failure"},
		{`C:\logs\plant.log`, "plant"},
		{"logs/plant.LOG", "plant"},
		{"historian/pump-3", "pump-3"},
		{"sensor-node-01", "sensor-node-01"},
		{"line.a.pump", "line.a.pump"}, // a device name with dots is kept
		{"dir/", "dir/"},
	} {
		if got := NormalizeDevice(tc.in); got != tc.want {
			t.Errorf("NormalizeDevice(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnknownDevices(t *testing.T) {
	l, err := LoadLabels(plantLabels)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range l.Devices() {
		seen[d] = true
	}
	if got := l.UnknownDevices(seen); len(got) != 0 {
		t.Errorf("UnknownDevices(all) = %q; want none", got)
	}
	delete(seen, "sensor-node-04")
	delete(seen, "sensor-node-10")
	seen["sensor-node-02"] = true // in the data, not labelled: not reported
	if got, want := l.UnknownDevices(seen), []string{"sensor-node-04", "sensor-node-10"}; !slices.Equal(got, want) {
		t.Errorf("UnknownDevices = %q; want %q", got, want)
	}
}

func TestFromPoints(t *testing.T) {
	l := FromPoints([]Point{
		{"d1", 1, false}, {"d1", 2, true}, {"d2", 1, true}, {"d1", 3, true},
		{"d1", 4, false}, {"d1", 5, true}, {"d3", 1, false}, {"d1", 6, false},
	})
	want := []Window{
		{Device: "d1", Start: 2, End: 3},
		{Device: "d1", Start: 5, End: 5},
		{Device: "d2", Start: 1, End: 1}, // still open
	}
	if got := l.Windows(); !slices.Equal(got, want) {
		t.Errorf("windows %+v; want %+v", got, want)
	}
	if got := l.Devices(); !slices.Equal(got, []string{"d1", "d2", "d3"}) {
		t.Errorf("devices %q; want d1, d2, d3", got)
	}
	// The open run of d2 goes on; a point earlier than the run widens it.
	l.AddPoint("d2", 4, true)
	l.AddPoint("d2", 0, true)
	l.AddPoint("d2", 5, false)
	if got := l.Windows()[2]; got != (Window{Device: "d2", Start: 0, End: 4}) {
		t.Errorf("d2 window %+v; want [0, 4]", got)
	}
	if n := len(l.Windows()); n != 3 {
		t.Errorf("%d windows; want 3", n)
	}
}

// TestPointLabelsEvaluate: point labels from a status column, evaluated
// point-wise, reproduce the labelled readings exactly.
func TestPointLabelsEvaluate(t *testing.T) {
	status := []bool{false, false, true, true, true, false, false, true, false, false}
	var data DataInfo
	l := NewLabels()
	for i, bad := range status {
		data.Add("d", sec(float64(i)))
		l.AddPoint("d", sec(float64(i)), bad)
	}
	r := Evaluate(nil, l, data, Options{})
	if p := r.Overall.Points; p.Positives != 4 || p.Negatives != 6 {
		t.Errorf("positives %d, negatives %d; want 4, 6", p.Positives, p.Negatives)
	}
	if e := r.Overall.Events; e.Windows != 2 {
		t.Errorf("%d windows; want 2", e.Windows)
	}
}

func TestAddRejects(t *testing.T) {
	l := NewLabels()
	if err := l.Add(Window{Device: "d", Start: 2, End: 1}); !errors.Is(err, errEndBeforeStart) {
		t.Errorf("end before start: %v", err)
	}
	if err := l.Add(Window{Start: 1, End: 2}); !errors.Is(err, errNoDevice) {
		t.Errorf("no device: %v", err)
	}
	if len(l.Windows()) != 0 || len(l.Devices()) != 0 {
		t.Error("rejected windows were kept")
	}
}

// TestNABLabelFile loads the NAB labels when the shared data sets are present.
func TestNABLabelFile(t *testing.T) {
	if _, err := os.Stat(nabWindows); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing in CI: %v", nabWindows, err)
		}
		t.Skipf("%s not present (it lives in ../shared beside the checkout)", nabWindows)
	}
	l, err := LoadLabels(nabWindows)
	if err != nil {
		t.Fatal(err)
	}
	devices, ws := l.Devices(), l.Windows()
	per := map[string]int{}
	for _, w := range ws {
		per[w.Device]++
	}
	none := 0
	for _, d := range devices {
		if per[d] == 0 {
			none++
		}
	}
	if len(ws) != 116 || len(devices) != 58 || none != 6 {
		t.Errorf("%d windows across %d files, %d without; want 116, 58, 6", len(ws), len(devices), none)
	}
	if n := per["machine_temperature_system_failure"]; n != 4 {
		t.Errorf("machine_temperature_system_failure has %d windows; want 4", n)
	}
}

func TestLabelsZeroValue(t *testing.T) {
	var l Labels
	l.AddPoint("p", 1, true)
	l.AddDevice("q")
	if err := l.Add(Window{Device: "r", Start: 1, End: 2}); err != nil {
		t.Fatal(err)
	}
	if got := l.Devices(); !slices.Equal(got, []string{"p", "q", "r"}) {
		t.Errorf("devices %q; want p, q, r", got)
	}
	if n := len(l.Windows()); n != 2 {
		t.Errorf("%d windows; want 2", n)
	}
}
