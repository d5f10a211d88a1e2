package tune

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
)

// The written file parses with config.Parse and gives back the trial's
// Params, classes included.
func TestWriteConfigRoundTrip(t *testing.T) {
	ds, labels := loadSmall(t)
	base, err := config.Parse([]byte(`
detectors:
  baseline: {warmup_samples: 200}
  overpressure:
    limit: 8.5
    spike: {z: 30}
    rise: {h: 10000}
    rate: {factor: 1000}
  vibration:
    zones: {ab: 100, bc: 200, cd: 300}
    jump: {z: 30}
    elevation: {h: 10000}
classes:
  - name: odd
    devices: ["sensor-node-0[135]"]
    detectors:
      overpressure: {limit: 12, spike: {hold: 3}}
  - name: by-topic
    topics: ["plant/line-z/#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	spec := mustSpec(t, spikeSpec+`
  baseline.warmup_duration: {values: [0s, 90s]}
  thermal.high: {values: [90, 120]}
`)
	res, err := Run(context.Background(), ds, labels, base, spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*Trial{res.Best, res.Baseline(), res.Trials[len(res.Trials)-1]} {
		var buf bytes.Buffer
		if err := WriteConfig(&buf, res, tr); err != nil {
			t.Fatal(err)
		}
		f, err := config.Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("trial %d: config.Parse: %v\n%s", tr.Index, err, buf.String())
		}
		if !equalParams(f.Detectors, tr.Params) {
			t.Errorf("trial %d: parsed detectors\n%+v\nwant\n%+v\nfile:\n%s", tr.Index, f.Detectors, tr.Params, buf.String())
		}
		r := &runner{base: base}
		want, err := r.detectorConfig(&tr.Params)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.DetectorConfig(); !reflect.DeepEqual(got, want) {
			t.Errorf("trial %d: parsed detection config\n%+v\nwant\n%+v", tr.Index, got, want)
		}
		if tr == res.Best {
			t.Logf("best:\n%s", buf.String())
			text := buf.String()
			for _, want := range []string{"# objective: event_f1", "(base configuration: ", "# tuned: overpressure.spike.z", "# data: ", "label windows", "limit: 8.5", "warmup_samples: 200", "classes:", "name: odd"} {
				if !strings.Contains(text, want) {
					t.Errorf("file lacks %q", want)
				}
			}
			// Keys at their defaults are left out.
			for _, absent := range []string{"half_life", "hysteresis", "fluctuation"} {
				if strings.Contains(text, absent) {
					t.Errorf("file has %q, which is at its default", absent)
				}
			}
		}
	}
}

func TestWriteConfigDefaults(t *testing.T) {
	var buf bytes.Buffer
	tr := &Trial{Params: config.Default().Detectors}
	if err := WriteConfig(&buf, nil, tr); err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse(buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !equalParams(f.Detectors, tr.Params) || !strings.Contains(buf.String(), "detectors: {}") {
		t.Errorf("defaults written as\n%s", buf.String())
	}
	if err := WriteConfig(&buf, nil, nil); err == nil {
		t.Error("nil trial: got no error")
	}
}
