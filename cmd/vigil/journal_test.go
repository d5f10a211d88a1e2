package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
)

func TestJournalCommand(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.Open(journal.Config{Dir: dir}, []string{"siem"})
	if err != nil {
		t.Fatal(err)
	}
	var batch []pipeline.Alert
	for i := range 30 {
		batch = append(batch, pipeline.Alert{ID: fmt.Sprintf("a%02d", i), Device: "pump-7", Kind: "thermal", Detector: "thermal.drift",
			State: pipeline.Firing, Severity: pipeline.Warning, Time: int64(i) * 1e9})
	}
	j.Append(context.Background(), batch)
	r, _ := j.Reader("siem")
	es, _ := r.Next(context.Background(), nil, 10, 0, 0)
	r.Commit(es[len(es)-1].Offset + 1)
	r.Close()
	j.Close()

	code, out, errs := runCLI(t, "journal", "check", dir)
	if code != 0 || !strings.Contains(out, "30 alerts") || !strings.Contains(out, "cursor siem") || !strings.Contains(out, "20 alerts to deliver") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "journal", "inspect", "--output", "siem", "--limit", "3", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("inspect: exit %d, %d lines:\n%s", code, len(lines), out)
	}
	var rec struct {
		Offset uint64
		Event  string
		Alert  pipeline.Alert
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Offset != 10 || rec.Alert.ID != "a10" || rec.Event != rec.Alert.EventID() {
		t.Errorf("inspect line %q: got %+v, %v; want offset 10, alert a10", lines[0], rec, err)
	}

	// Damage one record: check says so and exits 1; --repair mends it.
	seg := filepath.Join(dir, "00000000000000000000.seg")
	data, _ := os.ReadFile(seg)
	data[len(data)/2] ^= 0x55
	os.WriteFile(seg, data, 0o640)
	code, out, errs = runCLI(t, "journal", "check", dir)
	if code != 1 || !strings.Contains(out, "DAMAGED") || !strings.Contains(errs, "--repair") {
		t.Fatalf("check of a damaged journal: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = runCLI(t, "journal", "check", "--repair", dir); code != 0 || !strings.Contains(out, "repaired") {
		t.Fatalf("repair: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = runCLI(t, "journal", "check", dir); code != 0 || !strings.Contains(out, "29 alerts") || !strings.Contains(out, "1 alerts lost") {
		t.Fatalf("check after repair: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runCLI(t, "journal", "fsck", dir); code != 2 {
		t.Errorf("unknown subcommand: exit %d; want 2", code)
	}
}
