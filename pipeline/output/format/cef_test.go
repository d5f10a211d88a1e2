package format_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
)

// cefEvent is a parsed CEF line.
type cefEvent struct {
	header [7]string // version, vendor, product, device version, signature ID, name, severity
	ext    map[string]string
	keys   []string // in order
}

// parseCEF is a strict CEF:0 parser after the Implementation Standard: the
// header is seven pipe-delimited fields in which only \\ and \| are
// escapes; the extension is space-separated key=value pairs where a value
// ends at the space before the next key=, and only \\, \=, \r and \n are
// escapes. It rejects anything else: an unknown escape, a raw '=' or CR/LF
// in a value, a raw CR/LF in the header, a duplicate key.
func parseCEF(line string) (*cefEvent, error) {
	rest, ok := strings.CutPrefix(line, "CEF:")
	if !ok {
		return nil, fmt.Errorf("no CEF: prefix")
	}
	ev := &cefEvent{ext: map[string]string{}}
	i := 0
	for f := range ev.header {
		var b strings.Builder
		for {
			if i >= len(rest) {
				return nil, fmt.Errorf("header field %d unterminated", f)
			}
			c := rest[i]
			if c == '\\' {
				if i+1 >= len(rest) || (rest[i+1] != '\\' && rest[i+1] != '|') {
					return nil, fmt.Errorf("header field %d: bad escape at %d", f, i)
				}
				b.WriteByte(rest[i+1])
				i += 2
				continue
			}
			if c == '\r' || c == '\n' {
				return nil, fmt.Errorf("header field %d: raw CR/LF", f)
			}
			i++
			if c == '|' {
				break
			}
			b.WriteByte(c)
		}
		ev.header[f] = b.String()
	}
	ext := rest[i:]
	isKey := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
	}
	// keyAt reports the length of "key=" at ext[j:], or 0.
	keyAt := func(j int) int {
		k := j
		for k < len(ext) && isKey(ext[k]) {
			k++
		}
		if k > j && k < len(ext) && ext[k] == '=' {
			return k - j + 1
		}
		return 0
	}
	for j := 0; j < len(ext); {
		n := keyAt(j)
		if n == 0 {
			return nil, fmt.Errorf("extension: no key at %d in %q", j, ext[j:])
		}
		key := ext[j : j+n-1]
		j += n
		var b strings.Builder
	value:
		for j < len(ext) {
			c := ext[j]
			switch {
			case c == '\\':
				if j+1 >= len(ext) {
					return nil, fmt.Errorf("%s: dangling backslash", key)
				}
				switch ext[j+1] {
				case '\\', '=':
					b.WriteByte(ext[j+1])
				case 'r':
					b.WriteByte('\r')
				case 'n':
					b.WriteByte('\n')
				default:
					return nil, fmt.Errorf("%s: bad escape \\%c", key, ext[j+1])
				}
				j += 2
			case c == ' ' && keyAt(j+1) > 0:
				j++
				break value
			case c == '=' || c == '\r' || c == '\n':
				return nil, fmt.Errorf("%s: raw %q in value", key, c)
			default:
				b.WriteByte(c)
				j++
			}
		}
		if _, dup := ev.ext[key]; dup {
			return nil, fmt.Errorf("duplicate key %s", key)
		}
		ev.ext[key] = b.String()
		ev.keys = append(ev.keys, key)
	}
	return ev, nil
}

