package relation

import (
	"fmt"
	"strconv"
	"strings"
)

// Signal names a signal and its unit for alert texts.
type Signal struct {
	Name, Unit string
}

// Explain writes the one-sentence message of a verdict on reading x, e.g.
// "pressure 6.1 bar where 4.3 ± 0.2 bar is expected given temperature
// 61.2 °C and vibration 2.7 mm/s (relation between signals broken: SPE 3.1×
// its limit distance)." It is meant for alert transitions, not every reading
// (it allocates). signals are in the model's order.
func Explain(signals []Signal, x []float64, r *Result) string {
	if !r.Judged {
		return "not judged"
	}
	var b strings.Builder
	top := r.Top
	fmt.Fprintf(&b, "%s %s where %s ± %s is expected given ",
		signals[top].Name, withUnit(x[top], signals[top].Unit),
		num(r.Expected[top]), withUnit(r.ExpectedStd[top], signals[top].Unit))
	others := 0
	for i := range signals {
		if i != top {
			others++
		}
	}
	n := 0
	for i, sg := range signals {
		if i == top {
			continue
		}
		n++
		switch {
		case n > 1 && n == others:
			b.WriteString(" and ")
		case n > 1:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", sg.Name, withUnit(x[i], sg.Unit))
	}
	what := "joint excursion outside the learned distribution"
	if r.Broken || r.Stat == StatSPE {
		what = "relation between signals broken"
	}
	if r.Stat == StatSPE {
		fmt.Fprintf(&b, " (%s: SPE %s× its limit distance)", what, num(r.SPEScore))
	} else {
		fmt.Fprintf(&b, " (%s: T² %s× its limit distance)", what, num(r.T2Score))
	}
	b.WriteByte('.')
	return b.String()
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 3, 64) }

func withUnit(f float64, unit string) string {
	if unit == "" {
		return num(f)
	}
	return num(f) + " " + unit
}
