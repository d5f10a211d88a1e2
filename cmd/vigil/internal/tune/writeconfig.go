package tune

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/detectors"
)

// WriteConfig writes trial t of r (r.Best for the best) as a configuration
// file that `vigil replay --config` and `vigil run --config` accept
// unchanged: a header comment recording the objective, the scores and the
// data the settings were tuned on, a detectors section with the keys whose
// values differ from Vigil's defaults (the tuned keys, and the base
// configuration's own settings), and the base configuration's classes, which
// apply on top of it as they did in the trial. Other sections (mqtt, decoder,
// alerts) are not written: merge the detectors section into the deployment's
// file, or use this file as it is for a replay with the default decoder.
func WriteConfig(w io.Writer, r *Result, t *Trial) error {
	if t == nil {
		return errors.New("tune: write config: no trial (the search found no trial with a defined objective)")
	}
	if t.Err != nil {
		return fmt.Errorf("tune: write config: trial %d failed: %w", t.Index, t.Err)
	}
	var buf bytes.Buffer
	writeHeader(&buf, r, t)

	def := detectors.DefaultParams()
	var dn, tn yaml.Node
	if err := dn.Encode(&def); err != nil {
		return fmt.Errorf("BUG: tune: encode defaults: %w", err)
	}
	if err := tn.Encode(&t.Params); err != nil {
		return fmt.Errorf("BUG: tune: encode trial: %w", err)
	}
	dets := diffNode(&tn, &dn)
	if dets == nil {
		dets = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
		dets.LineComment = "the defaults"
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	doc.Content = append(doc.Content, scalar("detectors"), dets)
	if r != nil && r.base != nil && len(r.base.Classes) > 0 {
		type classOut struct {
			Name      string     `yaml:"name"`
			Devices   []string   `yaml:"devices,omitempty"`
			Topics    []string   `yaml:"topics,omitempty"`
			Detectors *yaml.Node `yaml:"detectors,omitempty"`
		}
		classes := make([]classOut, len(r.base.Classes))
		for i, c := range r.base.Classes {
			classes[i] = classOut{Name: c.Name, Devices: c.Devices, Topics: c.Topics}
			if !c.Detectors.IsZero() {
				n := c.Detectors
				classes[i].Detectors = &n
			}
		}
		var cn yaml.Node
		if err := cn.Encode(classes); err != nil {
			return fmt.Errorf("tune: write config: classes: %w", err)
		}
		flowLists(&cn)
		key := scalar("classes")
		key.HeadComment = "Device classes of the base configuration, unchanged: each applies its keys on top of the section above."
		doc.Content = append(doc.Content, key, &cn)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("tune: write config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("tune: write config: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("tune: write config: %w", err)
	}
	return nil
}

// flowLists writes lists of scalars on one line: devices: ["press-*"].
func flowLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		flat := true
		for _, c := range n.Content {
			flat = flat && c.Kind == yaml.ScalarNode
		}
		if flat {
			n.Style = yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowLists(c)
	}
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// writeHeader writes the comment that says where the settings come from.
func writeHeader(b *bytes.Buffer, r *Result, t *Trial) {
	line := func(format string, args ...any) {
		fmt.Fprintf(b, "# "+format+"\n", args...)
	}
	line("Vigil detection settings found by \"vigil tune\". Only keys whose values differ from")
	line("Vigil's defaults are written; merge the detectors section into your configuration.")
	if r == nil || r.Spec == nil {
		b.WriteString("\n")
		return
	}
	sp := r.Spec
	o := objectiveCell(sp.Objective, t.Objective)
	if base := r.Baseline(); base != nil && base != t {
		o += " (base configuration: " + objectiveCell(sp.Objective, base.Objective) + ")"
	}
	line("objective: %s, %s = %s, trial %d of %d", sp.Objective, sp.Objective.Describe(), o, t.Index, r.Planned)
	if sp.Objective == ObjectiveRecallAtFA {
		line("  false-alarm budget: %g per device-hour", sp.FABudget)
	}
	e := t.Events
	line("scores: event recall %s, precision %s, F1 %s, %s false alarms per device-hour; point-wise F1 %s; NAB standard %s",
		ratioCell(e.Recall), ratioCell(e.Precision), ratioCell(e.F1), rateCell(e.FalseAlarmsPerHour),
		ratioCell(t.Points.F1), scoreCell(t.NABStandard()))
	if base := r.Baseline(); base != nil {
		var changes []string
		for i := range sp.Params {
			if t.Changed[i] {
				changes = append(changes, fmt.Sprintf("%s %s (base %s)", sp.Params[i].Path, t.Values[i], base.Values[i]))
			}
		}
		if len(changes) > 0 {
			line("tuned: %s", strings.Join(changes, ", "))
		} else {
			line("tuned: nothing changed; the base configuration scored best")
		}
	}
	d := r.Data
	line("data: %s", strings.Join(d.Files, ", "))
	line("  %d devices, %d readings, %.1f device-hours, %s to %s; %d label windows",
		d.Devices, d.Readings, d.Hours, d.First.Format(time.RFC3339), d.Last.Format(time.RFC3339), r.Windows)
	search := fmt.Sprintf("random, seed %d", sp.Seed)
	if sp.Search == Grid {
		search = fmt.Sprintf("grid of %d", r.GridSize)
	}
	line("search: %s, %d trials; evaluation: before %s, after %s, match_kind %t",
		search, len(r.Trials), sp.Eval.Before, sp.Eval.After, sp.Eval.MatchKind)
	b.WriteString("\n")
}

// diffNode returns the parts of mapping a whose values differ from b's (nil
// when none): mappings recursively, anything else as a whole.
func diffNode(a, b *yaml.Node) *yaml.Node {
	if a.Kind == yaml.DocumentNode && len(a.Content) == 1 {
		a = a.Content[0]
	}
	if b != nil && b.Kind == yaml.DocumentNode && len(b.Content) == 1 {
		b = b.Content[0]
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(a.Content); i += 2 {
		k, v := a.Content[i], a.Content[i+1]
		var bv *yaml.Node
		if b != nil {
			bv = lookup(b, []string{k.Value})
		}
		switch {
		case v.Kind == yaml.MappingNode && bv != nil && bv.Kind == yaml.MappingNode:
			if d := diffNode(v, bv); d != nil {
				out.Content = append(out.Content, k, d)
			}
		case bv == nil || render(v) != render(bv) || v.Tag != bv.Tag:
			out.Content = append(out.Content, k, v)
		}
	}
	if len(out.Content) == 0 {
		return nil
	}
	// Small leaf sections read best on one line: spike: {z: 5, hold: 3}.
	flat := true
	for i := 1; i < len(out.Content); i += 2 {
		flat = flat && out.Content[i].Kind == yaml.ScalarNode
	}
	if flat && len(out.Content) <= 8 {
		out.Style = yaml.FlowStyle
	}
	return out
}
