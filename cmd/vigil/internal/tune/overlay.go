package tune

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
)

// valueKind is what a tuned key holds, as far as ranges care.
type valueKind uint8

const (
	kindOther    valueKind = iota // anything else: values only
	kindFloat                     // float64 or *float64
	kindInt                       // an integer
	kindDuration                  // time.Duration
	kindSection                   // a struct: a mapping of keys
)

func (k valueKind) String() string {
	switch k {
	case kindFloat:
		return "a number"
	case kindInt:
		return "a whole number"
	case kindDuration:
		return "a duration"
	case kindSection:
		return "a section of keys"
	}
	return "a value that is not a number"
}

func (k valueKind) numeric() bool { return k == kindFloat || k == kindInt || k == kindDuration }

// parse reads a range bound in the key's unit.
func (k valueKind) parse(n *yaml.Node) (float64, error) {
	if k == kindDuration {
		var d time.Duration
		if err := n.Decode(&d); err != nil {
			return 0, fmt.Errorf("want a duration such as 30s or 5m, got %s", render(n))
		}
		return float64(d), nil
	}
	var x float64
	if err := n.Decode(&x); err != nil {
		return 0, fmt.Errorf("want a number, got %s", render(n))
	}
	return x, nil
}

// node returns the scalar node of x.
func (k valueKind) node(x float64) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode}
	switch k {
	case kindInt:
		n.Tag, n.Value = "!!int", strconv.FormatInt(int64(x), 10)
	case kindDuration:
		n.Tag, n.Value = "!!str", time.Duration(x).String()
	default:
		n.Tag, n.Value = "!!float", strconv.FormatFloat(x, 'g', -1, 64)
	}
	return n
}

func (k valueKind) format(x float64) string { return k.node(x).Value }

// round makes a drawn value presentable, kept within [lo, hi]: four
// significant digits, whole numbers for integer keys, whole milliseconds for
// durations of a second or more.
func (k valueKind) round(x, lo, hi float64) float64 {
	switch k {
	case kindInt:
		return min(max(math.Round(x), math.Ceil(lo)), math.Floor(hi))
	case kindDuration:
		x = roundSig(x, 4)
		if x >= float64(time.Second) {
			x = math.Round(x/float64(time.Millisecond)) * float64(time.Millisecond)
		}
		return min(max(math.Round(x), lo), hi)
	}
	return min(max(roundSig(x, 4), lo), hi)
}

// roundSig rounds x to n significant digits.
func roundSig(x float64, n int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', n, 64), 64)
	if err != nil {
		return x
	}
	return r
}

var (
	paramsType   = reflect.TypeFor[detectors.Params]()
	durationType = reflect.TypeFor[time.Duration]()
)

// kindAt finds the key at path in the detectors section and says what it
// holds. Unknown keys are errors listing the keys there are.
func kindAt(path []string) (valueKind, error) {
	t := paramsType
	for i, seg := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return 0, fmt.Errorf("unknown key: %s holds %s, not a section with key %q",
				strings.Join(path[:i], "."), kindOf(t), seg)
		}
		f, ok := config.FieldType(t, seg)
		if !ok {
			where := "the detectors section"
			if i > 0 {
				where = strings.Join(path[:i], ".")
			}
			return 0, fmt.Errorf("unknown key %q in %s (keys: %s)", seg, where, strings.Join(config.StructKeys(t), ", "))
		}
		t = f
	}
	return kindOf(t), nil
}

func kindOf(t reflect.Type) valueKind {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return kindDuration
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return kindFloat
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return kindInt
	case t.Kind() == reflect.Struct:
		return kindSection
	}
	return kindOther
}

// overlayNode builds the mapping that sets each path to its value.
func overlayNode(vals []*yaml.Node, paths [][]string) *yaml.Node {
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i, path := range paths {
		m := root
		for j, seg := range path {
			var next *yaml.Node
			for k := 0; k+1 < len(m.Content); k += 2 {
				if m.Content[k].Value == seg {
					next = m.Content[k+1]
				}
			}
			if next == nil {
				next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				if j == len(path)-1 {
					next = vals[i]
				}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}, next)
			}
			m = next
		}
	}
	return root
}

// overlay returns a copy of base with each path set to its value, decoded
// strictly: the way config.Parse applies a class's detectors section.
func overlay(base *detectors.Params, vals []*yaml.Node, paths [][]string) (detectors.Params, error) {
	p, err := copyParams(base)
	if err != nil {
		return p, err
	}
	if err := decodeStrict(overlayNode(vals, paths), &p); err != nil {
		return p, err
	}
	return p, nil
}

// copyParams returns a deep copy of p: a YAML round trip, so pointer fields
// (limits) are never shared, whatever fields Params gains.
func copyParams(p *detectors.Params) (detectors.Params, error) {
	var n yaml.Node
	if err := n.Encode(p); err != nil {
		return detectors.Params{}, fmt.Errorf("BUG: encode detectors.Params: %w", err)
	}
	var c detectors.Params
	if err := decodeStrict(&n, &c); err != nil {
		return detectors.Params{}, fmt.Errorf("BUG: decode detectors.Params: %w", err)
	}
	return c, nil
}

// lineRE matches the line numbers of yaml errors, meaningless for a node
// built or re-encoded here.
var lineRE = regexp.MustCompile(`line \d+: `)

// unknownFieldRE matches yaml's error for an unknown key of a struct.
var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// knownKeys lists the keys of the file structs, for errors about unknown keys.
var knownKeys = map[string]string{
	"tune.specFile":  "objective, fa_budget, search, trials, max_trials, seed, match_kind, before, after, parameters",
	"tune.paramFile": "min, max, steps, log, values",
}

// friendlier rewrites yaml's unknown-field errors of the tuning file's own
// structs to name the keys there are.
func friendlier(err error) error {
	if err == nil {
		return nil
	}
	msg := unknownFieldRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := unknownFieldRE.FindStringSubmatch(m)
		if keys, ok := knownKeys[sub[2]]; ok {
			return fmt.Sprintf("unknown key %q (keys: %s)", sub[1], keys)
		}
		return m
	})
	return errors.New(msg)
}

// decodeStrict decodes a node rejecting unknown keys, as config does
// (yaml.Node.Decode has no strict mode, so the node is encoded and decoded
// strictly).
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err = dec.Decode(v)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = lineRE.ReplaceAllString(m, "")
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

// render returns a node as one line of YAML: a scalar's text, or a
// collection in flow style.
func render(n *yaml.Node) string {
	if n == nil {
		return "~"
	}
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	c := *n
	setFlow(&c)
	b, err := yaml.Marshal(&c)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func setFlow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	n.Content = slices.Clone(n.Content)
	for i, c := range n.Content {
		cc := *c
		setFlow(&cc)
		n.Content[i] = &cc
	}
}

// lookup returns the node at path in a mapping (or a document holding one),
// nil when there is none.
func lookup(n *yaml.Node, path []string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, seg := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for k := 0; k+1 < len(n.Content); k += 2 {
			if n.Content[k].Value == seg {
				next = n.Content[k+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}
