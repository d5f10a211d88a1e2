package format_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ocsfSchema is a test-only validator for OCSF events, read from the
// published schema files in testdata/ocsf-<version> (see its README). It
// resolves a class through its extends chain (base_event → finding →
// detection_finding) and each object through its own, merging attribute
// definitions child over parent and enums across the chain and the
// dictionary, and checks that
//
//   - every attribute the class or object marks required is present,
//   - no attribute is present that the definition does not declare (profile
//     attributes brought in by $include count only when the event lists the
//     profile in metadata.profiles; Vigil lists none),
//   - every value has the dictionary type: string, integer, long and
//     timestamp (integral JSON numbers), float, boolean, json, an object
//     (checked recursively) or an array of one of those, with the type's
//     regex, max_len and range,
//   - enum attributes hold a listed value, and a sibling caption
//     (severity for severity_id…) matches the enum's caption,
//   - the constraints at_least_one and just_one hold,
//   - class_uid, category_uid and type_uid agree with the class,
//   - no deprecated attribute is used.
type ocsfSchema struct {
	dict    map[string]ocsfAttr // dictionary.json attributes
	types   map[string]ocsfType // dictionary.json types
	classes map[string]ocsfDef  // by name
	objects map[string]ocsfDef  // by name
	cats    map[string]ocsfCat  // by name
}

type ocsfCat struct {
	UID     int    `json:"uid"`
	Caption string `json:"caption"`
}

type ocsfAttr struct {
	Type        string                     `json:"type"`
	IsArray     bool                       `json:"is_array"`
	Requirement string                     `json:"requirement"`
	Enum        map[string]json.RawMessage `json:"enum"`
	Sibling     string                     `json:"sibling"`
	Profile     *string                    `json:"profile"`
	Deprecated  json.RawMessage            `json:"@deprecated"`
}

type ocsfType struct {
	Type   string    `json:"type"`
	Regex  string    `json:"regex"`
	MaxLen int       `json:"max_len"`
	Range  []float64 `json:"range"`
	re     *regexp.Regexp
}

type ocsfDef struct {
	Name        string                     `json:"name"`
	Caption     string                     `json:"caption"`
	UID         int                        `json:"uid"`
	Category    string                     `json:"category"`
	Extends     string                     `json:"extends"`
	Attributes  map[string]json.RawMessage `json:"attributes"`
	Constraints map[string][]string        `json:"constraints"`
}

// resolved is a class or object with its chain merged.
type resolved struct {
	attrs       map[string]*ocsfAttr
	constraints map[string][]string
	uid         int // class only: category uid * 1000 + class uid
	category    int
	caption     string // class only
	catCaption  string
}

var (
	ocsfOnce   sync.Once
	ocsfLoaded *ocsfSchema
	ocsfErr    error
)

// loadOCSF reads the schema once per test binary.
func loadOCSF(t testing.TB) *ocsfSchema {
	t.Helper()
	ocsfOnce.Do(func() { ocsfLoaded, ocsfErr = readOCSF(filepath.Join("testdata", "ocsf-1.8.0")) })
	if ocsfErr != nil {
		t.Fatal(ocsfErr)
	}
	return ocsfLoaded
}

