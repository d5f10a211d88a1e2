package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/vigil-iot/vigil/pipeline"
)

// parse parses a page and fails the test on an error.
func parse(tb testing.TB, page []byte) *html.Node {
	tb.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		tb.Fatalf("parse the report: %v", err)
	}
	return doc
}

// walk calls f for every element under n.
func walk(n *html.Node, f func(*html.Node)) {
	if n.Type == html.ElementNode {
		f(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func count(doc *html.Node, tag string) int {
	n := 0
	walk(doc, func(e *html.Node) {
		if e.Data == tag {
			n++
		}
	})
	return n
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(e *html.Node) {
		if found == nil && attr(e, "id") == id {
			found = e
		}
	})
	return found
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return b.String()
}

// selfContained reports the first reference to anything outside the page.
func selfContained(doc *html.Node) error {
	var err error
	walk(doc, func(e *html.Node) {
		if err != nil {
			return
		}
		switch e.Data {
		case "script", "link", "iframe", "img", "object", "embed", "base", "image":
			err = fmt.Errorf("<%s> element", e.Data)
			return
		case "style":
			if css := strings.ToLower(textOf(e)); strings.Contains(css, "url(") || strings.Contains(css, "@import") {
				err = errors.New("style sheet loads something")
			}
		}
		for _, a := range e.Attr {
			switch a.Key {
			case "src", "href", "xlink:href", "srcset", "action", "poster", "data":
				if v := strings.ToLower(strings.TrimSpace(a.Val)); !strings.HasPrefix(v, "#") {
					err = fmt.Errorf("<%s %s=%q>", e.Data, a.Key, a.Val)
				}
			case "style":
				if strings.Contains(strings.ToLower(a.Val), "url(") {
					err = fmt.Errorf("<%s style=%q>", e.Data, a.Val)
				}
			}
		}
	})
	return err
}

// svgs returns the inline <svg> elements of a page's source.
func svgs(page []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.Index(page, []byte("<svg"))
		if i < 0 {
			return out
		}
		j := bytes.Index(page[i:], []byte("</svg>"))
		if j < 0 {
			return append(out, page[i:])
		}
		out = append(out, page[i:i+j+len("</svg>")])
		page = page[i+j+len("</svg>"):]
	}
}

// wellFormed checks that an SVG is well-formed XML.
func wellFormed(svg []byte) error {
	d := xml.NewDecoder(bytes.NewReader(svg))
	d.Entity = xml.HTMLEntity
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func TestWrite(t *testing.T) {
	in := simReplay(t, replayConfig{devices: 3, anomalous: 2, duration: 20 * time.Minute, shards: 2})
	var buf bytes.Buffer
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	page := buf.Bytes()
	doc := parse(t, page)

	series := 0
	for _, d := range in.Recording.Devices {
		series += len(d.Signals)
	}
	if got := count(doc, "svg"); got != series || series != 9 {
		t.Errorf("got %d <svg> elements; want one per device signal, %d (9)", got, series)
	}
	for i, s := range svgs(page) {
		if err := wellFormed(s); err != nil {
			t.Errorf("svg %d is not well-formed XML: %v", i, err)
		}
		if !bytes.Contains(s, []byte("<path")) || !bytes.Contains(s, []byte("<text")) {
			t.Errorf("svg %d has no paths or no text", i)
		}
	}
	if err := selfContained(doc); err != nil {
		t.Errorf("the report is not self-contained: %v", err)
	}

	summary := textOf(byID(doc, "summary"))
	for _, want := range []string{
		"testdata/plant.jsonl",
		fmt.Sprintf("%s read, %s decoded, 3 rejected", group(in.Stats.Frames), group(in.Stats.Decoded)),
		"malformed", "1.234s", "2026-11-21 10:00:00",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	alerts := textOf(byID(doc, "alerts"))
	for k, n := range in.Stats.Alerts {
		kind, _, _ := strings.Cut(k, "/")
		if !strings.Contains(alerts, kind) || !strings.Contains(alerts, fmt.Sprint(n)) {
			t.Errorf("alerts table lacks %s = %d:\n%s", k, n, alerts)
		}
	}

	ev := byID(doc, "eval-events")
	if ev == nil {
		t.Fatal("no evaluation table")
	}
	o := in.Eval.Overall.Events
	row := fmt.Sprintf("overall%d%d%d%d%d%d%s%s", o.Windows, o.Detected, o.Missed, o.Episodes, o.TruePositives, o.FalsePositives,
		ratio(o.Recall), ratio(o.Precision))
	if got := strings.Join(strings.Fields(textOf(ev)), ""); !strings.Contains(got, row) {
		t.Errorf("evaluation table lacks the overall row %q:\n%s", row, got)
	}
	for _, k := range in.Eval.Kinds {
		if !strings.Contains(textOf(ev), k.Kind) {
			t.Errorf("evaluation table lacks kind %q", k.Kind)
		}
	}
	if !strings.Contains(textOf(doc), "NAB") || count(doc, "pre") != 1 {
		t.Error("no NAB scores or no text table")
	}

	for i, d := range in.Recording.Devices {
		sec := byID(doc, fmt.Sprintf("device-%d", i+1))
		if sec == nil {
			t.Fatalf("no section for %s", d.Device)
		}
		if got := count(sec, "svg"); got != len(d.Signals) {
			t.Errorf("%s: got %d charts; want %d", d.Device, got, len(d.Signals))
		}
		if txt := textOf(sec); !strings.Contains(txt, d.Device) {
			t.Errorf("section %d does not name %s", i+1, d.Device)
		}
	}
	// Every episode of a charted device is in its table.
	eps := episodesByDevice(in.Alerts)
	rows := 0
	walk(doc, func(e *html.Node) {
		if e.Data == "table" && attr(e, "class") == "episodes" {
			rows += count(e, "tr") - 1
		}
	})
	want := 0
	for _, es := range eps {
		want += len(es)
	}
	if rows != want || want == 0 {
		t.Errorf("got %d episode rows; want %d", rows, want)
	}
	// The axis labels carry units.
	for _, unit := range []string{"pressure (bar)", "temperature (°C)", "vibration (mm/s)", "time (UTC)"} {
		if !bytes.Contains(page, []byte(unit)) {
			t.Errorf("no axis label %q", unit)
		}
	}

	// Deterministic.
	var again bytes.Buffer
	if err := Write(&again, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page, again.Bytes()) {
		t.Error("two writes of one input differ")
	}
	t.Logf("%d bytes, %d charts", len(page), series)
}

func TestWriteCapsDevices(t *testing.T) {
	in := simReplay(t, replayConfig{devices: 60, anomalous: 0, duration: 2 * time.Minute, shards: 3})
	in.Eval, in.Labels = nil, nil
	in.DeviceHint = "Choose others with --report-devices."
	var buf bytes.Buffer
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, buf.Bytes())
	if got := count(doc, "svg"); got != 50*3 {
		t.Errorf("got %d charts; want %d (50 devices, 3 signals)", got, 50*3)
	}
	if !strings.Contains(textOf(doc), "Charts show 50 of 60 devices: the first 50 by name. Choose others with --report-devices.") {
		t.Error("no note on the devices left out")
	}
	if byID(doc, "device-50") == nil || byID(doc, "device-51") != nil {
		t.Error("want sections device-1 to device-50")
	}
	if byID(doc, "evaluation") != nil {
		t.Error("evaluation section without an evaluation")
	}
}

func TestWriteStatsOnly(t *testing.T) {
	var buf bytes.Buffer
	in := Input{Stats: pipeline.Stats{Frames: 1234567, Decoded: 1234560, Rejected: map[string]uint64{"too_large": 7}}}
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, buf.Bytes())
	if count(doc, "svg") != 0 || byID(doc, "devices") != nil {
		t.Error("charts without a recording")
	}
	txt := textOf(doc)
	for _, want := range []string{"1\u202f234\u202f567 read", "too_large", "no alerts", DefaultTitle} {
		if !strings.Contains(txt, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestWriteEscapes checks that names from the data cannot inject markup.
func TestWriteEscapes(t *testing.T) {
	const evil = `<script>alert(1)</script><img src="http://x/y">`
	rc := NewRecorder(Options{}, nil)
	r := &pipeline.Reading{Device: evil, Status: pipeline.NoStatus, Values: []pipeline.Value{{Name: evil, V: 1}}}
	for i := range 100 {
		r.Time = t0 + int64(i)*int64(time.Second)
		r.Values[0].V = float64(i % 7)
		rc.Record(r)
	}
	alert := pipeline.Alert{ID: "1", Time: t0 + 5e9, Device: evil, Signal: evil, Detector: evil, Kind: evil,
		Severity: pipeline.Critical, State: pipeline.Firing, Message: evil}
	var buf bytes.Buffer
	err := Write(&buf, Input{Files: []string{evil}, Recording: Merge(rc), Alerts: []pipeline.Alert{alert},
		Stats: pipeline.Stats{Alerts: map[string]uint64{evil + "/firing": 1}, Rejected: map[string]uint64{evil: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	doc := parse(t, buf.Bytes())
	if err := selfContained(doc); err != nil {
		t.Errorf("injected markup: %v", err)
	}
	for i, s := range svgs(buf.Bytes()) {
		if err := wellFormed(s); err != nil {
			t.Errorf("svg %d: %v", i, err)
		}
	}
	if !strings.Contains(textOf(doc), evil) {
		t.Error("the name is not shown as text")
	}
}

func TestEpisodesByDevice(t *testing.T) {
	at := func(s int) int64 { return t0 + int64(s)*int64(time.Second) }
	alerts := []pipeline.Alert{
		{ID: "a", Device: "d1", Signal: "p", Detector: "overpressure.spike", Kind: "overpressure", State: pipeline.Firing, Severity: pipeline.Warning, Time: at(10), Score: 1.2},
		{ID: "b", Device: "d1", Signal: "", Detector: "status", Kind: "status", State: pipeline.Firing, Severity: pipeline.Critical, Time: at(5), Score: 2},
		{ID: "a", Device: "d1", Signal: "p", Detector: "overpressure.spike", Kind: "overpressure", State: pipeline.Firing, Severity: pipeline.Critical, Time: at(12), Score: 3.5},
		{ID: "a", Device: "d1", Signal: "p", State: pipeline.Resolved, Time: at(20)},
		{ID: "c", Device: "d2", Signal: "t", State: pipeline.Resolved, Time: at(3)}, // no firing record
	}
	got := episodesByDevice(alerts)
	if len(got["d2"]) != 0 {
		t.Errorf("d2: got %d episodes; want 0", len(got["d2"]))
	}
	es := got["d1"]
	if len(es) != 2 {
		t.Fatalf("d1: got %d episodes; want 2", len(es))
	}
	if e := es[0]; e.id != "b" || !e.open || e.severity != pipeline.Critical {
		t.Errorf("first: got %+v; want the open status episode", *e)
	}
	if e := es[1]; e.id != "a" || e.open || e.fired != at(10) || e.resolved != at(20) || e.severity != pipeline.Critical || e.peak != 3.5 {
		t.Errorf("second: got %+v; want a, 10 s to 20 s, escalated to critical, peak 3.5", *e)
	}
}

func TestClockTicks(t *testing.T) {
	base := float64(t0) / 1e9
	for _, tc := range []struct {
		name       string
		lo, hi     float64
		wantLabels []string
	}{
		{"20 minutes", base, base + 1200, []string{"10:00\nNov 21", "10:05", "10:10", "10:15", "10:20"}},
		{"90 seconds", base + 5, base + 95, []string{"10:00:15\nNov 21", "10:00:30", "10:00:45", "10:01:00", "10:01:15", "10:01:30"}},
		{"across midnight", base + 13*3600, base + 15*3600, []string{"23:00\nNov 21", "23:15", "23:30", "23:45", "00:00\nNov 22", "00:15", "00:30", "00:45", "01:00"}},
		{"days", base, base + 5*86400, []string{"Nov 22", "Nov 23", "Nov 24", "Nov 25", "Nov 26"}},
		{"milliseconds", base, base + 0.05, []string{"10:00:00.000\nNov 21", "10:00:00.010", "10:00:00.020", "10:00:00.030", "10:00:00.040", "10:00:00.050"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var labels []string
			minor := 0
			for _, tk := range (clockTicks{}).Ticks(tc.lo, tc.hi) {
				if tk.Value < tc.lo-1e-6 || tk.Value > tc.hi+1e-6 {
					t.Errorf("tick %v outside [%v, %v]", tk.Value, tc.lo, tc.hi)
				}
				if tk.IsMinor() {
					minor++
					continue
				}
				labels = append(labels, tk.Label)
			}
			if strings.Join(labels, "|") != strings.Join(tc.wantLabels, "|") {
				t.Errorf("got %q; want %q", labels, tc.wantLabels)
			}
			if minor == 0 {
				t.Error("no minor ticks")
			}
		})
	}
}

func TestRuns(t *testing.T) {
	b := func(ns ...int) []Bucket {
		var out []Bucket
		for _, n := range ns {
			out = append(out, Bucket{N: uint64(n)})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []Bucket
		want [][2]int
	}{
		{"empty", nil, nil},
		{"dense", b(1, 1, 1, 1), [][2]int{{0, 4}}},
		{"sparse stays connected", b(1, 0, 1, 0, 1, 0, 1, 0, 1), [][2]int{{0, 9}}},
		{"outage breaks", b(1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1), [][2]int{{0, 4}, {10, 12}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runs(tc.in)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v; want %v", got, tc.want)
			}
		})
	}
}
