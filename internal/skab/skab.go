// Package skab reads the Skoltech Anomaly Benchmark (SKAB,
// github.com/waico/SKAB, GPL-3.0; not in this repository) for the tests
// that judge Vigil on it: a water-circulation test bed with eight real
// sensors, one CSV file (";"-separated) per experiment, each reading
// labelled anomalous or not.
package skab

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Signals are the test bed's sensors, in the files' column order.
var Signals = [8]string{"Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure",
	"Temperature", "Thermocouple", "Voltage", "Volume Flow RateRMS"}

// Experiment is one file: its readings, in order.
type Experiment struct {
	// Group and Name are the file's directory and base name without
	// ".csv" ("valve1", "3"); the anomaly-free run is "anomaly-free".
	Group, Name string
	Times       []time.Time // UTC (the files have no zone)
	Values      [][8]float64
	Anomalous   []bool
}

// Free reports whether the experiment is the anomaly-free run.
func (e *Experiment) Free() bool { return e.Group == "anomaly-free" }

// Dir returns $SKAB_DIR (SKAB's data/ directory), skipping t when it is not
// set: the data cannot be redistributed here, so no test needs it.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SKAB_DIR")
	if dir == "" {
		t.Skip("SKAB_DIR not set (github.com/waico/SKAB's data/ directory)")
	}
	return dir
}

// Load reads every experiment under dir (dir/*/*.csv), sorted by path.
func Load(dir string) ([]Experiment, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.csv"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("skab: no */*.csv under %s", dir)
	}
	slices.Sort(files)
	out := make([]Experiment, 0, len(files))
	for _, f := range files {
		e, err := Read(f)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Read reads one experiment file. A cell that does not parse is NaN; a
// line with fewer than the eight signals is skipped.
func Read(path string) (Experiment, error) {
	e := Experiment{Group: filepath.Base(filepath.Dir(path)), Name: strings.TrimSuffix(filepath.Base(path), ".csv")}
	f, err := os.Open(path)
	if err != nil {
		return e, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: datetime;the 8 signals[;anomaly;changepoint]
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ";")
		if len(fields) < 1+len(Signals) {
			continue
		}
		at, err := time.Parse(time.DateTime, fields[0])
		if err != nil {
			return e, fmt.Errorf("skab: %s: %w", path, err)
		}
		var x [8]float64
		for i := range x {
			if x[i], err = strconv.ParseFloat(fields[1+i], 64); err != nil {
				x[i] = math.NaN()
			}
		}
		a := false
		if len(fields) > 9 {
			v, err := strconv.ParseFloat(fields[9], 64)
			a = err == nil && v >= 1
		}
		e.Times, e.Values, e.Anomalous = append(e.Times, at), append(e.Values, x), append(e.Anomalous, a)
	}
	if err := sc.Err(); err != nil {
		return e, fmt.Errorf("skab: %s: %w", path, err)
	}
	return e, nil
}
