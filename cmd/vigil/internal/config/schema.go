package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/detectors"
)

// checkNode walks n against the Go type t it will be decoded into and
// returns one error per mistake, each naming the key path and the file's
// line: "pipeline.drain_timeout (line 3): "30 seconds" is not a duration
// (use e.g. 30s, 1m30s)". It reports unknown keys, values of the wrong type
// and values the type refuses (bad durations, sizes), so that the decoder
// that runs after it only sees a document it accepts. Leaf values are
// checked by decoding them into a fresh value of their type, so checkNode
// is exactly as lenient as the decoder.
//
// The parts decoded later from a node (a class's detectors) and the outputs,
// whose keys depend on their type, are checked against the type they become.
func checkNode(n *yaml.Node, t reflect.Type, path string) []error {
	return checkValue(n, t, path, 0)
}

// checkValue is checkNode for the value of a key on line keyLine (0: not
// a key's value), which errors name.
func checkValue(n *yaml.Node, t reflect.Type, path string, keyLine int) []error {
	if n == nil || n.Kind == 0 { // 0: an empty document (comments only)
		return nil
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return checkValue(n.Content[0], t, path, keyLine)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == outputType:
		return checkOutput(n, path)
	case t == nodeType:
		return nil // decoded later; see nodeSchema
	case reflect.PointerTo(t).Implements(unmarshalerType):
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return []error{atKey(path, lineOf(n, keyLine), yamlMessage(err))}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []error{atKey(path, lineOf(n, keyLine), "want a section of keys (key: value), got "+describe(n))}
		}
		return checkMapping(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return []error{atKey(path, lineOf(n, keyLine), "want a mapping (key: value), got "+describe(n))}
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, checkValue(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), n.Content[i].Line)...)
		}
		return errs
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return []error{atKey(path, lineOf(n, keyLine), "want a list, got "+describe(n))}
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case reflect.Interface:
		return nil
	}
	// A leaf: a scalar the type accepts.
	if n.Kind != yaml.ScalarNode {
		return []error{atKey(path, lineOf(n, keyLine), fmt.Sprintf("want %s, got %s", want(t), describe(n)))}
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		if t == durationType {
			return []error{atKey(path, lineOf(n, keyLine), fmt.Sprintf("%s is not a duration (use e.g. 30s, 1m30s)", describe(n)))}
		}
		return []error{atKey(path, lineOf(n, keyLine), fmt.Sprintf("want %s, got %s", want(t), describe(n)))}
	}
	return nil
}

// checkMapping checks the keys of a mapping against the struct t.
func checkMapping(n *yaml.Node, t reflect.Type, path string) []error {
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			// <<: *base or <<: [*a, *b] brings the keys of the mappings in.
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			merged := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				merged = v.Content
			}
			for _, m := range merged {
				errs = append(errs, checkNode(m, t, path)...)
			}
			continue
		}
		ft, ok := FieldType(t, k.Value)
		if !ok {
			keys := StructKeys(t)
			slices.Sort(keys)
			errs = append(errs, atKey(join(path, k.Value), k.Line, "unknown key (want one of: "+strings.Join(keys, ", ")+")"))
			continue
		}
		if ft == nodeType {
			if st := nodeSchema(t, k.Value); st != nil {
				errs = append(errs, checkValue(v, st, join(path, k.Value), k.Line)...)
			}
			continue
		}
		errs = append(errs, checkValue(v, ft, join(path, k.Value), k.Line)...)
	}
	return errs
}

// checkOutput checks an entry of alerts.outputs: its type, then its keys
// against that type's settings.
func checkOutput(n *yaml.Node, path string) []error {
	if n.Kind != yaml.MappingNode {
		return []error{atKey(path, n.Line, "want an output (type: …, and its keys), got "+describe(n))}
	}
	var typ *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typ = n.Content[i+1]
		}
	}
	if typ == nil {
		return []error{atKey(path, n.Line, "type: required (one of "+strings.Join(typeNames(), ", ")+")")}
	}
	st, ok := outputStruct(typ.Value)
	if !ok {
		return []error{atKey(join(path, "type"), typ.Line, fmt.Sprintf("%s is not an output type (want one of %s)", describe(typ), strings.Join(typeNames(), ", ")))}
	}
	return checkMapping(n, st, path)
}

