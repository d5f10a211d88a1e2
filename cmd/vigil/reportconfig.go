package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/report"
	"github.com/vigil-iot/vigil/detectors"
)

// reportConfig summarises the configuration of a replay for its report:
// the file, the inputs, the pipeline, the signals, the classes, the key
// detector settings and every detector or fleet setting that differs from
// the defaults.
func reportConfig(path string, cfg *config.File, files []string, workers, decoders int) []report.Setting {
	file := path
	if file == "" {
		file = "none: the defaults"
	}
	dec := "one per CPU"
	if decoders > 0 {
		dec = fmt.Sprint(decoders)
	}
	s := []report.Setting{
		{Key: "Configuration file", Value: file},
		{Key: "Input files", Value: strings.Join(files, ", ")},
		{Key: "Pipeline", Value: fmt.Sprintf("%d shard workers, decoders: %s", workers, dec)},
	}
	var sigs []string
	for _, field := range slices.Sorted(maps.Keys(cfg.Decoder.Signals)) {
		sg := cfg.Decoder.Signals[field]
		sigs = append(sigs, fmt.Sprintf("%s → %s (%s)", field, cmp.Or(sg.Name, field), sg.Kind))
	}
	s = append(s, report.Setting{Key: "Signals", Value: strings.Join(sigs, ", ")})
	if len(cfg.Classes) > 0 {
		var cl []string
		for _, c := range cfg.Classes {
			cl = append(cl, fmt.Sprintf("%s (%s)", c.Name, strings.Join(append(slices.Clone(c.Devices), c.Topics...), ", ")))
		}
		s = append(s, report.Setting{Key: "Classes", Value: strings.Join(cl, "; ")})
	}
	// The settings an engineer reading the charts asks about first, changed
	// or not; keys missing from the parameters (renamed) are left out.
	params, _ := flatten(cfg.Detectors)
	var key []string
	for _, k := range []string{
		"baseline.warmup_samples", "baseline.half_life", "overpressure.spike.z", "overpressure.limit",
		"thermal.high", "thermal.low", "vibration.zones.cd", "hysteresis",
	} {
		if v, ok := params[k]; ok {
			key = append(key, k+": "+v)
		}
	}
	s = append(s, report.Setting{Key: "Key detector settings", Value: strings.Join(key, ", ")})
	changed := changedSettings("", cfg.Detectors, detectors.DefaultParams())
	changed = append(changed, changedSettings("fleet.", cfg.Fleet, detectors.DefaultFleet())...)
	if len(changed) == 0 {
		changed = []string{"none: the detectors run on their defaults"}
	}
	s = append(s, report.Setting{Key: "Changed from the defaults", Value: strings.Join(changed, ", ")})
	return s
}

// changedSettings lists "key: value (default d)" for each setting of v that
// differs from def, prefixed.
func changedSettings(prefix string, v, def any) []string {
	got, err1 := flatten(v)
	want, err2 := flatten(def)
	if err1 != nil || err2 != nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if d, ok := want[k]; !ok || d != got[k] {
			out = append(out, fmt.Sprintf("%s%s: %s (default %s)", prefix, k, got[k], cmp.Or(d, "none")))
		}
	}
	return out
}

// flatten returns the leaves of v as YAML: dotted key → value, a list
// written in flow style.
func flatten(v any) (map[string]string, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	m := map[string]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], join(path, n.Content[i].Value))
			}
			return
		}
		if n.Kind == yaml.ScalarNode {
			m[path] = n.Value
			if n.ShortTag() == "!!null" {
				m[path] = "none"
			}
			return
		}
		c := *n
		c.Style = yaml.FlowStyle
		b, err := yaml.Marshal(&c)
		if err == nil {
			m[path] = strings.TrimSpace(string(b))
		}
	}
	walk(&n, "")
	return m, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
