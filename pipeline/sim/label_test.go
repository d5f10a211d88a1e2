package sim_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

func TestWriteLabels(t *testing.T) {
	var buf bytes.Buffer
	if err := sim.WriteLabels(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "[]\n" {
		t.Errorf("no labels: got %q; want %q", got, "[]\n")
	}

	_, labels := writeLog(t, sim.DefaultConfig())
	buf.Reset()
	if err := sim.WriteLabels(&buf, labels); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if len(lines) != len(labels)+3 || lines[0] != "[" || lines[len(lines)-2] != "]" {
		t.Errorf("got %d lines; want [, one per label, ]", len(lines)-1)
	}
	if want := `{"device":"sensor-node-01","kind":"overpressure","detail":"spike","start":"2026-11-21T10:10:08.576Z","end":"2026-11-21T10:10:17.584Z"},`; lines[1] != want {
		t.Errorf("first label line %s; want %s", lines[1], want)
	}
	var back []sim.Label
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(back, labels, func(a, b sim.Label) bool {
		return a.Device == b.Device && a.Kind == b.Kind && a.Detail == b.Detail && a.Start.Equal(b.Start) && a.End.Equal(b.End)
	}) {
		t.Error("labels do not survive a round trip through JSON")
	}
}
