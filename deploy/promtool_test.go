package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// grafanaVars replaces the dashboard's variables with values that make its
// queries plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$instance", ".+", "$output", ".+")

// TestPromtool runs Prometheus' own checks: the rules files are valid, their
// unit tests (vigil-rules.test.yml, and vigil-cluster-rules.test.yml for
// the scale-out's rules) pass, the compose stack's
// prometheus.yml loads with the rules where compose mounts them, and every
// query of the dashboard parses as PromQL (written into a scratch rules file
// for promtool to check).
func TestPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool")

	t.Run("check rules", func(t *testing.T) {
		code, out, errs := runTool(t, promtool, "check", "rules", rulesFile, histogramRules, clusterRulesFile)
		if code != 0 {
			t.Errorf("promtool check rules: exit %d\n%s%s", code, out, errs)
		}
	})

	t.Run("test rules", func(t *testing.T) {
		for _, f := range []string{rulesTestFile, clusterRulesTestFile} {
			code, out, errs := runTool(t, promtool, "test", "rules", f)
			if code != 0 || !strings.Contains(out, "SUCCESS") {
				t.Errorf("promtool test rules %s: exit %d\n%s%s", f, code, out, errs)
			}
		}
	})

	t.Run("compose prometheus.yml", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "rules"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "prometheus.yml"), readFile(t, "compose/prometheus/prometheus.yml"), 0o644)
		for _, f := range []string{rulesFile, histogramRules} {
			writeFile(t, filepath.Join(dir, "rules", filepath.Base(f)), readFile(t, f), 0o644)
		}
		code, out, errs := runTool(t, promtool, "check", "config", filepath.Join(dir, "prometheus.yml"))
		if code != 0 || !strings.Contains(out, "2 rule files found") {
			t.Errorf("promtool check config: exit %d; want both rule files loaded\n%s%s", code, out, errs)
		}
	})

	t.Run("dashboard queries", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
		for i, e := range dashboardExprs(t) {
			if inner, ok := strings.CutPrefix(e, "label_values("); ok {
				// A variable query: its series selector is PromQL.
				sel, _, found := strings.Cut(inner, ", ")
				if !found {
					t.Errorf("variable query %q: want label_values(SELECTOR, LABEL)", e)
					continue
				}
				e = sel
			}
			fmt.Fprintf(&b, "      - record: dashboard:query_%d:check\n        expr: %q\n", i, grafanaVars.Replace(e))
		}
		path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
		writeFile(t, path, b.String(), 0o644)
		code, out, errs := runTool(t, promtool, "check", "rules", path)
		if code != 0 {
			t.Errorf("the dashboard's queries do not parse: exit %d\n%s%s", code, out, errs)
		}
	})
}
