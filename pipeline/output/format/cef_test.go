package format_test

import (
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/format/formattest"
)

func TestParseCEFSpecExamples(t *testing.T) {
	// The examples of the CEF Implementation Standard, "Character Encoding".
	tests := []struct {
		line string
		name string
		act  string
	}{
		{`CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a | dst=1.1.1.1`, "detected a | in message", "blocked a |"},
		{`CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|src=10.0.0.1 act=blocked a \\ dst=1.1.1.1`, `detected a \ in packet`, `blocked a \`},
		{`CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 act=blocked a \= dst=1.1.1.1`, "detected a = in message", "blocked a ="},
	}
	for _, tc := range tests {
		ev, err := formattest.ParseCEF(tc.line)
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if ev.Header[5] != tc.name || ev.Ext["act"] != tc.act || ev.Ext["dst"] != "1.1.1.1" {
			t.Errorf("%s: got name %q act %q dst %q; want %q %q 1.1.1.1", tc.line, ev.Header[5], ev.Ext["act"], ev.Ext["dst"], tc.name, tc.act)
		}
	}
	ev, err := formattest.ParseCEF(`CEF:0|security|threatmanager|1.0|100|Detected a threat. No action needed.|10|src=10.0.0.1 msg=Detected a threat.\n No action needed`)
	if err != nil || ev.Ext["msg"] != "Detected a threat.\n No action needed" {
		t.Errorf("multi-line msg: got %q, %v", ev.Ext["msg"], err)
	}
}

func TestCEFVariants(t *testing.T) {
	f := format.NewCEF(exampleMeta)
	for name, a := range alertVariants() {
		t.Run(name, func(t *testing.T) { formattest.CheckCEF(t, exampleMeta, a, string(f.Append(nil, a))) })
	}
}

func TestCEFSeverity(t *testing.T) {
	f := format.NewCEF(exampleMeta)
	want := map[string]string{"firing critical": "|9|", "firing warning": "|6|", "escalation": "|9|", "resolved": "|3|"}
	v := alertVariants()
	for name, w := range want {
		if got := string(f.Append(nil, v[name])); !strings.Contains(got, "|overpressure.spike on pressure"+w) {
			t.Errorf("%s: got %q; want severity %s", name, got, w)
		}
	}
}

// TestCEFEscaping runs every nasty string through every text field.
func TestCEFEscaping(t *testing.T) {
	for _, n := range nasty {
		t.Run(n.name, func(t *testing.T) {
			m := output.Meta{Vendor: n.s, Product: n.s, Version: n.s, Hostname: n.s}
			a := baseAlert()
			a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message = n.s, n.s, n.s, n.s, n.s, n.s, n.s, n.s
			line := string(format.NewCEF(m).Append(nil, a))
			formattest.CheckCEF(t, withDefaultMeta(m), a, line)
		})
	}
}

func TestCEFExactEscapes(t *testing.T) {
	a := baseAlert()
	a.Detector, a.Signal, a.Message = `a|b\c=d`, "s", "x|y\\z=w\r\nv"
	got := string(format.NewCEF(output.Meta{Version: "1"}).Append(nil, a))
	for _, want := range []string{`|a\|b\\c=d|a\|b\\c=d on s|9|`, `msg=x|y\\z\=w\r\nv `, `cs2=a|b\\c\=d `} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q; want it to contain %q", got, want)
		}
	}
}

// withDefaultMeta is what the formatters put for empty Meta fields.
func withDefaultMeta(m output.Meta) output.Meta {
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

func FuzzCEF(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, n.s, n.s, 1.5, false)
	}
	f.Fuzz(func(t *testing.T, id, device, detector, msg string, v float64, resolved bool) {
		m := output.Meta{Vendor: detector, Product: "Vigil", Version: msg, Hostname: device}
		a := baseAlert()
		a.ID, a.Device, a.Detector, a.Signal, a.Message, a.Topic, a.Unit, a.Kind = id, device, detector, id, msg, msg, device, detector
		a.Value, a.Score = v, -v
		if resolved {
			a.State = pipeline.Resolved
		}
		formattest.CheckCEF(t, withDefaultMeta(m), a, string(format.NewCEF(m).Append(nil, a)))
	})
}
