package relation

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/internal/skab"
)

// TestSKAB replays the Skoltech Anomaly Benchmark (SKAB, github.com/waico/SKAB,
// GPL-3.0; not in this repository): a water-circulation test bed with eight
// sensors (two accelerometers, current, pressure, two temperatures, voltage,
// flow) and labelled anomalies (valves closed, leaks, rotor imbalance,
// cavitation). Set SKAB_DIR to its data/ directory. Each file is one device
// with a fresh model, judged point-wise after its first 400 rows as in SKAB's
// leaderboard (those rows are anomaly-free; the model warms up on them).
func TestSKAB(t *testing.T) {
	dir := skab.Dir(t)
	exps, err := skab.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if v := os.Getenv("SKAB_ALPHA"); v != "" {
		cfg.Alpha, _ = strconv.ParseFloat(v, 64)
	}
	var tp, fp, tn, fn, freeFP, freeN int
	// named[group][signal] counts the signals named by true detections.
	named := map[string]*[8]int{}
	for _, ex := range exps {
		m := newModel(t, cfg, 8)
		s := m.NewState()
		var r Result
		var ftp, ffp, ftn, ffn int
		for i := range ex.Values {
			step(m, &s, ex.Values[i][:], ex.Times[i].UnixNano(), &r)
			if i < 400 {
				continue
			}
			alarm := r.Severity != None
			switch {
			case ex.Anomalous[i] && alarm:
				ftp++
				if named[ex.Group] == nil {
					named[ex.Group] = new([8]int)
				}
				named[ex.Group][r.Top]++
			case ex.Anomalous[i]:
				ffn++
			case alarm:
				ffp++
			default:
				ftn++
			}
		}
		if ex.Free() {
			freeFP, freeN = ffp, ffp+ftn
			continue
		}
		tp, fp, tn, fn = tp+ftp, fp+ffp, tn+ftn, fn+ffn
		t.Logf("%-24s rows %5d  TP %4d FN %4d FP %4d TN %4d", ex.Group+"/"+ex.Name, len(ex.Values), ftp, ffn, ffp, ftn)
	}
	prec := float64(tp) / float64(tp+fp)
	rec := float64(tp) / float64(tp+fn)
	t.Logf("SKAB (alpha %g), %d files: F1 %.2f, precision %.2f, recall %.2f, FAR %.1f %%, MAR %.1f %%; anomaly-free file: %d of %d readings flagged (%.2f %%)",
		cfg.Alpha, len(exps)-1, 2*prec*rec/(prec+rec), prec, rec,
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
