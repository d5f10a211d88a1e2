package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
)

// DefaultAlertTopic is the default topic template of alerts.
const DefaultAlertTopic = "vigil/alerts/{kind}/{device}"

// topicTemplate is a parsed topic template: literal text and placeholders
// filled from an alert.
type topicTemplate struct {
	parts []topicPart
}

type topicPart struct {
	lit   string
	field string // "kind", "device", "severity", "detector"; "" for a literal
}

// parseTopicTemplate parses a template; allowed lists the placeholders it
// may use, required those it must.
func parseTopicTemplate(s string, allowed, required []string) (topicTemplate, error) {
	var t topicTemplate
	if s == "" {
		return t, errors.New("empty topic template")
	}
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return t, fmt.Errorf("%q: must be valid UTF-8 without NUL characters", s)
	}
	if strings.HasPrefix(s, "$") {
		return t, fmt.Errorf("%q: topics starting with '$' are reserved for the broker", s)
	}
	seen := map[string]bool{}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, topicPart{lit: rest})
			break
		}
		if rest[i] == '}' {
			return t, fmt.Errorf("%q: unbalanced '}'", s)
		}
		if i > 0 {
			t.parts = append(t.parts, topicPart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("%q: unclosed '{'", s)
		}
		name := rest[i+1 : i+j]
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return t, fmt.Errorf("%q: unknown placeholder {%s} (allowed: {%s})", s, name, strings.Join(allowed, "}, {"))
		}
		seen[name] = true
		t.parts = append(t.parts, topicPart{field: name})
		rest = rest[i+j+1:]
	}
	for _, p := range t.parts {
		if p.field == "" && strings.ContainsAny(p.lit, "+#") {
			return t, fmt.Errorf("%q: wildcards '+' and '#' are not allowed in a topic", s)
		}
	}
	for _, r := range required {
		if !seen[r] {
			return t, fmt.Errorf("%q: must contain {%s}", s, r)
		}
	}
	return t, nil
}

// render returns the topic for a.
func (t *topicTemplate) render(a *pipeline.Alert) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.lit)
		case "kind":
			writeLevel(&b, a.Kind)
		case "device":
			writeLevel(&b, a.Device)
		case "severity":
			writeLevel(&b, a.Severity.String())
		case "detector":
			writeLevel(&b, a.Detector)
		}
	}
	s := b.String()
	if strings.HasPrefix(s, "$") { // a placeholder at the start
		s = "_" + s[1:]
	}
	return s
}

// writeLevel writes v as (part of) one topic level: '/', '+', '#', NUL and
// invalid UTF-8 become '_', so a device name cannot add levels or wildcards;
// an empty value becomes "_" so no level is empty.
func writeLevel(b *strings.Builder, v string) {
	if v == "" {
		b.WriteByte('_')
		return
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch c {
			case '/', '+', '#', 0:
				c = '_'
			}
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte('_')
		} else {
			b.WriteString(v[i : i+size])
		}
		i += size
	}
}
