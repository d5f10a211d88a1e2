package format

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// LEEFTimeFormat is the devTimeFormat Vigil sends with devTime: a Java
// SimpleDateFormat pattern (as QRadar expects) for an ISO 8601 time in UTC
// with milliseconds and an RFC 822 zone, e.g. 2026-11-21T10:10:10.576+0000.
const LEEFTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"

// leefGoTime is LEEFTimeFormat in Go's layout.
const leefGoTime = "2006-01-02T15:04:05.000-0700"

// LEEF renders an alert as an IBM QRadar LEEF 2.0 event:
//
//	LEEF:2.0|Vigil|Vigil|0.4.0|overpressure.spike|^|devTime=…^devTimeFormat=…^sev=9^cat=overpressure^…
//
// The attribute delimiter is configurable. LEEF defines no escape for
// values; Vigil guarantees that the delimiter, CR and LF never appear raw in
// a value, so a parser that splits on the delimiter never cuts one:
// backslash is written \\, CR \r, LF \n, and the delimiter \t when it is a
// tab, else \xHH (\uHHHH above U+00FF). Keys are fixed ASCII words, never
// holding '='. See the package documentation for the key mapping.
type LEEF struct {
	prefix []byte // "LEEF:2.0|Vendor|Product|Version|"
	delim  []byte // "|^|" or "|0x09|": the delimiter field and its pipes
	sep    []byte // the delimiter as UTF-8
	host   []byte // "obsHost=host", or empty
	esc    *escaper
}

// ParseLEEFDelimiter reads a delimiter as the LEEF 2.0 header spells it:
// one character, or its code in hex prefixed with 0x or x (1–4 digits).
// The delimiter must be usable: not a letter, digit or one of - + . : '
// (all occur in times and numbers), not '=', '\' or '|', not CR, LF or NUL,
// and at most U+FFFF.
func ParseLEEFDelimiter(s string) (rune, error) {
	var r rune
	switch {
	case utf8.RuneCountInString(s) == 1:
		r, _ = utf8.DecodeRuneInString(s)
		if r == utf8.RuneError {
			return 0, fmt.Errorf("delimiter %q is not valid UTF-8", s)
		}
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "x"):
		h := strings.TrimPrefix(strings.TrimPrefix(s, "0"), "x")
		if len(h) < 1 || len(h) > 4 {
			return 0, fmt.Errorf("delimiter %q: want 1 to 4 hex digits after x or 0x", s)
		}
		v, err := strconv.ParseUint(h, 16, 16)
		if err != nil {
			return 0, fmt.Errorf("delimiter %q: want 1 to 4 hex digits after x or 0x", s)
		}
		r = rune(v)
	default:
		return 0, fmt.Errorf("delimiter %q: want one character or its hex code (0x09, x5E)", s)
	}
	return r, checkLEEFDelimiter(r)
}

var errLEEFDelimiter = errors.New("unusable LEEF delimiter")

func checkLEEFDelimiter(r rune) error {
	switch {
	case r <= 0 || r > 0xFFFF || !utf8.ValidRune(r):
		return fmt.Errorf("%w U+%04X: want a character from U+0001 to U+FFFF", errLEEFDelimiter, r)
	case r == '=' || r == '\\' || r == '|' || r == '\r' || r == '\n':
		return fmt.Errorf("%w %q: it cannot be escaped unambiguously", errLEEFDelimiter, r)
	case unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-+.:'", r):
		return fmt.Errorf("%w %q: it occurs in the times and numbers of every event", errLEEFDelimiter, r)
	}
	return nil
}

