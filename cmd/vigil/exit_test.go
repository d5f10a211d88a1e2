package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExitCodes: each documented exit status (docs/CLI.md) for the case it
// names.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	allBad := filepath.Join(dir, "bad.log")
	if err := os.WriteFile(allBad, []byte("nope\n{\"x\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badConfig := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("pipeline:\n  workers: -3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want int
		msg  string // in stderr
	}{
		{"clean replay", []string{"replay", "--summary", "none", "../../fixtures/plant.log"}, exitOK, ""},
		{"some rejected, under the default threshold", []string{"replay", "--summary", "none", "../../fixtures/malformed.log"}, exitOK, ""},
		{"every line rejected", []string{"replay", "--summary", "none", allBad}, exitRejected, "2 of 2 frames"},
		{"rejected above --max-rejected", []string{"replay", "--summary", "none", "--max-rejected", "0.5", "../../fixtures/malformed.log"}, exitRejected, "21 of 27 frames"},
		{"bad flag value", []string{"replay", "--max-rejected", "0", "../../fixtures/plant.log"}, exitUsage, "--max-rejected"},
		{"unknown flag", []string{"replay", "--no-such-flag", "../../fixtures/plant.log"}, exitUsage, "no-such-flag"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"invalid configuration", []string{"replay", "--config", badConfig, "../../fixtures/plant.log"}, exitConfig, "workers"},
		{"config check of an invalid file", []string{"config", "check", badConfig}, exitConfig, "workers"},
		{"missing input", []string{"replay", filepath.Join(dir, "missing.log")}, exitError, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != c.want {
				t.Errorf("vigil %s: exit %d; want %d\n%s", strings.Join(c.args, " "), code, c.want, lastLines(stderr, 5))
			}
			if c.msg != "" && !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr does not mention %q:\n%s", c.msg, lastLines(stderr, 5))
			}
		})
	}
}

// TestFlagsAfterArguments: flags may follow the file arguments, as with
// other command-line tools; after "--" everything is an argument.
func TestFlagsAfterArguments(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alerts.jsonl")
	code, stdout, stderr := runCLI(t, "replay", "../../fixtures/plant.log", "--alerts", out, "--summary", "none")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("alerts went to stdout although --alerts came after the file")
	}
	b, err := os.ReadFile(out)
	if err != nil || countLines(t, out) == 0 {
		t.Fatalf("--alerts after the file: %d bytes, %v; want the alerts there", len(b), err)
	}
	code, _, stderr = runCLI(t, "replay", "--summary", "none", "--", "--alerts")
	if code != exitError || !strings.Contains(stderr, `--alerts`) || !strings.Contains(stderr, "no such file") {
		t.Errorf(`after "--", "--alerts" should be a file name: exit %d, %s`, code, lastLines(stderr, 3))
	}
}

// TestReplayEndsOnClosedPipe: `vigil replay --dead-letter /dev/stdout … |
// head` ends promptly with a clear error once head exits, and alerts on a
// closed stdout end the process as they end other Unix tools (SIGPIPE).
func TestReplayEndsOnClosedPipe(t *testing.T) {
	bin := buildVigil(t)
	var big bytes.Buffer
	mal, err := os.ReadFile("../../fixtures/malformed.log")
	if err != nil {
		t.Fatal(err)
	}
	for range 200 { // more dead letters than a pipe holds
		big.Write(mal)
	}
	input := filepath.Join(t.TempDir(), "malformed.log")
	if err := os.WriteFile(input, big.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want func(*exec.ExitError) bool
		desc string
	}{
		{"dead letters to /dev/stdout", []string{"replay", "--summary", "none", "--alerts", os.DevNull, "--dead-letter", "/dev/stdout", input},
			func(e *exec.ExitError) bool { return e.ExitCode() == exitError }, "exit status 1"},
		{"alerts to stdout", []string{"replay", "--summary", "none", "../../fixtures/plant.log", "../../fixtures/plant.log"},
			func(e *exec.ExitError) bool {
				ws, ok := e.Sys().(syscall.WaitStatus)
				return ok && ws.Signaled() && ws.Signal() == syscall.SIGPIPE
			}, "killed by SIGPIPE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			r, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(r)
			sc.Buffer(nil, 1<<20)
			for i := 0; i < 12 && sc.Scan(); i++ { // head -12
			}
			r.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 20 s after its reader went away")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !c.want(ee) {
				t.Fatalf("ended with %v; want %s\n%s", err, c.desc, lastLines(stderr.String(), 3))
			}
			if c.want(ee) && ee.ExitCode() == exitError && !strings.Contains(stderr.String(), "broken pipe") {
				t.Errorf("stderr does not say why:\n%s", lastLines(stderr.String(), 3))
			}
		})
	}
}

// TestSecondSignalEndsAtOnce: a replay stuck writing dead letters to a pipe
// nobody reads does not end on SIGTERM (it is draining), but a second
// SIGTERM ends it at once, as with other services.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	bin := buildVigil(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(bin, "replay", "--summary", "none", "--dead-letter", "/dev/stdout",
		"../../fixtures/malformed.log", "../../fixtures/malformed.log", "../../fixtures/malformed.log")
	cmd.Stdout = pw // never read: the dead letters fill the pipe (a 64 KiB frame is in it)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		t.Fatalf("ended on the first SIGTERM (%v) although its writes were blocked; the test proves nothing", err)
	case <-time.After(time.Second):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("ended with %v; want killed by SIGTERM", err)
		}
		if ws, _ := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("ended with %v; want killed by the second SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("still running 10 s after a second SIGTERM")
	}
}

// TestDemoInterruptExitsZero: Ctrl-C is how the demo is meant to end; the
// binary exits 0 after printing its scorecard. (`go run` itself reports
// "exit status 1" after any Ctrl-C: the go command was interrupted too.)
func TestDemoInterruptExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo")
	}
	bin := buildVigil(t)
	cmd := exec.Command(bin, "demo", "--plain", "--speed", "60")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo after Ctrl-C: %v; want exit 0\n%s", err, lastLines(out.String(), 10))
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("demo still running 20 s after Ctrl-C")
	}
	if !strings.Contains(out.String(), "What the simulator injected versus what Vigil caught") {
		t.Errorf("no scorecard after Ctrl-C:\n%s", lastLines(out.String(), 10))
	}
}

// lastLines returns the last n lines of s, for failure messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
