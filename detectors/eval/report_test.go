package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

func TestNumberJSON(t *testing.T) {
	for _, tc := range []struct {
		in   Number
		want string
	}{
		{0, "0"}, {0.25, "0.25"}, {-7.5, "-7.5"}, {1e-9, "1e-09"},
		{Number(math.NaN()), "null"}, {Number(math.Inf(1)), "null"},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", float64(tc.in), b, err, tc.want)
		}
	}
	var n Number
	if err := json.Unmarshal([]byte("null"), &n); err != nil || !math.IsNaN(float64(n)) {
		t.Errorf("Unmarshal(null) = %v, %v; want NaN", n, err)
	}
	if err := json.Unmarshal([]byte("0.5"), &n); err != nil || n != 0.5 {
		t.Errorf("Unmarshal(0.5) = %v, %v; want 0.5", n, err)
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	alerts, labels, data := scenario(t)
	r := Evaluate(alerts, labels, data, Options{MatchKind: true})
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"per_device"`, `"per_kind"`, `"delay_median_s": null`, `"false_alarm_rate"`, `"reward_low_FN"`, `"unknown_devices": []`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, buf.String())
		}
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Overall.Points != r.Overall.Points {
		t.Errorf("points after a round trip %+v; want %+v", back.Overall.Points, r.Overall.Points)
	}
	if !math.IsNaN(float64(back.Overall.Events.DelayMedian)) || back.Overall.Events.Windows != 3 {
		t.Errorf("events after a round trip %+v", back.Overall.Events)
	}
	if len(back.PerDevice) != 1 || back.PerDevice[0].Device != "d1" || back.PerDevice[0].NAB.Windows != 3 {
		t.Errorf("per device after a round trip %+v", back.PerDevice)
	}
}

func TestWriteTable(t *testing.T) {
	alerts, labels, data := scenario(t)
	r := Evaluate(alerts, labels, data, Options{})
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"1 devices, 100 readings, 8 alert records (0 ignored)",
		"EVENTS ", "POINTS ", "NAB ", "DEVICE ",
		"\noverpressure ", "\nthermal ",
		"0.333", // event recall
		"0.394", // point precision 13/33
		"reward_low_FP",
		"\nd1 ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Rows of one table have the same width.
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "EVENTS") {
			for _, next := range lines[i+1 : i+4] {
				if len(next) != len(l) {
					t.Errorf("row %q is %d wide; header %d", next, len(next), len(l))
				}
			}
		}
	}
}

func TestWriteTableDevices(t *testing.T) {
	var data DataInfo
	labels := NewLabels()
	var alerts []pipeline.Alert
	for i := range 30 {
		dev := fmt.Sprintf("dev-%02d", i)
		for s := range 100 {
			data.Add(dev, sec(float64(s)))
		}
		if i == 17 { // the worst: two false alarms
			alerts = append(alerts, rec("x", dev, "thermal", pipeline.Firing, 10), rec("y", dev, "thermal", pipeline.Firing, 20))
		}
	}
	labels.AddDevice("nowhere")
	r := Evaluate(alerts, labels, data, Options{})
	count := func(out string) int { return strings.Count(out, "\ndev-") }

	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := count(out); n != DefaultTableDevices {
		t.Errorf("%d device rows; want %d", n, DefaultTableDevices)
	}
	if !strings.Contains(out, "20 of 30 devices") || !strings.Contains(out, "DEVICE ") {
		t.Errorf("no truncation note:\n%s", out)
	}
	if i, j := strings.Index(out, "\ndev-17"), strings.Index(out, "\ndev-00"); i < 0 || j >= 0 && i > j {
		t.Errorf("the worst device is not first:\n%s", out)
	}
	if !strings.Contains(out, "not in the data (ignored): nowhere") {
		t.Errorf("unknown device not reported:\n%s", out)
	}
	buf.Reset()
	if err := r.WriteTableDevices(&buf, -1); err != nil || count(buf.String()) != 30 || strings.Contains(buf.String(), " of 30 devices") {
		t.Errorf("all devices: %d rows, %v:\n%s", count(buf.String()), err, buf.String())
	}
	buf.Reset()
	if err := r.WriteTableDevices(&buf, 0); err != nil || count(buf.String()) != 0 {
		t.Errorf("no devices: %d rows, %v", count(buf.String()), err)
	}
	if err := r.WriteTable(failWriter{}); err == nil || !errors.Is(err, errWrite) {
		t.Errorf("WriteTable to a failing writer: %v; want errWrite", err)
	}
}

var errWrite = errors.New("disk full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestCell(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"ab", 4, "ab  "}, {"abcd", 4, "abcd"}, {"abcdef", 4, "abc…"}, {"ünï", 4, "ünï "},
	} {
		if got := cell(tc.in, tc.width); got != tc.want {
			t.Errorf("cell(%q, %d) = %q; want %q", tc.in, tc.width, got, tc.want)
		}
	}
	if got := Number(-5).Delay(); got != "-5s" {
		t.Errorf("Number(-5).Delay() = %q; want -5s", got)
	}
	if got := Number(3725.4).Delay(); got != "1h2m5s" {
		t.Errorf("Number(3725.4).Delay() = %q; want 1h2m5s", got)
	}
}

func TestNumberDelay(t *testing.T) {
	for _, tc := range []struct {
		n    Number
		want string
	}{
		{Number(1.0004), "1s"}, {Number(0.25), "250ms"}, {Number(3.0184), "3.018s"},
		{Number(90.4), "1m30s"}, {Number(-2), "-2s"}, {Number(math.NaN()), "-"},
	} {
		if got := tc.n.Delay(); got != tc.want {
			t.Errorf("Number(%v).Delay() = %q; want %q", float64(tc.n), got, tc.want)
		}
	}
}
