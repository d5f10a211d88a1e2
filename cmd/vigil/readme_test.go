package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fencedBlock returns the lines of the first ```sh block after heading in
// a Markdown document.
func fencedBlock(t *testing.T, doc, heading string) []string {
	t.Helper()
	_, after, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no heading %q", heading)
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatalf("no ```sh block under %q", heading)
	}
	block, _, _ := strings.Cut(after, "```")
	return strings.Split(strings.TrimSpace(block), "\n")
}

// TestREADMETuneExample runs the README's tuning example exactly as
// written, in an empty directory holding only the spec it names: simulate
// writes the log and the labels file the next lines use, tune writes a
// configuration, and replay accepts it and scores against the labels.
func TestREADMETuneExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../../docs/plant-tune.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := fencedBlock(t, string(readme), "## Tuning")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docs", "plant-tune.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	ran := map[string]bool{}
	for _, line := range lines {
		line, _, _ = strings.Cut(line, " #") // a comment
		args := strings.Fields(line)
		if len(args) == 0 {
			continue
		}
		if args[0] != "vigil" || strings.ContainsAny(line, "'\"|*$<>;&") {
			t.Fatalf("%q: not a plain vigil command line this test can run", line)
		}
		code, _, errs := runCLI(t, args[1:]...)
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s", line, code, errs)
		}
		ran[args[1]] = true
		if args[1] == "replay" && !strings.Contains(errs, "recall") {
			t.Errorf("%s: no evaluation on stderr:\n%s", line, errs)
		}
	}
	if !ran["simulate"] || !ran["tune"] || !ran["replay"] {
		t.Errorf("ran %v; want the example to simulate, tune and replay", ran)
	}
	if code, _, errs := runCLI(t, "config", "check", "tuned.yaml"); code != exitOK {
		t.Errorf("tuned.yaml: exit %d: %s", code, errs)
	}
}

// TestSimulateLabelsName: the labels file is named as the README and the
// flag's usage say: beside --out, without its .gz, .log, .jsonl or .txt,
// with .labels.json; --labels overrides it; --out - writes none unless asked.
func TestSimulateLabelsName(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args   []string
		labels string
	}{
		{[]string{"--out", filepath.Join(dir, "plant.log")}, filepath.Join(dir, "plant.labels.json")},
		{[]string{"--out", filepath.Join(dir, "a.log.gz")}, filepath.Join(dir, "a.labels.json")},
		{[]string{"--out", filepath.Join(dir, "b.jsonl")}, filepath.Join(dir, "b.labels.json")},
		{[]string{"--out", filepath.Join(dir, "c.log"), "--labels", filepath.Join(dir, "truth.json")}, filepath.Join(dir, "truth.json")},
	} {
		args := append([]string{"simulate", "--duration", "5m", "--devices", "2", "--anomalous", "1"}, tc.args...)
		code, _, errs := runCLI(t, args...)
		if code != exitOK || !strings.Contains(errs, "labels → "+tc.labels+"\n") {
			t.Errorf("%v: exit %d, %q; want the labels file %s named", tc.args, code, errs, tc.labels)
		}
		if _, err := os.Stat(tc.labels); err != nil {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
	code, _, errs := runCLI(t, "simulate", "--duration", "5m", "--devices", "2", "--anomalous", "1", "--out", "-")
	if code != exitOK || !strings.Contains(errs, "no labels file") {
		t.Errorf("--out -: exit %d, %q; want no labels file, said so", code, errs)
	}
	if _, err := os.Stat("-.labels.json"); err == nil {
		t.Error("--out - wrote -.labels.json")
	}
}
