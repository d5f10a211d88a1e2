package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/state"
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
		!strings.Contains(out, "open: thermal.drift on temperature, firing warning since 2026-11-21T10:13:39.342Z") ||
		!strings.Contains(out, "relation (correlation): pressure~temperature ") {
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

// TestSnapshotRotationAndEncryption: snapshots written encrypted (age key
// from a file) are read back with the key, refused clearly with another;
// among the kept snapshots a damaged newest falls back to the previous good
// one, and an older snapshot put in place of a newer one is refused.
func TestSnapshotRotationAndEncryption(t *testing.T) {
	dir := t.TempDir()
	keyA, _ := state.GenerateKey()
	keyB, _ := state.GenerateKey()
	os.WriteFile(filepath.Join(dir, "a.key"), []byte(keyA+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.key"), []byte(keyB+"\n"), 0o600)
	cfgA := writeConfig(t, "a.yaml", "state: {encryption: {key_file: "+filepath.Join(dir, "a.key")+"}}\n")
	cfgB := writeConfig(t, "b.yaml", "state: {encryption: {key_file: "+filepath.Join(dir, "b.key")+"}}\n")
	cfgBA := writeConfig(t, "ba.yaml", "state: {encryption: {key_file: "+filepath.Join(dir, "b.key")+", old_key_files: ["+filepath.Join(dir, "a.key")+"]}}\n")
	log := splitLines(t, "../../fixtures/plant.log", 0, 2048)
	st := filepath.Join(dir, "vigil.state")
	if code, _, errs := runCLI(t, "replay", "--config", cfgA, "--summary", "none", "--save-state", st, log); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errs)
	}
	raw, _ := os.ReadFile(st)
	if bytes.Contains(raw, []byte("sensor-node-01")) {
		t.Fatal("the encrypted snapshot holds a device name in clear")
	}
	if code, out, errs := runCLI(t, "state", "inspect", "--config", cfgA, st); code != 0 || !strings.Contains(out, "devices: 12") {
		t.Errorf("inspect with the key: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "state", "inspect", "--config", cfgBA, st); code != 0 {
		t.Errorf("inspect after a rotation (new key first, the old one kept): exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, "state", "inspect", "--config", cfgB, st); code != 1 || !strings.Contains(errs, "not among the configured keys") || strings.Contains(errs, keyA) || strings.Contains(errs, keyB) {
		t.Errorf("inspect with another key: exit %d: %s; want exit 1 naming the key mismatch, no key shown", code, errs)
	}
	if code, _, errs := runCLI(t, "state", "inspect", st); code != 1 || !strings.Contains(errs, "configure state.encryption") {
		t.Errorf("inspect without a key: exit %d: %s", code, errs)
	}

	// Rotation of kept snapshots: seq 1 (st.2), 2 (st.1), 3 (st).
	keys, err := stateKeys(mustLoad(t, cfgA))
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	snaps := newSnapshots(st, 3, 0, keys, discard, metrics.NewSet())
	for range 3 {
		if err := snaps.final(pipeline.Position{Seq: 1}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []uint64{3, 2, 1} {
		if seq, err := state.PeekSequence(rotated(st, i)); err != nil || seq != want {
			t.Errorf("%s: sequence %d, %v; want %d", rotated(st, i), seq, err, want)
		}
	}
	ls, err := loadNewest(st, 3, keys, discard)
	if err != nil || ls.header.Sequence != 3 {
		t.Fatalf("newest: %+v, %v; want snapshot 3", ls, err)
	}
	// The newest damaged: the previous good one is used.
	data, _ := os.ReadFile(st)
	os.WriteFile(st, data[:len(data)-10], 0o600)
	if ls, err = loadNewest(st, 3, keys, discard); err != nil || ls.header.Sequence != 2 {
		t.Errorf("with the newest damaged: %+v, %v; want snapshot 2", ls, err)
	}
	// An older snapshot put in place of the newest: refused, and the one
	// after it (2, older than 3 but consistent with 1 after it) used.
	old, _ := os.ReadFile(rotated(st, 2))
	os.WriteFile(st, old, 0o600)
	if ls, err = loadNewest(st, 3, keys, discard); err != nil || ls.header.Sequence != 2 {
		t.Errorf("with snapshot 1 copied over the newest: %+v, %v; want it refused and snapshot 2 used", ls, err)
	}
}

func mustLoad(t *testing.T, path string) *config.File {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSnapshotFormatV4Relation: a snapshot of device state encoding 4
// (committed), taken while relation alerts were open, restores; replaying
// the rest of its log resolves each of them once, under its ID, with the
// severity it fired with.
func TestSnapshotFormatV4Relation(t *testing.T) {
	const fixture = "testdata/state/related-v4.state"
	dir := t.TempDir()
	log := filepath.Join(dir, "related.log")
	if code, _, errs := runCLI(t, "simulate", "--profile", "related", "--devices", "3", "--anomalous", "3",
		"--duration", "20m", "--lead-in", "2m", "--seed", "5", "--out", log); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errs)
	}
	code, out, errs := runCLI(t, "state", "inspect", fixture)
	// Three relation episodes were firing, one with an alert: the other
	// two started while a check of their device was firing, and stayed
	// silent (that alert told of the event).
	if code != 0 || strings.Count(out, "open: process.relation on -, firing warning") != 1 {
		t.Fatalf("inspect: exit %d; want one open relation alert\n%s%s", code, out, errs)
	}
	alerts := filepath.Join(dir, "alerts.jsonl")
	if code, _, errs := runCLI(t, "replay", "--summary", "none", "--load-state", fixture, "--alerts", alerts,
		splitLines(t, log, 1350, 1<<30)); code != 0 {
		t.Fatalf("replay --load-state: exit %d: %s", code, errs)
	}
	raw, err := os.ReadFile(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resolved := map[string]int{}
	for _, a := range readAlerts(t, string(raw)) {
		if a.Kind != detectors.RelationKind || a.State != pipeline.Resolved || a.Started >= time.Date(2026, 11, 21, 10, 7, 30, 0, time.UTC).UnixNano() {
			continue
		}
		resolved[a.ID]++
		if a.Severity != pipeline.Warning {
			t.Errorf("relation alert %s resolved with severity %v; want warning, as it fired", a.ID, a.Severity)
		}
	}
	if len(resolved) != 1 {
		t.Errorf("relation alerts open in the snapshot resolved: %v; want the one open, once", resolved)
	}
	for id, n := range resolved {
		if n != 1 {
			t.Errorf("relation alert %s resolved %d times", id, n)
		}
	}

	// Restored with the relation check off, the check that joined the open
	// relation alert has nothing to report under: it is dropped (counted),
	// and nothing is reported under the relation alert's ID.
	off := writeConfig(t, "relation-off.yaml", "detectors:\n  relation: {enabled: false}\n")
	if code, out, errs := runCLI(t, "state", "inspect", "--config", off, fixture); code != 0 || !strings.Contains(out, "1 episodes of checks it lacks dropped") {
		t.Errorf("inspect with the relation check off: exit %d; want its joined check dropped\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "replay", "--config", off, "--summary", "none", "--load-state", fixture, "--alerts", alerts,
		splitLines(t, log, 1350, 1<<30)); code != 0 {
		t.Fatalf("replay --load-state with the relation check off: exit %d: %s", code, errs)
	}
	raw, _ = os.ReadFile(alerts)
	for _, a := range readAlerts(t, string(raw)) {
		if _, ok := resolved[a.ID]; ok {
			t.Errorf("with the relation check off, an alert under the relation alert's ID: %+v", a)
		}
	}
}
