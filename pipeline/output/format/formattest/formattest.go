// Package formattest has strict parsers of the SIEM formats' text (CEF,
// LEEF 2.0) and checks that a line carries every field of an alert as the
// format package maps it, for the format package's tests and for tests
// that see the formats after a real transport (rsyslog).
package formattest

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

// CEFEvent is a parsed CEF line.
type CEFEvent struct {
	Header [7]string // version, vendor, product, device version, signature ID, name, severity
	Ext    map[string]string
	Keys   []string // in order
}

// ParseCEF is a strict CEF:0 parser after the Implementation Standard: the
// header is seven pipe-delimited fields in which only \\ and \| are
// escapes; the extension is space-separated key=value pairs where a value
// ends at the space before the next key=, and only \\, \=, \r and \n are
// escapes. It rejects anything else: an unknown escape, a raw '=' or CR/LF
// in a value, a raw CR/LF in the header, a duplicate key.
func ParseCEF(line string) (*CEFEvent, error) {
	rest, ok := strings.CutPrefix(line, "CEF:")
	if !ok {
		return nil, fmt.Errorf("no CEF: prefix")
	}
	ev := &CEFEvent{Ext: map[string]string{}}
	i := 0
	for f := range ev.Header {
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
		ev.Header[f] = b.String()
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
		if _, dup := ev.Ext[key]; dup {
			return nil, fmt.Errorf("duplicate key %s", key)
		}
		ev.Ext[key] = b.String()
		ev.Keys = append(ev.Keys, key)
	}
	return ev, nil
}

// Expected CEF limits, restated from the standard (see cef.go).
const (
	maxName, maxClassID, maxExtID, maxDevExt, maxMsg, maxCat, maxCS, maxHost = 512, 1023, 40, 255, 1023, 1023, 4000, 100
)

