package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// TestReloadKeepsState: SIGHUP with a valid configuration applies it in
// place (a check switched off resolves its firing alert with a reason; the
// baselines stay learned; no message is lost); an invalid one is refused
// and the running configuration stays.
func TestReloadKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	bin := buildVigil(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	alertsFile := filepath.Join(dir, "alerts.jsonl")
	metricsAddr := freeAddr(t)
	base := mqttSection(b, "vigil-reload") +
		"alerts:\n  journal: {dir: " + filepath.Join(dir, "journal") + "}\n  mqtt: {enabled: false}\n  file: " + alertsFile + "\n" +
		"state: {file: \"\"}\nfleet: {enabled: false}\nmetrics:\n  listen: " + metricsAddr + "\n"
	cfg := writeConfig(t, "vigil.yaml", base+"detectors: {traffic: {enabled: false}}\n")
	cmd, logs := startVigil(t, bin, cfg, metricsAddr)
	readAll := func() []pipeline.Alert {
		raw, _ := os.ReadFile(alertsFile)
		return readAlerts(t, string(raw))
	}
	waitAlert := func(what string, ok func(pipeline.Alert) bool) pipeline.Alert {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			for _, a := range readAll() {
				if ok(a) {
					return a
				}
			}
		}
		t.Fatalf("no %s; logs:\n%s", what, logs.String())
		return pipeline.Alert{}
	}

	pp := newPlantPublisher(t, b)
	pp.send("pump-1", 400, 4)
	pp.send("pump-2", 400, 4)
	pp.send("pump-1", 3, 7)
	spike := waitAlert("overpressure.spike firing", func(a pipeline.Alert) bool {
		return a.Device == "pump-1" && a.Detector == "overpressure.spike" && a.State == pipeline.Firing
	})

	// An invalid configuration is refused.
	os.WriteFile(cfg, []byte(base+"detectors: {overpressure: {spike: {z: -1}}}\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitMetric(t, metricsAddr, "vigil_config_reload_failures_total 1\n", logs)

	// A valid one switching the spike check off applies in place.
	os.WriteFile(cfg, []byte(base+"detectors: {traffic: {enabled: false}, overpressure: {spike: {off: true}}}\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitMetric(t, metricsAddr, "vigil_config_reloads_total 1\n", logs)
	res := waitAlert("the spike alert resolved by the reload", func(a pipeline.Alert) bool {
		return a.ID == spike.ID && a.State == pipeline.Resolved
	})
	if !strings.Contains(res.Message, "switched off by a configuration reload") {
		t.Errorf("resolution message %q; want the reason", res.Message)
	}
	// Baselines stay learned: pump-2's rise right after the reload is
	// judged at once (a fresh engine would be warming up), and no spike
	// alert fires any more.
	pp.send("pump-2", 6, 7)
	waitAlert("pump-2's overpressure after the reload", func(a pipeline.Alert) bool {
		return a.Device == "pump-2" && a.Kind == "overpressure" && a.State == pipeline.Firing
	})
	waitMetric(t, metricsAddr, "vigil_readings_processed_total 809\n", logs)
	for _, a := range readAll() {
		if a.Detector == "overpressure.spike" && a.State == pipeline.Firing && a.ID != spike.ID {
			t.Errorf("overpressure.spike fired after it was switched off: %+v", a)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("vigil run after the reloads: %v\n%s", err, logs.String())
	}
}

// TestWatchConfig: with --watch-config, a change of the file's content is
// applied as a SIGHUP would apply it; an invalid change is refused once
// (not every poll); rewriting the same content applies nothing; --state
// keeps overriding state.file (no "state changed" warning).
func TestWatchConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	bin := buildVigil(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	metricsAddr := freeAddr(t)
	base := mqttSection(b, "vigil-watch") +
		"alerts:\n  journal: {dir: " + filepath.Join(dir, "journal") + "}\n  mqtt: {enabled: false}\n  file: " + filepath.Join(dir, "alerts.jsonl") + "\n" +
		"state: {file: " + filepath.Join(dir, "ignored.state") + "}\nmetrics:\n  listen: " + metricsAddr + "\n"
	cfg := writeConfig(t, "vigil.yaml", base)
	var logs syncbuf.Buffer
	cmd := exec.Command(bin, "run", "--config", cfg, "--watch-config", "--state", filepath.Join(dir, "vigil.state"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitReady(t, metricsAddr, &logs)

	os.WriteFile(cfg, []byte(base+"detectors: {overpressure: {spike: {z: 40}}}\n"), 0o600)
	waitMetric(t, metricsAddr, "vigil_config_reloads_total 1\n", &logs)
	os.WriteFile(cfg, []byte(base+"detectors: {overpressure: {spike: {z: -1}}}\n"), 0o600)
	waitMetric(t, metricsAddr, "vigil_config_reload_failures_total 1\n", &logs)
	time.Sleep(5 * time.Second)                                                            // two more polls of the same invalid file
	os.WriteFile(cfg, []byte(base+"detectors: {overpressure: {spike: {z: -1}}}\n"), 0o600) // same content
	time.Sleep(3 * time.Second)
	body := waitMetric(t, metricsAddr, "vigil_config_reloads_total 1\n", &logs)
	if !strings.Contains(body, "vigil_config_reload_failures_total 1\n") {
		t.Errorf("an unchanged invalid file was tried again:\n%s", grepLines(body, "vigil_config_reload"))
	}
	if strings.Contains(logs.String(), "state") && strings.Contains(logs.String(), "take effect at the next restart") {
		t.Errorf("the reload reported the state section as changed although --state overrides it:\n%s", grepLines(logs.String(), "restart"))
	}
	if n := strings.Count(logs.String(), "configuration file changed"); n != 2 {
		t.Errorf("%d \"configuration file changed\" lines; want 2 (one per change)\n%s", n, grepLines(logs.String(), "configuration"))
	}
}
