package tune

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/detectors/eval"
)

// DefaultTableRows is how many trials WriteTable lists besides the baseline
// and the Pareto front.
const DefaultTableRows = 30

// WriteTable writes the trade-off table: the best DefaultTableRows trials,
// plus the baseline and every trial on the Pareto front wherever they rank;
// see WriteTableRows.
func (r *Result) WriteTable(w io.Writer) error {
	return r.WriteTableRows(w, DefaultTableRows)
}

// WriteTableRows writes the trade-off table, best objective first. Each row is
// one trial: the parameters that differ from the baseline ("·" where a trial
// keeps the baseline's value), event recall, precision and F1, false alarms
// per device-hour, the point-wise F1, the NAB standard score and the
// objective. Trials on the Pareto front of recall against false alarms are
// marked "*". It lists the best rows trials (all when rows < 0) and, after
// them, the baseline and Pareto trials that ranked lower. A failed trial
// shows its error.
func (r *Result) WriteTableRows(w io.Writer, rows int) error {
	p := &printer{w: w}
	sp := r.Spec
	search := fmt.Sprintf("random search, seed %d", sp.Seed)
	if sp.Search == Grid {
		search = fmt.Sprintf("grid of %d combinations", r.GridSize)
		if r.GridSize > sp.MaxTrials {
			search += fmt.Sprintf(", %d drawn with seed %d (max_trials)", sp.MaxTrials, sp.Seed)
		}
	}
	obj := fmt.Sprintf("%s (%s)", sp.Objective, sp.Objective.Describe())
	if sp.Objective == ObjectiveRecallAtFA {
		obj += fmt.Sprintf(", budget %g false alarms per device-hour; over budget scores budget − FA/dev-h", sp.FABudget)
	}
	p.printf("objective %s\n", obj)
	p.printf("%d of %d trials (%s; trial 0 is the base configuration)", len(r.Trials), r.Planned, search)
	if r.Skipped > 0 {
		p.printf(", %d settings skipped (invalid together or repeats)", r.Skipped)
	}
	if r.Partial {
		p.printf(", INTERRUPTED")
	}
	p.printf("\n")
	p.printf("data: %s; %d devices, %d readings, %.1f device-hours, %d label windows; windows widened by %s before, %s after; %s\n",
		strings.Join(r.Data.Files, ", "), r.Data.Devices, r.Data.Readings, r.Data.Hours, r.Windows,
		sp.Eval.Before, sp.Eval.After, map[bool]string{true: "kinds matched", false: "kinds ignored"}[sp.Eval.MatchKind])

	if n := len(r.UnknownDevices); n > 0 {
		const show = 5
		list := strings.Join(r.UnknownDevices[:min(n, show)], ", ")
		if n > show {
			list += fmt.Sprintf(", … (%d more)", n-show)
		}
		p.printf("labelled devices not in the data (ignored): %s\n", list)
	}

	ranked := r.Ranked()
	shown := ranked
	if rows >= 0 && rows < len(ranked) {
		shown = ranked[:rows:rows]
		for _, t := range ranked[rows:] {
			if t.Index == 0 || t.Pareto {
				shown = append(shown, t)
			}
		}
	}
	base := r.Baseline()

	// Columns.
	type column struct {
		head  string
		width int
		right bool
	}
	cols := []column{{head: "rank", right: true}, {head: "trial", right: true}, {head: "P"}}
	for i := range sp.Params {
		cols = append(cols, column{head: shortPath(sp.Params, i), right: true})
	}
	for _, h := range []string{"recall", "precision", "F1", "FA/dev-h", "pt-F1", "NAB std", "objective"} {
		cols = append(cols, column{head: h, right: true})
	}
	rank := map[*Trial]int{}
	for i, t := range ranked {
		rank[t] = i + 1
	}
	cells := make([][]string, 0, len(shown))
	errs := make([]string, 0, len(shown))
	for _, t := range shown {
		row := []string{strconv.Itoa(rank[t]), strconv.Itoa(t.Index), ""}
		if t.Pareto {
			row[2] = "*"
		}
		for i, v := range t.Values {
			if t.Index != 0 && base != nil && !t.Changed[i] {
				v = "·"
			}
			row = append(row, v)
		}
		e := t.Events
		errText := ""
		if t.Err != nil {
			row = append(row, "-", "-", "-", "-", "-", "-", "-")
			errText = t.Err.Error()
		} else {
			row = append(row, ratioCell(e.Recall), ratioCell(e.Precision), ratioCell(e.F1),
				rateCell(e.FalseAlarmsPerHour), ratioCell(t.Points.F1), scoreCell(t.NABStandard()),
				objectiveCell(sp.Objective, t.Objective))
		}
		cells = append(cells, row)
		errs = append(errs, errText)
	}
	for i := range cols {
		cols[i].width = utf8.RuneCountInString(cols[i].head)
		for _, row := range cells {
			cols[i].width = max(cols[i].width, utf8.RuneCountInString(row[i]))
		}
	}
	line := func(row []string, extra string) {
		var b strings.Builder
		for i, c := range cols {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", c.width-utf8.RuneCountInString(row[i]))
			if c.right {
				b.WriteString(pad + row[i])
			} else {
				b.WriteString(row[i] + pad)
			}
		}
		if extra != "" {
			b.WriteString("  " + extra)
		}
		p.printf("%s\n", strings.TrimRight(b.String(), " "))
	}
	p.printf("\n")
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = c.head
	}
	line(head, "")
	for i, row := range cells {
		if rows >= 0 && i == min(rows, len(ranked)) && i < len(cells) {
			p.printf("…\n")
		}
		line(row, errs[i])
	}

	p.printf("\nP: * on the Pareto front of event recall (higher) vs false alarms per device-hour (lower); · keeps the base value.\n")
	p.printf("recall, precision, F1: event level (windows detected, episodes true); pt-F1: point-wise; NAB std: NAB standard profile.\n")
	if b, best := base, r.Best; b != nil && best != nil {
		p.printf("best: trial %d, %s %s (base %s)", best.Index, sp.Objective,
			objectiveCell(sp.Objective, best.Objective), objectiveCell(sp.Objective, b.Objective))
		var changes []string
		for i := range sp.Params {
			if best.Changed[i] {
				changes = append(changes, fmt.Sprintf("%s: %s → %s", sp.Params[i].Path, b.Values[i], best.Values[i]))
			}
		}
		if len(changes) > 0 {
			p.printf("; %s", strings.Join(changes, ", "))
		}
		p.printf("\n")
	}
	p.printf("elapsed %s\n", r.Elapsed.Round(time.Millisecond))
	return p.err
}

