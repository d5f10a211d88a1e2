package report

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/vigil-iot/vigil/detectors/eval"
)

// labelEdge is how a label window's strokes appear in a chart's SVG.
const labelEdge = "stroke:#6A2CA8"

// figures returns, for the section of device id, each chart's signal kind
// with its caption and whether the chart draws a label window.
func figures(t *testing.T, page []byte, id string) map[string]struct {
	caption string
	window  bool
} {
	t.Helper()
	_, sec, ok := bytes.Cut(page, []byte(`<section class="card device" id="`+id+`">`))
	if !ok {
		t.Fatalf("no section %s", id)
	}
	sec, _, _ = bytes.Cut(sec, []byte("</section>"))
	out := map[string]struct {
		caption string
		window  bool
	}{}
	re := regexp.MustCompile(`(?s)<figure data-signal-kind="([a-z]+)">\s*<figcaption>(.*?)</figcaption>(.*?)</figure>`)
	for _, m := range re.FindAllSubmatch(sec, -1) {
		caption := regexp.MustCompile(`<[^>]+>`).ReplaceAllString(string(m[2]), "")
		out[string(m[1])] = struct {
			caption string
			window  bool
		}{html.UnescapeString(caption), bytes.Contains(m[3], []byte(labelEdge))}
	}
	return out
}

// TestLabelWindowsOnTheirSignal: a label window is drawn on the chart of the
// signal its kind concerns (thermal on temperature, overpressure on
// pressure, vibration on vibration), and a window that concerns the device
// as a whole (traffic, status, no kind) on every chart; each chart's
// caption counts the windows drawn on it.
func TestLabelWindowsOnTheirSignal(t *testing.T) {
	in := simReplay(t, replayConfig{devices: 2, anomalous: 0, duration: 10 * time.Minute, shards: 1})
	in.Eval = nil
	d := in.Recording.Devices[0]
	from := d.Signals[0].From
	win := func(kind string, minute int) eval.Window {
		start := from + int64(time.Duration(minute)*time.Minute)
		return eval.Window{Device: d.Device, Kind: kind, Start: start, End: start + int64(20*time.Second)}
	}
	for _, tc := range []struct {
		name    string
		windows []eval.Window
		want    map[string]string // signal kind → caption's window part; "" none drawn
	}{
		{"thermal", []eval.Window{win("thermal", 5)},
			map[string]string{"temperature": "1 label window (thermal)", "pressure": "", "vibration": ""}},
		{"overpressure and vibration", []eval.Window{win("overpressure", 4), win("vibration", 6), win("vibration", 7)},
			map[string]string{"temperature": "", "pressure": "1 label window (overpressure)", "vibration": "2 label windows (vibration)"}},
		{"device-wide", []eval.Window{win("traffic.flood", 3), win("", 5)},
			map[string]string{"temperature": "2 label windows (traffic.flood, unlabelled)", "pressure": "2 label windows (traffic.flood, unlabelled)", "vibration": "2 label windows (traffic.flood, unlabelled)"}},
		{"none", nil, map[string]string{"temperature": "", "pressure": "", "vibration": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in.Labels = tc.windows
			var buf bytes.Buffer
			if err := Write(&buf, in); err != nil {
				t.Fatal(err)
			}
			got := figures(t, buf.Bytes(), "device-1")
			if len(got) != len(tc.want) {
				t.Fatalf("charts %v; want %d", got, len(tc.want))
			}
			for kind, want := range tc.want {
				f, ok := got[kind]
				if !ok {
					t.Fatalf("no %s chart", kind)
				}
				if f.window != (want != "") {
					t.Errorf("%s chart draws a label window: %t; want %t", kind, f.window, want != "")
				}
				if want != "" && !strings.Contains(f.caption, "; "+want) || want == "" && strings.Contains(f.caption, "label window") {
					t.Errorf("%s caption %q; want it to say %q", kind, f.caption, want)
				}
			}
			// The other device has no windows at all.
			for kind, f := range figures(t, buf.Bytes(), "device-2") {
				if f.window {
					t.Errorf("device-2's %s chart draws a window of device-1", kind)
				}
			}
		})
	}
}

// TestDeviceIndexAndConfig: the header lists every charted device with a
// link to its section, each section links back to the index, and the
// configuration summary is a section of its own, linked from the header.
func TestDeviceIndexAndConfig(t *testing.T) {
	in := simReplay(t, replayConfig{devices: 4, anomalous: 1, duration: 5 * time.Minute, shards: 2})
	in.Config = []Setting{{"Configuration file", "plant.yaml"}, {"Workers", "2 shard workers"}, {"Detector settings", "overpressure.spike.z: 5 (default 6)"}}
	var buf bytes.Buffer
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, buf.Bytes())
	index := byID(doc, "device-index")
	if index == nil {
		t.Fatal("no device index")
	}
	var links, names []string
	walk(index, func(e *html.Node) {
		if e.Data == "a" {
			links = append(links, attr(e, "href"))
			names = append(names, textOf(e))
		}
	})
	var wantLinks, wantNames []string
	for i, d := range in.Recording.Devices {
		id := "device-" + string(rune('1'+i))
		wantLinks, wantNames = append(wantLinks, "#"+id), append(wantNames, d.Device)
		sec := byID(doc, id)
		if sec == nil {
			t.Fatalf("the index links to #%s, which is not there", id)
		}
		up := false
		walk(sec, func(e *html.Node) { up = up || e.Data == "a" && attr(e, "href") == "#top" })
		if !up {
			t.Errorf("section %s has no link back to the index", id)
		}
	}
	if !slices.Equal(links, wantLinks) || !slices.Equal(names, wantNames) {
		t.Errorf("index %v %v; want %v %v", links, names, wantLinks, wantNames)
	}
	if byID(doc, "top") == nil {
		t.Error("no #top for the sections' links")
	}
	cfg := byID(doc, "configuration")
	if cfg == nil {
		t.Fatal("no configuration section")
	}
	txt := textOf(cfg)
	for _, s := range in.Config {
		if !strings.Contains(txt, s.Key) || !strings.Contains(txt, s.Value) {
			t.Errorf("configuration section lacks %s: %s:\n%s", s.Key, s.Value, txt)
		}
	}
	if !bytes.Contains(buf.Bytes(), []byte(`<a href="#configuration">`)) {
		t.Error("the header does not link to the configuration")
	}
	in.Config = nil
	buf.Reset()
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	if byID(parse(t, buf.Bytes()), "configuration") != nil || bytes.Contains(buf.Bytes(), []byte("#configuration")) {
		t.Error("a configuration section without a configuration")
	}
}
