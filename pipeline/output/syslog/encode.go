package syslog

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Severities (RFC 5424 §6.2.1).
const (
	sevCritical = 2
	sevWarning  = 4
	sevNotice   = 5
)

// bom is the UTF-8 byte order mark that starts a MSG encoded in UTF-8
// (RFC 5424 §6.4).
const bom = "\xef\xbb\xbf"

// timestampLayout is RFC 3339 in UTC with at most six fractional digits
// (RFC 5424 §6.2.3, TIME-SECFRAC = "." 1*6DIGIT); trailing zeros and an
// all-zero fraction are dropped.
const timestampLayout = "2006-01-02T15:04:05.999999Z07:00"

// Header field limits (RFC 5424 §6).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
)

// encoder builds RFC 5424 messages and frames them. It reuses its buffers:
// one goroutine at a time.
type encoder struct {
	facility int
	// header fields fixed for the output's life, sanitised, NILVALUE when empty
	hostname, appName, procID string
	msgID                     string // the alert field MSGID takes (Config.MsgID)
	sdID                      string // "" when structured data is off
	max                       int    // largest SYSLOG-MSG in octets
	framing                   string // "" for datagrams
	f                         output.Formatter

	msg, one, ev []byte // scratch: the formatter's output, one message, an event ID
	truncated    uint64 // messages truncated to fit max
}

// severity maps an alert to a syslog severity: firing critical is crit
// (2), any other firing alert warning (4), resolved notice (5).
func severity(a *pipeline.Alert) int {
	switch {
	case a.State == pipeline.Resolved:
		return sevNotice
	case a.Severity == pipeline.Critical:
		return sevCritical
	}
	return sevWarning
}

// appendFrame appends a's message to dst with the framing: octet counting
// ("LEN SP MSG") or non-transparent ("MSG LF"); none for datagrams.
func (e *encoder) appendFrame(dst []byte, a *pipeline.Alert) []byte {
	switch e.framing {
	case FramingOctetCounting:
		e.one = e.appendMessage(e.one[:0], a)
		dst = strconv.AppendInt(dst, int64(len(e.one)), 10)
		dst = append(dst, ' ')
		return append(dst, e.one...)
	case FramingNonTransparent:
		return append(e.appendMessage(dst, a), '\n')
	}
	return e.appendMessage(dst, a)
}

// appendMessage appends a's SYSLOG-MSG (RFC 5424 §6):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [SP MSG]
//
// of at most e.max octets. Whatever does not fit is cut from the end of MSG
// at a UTF-8 boundary; a structured data element that alone would not fit
// is replaced by the NILVALUE. Both are counted in e.truncated.
func (e *encoder) appendMessage(dst []byte, a *pipeline.Alert) []byte {
	start := len(dst)
	truncated := false
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(e.facility*8+severity(a)), 10)
	dst = append(dst, ">1 "...)
	if a.Time == 0 {
		dst = append(dst, '-')
	} else {
		dst = time.Unix(0, a.Time).UTC().AppendFormat(dst, timestampLayout)
	}
	dst = append(dst, ' ')
	dst = append(dst, e.hostname...)
	dst = append(dst, ' ')
	dst = append(dst, e.appName...)
	dst = append(dst, ' ')
	dst = append(dst, e.procID...)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, e.msgIDOf(a), maxMsgID)
	dst = append(dst, ' ')
	sd := len(dst)
	if e.sdID != "" {
		dst = e.appendSD(dst, a)
		if len(dst)-start > e.max {
			dst = dst[:sd]
			truncated = true
		}
	}
	if len(dst) == sd {
		dst = append(dst, '-')
	}

	e.msg = e.f.Append(e.msg[:0], a)
	m := e.msg
	valid := utf8.Valid(m)
	if !valid {
		// A MSG that is not UTF-8 is MSG-ANY, which must not start
		// with a BOM.
		for bytes.HasPrefix(m, []byte(bom)) {
			m = m[len(bom):]
		}
	}
	if len(m) > 0 {
		addBOM := valid && needsBOM(m)
		room := e.max - (len(dst) - start) - 1 // SP
		if addBOM {
			room -= len(bom)
		}
		if len(m) > room {
			m = cutUTF8(m, max(room, 0))
			truncated = true
		}
		if len(m) > 0 {
			dst = append(dst, ' ')
			if addBOM {
				dst = append(dst, bom...)
			}
			dst = append(dst, m...)
		}
	}
	if e.framing == FramingNonTransparent {
		// A line feed would end the frame: the header has none, the
		// structured data and MSG may.
		for i := sd; i < len(dst); i++ {
			if dst[i] == '\n' {
				dst[i] = ' '
			}
		}
	}
	if truncated {
		e.truncated++
	}
	return dst
}

