package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// comments returns n bytes of YAML comment lines: valid, and as large as
// asked.
func comments(n int) []byte {
	line := []byte("# " + strings.Repeat("x", 61) + "\n")
	b := bytes.Repeat(line, n/len(line)+1)[:n]
	b[n-1] = '\n'
	return b
}

// TestLoadSizeLimit: a file over MaxFileSize is refused with its size and
// the limit, from a regular file or from a pipe (read through a
// LimitReader, not judged by stat); one at the limit is read.
func TestLoadSizeLimit(t *testing.T) {
	dir := t.TempDir()
	at := filepath.Join(dir, "at-limit.yaml")
	if err := os.WriteFile(at, comments(MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(at); err != nil {
		t.Errorf("a file of exactly %d bytes: %v; want it accepted", MaxFileSize, err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, comments(5*MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	want := fmt.Sprintf("config %s: the file is %d bytes; the limit is 1048576 bytes (1 MiB)", big, 5*MaxFileSize)
	if err == nil || err.Error() != want {
		t.Errorf("a 5 MiB file: got %v; want %q", err, want)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Write(comments(3 * MaxFileSize)) // fails with EPIPE once the reader is closed
		w.Close()
	}()
	path := fmt.Sprintf("/dev/fd/%d", r.Fd())
	if _, err := os.Stat(path); err != nil {
		r.Close()
		<-done
		t.Skipf("no /dev/fd on this system: %v", err)
	}
	_, err = Load(path)
	r.Close()
	<-done
	if err == nil || !strings.Contains(err.Error(), "the file is more than 1048576 bytes; the limit is 1048576 bytes (1 MiB)") {
		t.Errorf("3 MiB through a pipe: got %v; want it refused as more than the limit", err)
	}

	if _, err := Parse(comments(MaxFileSize + 1)); err == nil || !strings.Contains(err.Error(), "1048577 bytes; the limit is 1048576") {
		t.Errorf("Parse of MaxFileSize+1 bytes: got %v; want it refused", err)
	}
}

// TestDuplicateKeys: a key given twice in one mapping, at any depth and in
// JSON too, is refused naming its path and both lines, also where the
// decoder re-encodes a node (classes' detectors, outputs) and would report
// the re-encoded lines.
func TestDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"top level", "mqtt: {broker: mqtts://a:8883}\npipeline: {workers: 2}\nmqtt: {client_id: b}\n",
			"mqtt: duplicate key at line 3 (first at line 1)"},
		{"nested", "mqtt:\n  broker: mqtts://a:8883\n  client_id: v\n  allow_plaintext: false\n  allow_plaintext: true\n",
			"mqtt.allow_plaintext: duplicate key at line 5 (first at line 4)"},
		{"map of signals", "decoder:\n  signals:\n    p: {kind: pressure}\n    t: {kind: temperature}\n    p: {kind: vibration}\n",
			"decoder.signals.p: duplicate key at line 5 (first at line 3)"},
		{"in a sequence", "alerts:\n  outputs:\n    - type: file\n      path: /a\n    - type: file\n      name: b\n      path: /b\n      path: /c\n",
			"alerts.outputs[1].path: duplicate key at line 8 (first at line 7)"},
		{"class detectors", "classes:\n  - name: presses\n    devices: [p-*]\n    detectors:\n      overpressure:\n        limit: 12\n        limit: 20\n",
			"classes[0].detectors.overpressure.limit: duplicate key at line 7 (first at line 6)"},
		{"quoted and plain", "fleet:\n  max_new: 5\n  \"max_new\": 50\n",
			"fleet.max_new: duplicate key at line 3 (first at line 2)"},
		{"json", "{\n  \"pipeline\": {\"workers\": 2},\n  \"state\": {\"keep\": 3,\n    \"keep\": 1}\n}\n",
			"state.keep: duplicate key at line 4 (first at line 3)"},
		{"two of them", "pipeline: {workers: 1, workers: 2}\nfleet: {window: 1m, window: 2m}\n",
			"pipeline.workers: duplicate key at line 1 (first at line 1)\nfleet.window: duplicate key at line 2 (first at line 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v; want %q", err, tc.want)
			}
		})
	}
	// A merge key's keys may be overridden: that is YAML, not a duplicate.
	merged := "x-base: &base {hold: 2, clear: 3}\n"
	if _, err := Parse([]byte(merged + "detectors:\n  status: {<<: *base, hold: 1}\n")); err == nil || !strings.Contains(err.Error(), "x-base (line 1): unknown key") {
		t.Errorf("merge: got %v; want only the unknown anchor key refused, no duplicate", err)
	}
	if f, err := Parse([]byte("detectors:\n  status: &s {hold: 2, clear: 3}\n  signal:\n    spike: {<<: *s, hold: 4}\n")); err != nil || f.Detectors.Signal.Spike.Hold != 4 || f.Detectors.Signal.Spike.Clear != 3 {
		t.Errorf("merge with override: got %v; want accepted, hold 4 over the merged 2", err)
	}
}

// TestSecondDocument: YAML's decoder reads the first document and ignores
// the rest, so settings after a "---" would be silently dropped.
func TestSecondDocument(t *testing.T) {
	_, err := Parse([]byte("pipeline: {workers: 2}\n---\nmqtt: {allow_plaintext: true}\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2: a second YAML document") {
		t.Errorf("got %v; want the second document refused", err)
	}
}
