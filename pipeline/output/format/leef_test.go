package format_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
)

type leefEvent struct {
	header [4]string // vendor, product, version, event ID
	delim  rune
	attrs  map[string]string
	keys   []string
}

// parseLEEF is a strict LEEF 2.0 parser: "LEEF:2.0|" and five
// pipe-delimited header fields (only \\ and \| escaped), the fifth naming
// the delimiter as one character or 0x/x plus 1–4 hex digits; then
// attributes split on every raw delimiter, each key=value with the key up
// to the first '='. Values use Vigil's escapes (\\, \r, \n, \t, \xHH,
// \uHHHH); anything else, a raw CR/LF, an empty key or a duplicate key is
// an error.
func parseLEEF(line string) (*leefEvent, error) {
	rest, ok := strings.CutPrefix(line, "LEEF:2.0|")
	if !ok {
		return nil, fmt.Errorf("no LEEF:2.0| prefix")
	}
	if strings.ContainsAny(rest, "\r\n") {
		return nil, fmt.Errorf("raw CR/LF")
	}
	ev := &leefEvent{attrs: map[string]string{}}
	var fields [5]string
	i := 0
	for f := range fields {
		var b strings.Builder
		for {
			if i >= len(rest) {
				return nil, fmt.Errorf("header field %d unterminated", f)
			}
			c := rest[i]
			if c == '\\' {
				if i+1 >= len(rest) || (rest[i+1] != '\\' && rest[i+1] != '|') {
					return nil, fmt.Errorf("header field %d: bad escape", f)
				}
				b.WriteByte(rest[i+1])
				i += 2
				continue
			}
			i++
			if c == '|' {
				break
			}
			b.WriteByte(c)
		}
		fields[f] = b.String()
	}
	copy(ev.header[:], fields[:4])
	d := fields[4]
	switch {
	case utf8.RuneCountInString(d) == 1:
		ev.delim, _ = utf8.DecodeRuneInString(d)
	case strings.HasPrefix(d, "0x") || strings.HasPrefix(d, "x"):
		h := d[strings.IndexByte(d, 'x')+1:]
		v, err := strconv.ParseUint(h, 16, 16)
		if err != nil || len(h) < 1 || len(h) > 4 {
			return nil, fmt.Errorf("bad delimiter %q", d)
		}
		ev.delim = rune(v)
	default:
		return nil, fmt.Errorf("bad delimiter %q", d)
	}
	attrs := rest[i:]
	if attrs == "" {
		return ev, nil
	}
	for _, kv := range strings.Split(attrs, string(ev.delim)) {
		key, raw, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("attribute %q: no key=", kv)
		}
		var b strings.Builder
		for j := 0; j < len(raw); j++ {
			if raw[j] != '\\' {
				b.WriteByte(raw[j])
				continue
			}
			if j+1 >= len(raw) {
				return nil, fmt.Errorf("%s: dangling backslash", key)
			}
			j++
			switch raw[j] {
			case '\\':
				b.WriteByte('\\')
			case 'r':
				b.WriteByte('\r')
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'x', 'u':
				n := 2
				if raw[j] == 'u' {
					n = 4
				}
				if j+n >= len(raw) {
					return nil, fmt.Errorf("%s: short hex escape", key)
				}
				v, err := strconv.ParseUint(raw[j+1:j+1+n], 16, 32)
				if err != nil {
					return nil, fmt.Errorf("%s: bad hex escape", key)
				}
				b.WriteRune(rune(v))
				j += n
			default:
				return nil, fmt.Errorf("%s: bad escape \\%c", key, raw[j])
			}
		}
		if _, dup := ev.attrs[key]; dup {
			return nil, fmt.Errorf("duplicate key %s", key)
		}
		ev.attrs[key] = b.String()
		ev.keys = append(ev.keys, key)
	}
	return ev, nil
}

func TestParseLEEFSpecExample(t *testing.T) {
	// The LEEF 2.0 example of the IBM / Juniper JSA LEEF guide.
	ev, err := parseLEEF("LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21")
	if err != nil {
		t.Fatal(err)
	}
	if ev.header != [4]string{"Lancope", "StealthWatch", "1.0", "41"} || ev.delim != '^' || ev.attrs["dst"] != "10.0.0.5" || ev.attrs["dstPort"] != "21" || len(ev.keys) != 5 {
		t.Errorf("got %+v", ev)
	}
	ev, err = parseLEEF("LEEF:2.0|V|P|1|E|0x09|a=1\tb=2")
	if err != nil || ev.delim != '\t' || ev.attrs["b"] != "2" {
		t.Errorf("hex delimiter: got %+v, %v", ev, err)
	}
}