func readOCSF(dir string) (*ocsfSchema, error) {
	s := &ocsfSchema{classes: map[string]ocsfDef{}, objects: map[string]ocsfDef{}, cats: map[string]ocsfCat{}}
	var dict struct {
		Attributes map[string]ocsfAttr `json:"attributes"`
		Types      struct {
			Attributes map[string]ocsfType `json:"attributes"`
		} `json:"types"`
	}
	if err := readJSON(filepath.Join(dir, "dictionary.json"), &dict); err != nil {
		return nil, err
	}
	s.dict, s.types = dict.Attributes, dict.Types.Attributes
	for name, ty := range s.types {
		if ty.Regex != "" {
			re, err := regexp.Compile(ty.Regex)
			if err != nil {
				return nil, fmt.Errorf("type %s: %w", name, err)
			}
			ty.re = re
			s.types[name] = ty
		}
	}
	var cats struct {
		Attributes map[string]ocsfCat `json:"attributes"`
	}
	if err := readJSON(filepath.Join(dir, "categories.json"), &cats); err != nil {
		return nil, err
	}
	for name, c := range cats.Attributes {
		s.cats[name] = c
	}
	for _, sub := range []string{"events", "objects"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
				return err
			}
			var def ocsfDef
			if err := readJSON(path, &def); err != nil {
				return err
			}
			if sub == "events" {
				s.classes[def.Name] = def
			} else {
				s.objects[def.Name] = def
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// resolve merges the definition called name and its ancestors.
func (s *ocsfSchema) resolve(defs map[string]ocsfDef, name string) (*resolved, error) {
	var chain []ocsfDef
	for n := name; n != ""; {
		d, ok := defs[n]
		if !ok {
			return nil, fmt.Errorf("no schema file defines %q", n)
		}
		chain = append(chain, d)
		n = d.Extends
	}
	r := &resolved{attrs: map[string]*ocsfAttr{}, constraints: map[string][]string{}}
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		for k, raw := range d.Attributes {
			if k == "$include" {
				continue // profile attributes: not applied (no metadata.profiles)
			}
			var over ocsfAttr
			if err := json.Unmarshal(raw, &over); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", d.Name, k, err)
			}
			a := r.attrs[k]
			if a == nil {
				base, ok := s.dict[k]
				if !ok {
					return nil, fmt.Errorf("%s.%s: not in the dictionary", d.Name, k)
				}
				a = &base
				a.Enum = mergeEnum(nil, base.Enum)
				r.attrs[k] = a
			}
			if over.Requirement != "" {
				a.Requirement = over.Requirement
			}
			if over.Type != "" {
				a.Type = over.Type
			}
			a.Enum = mergeEnum(a.Enum, over.Enum)
			if bytes.Contains(raw, []byte(`"profile"`)) {
				a.Profile = over.Profile
			}
			if over.Deprecated != nil {
				a.Deprecated = over.Deprecated
			}
		}
		for k, v := range d.Constraints {
			r.constraints[k] = v
		}
		if d.Category != "" {
			r.category, r.catCaption = s.cats[d.Category].UID, s.cats[d.Category].Caption
		}
		r.uid, r.caption = r.category*1000+d.UID, d.Caption
	}
	for k, a := range r.attrs {
		if a.Profile != nil && *a.Profile != "" {
			delete(r.attrs, k) // a profile's attribute; no profile is applied
		}
	}
	return r, nil
}

