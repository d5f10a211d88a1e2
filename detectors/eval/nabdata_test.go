package eval

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

const nabData = "../../../shared/datasets/nab/data"

// shared returns p, skipping the test when it is absent (a fresh clone
// without ../shared) and failing when it is absent in CI.
func shared(t *testing.T, p string) string {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing in CI: %v", p, err)
		}
		t.Skipf("%s not present (it lives in ../shared beside the checkout)", p)
	}
	return p
}

// loadNABData reads the timestamps of every NAB series, one device per file
// named as a replay names it.
func loadNABData(t *testing.T) DataInfo {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(shared(t, nabData), "*", "*.csv"))
	if err != nil || len(files) != 58 {
		t.Fatalf("want 58 NAB series, got %d (%v)", len(files), err)
	}
	var data DataInfo
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		dev := NormalizeDevice(name)
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			ts, _, _ := strings.Cut(sc.Text(), ",")
			at, err := ParseTime(ts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			data.Add(dev, at)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

// TestNABCorpus scores the perfect and the null detector on the real NAB
// corpus: every window maps to rows after the probation period, and the
// scores are 100 and 0 under every profile.
func TestNABCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	labels, err := LoadLabels(shared(t, nabWindows))
	if err != nil {
		t.Fatal(err)
	}
	data := loadNABData(t)
	if got := data.Readings(); got != 365558 {
		t.Errorf("%d NAB rows; want 365558", got)
	}
	if u := labels.UnknownDevices(data.Seen()); len(u) != 0 {
		t.Errorf("labelled series without data: %q", u)
	}
	var perfect []pipeline.Alert
	for _, w := range labels.Windows() {
		perfect = append(perfect, firing(w.Device, w.Start))
	}
	for _, tc := range []struct {
		name   string
		alerts []pipeline.Alert
		want   float64
	}{{"perfect", perfect, 100}, {"null", nil, 0}} {
		n := Evaluate(tc.alerts, labels, data, Options{}).Overall.NAB
		if n.Windows != 116 || n.Unscored != 0 {
			t.Errorf("%s: %d windows scored, %d not; want 116, 0", tc.name, n.Windows, n.Unscored)
		}
		for _, s := range n.Scores {
			if math.Abs(float64(s.Score)-tc.want) > 1e-9 {
				t.Errorf("%s: %s score %.6f; want %v", tc.name, s.Profile, float64(s.Score), tc.want)
			}
		}
	}
}
