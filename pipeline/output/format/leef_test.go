package format_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/format/formattest"
)

func TestParseLEEFSpecExample(t *testing.T) {
	// The LEEF 2.0 example of the IBM / Juniper JSA LEEF guide.
	ev, err := formattest.ParseLEEF("LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Header != [4]string{"Lancope", "StealthWatch", "1.0", "41"} || ev.Delim != '^' || ev.Attrs["dst"] != "10.0.0.5" || ev.Attrs["dstPort"] != "21" || len(ev.Keys) != 5 {
		t.Errorf("got %+v", ev)
	}
	ev, err = formattest.ParseLEEF("LEEF:2.0|V|P|1|E|0x09|a=1\tb=2")
	if err != nil || ev.Delim != '\t' || ev.Attrs["b"] != "2" {
		t.Errorf("hex delimiter: got %+v, %v", ev, err)
	}
}

func TestLEEFVariants(t *testing.T) {
	for _, d := range []rune{'^', '\t', '¦', '‖', ';', ' '} {
		f, err := format.NewLEEF(exampleMeta, d)
		if err != nil {
			t.Fatal(err)
		}
		for name, a := range alertVariants() {
			t.Run(fmt.Sprintf("%q/%s", d, name), func(t *testing.T) {
				formattest.CheckLEEF(t, exampleMeta, d, a, string(f.Append(nil, a)))
			})
		}
	}
}

func TestLEEFEscaping(t *testing.T) {
	for _, d := range []rune{'^', '\t', '‖', ' '} {
		for _, n := range nasty {
			t.Run(fmt.Sprintf("%q/%s", d, n.name), func(t *testing.T) {
				m := output.Meta{Vendor: n.s, Product: n.s, Version: n.s, Hostname: n.s}
				a := baseAlert()
				a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message = n.s, n.s, n.s, n.s, n.s, n.s, n.s, n.s
				f, err := format.NewLEEF(m, d)
				if err != nil {
					t.Fatal(err)
				}
				formattest.CheckLEEF(t, withDefaultMeta(m), d, a, string(f.Append(nil, a)))
			})
		}
	}
}

func TestLEEFExactEscapes(t *testing.T) {
	a := baseAlert()
	a.Message = "a^b\\c\r\nd\te=f|g"
	a.Detector = `x|y\z`
	f, _ := format.NewLEEF(output.Meta{Version: "1"}, '^')
	got := string(f.Append(nil, a))
	for _, want := range []string{`|x\|y\\z|^|`, `^msg=a\x5Eb\\c\r\nd` + "\t" + `e=f|g`} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q; want it to contain %q", got, want)
		}
	}
	tab, _ := format.NewLEEF(output.Meta{Version: "1"}, '\t')
	got = string(tab.Append(nil, a))
	if want := "\tmsg=a^b\\\\c\\r\\nd\\te=f|g"; !strings.Contains(got, want) {
		t.Errorf("tab: got %q; want it to contain %q", got, want)
	}
}

func FuzzLEEF(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, n.s, n.s, 1.5, int32('^'), false)
	}
	f.Add("a", "b", "c", "d", 0.0, int32('\t'), true)
	f.Fuzz(func(t *testing.T, id, device, detector, msg string, v float64, delim int32, resolved bool) {
		m := output.Meta{Vendor: detector, Product: "Vigil", Version: msg, Hostname: device}
		lf, err := format.NewLEEF(m, delim)
		if err != nil {
			return // an unusable delimiter (TestConfig covers which)
		}
		if delim == 0 {
			delim = '^'
		}
		a := baseAlert()
		a.ID, a.Device, a.Detector, a.Signal, a.Message, a.Topic, a.Unit, a.Kind = id, device, detector, id, msg, msg, device, detector
		a.Value, a.Score = v, -v
		if resolved {
			a.State = pipeline.Resolved
		}
		formattest.CheckLEEF(t, withDefaultMeta(m), delim, a, string(lf.Append(nil, a)))
	})
}
