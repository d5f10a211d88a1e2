package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is a strict RFC 5424 parser and an RFC 6587 octet-counting
// stream splitter, written from the RFCs' ABNF as the tests' oracle: it
// accepts only what the ABNF allows, plus the escaping rules of §6.3.3
// applied strictly (an unescaped ']' inside a PARAM-VALUE is refused).

type message struct {
	PRI                              int
	Timestamp                        string // "-" or RFC 3339
	Hostname, AppName, ProcID, MsgID string
	SD                               []sdElement // nil for the NILVALUE
	BOM                              bool        // MSG was MSG-UTF8
	Msg                              []byte      // without the BOM; nil when absent
	HasMsg                           bool
	rawLen                           int
	facility, severity               int
	timestampUTC                     time.Time
}

type sdElement struct {
	ID     string
	Params []sdParam
}

type sdParam struct{ Name, Value string }

// param returns the value of the first parameter name of element id.
func (m *message) param(id, name string) (string, bool) {
	for _, e := range m.SD {
		if e.ID != id {
			continue
		}
		for _, p := range e.Params {
			if p.Name == name {
				return p.Value, true
			}
		}
	}
	return "", false
}

var timestampRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$`)

// parseMessage parses one SYSLOG-MSG (RFC 5424 §6).
func parseMessage(b []byte) (m message, err error) {
	m.rawLen = len(b)
	p := &parser{b: b}
	// PRI = "<" PRIVAL ">", PRIVAL = 1*3DIGIT ; range 0 .. 191
	if !p.eat('<') {
		return m, p.errorf("want '<'")
	}
	digits := p.while(func(c byte) bool { return c >= '0' && c <= '9' })
	if len(digits) == 0 || len(digits) > 3 || (len(digits) > 1 && digits[0] == '0') {
		return m, p.errorf("bad PRIVAL %q", digits)
	}
	m.PRI, _ = strconv.Atoi(digits)
	if m.PRI > 191 {
		return m, p.errorf("PRIVAL %d > 191", m.PRI)
	}
	m.facility, m.severity = m.PRI/8, m.PRI%8
	if !p.eat('>') {
		return m, p.errorf("want '>'")
	}
	// VERSION = NONZERO-DIGIT 0*2DIGIT; only 1 exists.
	if !p.eat('1') || !p.eat(' ') {
		return m, p.errorf("want version 1 and SP")
	}
	// TIMESTAMP = NILVALUE / FULL-DATE "T" FULL-TIME
	m.Timestamp, err = p.field("TIMESTAMP", 64)
	if err != nil {
		return m, err
	}
	if m.Timestamp != "-" {
		if !timestampRE.MatchString(m.Timestamp) {
			return m, p.errorf("bad TIMESTAMP %q", m.Timestamp)
		}
		if m.timestampUTC, err = time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
			return m, p.errorf("bad TIMESTAMP %q: %v", m.Timestamp, err)
		}
	}
	for _, f := range []struct {
		name string
		max  int
		dst  *string
	}{{"HOSTNAME", 255, &m.Hostname}, {"APP-NAME", 48, &m.AppName}, {"PROCID", 128, &m.ProcID}, {"MSGID", 32, &m.MsgID}} {
		if *f.dst, err = p.field(f.name, f.max); err != nil {
			return m, err
		}
	}
	// STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT
	if p.eat('-') {
		m.SD = nil
	} else {
		for p.peek() == '[' {
			e, err := p.element()
			if err != nil {
				return m, err
			}
			for _, prev := range m.SD {
				if prev.ID == e.ID {
					return m, p.errorf("SD-ID %q twice", e.ID)
				}
			}
			m.SD = append(m.SD, e)
		}
		if m.SD == nil {
			return m, p.errorf("want STRUCTURED-DATA")
		}
	}
	if p.done() {
		return m, nil
	}
	if !p.eat(' ') {
		return m, p.errorf("want SP before MSG")
	}
	m.HasMsg = true
	rest := p.b[p.i:]
	if bytes.HasPrefix(rest, []byte(bom)) {
		m.BOM = true
		rest = rest[len(bom):]
		if !utf8.Valid(rest) {
			return m, p.errorf("MSG-UTF8 is not valid UTF-8")
		}
	}
	m.Msg = rest
	return m, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) done() bool { return p.i >= len(p.b) }

func (p *parser) peek() byte {
	if p.done() {
		return 0
	}
	return p.b[p.i]
}

func (p *parser) eat(c byte) bool {
	if p.peek() == c && !p.done() {
		p.i++
		return true
	}
	return false
}

func (p *parser) while(ok func(byte) bool) string {
	j := p.i
	for p.i < len(p.b) && ok(p.b[p.i]) {
		p.i++
	}
	return string(p.b[j:p.i])
}

func printUSASCII(c byte) bool { return c >= 33 && c <= 126 }

// field reads a header field of 1 to max PRINTUSASCII and the SP after it.
func (p *parser) field(name string, max int) (string, error) {
	s := p.while(printUSASCII)
	if s == "" || len(s) > max {
		return "", p.errorf("%s %q: want 1 to %d PRINTUSASCII", name, s, max)
	}
	if !p.eat(' ') {
		return "", p.errorf("want SP after %s", name)
	}
	return s, nil
}

func sdNameChar(c byte) bool { return printUSASCII(c) && c != '=' && c != ']' && c != '"' }

func (p *parser) sdName(what string) (string, error) {
	s := p.while(sdNameChar)
	if s == "" || len(s) > 32 {
		return "", p.errorf("%s %q: want 1 to 32 characters", what, s)
	}
	return s, nil
}

// element reads SD-ELEMENT = "[" SD-ID *(SP SD-PARAM) "]".
func (p *parser) element() (e sdElement, err error) {
	p.eat('[')
	if e.ID, err = p.sdName("SD-ID"); err != nil {
		return e, err
	}
	if name, pen, ok := bytes.Cut([]byte(e.ID), []byte("@")); ok && (len(name) == 0 || len(pen) == 0) {
		return e, p.errorf("SD-ID %q: bad name@number", e.ID)
	}
	for {
		if p.eat(']') {
			return e, nil
		}
		if !p.eat(' ') {
			return e, p.errorf("want SP or ']' in SD-ELEMENT")
		}
		var prm sdParam
		if prm.Name, err = p.sdName("PARAM-NAME"); err != nil {
			return e, err
		}
		if !p.eat('=') || !p.eat('"') {
			return e, p.errorf("want =\" after PARAM-NAME")
		}
		var v []byte
		for {
			if p.done() {
				return e, p.errorf("unterminated PARAM-VALUE")
			}
			c := p.b[p.i]
			p.i++
			if c == '"' {
				break
			}
			if c == ']' {
				return e, p.errorf("unescaped ']' in PARAM-VALUE")
			}
			if c == '\\' && !p.done() {
				switch n := p.b[p.i]; n {
				case '"', '\\', ']':
					v = append(v, n)
					p.i++
					continue
				}
			}
			v = append(v, c)
		}
		if !utf8.Valid(v) {
			return e, p.errorf("PARAM-VALUE %q is not UTF-8", v)
		}
		prm.Value = string(v)
		e.Params = append(e.Params, prm)
	}
}

// splitOctetCounted splits a stream of octet-counted frames (RFC 6587
// §3.4.1: MSG-LEN SP SYSLOG-MSG, MSG-LEN = NONZERO-DIGIT *DIGIT). The tail
// of an incomplete frame is returned in rest.
func splitOctetCounted(b []byte) (frames [][]byte, rest []byte, err error) {
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			if len(b) > 7 {
				return frames, b, errors.New("no SP after MSG-LEN")
			}
			return frames, b, nil
		}
		lenField := b[:sp]
		if len(lenField) == 0 || lenField[0] < '1' || lenField[0] > '9' || len(lenField) > 7 {
			return frames, b, fmt.Errorf("bad MSG-LEN %q", lenField)
		}
		n, err := strconv.Atoi(string(lenField))
		if err != nil {
			return frames, b, fmt.Errorf("bad MSG-LEN %q", lenField)
		}
		if len(b) < sp+1+n {
			return frames, b, nil
		}
		frames = append(frames, b[sp+1:sp+1+n])
		b = b[sp+1+n:]
	}
	return frames, nil, nil
}