// outputStruct returns the struct an output of type typ decodes into: the
// common keys and the type's own, inlined.
func outputStruct(typ string) (reflect.Type, bool) {
	mk, ok := outputTypes[typ]
	if !ok {
		return nil, false
	}
	return reflect.StructOf([]reflect.StructField{
		{Name: "Common", Type: reflect.TypeFor[OutputCommon](), Tag: `yaml:",inline"`},
		{Name: "Settings", Type: reflect.TypeOf(mk()).Elem(), Tag: `yaml:",inline"`},
	}), true
}

// nodeSchema returns the type a yaml.Node field is decoded into later, for
// checking it in place.
func nodeSchema(parent reflect.Type, key string) reflect.Type {
	if parent == reflect.TypeFor[Class]() && key == "detectors" {
		return reflect.TypeFor[detectors.Params]()
	}
	return nil
}

var (
	outputType      = reflect.TypeFor[Output]()
	nodeType        = reflect.TypeFor[yaml.Node]()
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// FieldType returns the type of struct t's field with YAML key key, looking
// into inlined structs and maps, as yaml.v3 decodes (the tune overlay walks
// detector parameters with it too).
func FieldType(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, skip := fieldKey(f)
		switch {
		case skip:
		case inline && f.Type.Kind() == reflect.Map:
			return f.Type.Elem(), true
		case inline:
			if ft, ok := FieldType(f.Type, key); ok {
				return ft, true
			}
		case name == key:
			return f.Type, true
		}
	}
	return nil, false
}

// StructKeys lists the YAML keys of struct t, those of inlined structs
// included.
func StructKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, skip := fieldKey(f)
		switch {
		case skip:
		case inline && f.Type.Kind() == reflect.Struct:
			keys = append(keys, StructKeys(f.Type)...)
		case !inline:
			keys = append(keys, name)
		}
	}
	return keys
}

// fieldKey returns a struct field's YAML key, as yaml.v3 derives it.
func fieldKey(f reflect.StructField) (key string, inline, skip bool) {
	name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() && !f.Anonymous {
		return "", false, true
	}
	if slices.Contains(strings.Split(opts, ","), "inline") {
		return "", true, false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, false, false
}

// want says what a leaf of type t holds.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number (0 or more)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}

// describe shows a node as it appears in an error: a string quoted, other
// scalars as written, collections by kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "?"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// atKey makes an error naming the key path and its line.
func atKey(path string, line int, msg string) error {
	if path == "" {
		return fmt.Errorf("line %d: %s", line, msg)
	}
	return fmt.Errorf("%s (line %d): %s", path, line, msg)
}

// lineOf is the line of the key whose value n is, or n's own.
func lineOf(n *yaml.Node, keyLine int) int {
	if keyLine > 0 {
		return keyLine
	}
	return n.Line
}

var (
	lineRE       = regexp.MustCompile(`^line (\d+): `)
	yamlPrefixRE = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?`)
)

// yamlMessage is err's text without yaml's prefixes and line number: the
// caller names the key and its line.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		m = yamlPrefixRE.ReplaceAllString(m, "")
		msgs[i] = lineRE.ReplaceAllString(m, "")
	}
	return strings.Join(msgs, "; ")
}

// withPaths rewrites the "line N: …" messages of a decoder error to name
// the key at that line in doc, for errors checkNode did not anticipate.
func withPaths(doc *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	errs := make([]error, 0, len(te.Errors))
	for _, m := range te.Errors {
		sub := lineRE.FindStringSubmatch(m)
		if sub == nil {
			errs = append(errs, errors.New(m))
			continue
		}
		line, _ := strconv.Atoi(sub[1])
		if path := pathAtLine(doc, line, ""); path != "" {
			errs = append(errs, fmt.Errorf("%s (line %d): %s", path, line, m[len(sub[0]):]))
			continue
		}
		errs = append(errs, errors.New(m))
	}
	return errors.Join(errs...)
}

// pathAtLine returns the path of the deepest key on line in n, "" if none.
func pathAtLine(n *yaml.Node, line int, path string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := pathAtLine(c, line, path); p != "" {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p := pathAtLine(c, line, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if deeper := pathAtLine(v, line, p); deeper != "" {
				return deeper
			}
			if k.Line == line {
				return p
			}
		}
	}
	return ""
}
