package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// flagsFromUsage lists the flags "vigil ARGS -h" prints: what the command
// parses, read independently of the completion's own flag-set hook.
func flagsFromUsage(t *testing.T, args ...string) []string {
	t.Helper()
	code, _, errs := runCLI(t, append(args, "-h")...)
	if code != exitOK {
		t.Fatalf("%v -h: exit %d: %s", args, code, errs)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(errs, -1) {
		names = append(names, m[1])
	}
	return names
}

// commandLines lists every command line with flags: "replay", "journal check".
func commandLines() [][]string {
	var lines [][]string
	for _, c := range commands() {
		if len(c.subs) == 0 {
			lines = append(lines, []string{c.name})
		}
		for _, s := range c.subs {
			lines = append(lines, []string{c.name, s})
		}
	}
	return lines
}

// TestCompletionScripts: each script is valid for its shell (bash -n; zsh -n
// and fish --no-execute where installed), and offers every command,
// subcommand and flag that "-h" lists, for the command it belongs to.
func TestCompletionScripts(t *testing.T) {
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errs := runCLI(t, "completion", sh)
		if code != exitOK || out == "" {
			t.Fatalf("completion %s: exit %d, %s", sh, code, errs)
		}
		scripts[sh] = out
	}
	dir := t.TempDir()
	for sh, check := range map[string][]string{"bash": {"-n"}, "zsh": {"-n"}, "fish": {"--no-execute"}} {
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: its script's syntax is not checked", sh)
			continue
		}
		file := filepath.Join(dir, "vigil."+sh)
		if err := os.WriteFile(file, []byte(scripts[sh]), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, append(check, file)...).CombinedOutput(); err != nil {
			t.Errorf("%s %v: %v\n%s", sh, check, err, out)
		}
	}
	bash := scripts["bash"]
	for _, c := range commands() {
		if !strings.Contains(bash, "'vigil "+c.name+"'") || !strings.Contains(scripts["zsh"], "'vigil "+c.name+"'") ||
			!strings.Contains(scripts["fish"], "-a "+c.name+" ") {
			t.Errorf("command %s missing from a script", c.name)
		}
	}
	for _, line := range commandLines() {
		path := "vigil " + strings.Join(line, " ")
		flags := flagsFromUsage(t, line...)
		// The bash line that lists the flags of this command.
		m := regexp.MustCompile(`(?m)^\t\t'` + regexp.QuoteMeta(path) + `'\) COMPREPLY=\(\$\(compgen -W '([^']*)'`).FindStringSubmatch(bash)
		var offered []string
		if m != nil {
			offered = strings.Fields(m[1])
		}
		var want []string
		for _, f := range flags {
			want = append(want, "--"+f)
		}
		if !slices.Equal(offered, want) {
			t.Errorf("bash offers %v for %q; -h lists %v", offered, path, want)
		}
		for _, f := range flags {
			if !strings.Contains(scripts["zsh"], "'--"+f) || !strings.Contains(scripts["fish"], " -l "+f+" ") {
				t.Errorf("flag --%s of %q missing from the zsh or fish script", f, path)
			}
		}
	}
}

// TestBashCompletes drives the bash script as bash's completion would:
// commands, subcommands, flags, files for file flags and arguments,
// directories for the journal, nothing for a number.
func TestBashCompletes(t *testing.T) {
	bin, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	_, script, _ := runCLI(t, "completion", "bash")
	dir := t.TempDir()
	for _, f := range []string{"plant.log", "plant.labels.json", "vigil.yaml"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	os.Mkdir(filepath.Join(dir, "journal"), 0o755)
	scriptFile := filepath.Join(t.TempDir(), "vigil.bash")
	os.WriteFile(scriptFile, []byte(script), 0o644)
	harness := `source "$1"
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _vigil; echo "${COMPREPLY[*]}"; }
t vigil jo
t vigil journal ''
t vigil journal inspect --li
t vigil journal check j
t vigil replay --conf
t vigil replay --config vig
t vigil replay plant.lo
t vigil replay --workers ''
t vigil replay plant.log --ale
t vigil state inspect --config vigil.yaml --dev
t vigil completion ''
t vigil help exit
`
	cmd := exec.Command(bin, "-c", harness, "bash", scriptFile)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "journal\ncheck inspect\n--limit\njournal\n--config\nvigil.yaml\nplant.log\n\n--alerts\n--devices\nbash zsh fish\nexit-codes\n"
	if string(out) != want {
		t.Errorf("completions:\n%s\nwant:\n%s", out, want)
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		if code, _, errs := runCLI(t, args...); code != exitUsage || !strings.Contains(errs, "bash") {
			t.Errorf("%v: exit %d, %q; want exit 2 naming the shells", args, code, errs)
		}
	}
	// Collecting the flag sets runs commands with -h only: nothing else happens.
	if _, err := completionSpecs(context.Background()); err != nil {
		t.Fatal(err)
	}
}
