package format

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Format names accepted by ByName and Config.Format.
const (
	NameJSON = "json"
	NameCEF  = "cef"
	NameLEEF = "leef"
	NameECS  = "ecs"
	NameOCSF = "ocsf"
)

// Names lists the format names, in the order the documentation gives them.
func Names() []string {
	return []string{NameJSON, NameCEF, NameLEEF, NameECS, NameOCSF}
}

// ErrUnknownFormat is returned (wrapped) for a format name that is not one
// of Names.
var ErrUnknownFormat = errors.New("format: unknown format")

// Config selects a format by name, as the config file spells it.
type Config struct {
	// Format is one of json, cef, leef, ecs, ocsf (case-insensitive).
	// Empty means json.
	Format string `yaml:"format"`
	// LEEFDelimiter is the LEEF 2.0 attribute delimiter: one character
	// ("^", the default when empty) or its code in hex ("0x09", "x5E").
	// Only read when Format is leef.
	LEEFDelimiter string `yaml:"leef_delimiter"`
}

// Validate reports whether c names a known format with a usable delimiter.
func (c Config) Validate() error {
	_, err := New(c, output.Meta{})
	return err
}

// New returns the formatter c selects, describing Vigil with m.
func New(c Config, m output.Meta) (output.Formatter, error) {
	m = withDefaults(m)
	switch strings.ToLower(strings.TrimSpace(c.Format)) {
	case "", NameJSON:
		return JSON{}, nil
	case NameCEF:
		return NewCEF(m), nil
	case NameLEEF:
		d := '^'
		if c.LEEFDelimiter != "" {
			var err error
			if d, err = ParseLEEFDelimiter(c.LEEFDelimiter); err != nil {
				return nil, fmt.Errorf("format: leef_delimiter: %w", err)
			}
		}
		return NewLEEF(m, d)
	case NameECS:
		return NewECS(m), nil
	case NameOCSF:
		return NewOCSF(m), nil
	}
	return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownFormat, c.Format, strings.Join(Names(), ", "))
}

// ByName returns the formatter called name with its defaults (LEEF with
// the ^ delimiter).
func ByName(name string, m output.Meta) (output.Formatter, error) {
	return New(Config{Format: name}, m)
}

// JSON renders Vigil's native alert object (docs/ALERTS.md), as
// pipeline.Alert.AppendJSON does.
type JSON struct{}

// Append implements output.Formatter.
func (JSON) Append(dst []byte, a *pipeline.Alert) []byte { return a.AppendJSON(dst) }

// withDefaults fills the product names a destination requires.
func withDefaults(m output.Meta) output.Meta {
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

// Severity on the 0–10 scale of CEF, LEEF (sev) and ECS (event.severity).
const (
	sevResolved = 3
	sevWarning  = 6
	sevCritical = 9
)

// severity10 maps an alert onto the 0–10 scale: a resolved transition is 3
// whatever its grade, a firing one 6 (warning) or 9 (critical).
func severity10(a *pipeline.Alert) int {
	if a.State == pipeline.Resolved {
		return sevResolved
	}
	switch a.Severity {
	case pipeline.Critical:
		return sevCritical
	case pipeline.Warning:
		return sevWarning
	}
	return sevResolved
}

// action names the transition: firing, escalation (a firing that raises the
// grade of an episode already reported) or resolved.
func action(a *pipeline.Alert) string {
	if a.State == pipeline.Firing && a.Escalation {
		return "escalation"
	}
	return a.State.String()
}

// ruleName is the detector, or the kind when an alert carries none.
func ruleName(a *pipeline.Alert) string {
	if a.Detector != "" {
		return a.Detector
	}
	return a.Kind
}

// appendTitle appends the short title of an alert: "overpressure.spike on
// pressure". It is the same for every transition of an episode.
func appendTitle(dst []byte, a *pipeline.Alert) []byte {
	dst = append(dst, ruleName(a)...)
	if a.Signal != "" {
		dst = append(dst, " on "...)
		dst = append(dst, a.Signal...)
	}
	return dst
}

// appendEventID appends a.EventID() with the episode ID escaped by e and
// the whole kept within limit bytes (the ID is cut, never the suffix).
func appendEventID(dst []byte, a *pipeline.Alert, e *escaper, limit int) []byte {
	const suffixMax = len("-resolved--critical") + 20 // 20: digits of an int64
	dst = e.append(dst, a.ID, limit-suffixMax)
	dst = append(dst, '-')
	dst = append(dst, a.State.String()...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, a.Time, 10)
	dst = append(dst, '-')
	return append(dst, a.Severity.String()...)
}

// epochMillis converts Unix nanoseconds to milliseconds, rounding down.
func epochMillis(ns int64) int64 {
	ms := ns / 1e6
	if ns%1e6 < 0 {
		ms--
	}
	return ms
}