func mergeEnum(dst, src map[string]json.RawMessage) map[string]json.RawMessage {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]json.RawMessage{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// validateClass validates a decoded event (json.Number numbers) against a
// class and returns every problem found, sorted.
func (s *ocsfSchema) validateClass(class string, ev map[string]any) []string {
	r, err := s.resolve(s.classes, class)
	if err != nil {
		return []string{err.Error()}
	}
	var errs []string
	if p, ok := ev["metadata"].(map[string]any); ok && p["profiles"] != nil {
		errs = append(errs, "metadata.profiles: the validator applies no profile")
	}
	// The class and category pin their own uid enums.
	pin := func(k string, id int, caption string) {
		a := *r.attrs[k]
		b, _ := json.Marshal(map[string]string{"caption": caption})
		a.Enum = map[string]json.RawMessage{strconv.Itoa(id): b}
		r.attrs[k] = &a
	}
	pin("class_uid", r.uid, r.caption)
	pin("category_uid", r.category, r.catCaption)
	s.validate(r, ev, "", &errs)
	var actCaption struct {
		Caption string `json:"caption"`
	}
	_ = json.Unmarshal(r.attrs["activity_id"].Enum[fmt.Sprint(ev["activity_id"])], &actCaption)
	if tn, ok := ev["type_name"]; ok && tn != r.caption+": "+actCaption.Caption {
		errs = append(errs, fmt.Sprintf("type_name: got %v; want %q", tn, r.caption+": "+actCaption.Caption))
	}
	want := map[string]int64{"class_uid": int64(r.uid), "category_uid": int64(r.category)}
	for k, w := range want {
		if got, ok := intOf(ev[k]); !ok || got != w {
			errs = append(errs, fmt.Sprintf("%s: got %v; want %d", k, ev[k], w))
		}
	}
	act, _ := intOf(ev["activity_id"])
	if got, ok := intOf(ev["type_uid"]); !ok || got != int64(r.uid)*100+act {
		errs = append(errs, fmt.Sprintf("type_uid: got %v; want %d", ev["type_uid"], int64(r.uid)*100+act))
	}
	sort.Strings(errs)
	return errs
}

func (s *ocsfSchema) validate(r *resolved, obj map[string]any, path string, errs *[]string) {
	add := func(format string, args ...any) { *errs = append(*errs, path+fmt.Sprintf(format, args...)) }
	for k, a := range r.attrs {
		if a.Requirement == "required" && obj[k] == nil {
			add("%s: required attribute missing", k)
		}
	}
	for _, c := range [...]string{"at_least_one", "just_one"} {
		names, ok := r.constraints[c]
		if !ok {
			continue
		}
		n := 0
		for _, k := range names {
			if obj[k] != nil {
				n++
			}
		}
		if n == 0 || (c == "just_one" && n != 1) {
			add("constraint %s %v: %d present", c, names, n)
		}
	}
	for k, v := range obj {
		a, ok := r.attrs[k]
		if !ok {
			add("%s: not an attribute of this class or object", k)
			continue
		}
		if a.Deprecated != nil {
			add("%s: deprecated", k)
		}
		if v == nil {
			continue
		}
		if a.IsArray {
			arr, ok := v.([]any)
			if !ok {
				add("%s: got %T; want an array", k, v)
				continue
			}
			for i, e := range arr {
				s.value(a, e, fmt.Sprintf("%s%s[%d]", path, k, i), errs)
			}
			continue
		}
		s.value(a, v, path+k, errs)
	}
	for k, a := range r.attrs {
		if a.Sibling == "" || len(a.Enum) == 0 || obj[k] == nil || obj[a.Sibling] == nil {
			continue
		}
		id, _ := json.Marshal(obj[k])
		var e struct {
			Caption string `json:"caption"`
		}
		if raw, ok := a.Enum[strings.Trim(string(id), `"`)]; ok && string(id) != "99" {
			_ = json.Unmarshal(raw, &e)
			if got, _ := obj[a.Sibling].(string); got != e.Caption {
				add("%s: got %q; want %q, the caption of %s %s", a.Sibling, got, e.Caption, k, id)
			}
		}
	}
}

func (s *ocsfSchema) value(a *ocsfAttr, v any, path string, errs *[]string) {
	add := func(format string, args ...any) { *errs = append(*errs, path+": "+fmt.Sprintf(format, args...)) }
	if len(a.Enum) > 0 {
		key := fmt.Sprint(v)
		if _, ok := a.Enum[key]; !ok {
			add("%v is not in the enum", v)
		}
	}
	t := a.Type
	if !strings.HasSuffix(t, "_t") {
		m, ok := v.(map[string]any)
		if !ok {
			add("got %T; want object %s", v, t)
			return
		}
		if t == "object" {
			return // free-form (unmapped)
		}
		r, err := s.resolve(s.objects, t)
		if err != nil {
			add("%v", err)
			return
		}
		s.validate(r, m, path+".", errs)
		return
	}
	// Walk the type to its base, checking each level's constraints.
	for t != "" {
		ty, ok := s.types[t]
		if !ok {
			add("unknown type %s", t)
			return
		}
		if ty.re != nil || ty.MaxLen > 0 {
			str, _ := v.(string)
			if ty.MaxLen > 0 && len(str) > ty.MaxLen {
				add("longer than %s's %d", t, ty.MaxLen)
			}
			if ty.re != nil && !ty.re.MatchString(str) {
				add("%q does not match %s", str, t)
			}
		}
		if len(ty.Range) == 2 {
			if f, err := v.(json.Number).Float64(); err != nil || f < ty.Range[0] || f > ty.Range[1] {
				add("%v outside %v", v, ty.Range)
			}
		}
		if ty.Type == "" {
			break
		}
		t = ty.Type
	}
	switch t {
	case "string_t":
		if _, ok := v.(string); !ok {
			add("got %T; want a string", v)
		}
	case "integer_t", "long_t":
		n, ok := v.(json.Number)
		if !ok {
			add("got %T; want an integer", v)
			return
		}
		bits := 64
		if t == "integer_t" {
			bits = 32
		}
		if _, err := strconv.ParseInt(n.String(), 10, bits); err != nil {
			add("%s is not a %d-bit integer", n, bits)
		}
	case "float_t":
		if _, ok := v.(json.Number); !ok {
			add("got %T; want a number", v)
		}
	case "boolean_t":
		if _, ok := v.(bool); !ok {
			add("got %T; want a boolean", v)
		}
	case "json_t":
	default:
		add("unhandled base type %s", t)
	}
}

func intOf(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// decodeEvent decodes one JSON event keeping numbers exact.
func decodeEvent(t testing.TB, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if d.More() {
		t.Fatalf("trailing data after the event: %s", b)
	}
	return m
}
