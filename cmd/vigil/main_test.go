package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, 2, "Commands:"},
		{[]string{"help"}, 0, "replay"},
		{[]string{"--help"}, 0, "simulate"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"replay", "-h"}, 0, "-alerts"},
		{[]string{"help", "replay"}, 0, "-dead-letter"},
		{[]string{"simulate", "-h"}, 0, "-devices"},
		{[]string{"replay"}, 2, "no input files"},
		{[]string{"replay", "--workers", "x", "f.log"}, 2, "invalid value"},
		{[]string{"replay", "--summary", "xml", "f.log"}, 2, "-summary must be"},
		{[]string{"replay", "--format", "parquet", "f.log"}, 2, "-format"},
		{[]string{"replay", "/nonexistent/plant.log"}, 1, "/nonexistent/plant.log"},
		{[]string{"replay", "--config", "/nonexistent.yaml", "f.log"}, exitConfig, "nonexistent.yaml"},
		{[]string{"simulate"}, 2, "--out is required"},
		{[]string{"simulate", "--out", "x", "--devices", "0"}, 1, "Devices"},
		{[]string{"config"}, 2, "config check [--files=false] FILE"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and stderr containing %q", code, errs, tc.code, tc.inStderr)
			}
		})
	}
}

func TestReplaySummaryText(t *testing.T) {
	code, out, errs := runCLI(t, "replay", malformedLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"messages  27 read, 6 decoded, 21 rejected", "rejected malformed_json", "devices   3", "status", "messages/s"} {
		if !strings.Contains(errs, want) {
			t.Errorf("summary lacks %q:\n%s", want, errs)
		}
	}
	if n := len(readAlerts(t, out)); n != 1 {
		t.Errorf("%d alerts; want 1 (the status warning)", n)
	}
}

func TestReplayAlertsFileAndStdin(t *testing.T) {
	b, err := os.ReadFile(fixtureLog)
	if err != nil {
		t.Fatal(err)
	}
	e, out, errb := testEnv()
	e.stdin = strings.NewReader(string(b))
	alerts := filepath.Join(t.TempDir(), "alerts.jsonl")
	if code := run(t.Context(), []string{"replay", "--summary", "json", "--alerts", alerts, "-"}, e); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if out.Len() != 0 {
		t.Errorf("stdout has %d bytes; want alerts only in the file", out.Len())
	}
	got, err := os.ReadFile(alerts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/golden/plant/alerts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("alerts from stdin differ from the golden replay of the same file")
	}
	var sum map[string]any
	if err := json.Unmarshal(errb.Bytes(), &sum); err != nil || sum["messages"] != float64(21600) {
		t.Errorf("json summary %s (%v); want messages 21600", errb, err)
	}
}

