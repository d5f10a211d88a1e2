package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// buildVigil builds the binary once per test, for tests that kill it.
func buildVigil(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-test-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		bin := filepath.Join(dir, "vigil")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.bin = bin
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// built is the binary the tests run, built once per test process; TestMain
// removes it.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// TestKillWithAlertsInTheJournal: "vigil run" is killed with SIGKILL while
// its NATS output is down and every alert of the stream waits in the
// journal; after a restart with NATS up, each of them reaches JetStream.
func TestKillWithAlertsInTheJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	bin := buildVigil(t)
	natsAddr, metricsAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	alertsFile := filepath.Join(dir, "alerts.jsonl")
	tlsBlock := fmt.Sprintf("  tls: {ca_file: %s}\n", b.CAFile)
	vigilCfg := writeConfig(t, "vigil.yaml", mqttSection(b, "vigil-kill")+
		"alerts:\n  journal: {dir: "+filepath.Join(dir, "journal")+"}\n  mqtt: {enabled: false}\n  file: "+alertsFile+"\n"+
		"  outputs:\n    - {name: bus, type: nats, url: \"nats://"+natsAddr+"\", jetstream: true, timeout: 1s, retry: {initial: 50ms, max: 300ms}}\n"+
		"state: {file: "+filepath.Join(t.TempDir(), "vigil.state")+"}\nmetrics:\n  listen: "+metricsAddr+"\n")
	deviceCfg := writeConfig(t, "device.yaml", "mqtt:\n  client_id: plant-sim-kill\n  username: device\n  password_file: "+b.PasswordFile("device")+"\n"+tlsBlock)

	first, logs := startVigil(t, bin, vigilCfg, metricsAddr)
	var simLogs syncbuf.Buffer
	cmd := exec.Command(bin, "simulate", "--broker", b.URL(), "--config", deviceCfg, "--devices", "6", "--anomalous", "4",
		"--lead-in", "5m", "--duration", "16m", "--speed", "200", "--inject-prob", "1")
	cmd.Stdout, cmd.Stderr = &simLogs, &simLogs
	if err := cmd.Run(); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simLogs.String())
	}
	waitMetric(t, metricsAddr, fmt.Sprintf("vigil_readings_processed_total %d\n", 6*16*60), logs)
	raw, _ := os.ReadFile(alertsFile)
	want := readAlerts(t, string(raw))
	if len(want) < 5 {
		t.Fatalf("%d alerts in the file output; want the stream's anomalies", len(want))
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()

	natsServer(t, natsAddr, filepath.Join(dir, "nats"))
	stream := alertStream(t, natsAddr)
	_, logs = startVigil(t, bin, vigilCfg, metricsAddr)
	got := map[string]int{}
	for _, id := range streamEventIDs(t, stream, len(want)) {
		got[id]++
	}
	for _, a := range want {
		if got[a.EventID()] != 1 {
			t.Errorf("alert %s reached NATS %d times after the restart; want once", a.EventID(), got[a.EventID()])
		}
	}
	if len(got) != len(want) {
		// Messages not yet acknowledged at the kill are redelivered and
		// judged again by fresh baselines; their alerts may differ.
		t.Logf("NATS has %d distinct alerts; the killed run journaled %d", len(got), len(want))
	}
	if t.Failed() {
		t.Logf("second run's logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the restart logged errors:\n%s", logs.String())
	}
}