// NewLEEF returns a LEEF 2.0 formatter that names Vigil with m and separates
// attributes with delim (0 means the default ^). It fails for a delimiter
// ParseLEEFDelimiter would refuse.
func NewLEEF(m output.Meta, delim rune) (*LEEF, error) {
	if delim == 0 {
		delim = '^'
	}
	if err := checkLEEFDelimiter(delim); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	m = withDefaults(m)
	f := &LEEF{sep: utf8.AppendRune(nil, delim)}

	p := append([]byte(nil), "LEEF:2.0|"...)
	p = headerEscaper.append(p, m.Vendor, -1)
	p = append(p, '|')
	p = headerEscaper.append(p, m.Product, -1)
	p = append(p, '|')
	p = headerEscaper.append(p, m.Version, -1)
	f.prefix = append(p, '|')

	// The header names the delimiter itself when it is a printable ASCII
	// character, else by its hex code, which no transport mangles.
	f.delim = append(f.delim, '|')
	if delim > ' ' && delim < 0x7f {
		f.delim = append(f.delim, byte(delim))
	} else {
		f.delim = append(f.delim, "0x"...)
		f.delim = appendHex(f.delim, delim)
	}
	f.delim = append(f.delim, '|')

	e := &escaper{wide: -1}
	e.tab['\\'] = `\\`
	e.tab['\r'] = `\r`
	e.tab['\n'] = `\n`
	var esc []byte
	switch {
	case delim == '\t':
		esc = []byte(`\t`)
	case delim <= 0xff:
		esc = appendHex([]byte(`\x`), delim)
	default:
		esc = appendHex([]byte(`\u`), delim)
	}
	if delim < utf8.RuneSelf {
		e.tab[delim] = string(esc)
	} else {
		e.wide, e.wideEsc = delim, string(esc)
	}
	f.esc = e
	if m.Hostname != "" {
		f.host = append(f.host, "obsHost="...)
		f.host = e.append(f.host, m.Hostname, -1)
	}
	return f, nil
}

// appendHex writes r in upper-case hex: two digits up to 0xFF, else four.
func appendHex(b []byte, r rune) []byte {
	const digits = "0123456789ABCDEF"
	if r > 0xff {
		b = append(b, digits[r>>12&0xf], digits[r>>8&0xf])
	}
	return append(b, digits[r>>4&0xf], digits[r&0xf])
}

// Append implements output.Formatter.
func (f *LEEF) Append(dst []byte, a *pipeline.Alert) []byte {
	dst = append(dst, f.prefix...)
	dst = headerEscaper.append(dst, ruleName(a), -1)
	dst = append(dst, f.delim...)

	dst = append(dst, "devTime="...)
	dst = time.Unix(0, a.Time).UTC().AppendFormat(dst, leefGoTime)
	dst = append(dst, f.sep...)
	dst = append(dst, "devTimeFormat="...)
	dst = append(dst, LEEFTimeFormat...)
	dst = append(dst, f.sep...)
	dst = append(dst, "sev="...)
	dst = strconv.AppendInt(dst, int64(severity10(a)), 10)
	dst = f.str(dst, "cat", a.Kind)
	dst = f.str(dst, "act", action(a))
	dst = f.str(dst, "alertId", a.ID)
	dst = append(dst, f.sep...)
	dst = append(dst, "eventId="...)
	dst = appendEventID(dst, a, f.esc, -1)
	dst = f.str(dst, "device", a.Device)
	dst = f.str(dst, "topic", a.Topic)
	dst = f.str(dst, "detector", a.Detector)
	dst = f.str(dst, "signal", a.Signal)
	dst = f.num(dst, "value", a.Value)
	dst = f.num(dst, "threshold", a.Threshold)
	dst = f.str(dst, "unit", a.Unit)
	dst = f.num(dst, "observed", a.Observed)
	dst = f.num(dst, "baselineMean", a.Mean)
	dst = f.num(dst, "baselineStd", a.Std)
	dst = f.num(dst, "score", a.Score)
	dst = append(dst, f.sep...)
	dst = append(dst, "startTime="...)
	dst = time.Unix(0, a.Started).UTC().AppendFormat(dst, leefGoTime)
	if a.State == pipeline.Resolved {
		dst = append(dst, f.sep...)
		dst = append(dst, "endTime="...)
		dst = time.Unix(0, a.Time).UTC().AppendFormat(dst, leefGoTime)
	}
	dst = f.str(dst, "msg", a.Message)
	if len(f.host) > 0 {
		dst = append(dst, f.sep...)
		dst = append(dst, f.host...)
	}
	return dst
}

// str appends delimiter, key, '=' and the escaped value, unless it is empty.
func (f *LEEF) str(dst []byte, key, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, f.sep...)
	dst = append(dst, key...)
	dst = append(dst, '=')
	return f.esc.append(dst, value, -1)
}

// num appends delimiter, key, '=' and v, unless v is NaN or ±Inf.
func (f *LEEF) num(dst []byte, key string, v float64) []byte {
	if !finite(v) {
		return dst
	}
	dst = append(dst, f.sep...)
	dst = append(dst, key...)
	dst = append(dst, '=')
	return appendNumber(dst, v)
}
