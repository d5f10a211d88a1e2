package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
)

// TestHelpTopics: "vigil help" lists the topics, each topic prints to
// stdout with exit 0, and an unknown one is a usage error.
func TestHelpTopics(t *testing.T) {
	code, _, errs := runCLI(t, "help")
	if code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for _, tp := range helpTopics() {
		if !strings.Contains(errs, "  "+tp.name+" ") {
			t.Errorf("vigil help does not list topic %s:\n%s", tp.name, errs)
		}
		code, out, _ := runCLI(t, "help", tp.name)
		if code != exitOK || out != tp.text() {
			t.Errorf("help %s: exit %d, %q", tp.name, code, out)
		}
	}
	if code, _, errs := runCLI(t, "help", "nonsense"); code != exitUsage || !strings.Contains(errs, `unknown command "nonsense"`) {
		t.Errorf("help nonsense: exit %d, %q; want 2", code, errs)
	}
}

// TestExitCodesOneSource: docs/CLI.md holds the binary's table verbatim,
// the table has a row for each exit constant, and "help exit-codes" shows
// every row.
func TestExitCodesOneSource(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CLI.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), exitCodesTable) {
		t.Errorf("docs/CLI.md does not contain the exit-status table of help.go (exitCodesTable) verbatim; copy it there")
	}
	out := exitCodesHelp()
	for _, code := range []int{exitOK, exitError, exitUsage, exitRejected, exitConfig} {
		row := "| " + strconv.Itoa(code) + " | "
		if !strings.Contains(exitCodesTable, row) {
			t.Errorf("the table has no row for exit status %d", code)
		}
		if !regexp.MustCompile(`(?m)^  ` + strconv.Itoa(code) + ` +\S`).MatchString(out) {
			t.Errorf("help exit-codes shows no status %d:\n%s", code, out)
		}
	}
	if !strings.Contains(out, "RestartPreventExitStatus=78") || strings.Contains(out, "`") {
		t.Errorf("help exit-codes: want the meanings in plain text:\n%s", out)
	}
}

// TestConfigTopicCoversSections: the config topic describes exactly the
// top-level keys of the configuration file.
func TestConfigTopicCoversSections(t *testing.T) {
	var want, got []string
	ft := reflect.TypeFor[config.File]()
	for i := range ft.NumField() {
		if f := ft.Field(i); f.IsExported() {
			want = append(want, strings.Split(f.Tag.Get("yaml"), ",")[0])
		}
	}
	for _, s := range configSections() {
		got = append(got, s[0])
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("config topic sections %v; config.File has %v", got, want)
	}
}

// TestAlertsTopicCoversSchema: the alerts topic names exactly the fields of
// the table in docs/ALERTS.md.
func TestAlertsTopicCoversSchema(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ALERTS.md")
	if err != nil {
		t.Fatal(err)
	}
	table, _, _ := strings.Cut(string(doc), "\n## ")
	var want, got []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(table, -1) {
		want = append(want, m[1])
	}
	for _, f := range alertFields() {
		got = append(got, f[0])
	}
	if !slices.Equal(got, want) {
		t.Errorf("alerts topic fields %v; docs/ALERTS.md has %v", got, want)
	}
}

// TestCommandExamples: -h of the main commands ends with examples of that
// command.
func TestCommandExamples(t *testing.T) {
	for _, name := range []string{"run", "replay", "tune", "simulate"} {
		code, _, errs := runCLI(t, name, "-h")
		_, ex, ok := strings.Cut(errs, "\nExamples:\n")
		if code != exitOK || !ok || strings.Count(ex, "  vigil "+name+" ") < 2 {
			t.Errorf("%s -h: exit %d; want 2 or more examples of it after the flags:\n%s", name, code, errs)
		}
	}
}
