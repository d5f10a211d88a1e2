package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile = "grafana/vigil-dashboard.json"
	rulesFile     = "prometheus/vigil-rules.yml"
	rulesTestFile = "prometheus/vigil-rules.test.yml"
)

// panel is what the tests read of a Grafana panel.
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

// loadDashboard reads the dashboard with every panel, rows' included.
func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(readFile(t, dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

// dashboardExprs returns the PromQL of every panel's queries and of the
// template variables' queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	d, all := loadDashboard(t)
	var exprs []string
	for _, p := range all {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok && v.Type == "query" {
			exprs = append(exprs, q["query"].(string))
		}
	}
	return exprs
}

// ruleFile is a Prometheus rules file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T, path string) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.Unmarshal([]byte(readFile(t, path)), &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

// ruleExprs returns the expressions of the alerting and recording rules.
func ruleExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, path := range []string{rulesFile, histogramRules} {
		for _, g := range loadRules(t, path).Groups {
			for _, r := range g.Rules {
				exprs = append(exprs, r.Expr)
			}
		}
	}
	return exprs
}

var (
	// exporterName is a metric Vigil's /metrics must have: Vigil's own and
	// the process and Go metrics written beside them. Matched loosely in
	// PromQL: label values and names never look like this here.
	exporterName = regexp.MustCompile(`\b(?:vigil|process|go)_[a-z0-9_]+`)
	// recordedName is a recording rule's output (level:metric:operation).
	recordedName = regexp.MustCompile(`\bvigil:[a-z0-9_]+:[a-z0-9_]+`)
)

// namesIn returns the sorted, distinct matches of re in exprs.
func namesIn(re *regexp.Regexp, exprs []string) []string {
	var names []string
	for _, e := range exprs {
		names = append(names, re.FindAllString(e, -1)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestDashboard checks the dashboard as Grafana's provisioning reads it:
// one datasource variable that every panel and variable query uses (so it
// works with any Prometheus, provisioned or imported), unique panel IDs, a
// query in every target, panels inside the 24-column grid and not
// overlapping, and every recording rule it uses defined in the rules files.
// That its metrics exist is TestComposeStack's part, and that its PromQL
// parses is TestPromtool's.
func TestDashboard(t *testing.T) {
	d, all := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: provisioning needs both (links use the uid)", d.UID, d.Title)
	}
	var dsVars []string
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			dsVars = append(dsVars, v.Name)
		}
	}
	if !slices.Equal(dsVars, []string{"DS_PROMETHEUS"}) {
		t.Fatalf("datasource variables %q; want one, DS_PROMETHEUS", dsVars)
	}
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range all {
		if prev, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("panel %q has id %d, also used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps %q at (%d, %d)", p.Title, other, x, y)
					y, x = g.Y+g.H, g.X+g.W
					break
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v; want prometheus ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %q is empty or its refId repeats", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}

	var defined []string
	for _, path := range []string{rulesFile, histogramRules} {
		for _, g := range loadRules(t, path).Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					defined = append(defined, r.Record)
				}
			}
		}
	}
	for _, name := range namesIn(recordedName, append(dashboardExprs(t), ruleExprs(t)...)) {
		if !slices.Contains(defined, name) {
			t.Errorf("%s is used but no rule records it", name)
		}
	}
	if n := len(namesIn(exporterName, dashboardExprs(t))); n < 40 {
		t.Errorf("the dashboard uses %d metrics; want the ingest, detection, broker, output, journal and state families (40 or more)", n)
	}
}
