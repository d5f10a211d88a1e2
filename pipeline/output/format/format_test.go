package format_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/format/formattest"
)

// nasty are field contents every format must carry intact (or, where the
// format cannot, as documented).
var nasty = []struct{ name, s string }{
	{"empty", ""},
	{"pipe", "a|b||c|"},
	{"backslash", `a\b\\c\`},
	{"equals", "a=b==c="},
	{"bracket", "a]b[c]"},
	{"quotes", `a"b'c"`},
	{"CRLF", "line1\r\nline2\rline3\n"},
	{"tab", "a\tb\t"},
	{"NUL", "a\x00b"},
	{"control", "\x01\x1f\x7f"},
	{"non-UTF-8", "a\xffb\xc3\x28c\xe2\x82"},
	{"UTF-8", "Überdruck 5.6× ‖ 圧力 🙂"},
	{"caret", "a^b^^"},
	{"U+2028", "a\u2028b"},
	{"spaces", "  lead and trail  "},
	{"fake key", "x cs1=evil act=resolved"},
	{"escapes", `\n\r\=\|\t\x5E`},
	{"long", strings.Repeat("ab€", 2000)},
}

// sanitize, headerText and cut are formattest's (see there).
func sanitize(s string) string       { return formattest.Sanitize(s) }
func headerText(s string) string     { return formattest.HeaderText(s) }
func cut(s string, limit int) string { return formattest.Cut(s, limit) }

// epochMillis is Unix milliseconds, rounded down (before 1970 too), by the
// time package's reckoning.
func epochMillis(ns int64) int64 { return time.Unix(0, ns).UnixMilli() }

func baseAlert() *pipeline.Alert { return exampleAlert() }

// alertVariants are the transitions of one episode and edge cases.
func alertVariants() map[string]*pipeline.Alert {
	v := map[string]*pipeline.Alert{}
	v["firing critical"] = baseAlert()
	w := baseAlert()
	w.Severity = pipeline.Warning
	v["firing warning"] = w
	e := baseAlert()
	e.Escalation = true
	v["escalation"] = e
	r := baseAlert()
	r.State = pipeline.Resolved
	r.Time += 30e9
	v["resolved"] = r
	n := baseAlert()
	n.Value, n.Threshold, n.Observed, n.Mean, n.Std, n.Score = math.NaN(), math.Inf(1), math.Inf(-1), math.NaN(), math.NaN(), math.NaN()
	v["NaN and Inf"] = n
	s := baseAlert()
	s.Device, s.Topic, s.Unit = "", "", ""
	s.Kind, s.Detector, s.Signal = "traffic.spray", "traffic.spray", "node_id"
	v["empty device"] = s
	z := &pipeline.Alert{}
	v["zero"] = z
	neg := baseAlert()
	neg.Time, neg.Started = -1_500_000, -2_000_000_000
	neg.Value, neg.Threshold = -1e-9, 1e300
	v["negative time, tiny and huge numbers"] = neg
	return v
}

func TestByName(t *testing.T) {
	m := output.Meta{Version: "1.0"}
	for _, name := range append(format.Names(), "CEF", " ocsf ", "") {
		f, err := format.ByName(name, m)
		if err != nil {
			t.Errorf("ByName(%q): %v", name, err)
			continue
		}
		if got := f.Append(nil, baseAlert()); len(got) == 0 {
			t.Errorf("ByName(%q) formatter wrote nothing", name)
		}
	}
	_, err := format.ByName("xml", m)
	if !errors.Is(err, format.ErrUnknownFormat) || !strings.Contains(err.Error(), `"xml"`) || !strings.Contains(err.Error(), "json, cef, leef, ecs, ocsf") {
		t.Errorf("ByName(xml): got %v; want ErrUnknownFormat naming xml and the choices", err)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		c       format.Config
		wantErr bool
		prefix  string
	}{
		{format.Config{Format: "leef"}, false, "LEEF:2.0|Vigil|Vigil|devel|overpressure.spike|^|"},
		{format.Config{Format: "leef", LEEFDelimiter: "0x09"}, false, "LEEF:2.0|Vigil|Vigil|devel|overpressure.spike|0x09|"},
		{format.Config{Format: "leef", LEEFDelimiter: "x5E"}, false, "LEEF:2.0|Vigil|Vigil|devel|overpressure.spike|^|"},
		{format.Config{Format: "leef", LEEFDelimiter: "x1F"}, false, "LEEF:2.0|Vigil|Vigil|devel|overpressure.spike|0x1F|"},
		{format.Config{Format: "leef", LEEFDelimiter: "¦"}, false, "LEEF:2.0|Vigil|Vigil|devel|overpressure.spike|0xA6|"},
		{format.Config{Format: "leef", LEEFDelimiter: "0x2016"}, false, "LEEF:2.0|Vigil|Vigil|devel|overpressure.spike|0x2016|"},
		{format.Config{Format: "leef", LEEFDelimiter: "="}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "|"}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "a"}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "0x0A"}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "0x"}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "0x12345"}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "^^"}, true, ""},
		{format.Config{Format: "leef", LEEFDelimiter: "\xff"}, true, ""},
		{format.Config{Format: "syslog"}, true, ""},
	}
	for _, tc := range tests {
		err := tc.c.Validate()
		if (err != nil) != tc.wantErr {
			t.Errorf("%+v: Validate() = %v; want error %v", tc.c, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		f, err := format.New(tc.c, output.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(f.Append(nil, baseAlert())); !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("%+v: got %.60q…; want prefix %q", tc.c, got, tc.prefix)
		}
	}
}

func allFormatters(t testing.TB) map[string]output.Formatter {
	fs := map[string]output.Formatter{}
	for _, name := range format.Names() {
		f, err := format.ByName(name, exampleMeta)
		if err != nil {
			t.Fatal(err)
		}
		fs[name] = f
	}
	tab, err := format.NewLEEF(exampleMeta, '\t')
	if err != nil {
		t.Fatal(err)
	}
	fs["leef-tab"] = tab
	return fs
}

// TestDeterministicAndAppends checks every formatter appends to dst without
// touching what is there, writes no trailing newline and repeats itself.
func TestDeterministicAndAppends(t *testing.T) {
	for name, f := range allFormatters(t) {
		for vname, a := range alertVariants() {
			one := f.Append(nil, a)
			two := f.Append([]byte("prefix"), a)
			if string(two) != "prefix"+string(one) {
				t.Errorf("%s/%s: Append to a non-empty dst: got %q; want prefix + %q", name, vname, two, one)
			}
			if strings.ContainsAny(string(one), "\r\n") {
				t.Errorf("%s/%s: raw CR or LF in %q", name, vname, one)
			}
		}
	}
}

// TestAllocs pins the allocations per alert of a warm formatter: none.
func TestAllocs(t *testing.T) {
	a := baseAlert()
	a.Message = nasty[len(nasty)-1].s + "|=\\\n" // escapes and a long cut
	for name, f := range allFormatters(t) {
		buf := f.Append(nil, a)
		got := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], a) })
		if got != 0 {
			t.Errorf("%s: got %v allocations per alert; want 0", name, got)
		}
	}
}

// TestSIEMDoc checks docs/SIEM.md shows what the formatters write for the
// example alert.
func TestSIEMDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "SIEM.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range allFormatters(t) {
		if name == "leef-tab" {
			continue
		}
		line := string(f.Append(nil, exampleAlert()))
		if !strings.Contains(string(doc), line) {
			t.Errorf("docs/SIEM.md lacks the %s example line:\n%s", name, line)
		}
	}
}
