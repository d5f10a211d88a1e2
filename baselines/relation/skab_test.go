package relation

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSKAB replays the Skoltech Anomaly Benchmark (SKAB, github.com/waico/SKAB,
// GPL-3.0; not in this repository): a water-circulation test bed with eight
// sensors (two accelerometers, current, pressure, two temperatures, voltage,
// flow) and labelled anomalies (valves closed, leaks, rotor imbalance,
// cavitation). Set SKAB_DIR to its data/ directory. Each file is one device
// with a fresh model, judged point-wise after its first 400 rows as in SKAB's
// leaderboard (those rows are anomaly-free; the model warms up on them).
func TestSKAB(t *testing.T) {
	dir := os.Getenv("SKAB_DIR")
	if dir == "" {
		t.Skip("SKAB_DIR not set")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.csv"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no SKAB files under %s", dir)
	}
	cfg := DefaultConfig()
	if v := os.Getenv("SKAB_ALPHA"); v != "" {
		cfg.Alpha, _ = strconv.ParseFloat(v, 64)
	}
	var tp, fp, tn, fn, freeFP, freeN int
	// named[group][signal] counts the signals named by true detections.
	named := map[string]*[8]int{}
	for _, f := range files {
		rows, labels, times := readSKAB(t, f)
		m := newModel(t, cfg, 8)
		s := m.NewState()
		var r Result
		var ftp, ffp, ftn, ffn int
		for i, x := range rows {
			step(m, &s, x, times[i], &r)
			if i < 400 {
				continue
			}
			alarm := r.Severity != None
			switch {
			case labels[i] && alarm:
				ftp++
				grp := filepath.Base(filepath.Dir(f))
				if named[grp] == nil {
					named[grp] = new([8]int)
				}
				named[grp][r.Top]++
			case labels[i]:
				ffn++
			case alarm:
				ffp++
			default:
				ftn++
			}
		}
		if strings.Contains(f, "anomaly-free") {
			freeFP, freeN = ffp, ffp+ftn
			continue
		}
		tp, fp, tn, fn = tp+ftp, fp+ffp, tn+ftn, fn+ffn
		t.Logf("%-24s rows %5d  TP %4d FN %4d FP %4d TN %4d", strings.TrimPrefix(f, dir), len(rows), ftp, ffn, ffp, ftn)
	}
	prec := float64(tp) / float64(tp+fp)
	rec := float64(tp) / float64(tp+fn)
	t.Logf("SKAB (alpha %g), %d files: F1 %.2f, precision %.2f, recall %.2f, FAR %.1f %%, MAR %.1f %%; anomaly-free file: %d of %d readings flagged (%.2f %%)",
		cfg.Alpha, len(files)-1, 2*prec*rec/(prec+rec), prec, rec,
		100*float64(fp)/float64(fp+tn), 100*float64(fn)/float64(fn+tp), freeFP, freeN, 100*float64(freeFP)/float64(max(freeN, 1)))
	signals := []string{"accel1", "accel2", "current", "pressure", "temperature", "thermocouple", "voltage", "flow"}
	for grp, c := range named {
		var b strings.Builder
		for i, n := range c {
			if n > 0 {
				fmt.Fprintf(&b, " %s %d", signals[i], n)
			}
		}
		t.Logf("%s: signals named by true detections:%s", grp, b.String())
	}
}

func readSKAB(t *testing.T, path string) (rows [][]float64, labels []bool, times []int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: datetime;8 signals;anomaly;changepoint
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ";")
		if len(fields) < 9 {
			continue
		}
		ts, err := time.Parse(time.DateTime, fields[0])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		x := make([]float64, 8)
		for i := range x {
			if x[i], err = strconv.ParseFloat(fields[1+i], 64); err != nil {
				x[i] = math.NaN()
			}
		}
		anomalous := len(fields) > 9 && fields[9] != "" && fields[9] != "0" && fields[9] != "0.0"
		rows, labels, times = append(rows, x), append(labels, anomalous), append(times, ts.UnixNano())
	}
	return rows, labels, times
}