func TestSimulateThenReplay(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "p.log")
	code, _, errs := runCLI(t, "simulate", "--out", log, "--devices", "4", "--anomalous", "2", "--duration", "15m", "--topics")
	if code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.labels.json")); err != nil {
		t.Fatalf("labels file: %v", err)
	}
	code, out, errs := runCLI(t, "replay", "--summary", "none", log)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errs)
	}
	as := readAlerts(t, out)
	if len(as) == 0 {
		t.Fatal("no alerts from a log with injected anomalies")
	}
	for _, a := range as {
		if !strings.HasPrefix(a.Topic, "plant/") {
			t.Fatalf("alert without the device's topic: %+v", a)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	code, out, errs := runCLI(t, "config", "check", "--files=false", "../../docs/vigil.example.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("example config: exit %d, %s %s", code, out, errs)
	}
	// The example names files under /etc/vigil that this machine lacks.
	code, _, errs = runCLI(t, "config", "check", "../../docs/vigil.example.yaml")
	if code != exitConfig || !strings.Contains(errs, "mqtt.password_file") {
		t.Errorf("example config with its files missing: exit %d, %s; want exit %d naming mqtt.password_file", code, errs, exitConfig)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	for _, tc := range []struct{ text, want string }{
		{"detectors:\n  overpressure:\n    spike: {z: -1}\n", "detectors: overpressure: spike: z must be positive"},
		{"detectors:\n  bogus: 1\n", "detectors.bogus (line 2): unknown key"},
		{"decoder:\n  signals:\n    p: {name: pressure, kind: steam}\n", "decoder.signals.p.kind"},
		{"classes:\n  - name: a\n    devices: ['[']\n", "bad device pattern"},
		{"classes:\n  - name: a\n    devices: [x]\n    detectors:\n      vibration: {zones: {ab: 5, bc: 4, cd: 7}}\n", "classes[0]: a: detectors: vibration: zones"},
	} {
		if err := os.WriteFile(bad, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCLI(t, "config", "check", bad)
		if code != exitConfig || !strings.Contains(errs, tc.want) {
			t.Errorf("config %q: exit %d, stderr %q; want exit %d and %q", tc.text, code, errs, exitConfig, tc.want)
		}
	}
}

// TestConfigCheckWarnsAboutSecrets: a secret file that others may read is
// a warning on stderr naming its key and the chmod, and the check still
// passes; once restricted, the warning goes.
func TestConfigCheckWarnsAboutSecrets(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits do not say who may read a file on Windows")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "state.key")
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(key, []byte("AGE-SECRET-KEY-1X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("state:\n  encryption: {key_file: "+key+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "config", "check", cfg)
	want := "vigil config check: warning: state.encryption.key_file: the secret file " + key + " is open to group and others (mode 0644); restrict it with: chmod 600 " + key + "\n"
	if code != exitOK || !strings.Contains(out, "ok") || errs != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 0, ok and stderr %q", code, out, errs, want)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "config", "check", cfg); code != exitOK || errs != "" {
		t.Errorf("after chmod 600: exit %d, stderr %q; want exit 0 and no warning", code, errs)
	}
}

// TestReplayConfigClassLimit: a class limit from the config file fires on the
// devices it matches and only on them.
func TestReplayConfigClassLimit(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "vigil.yaml")
	text := "classes:\n  - name: tight\n    devices: [sensor-node-02]\n    detectors:\n      overpressure:\n        limit: 0.5\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "replay", "--summary", "none", "--config", cfg, fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	limit := 0
	for _, a := range readAlerts(t, out) {
		if a.Detector == "overpressure.limit" {
			limit++
			if a.Device != "sensor-node-02" || a.Threshold != 0.5 {
				t.Errorf("limit alert on %s with threshold %v; want only sensor-node-02 at 0.5", a.Device, a.Threshold)
			}
		}
	}
	if limit == 0 {
		t.Error("no overpressure.limit alert for the device whose class limit is below its pressure")
	}
}

// replayCap replays the fixture with pipeline.max_devices and workers set,
// and returns the devices tracked and evicted from the JSON summary.
func replayCap(t *testing.T, maxDevices, workers int) (devices int, evicted uint64) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "cap.yaml")
	text := fmt.Sprintf("pipeline: {max_devices: %d, workers: %d}\n", maxDevices, workers)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "replay", "--alerts", os.DevNull, "--summary", "json", "--config", cfg, fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var sum struct {
		Devices int    `json:"devices"`
		Evicted uint64 `json:"evicted"`
	}
	if err := json.Unmarshal([]byte(errs), &sum); err != nil {
		t.Fatal(err)
	}
	return sum.Devices, sum.Evicted
}

// TestReplayDeviceCap: with a device cap below the fleet size, replay tracks
// at most the cap and reports the devices it had to forget.
func TestReplayDeviceCap(t *testing.T) {
	if devices, evicted := replayCap(t, 4, 2); devices > 4 || evicted == 0 {
		t.Errorf("devices %d, evicted %d; want at most 4 tracked and evictions counted", devices, evicted)
	}
}

// TestReplayDeviceCapIsTotal: pipeline.max_devices is the total over the
// shards. With the cap equal to the fleet's 12 devices and 4 shards, nothing
// is evicted (a per-shard share of 3 forgot devices thousands of times, since
// names do not spread evenly).
func TestReplayDeviceCapIsTotal(t *testing.T) {
	if devices, evicted := replayCap(t, 12, 4); devices != 12 || evicted != 0 {
		t.Errorf("devices %d, evicted %d; want all 12 tracked and none evicted", devices, evicted)
	}
}