// shortPath names parameter i's column: the shortest tail of its path that
// no other parameter shares.
func shortPath(params []Param, i int) string {
	segs := strings.Split(params[i].Path, ".")
	for n := min(2, len(segs)); n <= len(segs); n++ {
		tail := strings.Join(segs[len(segs)-n:], ".")
		unique := true
		for j := range params {
			if j != i && (params[j].Path == tail || strings.HasSuffix(params[j].Path, "."+tail)) {
				unique = false
			}
		}
		if unique {
			return tail
		}
	}
	return params[i].Path
}

// printer remembers the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err != nil {
		return
	}
	if _, err := fmt.Fprintf(p.w, format, args...); err != nil {
		p.err = fmt.Errorf("tune: write table: %w", err)
	}
}

func ratioCell(n eval.Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 3, 64)
}

func rateCell(n eval.Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 2, 64)
}

func scoreCell(n eval.Number) string {
	if !n.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 1, 64)
}

func objectiveCell(o Objective, n eval.Number) string {
	switch {
	case !n.Defined():
		return "-"
	case strings.HasPrefix(string(o), "nab_"):
		return scoreCell(n)
	case math.Abs(float64(n)) >= 100:
		return strconv.FormatFloat(float64(n), 'f', 1, 64)
	}
	return ratioCell(n)
}

// jsonTrial is the JSON form of a trial.
type jsonTrial struct {
	Rank   int               `json:"rank"`
	Params map[string]string `json:"params"`
	Error  string            `json:"error,omitempty"`
	*Trial
}

// WriteJSON writes the result as indented JSON: the objective, the data, and
// every finished trial best first, with its parameters (as YAML text), its
// event-level, point-wise and NAB results and its objective (null when
// undefined).
func (r *Result) WriteJSON(w io.Writer) error {
	sp := r.Spec
	out := struct {
		Objective Objective   `json:"objective"`
		FABudget  float64     `json:"fa_budget,omitempty"`
		Search    Search      `json:"search"`
		Seed      uint64      `json:"seed"`
		Planned   int         `json:"planned"`
		Skipped   int         `json:"skipped"`
		Partial   bool        `json:"partial"`
		Windows   int         `json:"windows"`
		Data      DataSummary `json:"data"`
		Best      *int        `json:"best_trial"`
		Elapsed   float64     `json:"elapsed_s"`
		Trials    []jsonTrial `json:"trials"`
	}{
		Objective: sp.Objective, FABudget: sp.FABudget, Search: sp.Search, Seed: sp.Seed,
		Planned: r.Planned, Skipped: r.Skipped, Partial: r.Partial, Windows: r.Windows,
		Data: r.Data, Elapsed: r.Elapsed.Seconds(), Trials: []jsonTrial{},
	}
	if r.Best != nil {
		out.Best = &r.Best.Index
	}
	for i, t := range r.Ranked() {
		jt := jsonTrial{Rank: i + 1, Params: map[string]string{}, Trial: t}
		for j := range sp.Params {
			jt.Params[sp.Params[j].Path] = t.Values[j]
		}
		if t.Err != nil {
			jt.Error = t.Err.Error()
		}
		out.Trials = append(out.Trials, jt)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("tune: write JSON: %w", err)
	}
	return nil
}