func checkLEEF(t testing.TB, m output.Meta, delim rune, a *pipeline.Alert, line string) {
	t.Helper()
	ev, err := parseLEEF(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	rule := a.Detector
	if rule == "" {
		rule = a.Kind
	}
	wantHeader := [4]string{headerText(m.Vendor), headerText(m.Product), headerText(m.Version), headerText(rule)}
	if ev.header != wantHeader || ev.delim != delim {
		t.Errorf("header: got %q %q; want %q %q", ev.header, ev.delim, wantHeader, delim)
	}
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000-0700") }
	sev := "3"
	if a.State == pipeline.Firing && a.Severity == pipeline.Critical {
		sev = "9"
	} else if a.State == pipeline.Firing && a.Severity == pipeline.Warning {
		sev = "6"
	}
	act := a.State.String()
	if a.State == pipeline.Firing && a.Escalation {
		act = "escalation"
	}
	want := map[string]string{
		"devTime": ts(a.Time), "devTimeFormat": format.LEEFTimeFormat, "sev": sev, "act": act,
		"eventId": sanitize(a.EventID()), "startTime": ts(a.Started),
	}
	if a.State == pipeline.Resolved {
		want["endTime"] = ts(a.Time)
	}
	for k, v := range map[string]string{"cat": a.Kind, "alertId": a.ID, "device": a.Device, "topic": a.Topic,
		"detector": a.Detector, "signal": a.Signal, "unit": a.Unit, "msg": a.Message, "obsHost": m.Hostname} {
		if v != "" {
			want[k] = sanitize(v)
		}
	}
	for k, v := range map[string]float64{"value": a.Value, "threshold": a.Threshold, "observed": a.Observed,
		"baselineMean": a.Mean, "baselineStd": a.Std, "score": a.Score} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		got, err := strconv.ParseFloat(ev.attrs[k], 64)
		if err != nil || got != v {
			t.Errorf("%s: got %q; want %v", k, ev.attrs[k], v)
		}
		want[k] = ev.attrs[k]
	}
	if len(ev.attrs) != len(want) {
		t.Errorf("keys: got %v; want %d", ev.keys, len(want))
	}
	for k, w := range want {
		if got, ok := ev.attrs[k]; !ok || got != w {
			t.Errorf("%s: got %q; want %q", k, got, w)
		}
	}
	if n, err := strconv.Atoi(ev.attrs["sev"]); err != nil || n < 1 || n > 10 {
		t.Errorf("sev: got %q; want 1–10", ev.attrs["sev"])
	}
}

func TestLEEFVariants(t *testing.T) {
	for _, d := range []rune{'^', '\t', '¦', '‖', ';', ' '} {
		f, err := format.NewLEEF(exampleMeta, d)
		if err != nil {
			t.Fatal(err)
		}
		for name, a := range alertVariants() {
			t.Run(fmt.Sprintf("%q/%s", d, name), func(t *testing.T) {
				checkLEEF(t, exampleMeta, d, a, string(f.Append(nil, a)))
			})
		}
	}
}

func TestLEEFEscaping(t *testing.T) {
	for _, d := range []rune{'^', '\t', '‖', ' '} {
		for _, n := range nasty {
			t.Run(fmt.Sprintf("%q/%s", d, n.name), func(t *testing.T) {
				m := output.Meta{Vendor: n.s, Product: n.s, Version: n.s, Hostname: n.s}
				a := baseAlert()
				a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message = n.s, n.s, n.s, n.s, n.s, n.s, n.s, n.s
				f, err := format.NewLEEF(m, d)
				if err != nil {
					t.Fatal(err)
				}
				checkLEEF(t, withDefaultMeta(m), d, a, string(f.Append(nil, a)))
			})
		}
	}
}

func TestLEEFExactEscapes(t *testing.T) {
	a := baseAlert()
	a.Message = "a^b\\c\r\nd\te=f|g"
	a.Detector = `x|y\z`
	f, _ := format.NewLEEF(output.Meta{Version: "1"}, '^')
	got := string(f.Append(nil, a))
	for _, want := range []string{`|x\|y\\z|^|`, `^msg=a\x5Eb\\c\r\nd` + "\t" + `e=f|g`} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q; want it to contain %q", got, want)
		}
	}
	tab, _ := format.NewLEEF(output.Meta{Version: "1"}, '\t')
	got = string(tab.Append(nil, a))
	if want := "\tmsg=a^b\\\\c\\r\\nd\\te=f|g"; !strings.Contains(got, want) {
		t.Errorf("tab: got %q; want it to contain %q", got, want)
	}
}

func FuzzLEEF(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, n.s, n.s, 1.5, int32('^'), false)
	}
	f.Add("a", "b", "c", "d", 0.0, int32('\t'), true)
	f.Fuzz(func(t *testing.T, id, device, detector, msg string, v float64, delim int32, resolved bool) {
		m := output.Meta{Vendor: detector, Product: "Vigil", Version: msg, Hostname: device}
		lf, err := format.NewLEEF(m, delim)
		if err != nil {
			return // an unusable delimiter (TestConfig covers which)
		}
		if delim == 0 {
			delim = '^'
		}
		a := baseAlert()
		a.ID, a.Device, a.Detector, a.Signal, a.Message, a.Topic, a.Unit, a.Kind = id, device, detector, id, msg, msg, device, detector
		a.Value, a.Score = v, -v
		if resolved {
			a.State = pipeline.Resolved
		}
		checkLEEF(t, withDefaultMeta(m), delim, a, string(lf.Append(nil, a)))
	})
}
