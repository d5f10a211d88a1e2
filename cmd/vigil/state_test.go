package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// splitLines writes lines [from, to) of path to a new file.
func splitLines(t *testing.T, path string, from, to int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i >= from && i < to {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
	}
	p := filepath.Join(t.TempDir(), "part-"+strconv.Itoa(from)+".log")
	os.WriteFile(p, out.Bytes(), 0o600)
	return p
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte{'\n'})
}

// TestReplayContinuesFromState: a log replayed in two parts, the second
// starting from the state the first saved, gives byte for byte the alerts
// of one uninterrupted replay, whatever the number of workers on either
// side. The splits fall on batch boundaries (multiples of 512 lines): the
// fleet judge and the silence check act at batch ends, as in any replay.
func TestReplayContinuesFromState(t *testing.T) {
	traffic, _ := trafficLog(t, true)
	for _, log := range []string{"../../fixtures/plant.log", traffic} {
		n := countLines(t, log)
		code, whole, errs := runCLI(t, "replay", "--summary", "none", "--workers", "2", log)
		if code != 0 || strings.Count(whole, "\n") < 20 {
			t.Fatalf("whole replay of %s: exit %d, %d alerts: %s", log, code, strings.Count(whole, "\n"), errs)
		}
		for _, tc := range []struct{ split, w1, w2 int }{{n / 4, 1, 3}, {n / 2, 2, 2}, {n * 4 / 5, 3, 1}} {
			split := tc.split - tc.split%512
			st := filepath.Join(t.TempDir(), "vigil.state")
			code, first, errs := runCLI(t, "replay", "--summary", "none", "--workers", strconv.Itoa(tc.w1), "--save-state", st, splitLines(t, log, 0, split))
			if code != 0 {
				t.Fatalf("first part: exit %d: %s", code, errs)
			}
			code, second, errs := runCLI(t, "replay", "--summary", "none", "--workers", strconv.Itoa(tc.w2), "--load-state", st, splitLines(t, log, split, n))
			if code != 0 {
				t.Fatalf("second part: exit %d: %s", code, errs)
			}
			if got := first + second; got != whole {
				t.Errorf("%s split at line %d (%d then %d workers): %d alerts; want the %d of the uninterrupted replay, byte for byte\n%s",
					filepath.Base(log), split, tc.w1, tc.w2, strings.Count(got, "\n"), strings.Count(whole, "\n"), firstDiff(got, whole))
			}
		}
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + g[i] + "\n want " + w[i]
		}
	}
	return "one is a prefix of the other"
}

func TestStateInspectAndDamage(t *testing.T) {
	st := filepath.Join(t.TempDir(), "vigil.state")
	// Stop mid-anomaly so that episodes are open in the snapshot.
	log := splitLines(t, "../../fixtures/plant.log", 0, 512*20)
	if code, _, errs := runCLI(t, "replay", "--summary", "none", "--save-state", st, log); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errs)
	}
	code, out, errs := runCLI(t, "state", "inspect", st)
	if code != 0 || !strings.Contains(out, "devices: 12") || !strings.Contains(out, "sensor-node-07  class default") ||
		!strings.Contains(out, "next frame 10240") || !strings.Contains(out, "pressure       pressure    n=") ||
		!strings.Contains(out, "open: thermal.drift on temperature, firing warning since 2026-11-21T10:13:42.342Z") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	code, sel, _ := runCLI(t, "state", "inspect", "--devices", "sensor-node-03", st)
	if code != 0 || strings.Count(sel, "class default") != 1 {
		t.Errorf("inspect --devices: exit %d\n%s", code, sel)
	}

	// A damaged snapshot is refused with a clear message, never half-read.
	data, _ := os.ReadFile(st)
	data[len(data)/2] ^= 0xff
	os.WriteFile(st, data, 0o600)
	for _, args := range [][]string{{"state", "inspect", st}, {"replay", "--summary", "none", "--load-state", st, log}} {
		code, out, errs := runCLI(t, args...)
		if code != 1 || !strings.Contains(errs, "snapshot is corrupt") || out != "" {
			t.Errorf("%v with a damaged snapshot: exit %d, stdout %d bytes, stderr %q; want exit 1, a corrupt-snapshot error, no output", args[:2], code, len(out), errs)
		}
	}
}

// TestSnapshotFormatV1: a snapshot written by format version 1 (committed)
// is still restored whole, and a replay continues from it.
func TestSnapshotFormatV1(t *testing.T) {
	const fixture = "testdata/state/plant-v1.state"
	code, out, errs := runCLI(t, "state", "inspect", fixture)
	if code != 0 || !strings.Contains(out, "format 1") || !strings.Contains(out, "devices: 12\n") || !strings.Contains(out, "next frame 5120") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	// sensor-node-01's pressure baseline was learned around 4 bar.
	var line string
	for l := range strings.Lines(out[strings.Index(out, "sensor-node-01 "):]) {
		if strings.Contains(l, " pressure ") {
			line = l
			break
		}
	}
	var mean float64
	if i := strings.Index(line, "mean "); i < 0 {
		t.Fatalf("no pressure baseline for sensor-node-01 in:\n%s", out)
	} else if _, err := fmt.Sscanf(line[i:], "mean %g", &mean); err != nil || mean < 3.5 || mean > 4.5 {
		t.Errorf("sensor-node-01 pressure mean %v (%v); want about 4 bar: %q", mean, err, line)
	}
	rest := splitLines(t, "../../fixtures/plant.log", 5120, countLines(t, "../../fixtures/plant.log"))
	if code, _, errs := runCLI(t, "replay", "--summary", "none", "--load-state", fixture, rest); code != 0 {
		t.Errorf("replay from the v1 snapshot: exit %d: %s", code, errs)
	}
}