// needsBOM reports whether MSG m, valid UTF-8, is to be sent as MSG-UTF8
// with the BOM (RFC 5424 §6.4: "If a syslog application encodes MSG in
// UTF-8, the string MUST start with the Unicode byte order mask (BOM)").
// A MSG of US-ASCII only is sent as MSG-ANY without one: it is the same
// octets in either encoding, and the formats it carries (CEF, LEEF, JSON)
// are then read by parsers that do not expect a BOM before their first
// character. A MSG that already starts with the BOM keeps it.
func needsBOM(m []byte) bool {
	return !ascii(m) && !bytes.HasPrefix(m, []byte(bom))
}

// ascii reports whether b is all US-ASCII, eight octets at a time.
func ascii(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// cutUTF8 returns the longest prefix of m of at most n octets that does not
// end inside a UTF-8 sequence.
func cutUTF8(m []byte, n int) []byte {
	if n >= len(m) {
		return m
	}
	i := n
	for k := 0; k < utf8.UTFMax-1 && i > 0 && !utf8.RuneStart(m[i]); k++ {
		i--
	}
	return m[:i]
}

func (e *encoder) msgIDOf(a *pipeline.Alert) string {
	switch e.msgID {
	case "kind":
		return a.Kind
	case "detector":
		return a.Detector
	case "state":
		return a.State.String()
	case "severity":
		return a.Severity.String()
	case "signal":
		return a.Signal
	}
	return ""
}

// appendHeaderField appends s as a header field: at most max characters,
// each outside PRINTUSASCII (%d33-126) replaced by '_', or the NILVALUE
// when s is empty.
func appendHeaderField(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	n := 0
	for _, r := range s {
		if n == max {
			break
		}
		c := byte('_')
		if r >= 33 && r <= 126 {
			c = byte(r)
		}
		dst = append(dst, c)
		n++
	}
	return dst
}

// headerField returns appendHeaderField's result as a string.
func headerField(s string, max int) string {
	return string(appendHeaderField(nil, s, max))
}

// appendSD appends the structured data element of a (RFC 5424 §6.3):
//
//	[vigil@32473 id="…" event="…" device="…" kind="…" detector="…" severity="…" state="…" signal="…"]
func (e *encoder) appendSD(dst []byte, a *pipeline.Alert) []byte {
	dst = append(dst, '[')
	dst = append(dst, e.sdID...)
	dst = appendParam(dst, "id", a.ID)
	e.ev = a.AppendEventID(e.ev[:0])
	dst = append(dst, ` event="`...)
	if plain(e.ev) {
		dst = append(dst, e.ev...)
	} else {
		dst = appendParamValue(dst, string(e.ev))
	}
	dst = append(dst, '"')
	dst = appendParam(dst, "device", a.Device)
	dst = appendParam(dst, "kind", a.Kind)
	dst = appendParam(dst, "detector", a.Detector)
	dst = appendParam(dst, "severity", a.Severity.String())
	dst = appendParam(dst, "state", a.State.String())
	dst = appendParam(dst, "signal", a.Signal)
	return append(dst, ']')
}

// plain reports whether b can be a PARAM-VALUE as it is: valid UTF-8
// without a character to escape.
func plain(b []byte) bool {
	return bytes.IndexAny(b, `"\]`) < 0 && utf8.Valid(b)
}

// appendParam appends SP name="value".
func appendParam(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	dst = appendParamValue(dst, value)
	return append(dst, '"')
}

// appendParamValue appends s as a PARAM-VALUE: '"', '\' and ']' escaped
// with a backslash (RFC 5424 §6.3.3), each octet of invalid UTF-8 replaced
// by U+FFFD (PARAM-VALUE is UTF-8).
func appendParamValue(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' || c == ']' {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}