// CheckCEF parses line and checks every field against a.
func CheckCEF(t testing.TB, m output.Meta, a *pipeline.Alert, line string) {
	t.Helper()
	ev, err := ParseCEF(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	rule := a.Detector
	if rule == "" {
		rule = a.Kind
	}
	name := Cut(HeaderText(rule), maxName)
	if a.Signal != "" && len(name)+4 <= maxName {
		name += " on " + Cut(HeaderText(a.Signal), maxName-len(name)-4)
	}
	sev := "3"
	if a.State == pipeline.Firing && a.Severity == pipeline.Critical {
		sev = "9"
	} else if a.State == pipeline.Firing && a.Severity == pipeline.Warning {
		sev = "6"
	}
	wantHeader := [7]string{"0", Cut(HeaderText(m.Vendor), 63), Cut(HeaderText(m.Product), 63), Cut(HeaderText(m.Version), 31),
		Cut(HeaderText(rule), maxClassID), name, sev}
	if ev.Header != wantHeader {
		t.Errorf("header: got %q; want %q", ev.Header, wantHeader)
	}
	ms := func(ns int64) string { return strconv.FormatInt(epochMillis(ns), 10) }
	act := a.State.String()
	if a.State == pipeline.Firing && a.Escalation {
		act = "escalation"
	}
	want := map[string]string{
		"rt": ms(a.Time), "start": ms(a.Started), "act": act,
		"cs5Label": "eventId", "cs5": Cut(Sanitize(a.ID), maxCS-39) + a.EventID()[len(a.ID):],
	}
	if a.State == pipeline.Resolved {
		want["end"] = ms(a.Time)
	}
	opt := func(key, v string, limit int) {
		if v != "" {
			want[key] = Cut(Sanitize(v), limit)
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
			want[c.key] = Cut(Sanitize(c.v), maxCS)
		}
	}
	for key, got := range ev.Ext {
		if w, ok := want[key]; ok && got != w {
			t.Errorf("%s: got %q; want %q", key, got, w)
		}
	}
	for key := range want {
		if _, ok := ev.Ext[key]; !ok {
			t.Errorf("%s: missing", key)
		}
	}
	nums := []struct {
		key, label string
		v          float64
	}{{"cs6", "observed", a.Observed}, {"cfp1", "value", a.Value}, {"cfp2", "threshold", a.Threshold}, {"cfp3", "baselineMean", a.Mean}, {"cfp4", "score", a.Score}}
	for _, n := range nums {
		got, ok := ev.Ext[n.key]
		if math.IsNaN(n.v) || math.IsInf(n.v, 0) {
			if ok {
				t.Errorf("%s: got %q; want it omitted for %v", n.key, got, n.v)
			}
			continue
		}
		f, err := strconv.ParseFloat(got, 64)
		if err != nil || f != n.v || ev.Ext[n.key+"Label"] != n.label {
			t.Errorf("%s: got %q (%s); want %v (%s)", n.key, got, ev.Ext[n.key+"Label"], n.v, n.label)
		}
	}
	if len(ev.Ext) != len(want)+2*countFinite(a.Observed, a.Value, a.Threshold, a.Mean, a.Score) {
		t.Errorf("keys: got %v; want %d keys", ev.Keys, len(want)+2*countFinite(a.Observed, a.Value, a.Threshold, a.Mean, a.Score))
	}
	if last := ev.Keys[len(ev.Keys)-1]; last != "act" {
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

// LEEFEvent is a parsed LEEF 2.0 line.
type LEEFEvent struct {
	Header [4]string // vendor, product, version, event ID
	Delim  rune
	Attrs  map[string]string
	Keys   []string
}

// ParseLEEF is a strict LEEF 2.0 parser: "LEEF:2.0|" and five
// pipe-delimited header fields (only \\ and \| escaped), the fifth naming
// the delimiter as one character or 0x/x plus 1–4 hex digits; then
// attributes split on every raw delimiter, each key=value with the key up
// to the first '='. Values use Vigil's escapes (\\, \r, \n, \t, \xHH,
// \uHHHH); anything else, a raw CR/LF, an empty key or a duplicate key is
// an error.
func ParseLEEF(line string) (*LEEFEvent, error) {
	rest, ok := strings.CutPrefix(line, "LEEF:2.0|")
	if !ok {
		return nil, fmt.Errorf("no LEEF:2.0| prefix")
	}
	if strings.ContainsAny(rest, "\r\n") {
		return nil, fmt.Errorf("raw CR/LF")
	}
	ev := &LEEFEvent{Attrs: map[string]string{}}
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
	copy(ev.Header[:], fields[:4])
	d := fields[4]
	switch {
	case utf8.RuneCountInString(d) == 1:
		ev.Delim, _ = utf8.DecodeRuneInString(d)
	case strings.HasPrefix(d, "0x") || strings.HasPrefix(d, "x"):
		h := d[strings.IndexByte(d, 'x')+1:]
		v, err := strconv.ParseUint(h, 16, 16)
		if err != nil || len(h) < 1 || len(h) > 4 {
			return nil, fmt.Errorf("bad delimiter %q", d)
		}
		ev.Delim = rune(v)
	default:
		return nil, fmt.Errorf("bad delimiter %q", d)
	}
	attrs := rest[i:]
	if attrs == "" {
		return ev, nil
	}
	for _, kv := range strings.Split(attrs, string(ev.Delim)) {
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
		if _, dup := ev.Attrs[key]; dup {
			return nil, fmt.Errorf("duplicate key %s", key)
		}
		ev.Attrs[key] = b.String()
		ev.Keys = append(ev.Keys, key)
	}
	return ev, nil
}

// CheckLEEF parses line and checks every field against a, with delimiter
// delim.
func CheckLEEF(t testing.TB, m output.Meta, delim rune, a *pipeline.Alert, line string) {
	t.Helper()
	ev, err := ParseLEEF(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	rule := a.Detector
	if rule == "" {
		rule = a.Kind
	}
	wantHeader := [4]string{HeaderText(m.Vendor), HeaderText(m.Product), HeaderText(m.Version), HeaderText(rule)}
	if ev.Header != wantHeader || ev.Delim != delim {
		t.Errorf("header: got %q %q; want %q %q", ev.Header, ev.Delim, wantHeader, delim)
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
		"eventId": Sanitize(a.EventID()), "startTime": ts(a.Started),
	}
	if a.State == pipeline.Resolved {
		want["endTime"] = ts(a.Time)
	}
	for k, v := range map[string]string{"cat": a.Kind, "alertId": a.ID, "device": a.Device, "topic": a.Topic,
		"detector": a.Detector, "signal": a.Signal, "unit": a.Unit, "msg": a.Message, "obsHost": m.Hostname} {
		if v != "" {
			want[k] = Sanitize(v)
		}
	}
	for k, v := range map[string]float64{"value": a.Value, "threshold": a.Threshold, "observed": a.Observed,
		"baselineMean": a.Mean, "baselineStd": a.Std, "score": a.Score} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		got, err := strconv.ParseFloat(ev.Attrs[k], 64)
		if err != nil || got != v {
			t.Errorf("%s: got %q; want %v", k, ev.Attrs[k], v)
		}
		want[k] = ev.Attrs[k]
	}
	if len(ev.Attrs) != len(want) {
		t.Errorf("keys: got %v; want %d", ev.Keys, len(want))
	}
	for k, w := range want {
		if got, ok := ev.Attrs[k]; !ok || got != w {
			t.Errorf("%s: got %q; want %q", k, got, w)
		}
	}
	if n, err := strconv.Atoi(ev.Attrs["sev"]); err != nil || n < 1 || n > 10 {
		t.Errorf("sev: got %q; want 1–10", ev.Attrs["sev"])
	}
}

// Sanitize replaces each invalid UTF-8 byte with U+FFFD, as every format
// does.
func Sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// HeaderText is what a CEF or LEEF header field carries: CR and LF become
// spaces.
func HeaderText(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(Sanitize(s))
}

// Cut keeps at most limit bytes of s, at a rune boundary.
func Cut(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	return s[:limit]
}

// epochMillis is Unix milliseconds, rounded down (before 1970 too), by the
// time package's reckoning.
func epochMillis(ns int64) int64 { return time.Unix(0, ns).UnixMilli() }
