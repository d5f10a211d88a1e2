package format

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
)

// escaper writes text fields of the line formats (CEF, LEEF). Every ASCII
// byte with a non-empty entry in tab is replaced by it; runes at or above
// utf8.RuneSelf equal to wide are replaced by wideEsc (a non-ASCII LEEF
// delimiter). Invalid UTF-8 becomes U+FFFD, one per bad byte, since both
// formats are UTF-8 throughout.
type escaper struct {
	tab     [utf8.RuneSelf]string
	wide    rune
	wideEsc string
}

const replacementChar = "\uFFFD"

// appendN appends s escaped, keeping at most limit bytes of the unescaped
// (valid UTF-8) text, cut at a rune boundary; limit < 0 means no limit. It
// returns the extended slice and the number of unescaped bytes kept, so a
// field written in parts can share one limit.
func (e *escaper) appendN(dst []byte, s string, limit int) ([]byte, int) {
	n, start, i := 0, 0, 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if limit >= 0 && n+1 > limit {
				break
			}
			if esc := e.tab[c]; esc != "" {
				dst = append(dst, s[start:i]...)
				dst = append(dst, esc...)
				i++
				start = i
			} else {
				i++
			}
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			if limit >= 0 && n+len(replacementChar) > limit {
				break
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, replacementChar...)
			i++
			start = i
			n += len(replacementChar)
			continue
		}
		if limit >= 0 && n+size > limit {
			break
		}
		if r == e.wide {
			dst = append(dst, s[start:i]...)
			dst = append(dst, e.wideEsc...)
			i += size
			start = i
		} else {
			i += size
		}
		n += size
	}
	return append(dst, s[start:i]...), n
}

// append is appendN without the count.
func (e *escaper) append(dst []byte, s string, limit int) []byte {
	dst, _ = e.appendN(dst, s, limit)
	return dst
}

// headerEscaper escapes a pipe-delimited header field of CEF and LEEF:
// backslash and pipe get a backslash; CR and LF, which no header field may
// hold (they would end the syslog line), become spaces.
var headerEscaper = func() *escaper {
	e := &escaper{wide: -1}
	e.tab['\\'] = `\\`
	e.tab['|'] = `\|`
	e.tab['\r'] = " "
	e.tab['\n'] = " "
	return e
}()

// appendNumber writes f in the shortest form that round-trips ('f' notation
// for ordinary magnitudes, 'e' beyond), as JSON, Java's Double.parseDouble
// and strconv.ParseFloat all read it. Callers skip NaN and ±Inf.
func appendNumber(b []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// finite reports whether f can be written as a number.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendRFC3339 writes Unix nanoseconds as an RFC 3339 UTC time with as many
// fractional digits as needed, like the native JSON form.
func appendRFC3339(b []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(b, time.RFC3339Nano)
}

// appendJSONString writes s as a JSON string, escaping what RFC 8259
// requires and replacing invalid UTF-8 with U+FFFD, as the native form does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars writes the inside of the JSON string s, without quotes.
func appendJSONChars(b []byte, s string) []byte { return pipeline.AppendJSONChars(b, s) }

// jsonObject writes the members of a JSON object in order, inserting the
// commas, so optional members need no bookkeeping at the call site.
type jsonObject struct {
	b     []byte
	first bool
}

func (o *jsonObject) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) open() { o.b = append(o.b, '{'); o.first = true }

func (o *jsonObject) close() { o.b = append(o.b, '}'); o.first = false }

// object starts a nested object member.
func (o *jsonObject) object(k string) { o.key(k); o.open() }

func (o *jsonObject) str(k, v string) { o.key(k); o.b = appendJSONString(o.b, v) }

// strOpt writes a string member unless v is empty.
func (o *jsonObject) strOpt(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *jsonObject) int(k string, v int64) { o.key(k); o.b = strconv.AppendInt(o.b, v, 10) }

// num writes a number member, omitted when f is NaN or ±Inf.
func (o *jsonObject) num(k string, f float64) {
	if finite(f) {
		o.key(k)
		o.b = appendNumber(o.b, f)
	}
}

func (o *jsonObject) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *jsonObject) time(k string, ns int64) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = appendRFC3339(o.b, ns)
	o.b = append(o.b, '"')
}
