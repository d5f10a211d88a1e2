package skab

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRead: a file in SKAB's layout reads into its readings, labels and
// times; a cell that does not parse is NaN, a short line is skipped, and
// the anomaly-free run (no label columns) is recognised.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(group, name, text string) string {
		p := filepath.Join(dir, group, name+".csv")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("valve1", "3", "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint\n"+
		"2020-03-09 10:14:33;0.026;0.040;1.33;0.054;79.3;26.0;233.0;32.0;0.0;0.0\n"+
		"2020-03-09 10:14:34;0.027;x;1.35;0.38;79.5;26.0;236.0;32.0;1.0;1.0\n"+
		"2020-03-09 10:14:35;short\n")
	write("anomaly-free", "anomaly-free", "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS\n"+
		"2020-02-08 13:30:47;0.20;0.27;2.17;0.38;90.6;26.8;238.8;122.6\n")
	exps, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(exps) != 2 || !exps[0].Free() || exps[1].Group != "valve1" || exps[1].Name != "3" {
		t.Fatalf("experiments %+v; want the anomaly-free run, then valve1/3", exps)
	}
	v := exps[1]
	if len(v.Values) != 2 || v.Anomalous[0] || !v.Anomalous[1] || !math.IsNaN(v.Values[1][1]) || v.Values[1][4] != 79.5 ||
		!v.Times[1].Equal(time.Date(2020, 3, 9, 10, 14, 34, 0, time.UTC)) {
		t.Errorf("valve1/3: %+v", v)
	}
	if len(exps[0].Values) != 1 || exps[0].Anomalous[0] {
		t.Errorf("anomaly-free: %+v", exps[0])
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of an empty directory: no error")
	}
}