func TestParseCEFSpecExamples(t *testing.T) {
	// The examples of the CEF Implementation Standard, "Character Encoding".
	tests := []struct {
		line string
		name string
		act  string
	}{
		{`CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a | dst=1.1.1.1`, "detected a | in message", "blocked a |"},
		{`CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|src=10.0.0.1 act=blocked a \\ dst=1.1.1.1`, `detected a \ in packet`, `blocked a \`},
		{`CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 act=blocked a \= dst=1.1.1.1`, "detected a = in message", "blocked a ="},
	}
	for _, tc := range tests {
		ev, err := parseCEF(tc.line)
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if ev.header[5] != tc.name || ev.ext["act"] != tc.act || ev.ext["dst"] != "1.1.1.1" {
			t.Errorf("%s: got name %q act %q dst %q; want %q %q 1.1.1.1", tc.line, ev.header[5], ev.ext["act"], ev.ext["dst"], tc.name, tc.act)
		}
	}
	ev, err := parseCEF(`CEF:0|security|threatmanager|1.0|100|Detected a threat. No action needed.|10|src=10.0.0.1 msg=Detected a threat.\n No action needed`)
	if err != nil || ev.ext["msg"] != "Detected a threat.\n No action needed" {
		t.Errorf("multi-line msg: got %q, %v", ev.ext["msg"], err)
	}
}

// Expected CEF limits, restated from the standard (see cef.go).
const (
	maxName, maxClassID, maxExtID, maxDevExt, maxMsg, maxCat, maxCS, maxHost = 512, 1023, 40, 255, 1023, 1023, 4000, 100
)

// checkCEF parses line and checks every field against a.
func checkCEF(t testing.TB, m output.Meta, a *pipeline.Alert, line string) {
	t.Helper()
	ev, err := parseCEF(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	rule := a.Detector
	if rule == "" {
		rule = a.Kind
	}
	name := cut(headerText(rule), maxName)
	if a.Signal != "" && len(name)+4 <= maxName {
		name += " on " + cut(headerText(a.Signal), maxName-len(name)-4)
	}
	sev := "3"
	if a.State == pipeline.Firing && a.Severity == pipeline.Critical {
		sev = "9"
	} else if a.State == pipeline.Firing && a.Severity == pipeline.Warning {
		sev = "6"
	}
	wantHeader := [7]string{"0", cut(headerText(m.Vendor), 63), cut(headerText(m.Product), 63), cut(headerText(m.Version), 31),
		cut(headerText(rule), maxClassID), name, sev}
	if ev.header != wantHeader {
		t.Errorf("header: got %q; want %q", ev.header, wantHeader)
	}
	ms := func(ns int64) string { return strconv.FormatInt(epochMillis(ns), 10) }
	act := a.State.String()
	if a.State == pipeline.Firing && a.Escalation {
		act = "escalation"
	}
	want := map[string]string{
		"rt": ms(a.Time), "start": ms(a.Started), "act": act,
		"cs5Label": "eventId", "cs5": cut(sanitize(a.ID), maxCS-39) + a.EventID()[len(a.ID):],
	}
	if a.State == pipeline.Resolved {
		want["end"] = ms(a.Time)
	}
	opt := func(key, v string, limit int) {
		if v != "" {
			want[key] = cut(sanitize(v), limit)
		}
	}
	opt("externalId", a.ID, maxExtID)
	opt("deviceExternalId", a.Device, maxDevExt)
	opt("dvchost", m.Hostname, maxHost)
	opt("cat", a.Kind, maxCat)
	opt("msg", a.Message, maxMsg)
	for _, c := range []struct{ key, label, v string }{
		{"cs1", "signal", a.Signal}, {"cs2", "detector", a.Detector}, {"cs3", "topic", a.Topic}, {"cs4", "unit", a.Unit},
	} {
		if c.v != "" {
			want[c.key+"Label"] = c.label
			want[c.key] = cut(sanitize(c.v), maxCS)
		}
	}
	for key, got := range ev.ext {
		if w, ok := want[key]; ok && got != w {
			t.Errorf("%s: got %q; want %q", key, got, w)
		}
	}
	for key := range want {
		if _, ok := ev.ext[key]; !ok {
			t.Errorf("%s: missing", key)
		}
	}
	nums := []struct {
		key, label string
		v          float64
	}{{"cs6", "observed", a.Observed}, {"cfp1", "value", a.Value}, {"cfp2", "threshold", a.Threshold}, {"cfp3", "baselineMean", a.Mean}, {"cfp4", "score", a.Score}}
	for _, n := range nums {
		got, ok := ev.ext[n.key]
		if math.IsNaN(n.v) || math.IsInf(n.v, 0) {
			if ok {
				t.Errorf("%s: got %q; want it omitted for %v", n.key, got, n.v)
			}
			continue
		}
		f, err := strconv.ParseFloat(got, 64)
		if err != nil || f != n.v || ev.ext[n.key+"Label"] != n.label {
			t.Errorf("%s: got %q (%s); want %v (%s)", n.key, got, ev.ext[n.key+"Label"], n.v, n.label)
		}
	}
	if len(ev.ext) != len(want)+2*countFinite(a.Observed, a.Value, a.Threshold, a.Mean, a.Score) {
		t.Errorf("keys: got %v; want %d keys", ev.keys, len(want)+2*countFinite(a.Observed, a.Value, a.Threshold, a.Mean, a.Score))
	}
	if last := ev.keys[len(ev.keys)-1]; last != "act" {
		t.Errorf("last key: got %s; want act (values with trailing spaces must not end the extension)", last)
	}
}

func countFinite(fs ...float64) int {
	n := 0
	for _, f := range fs {
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			n++
		}
	}
	return n
}

func TestCEFVariants(t *testing.T) {
	f := format.NewCEF(exampleMeta)
	for name, a := range alertVariants() {
		t.Run(name, func(t *testing.T) { checkCEF(t, exampleMeta, a, string(f.Append(nil, a))) })
	}
}

func TestCEFSeverity(t *testing.T) {
	f := format.NewCEF(exampleMeta)
	want := map[string]string{"firing critical": "|9|", "firing warning": "|6|", "escalation": "|9|", "resolved": "|3|"}
	v := alertVariants()
	for name, w := range want {
		if got := string(f.Append(nil, v[name])); !strings.Contains(got, "|overpressure.spike on pressure"+w) {
			t.Errorf("%s: got %q; want severity %s", name, got, w)
		}
	}
}

// TestCEFEscaping runs every nasty string through every text field.
func TestCEFEscaping(t *testing.T) {
	for _, n := range nasty {
		t.Run(n.name, func(t *testing.T) {
			m := output.Meta{Vendor: n.s, Product: n.s, Version: n.s, Hostname: n.s}
			a := baseAlert()
			a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message = n.s, n.s, n.s, n.s, n.s, n.s, n.s, n.s
			line := string(format.NewCEF(m).Append(nil, a))
			checkCEF(t, withDefaultMeta(m), a, line)
		})
	}
}

func TestCEFExactEscapes(t *testing.T) {
	a := baseAlert()
	a.Detector, a.Signal, a.Message = `a|b\c=d`, "s", "x|y\\z=w\r\nv"
	got := string(format.NewCEF(output.Meta{Version: "1"}).Append(nil, a))
	for _, want := range []string{`|a\|b\\c=d|a\|b\\c=d on s|9|`, `msg=x|y\\z\=w\r\nv `, `cs2=a|b\\c\=d `} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q; want it to contain %q", got, want)
		}
	}
}

// withDefaultMeta is what the formatters put for empty Meta fields.
func withDefaultMeta(m output.Meta) output.Meta {
	if m.Vendor == "" {
		m.Vendor = "Vigil"
	}
	if m.Product == "" {
		m.Product = "Vigil"
	}
	if m.Version == "" {
		m.Version = "devel"
	}
	return m
}

func FuzzCEF(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, n.s, n.s, 1.5, false)
	}
	f.Fuzz(func(t *testing.T, id, device, detector, msg string, v float64, resolved bool) {
		m := output.Meta{Vendor: detector, Product: "Vigil", Version: msg, Hostname: device}
		a := baseAlert()
		a.ID, a.Device, a.Detector, a.Signal, a.Message, a.Topic, a.Unit, a.Kind = id, device, detector, id, msg, msg, device, detector
		a.Value, a.Score = v, -v
		if resolved {
			a.State = pipeline.Resolved
		}
		checkCEF(t, withDefaultMeta(m), a, string(format.NewCEF(m).Append(nil, a)))
	})
}
