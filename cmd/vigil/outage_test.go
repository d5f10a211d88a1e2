package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// natsServer starts a real nats-server with JetStream on addr. Without the
// binary the test skips, unless CI=true.
func natsServer(t *testing.T, addr, storeDir string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
		if _, serr := os.Stat(bin); serr != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("nats-server is required in CI (.ci/run installs it)")
			}
			t.Skip("nats-server not installed")
		}
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "-a", host, "-p", port, "-js", "-sd", storeDir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// alertStream connects to the NATS server at addr (waiting for it to
// listen) and creates a JetStream stream that captures Vigil's alerts.
func alertStream(t *testing.T, addr string) jetstream.Stream {
	t.Helper()
	var nc *natsclient.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if nc, err = natsclient.Connect("nats://" + addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ALERTS", Subjects: []string{"vigil.alerts.>"}})
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// streamEventIDs waits (up to 20 s) for the stream to hold want messages
// and returns the Nats-Msg-Id of each message it holds, in order.
func streamEventIDs(t *testing.T, stream jetstream.Stream, want int) []string {
	t.Helper()
	var msgs uint64
	for deadline := time.Now().Add(20 * time.Second); msgs < uint64(want) && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if info, err := stream.Info(t.Context()); err == nil {
			msgs = info.State.Msgs
		}
	}
	cons, _ := stream.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	batch, err := cons.Fetch(int(msgs)+10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for m := range batch.Messages() {
		ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
	}
	return ids
}

// startVigil starts the built binary as "vigil run --config cfg" and waits
// until it is ready; it is killed when the test ends.
func startVigil(t *testing.T, bin, cfg, metricsAddr string) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	var logs syncbuf.Buffer
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitReady(t, metricsAddr, &logs)
	return cmd, &logs
}

// TestOutputOutage is the scenario: "vigil run" with a NATS output
// whose server is down when Vigil starts and for the whole of a plant
// stream. Vigil starts, stays ready, processes every message and keeps
// writing alerts to its other output; /readyz notes the degraded output;
// when NATS comes up every alert reaches the stream, once each.
func TestOutputOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	natsAddr, metricsAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	alertsFile := filepath.Join(dir, "alerts.jsonl")
	tlsBlock := fmt.Sprintf("  tls: {ca_file: %s}\n", b.CAFile)
	vigilCfg := writeConfig(t, "vigil.yaml", mqttSection(b, "vigil-outage")+
		"alerts:\n  journal: {dir: "+filepath.Join(dir, "journal")+"}\n  mqtt: {enabled: false}\n  file: "+alertsFile+"\n"+
		"  outputs:\n    - {name: bus, type: nats, url: \"nats://"+natsAddr+"\", jetstream: true, timeout: 1s, retry: {initial: 50ms, max: 300ms}}\n"+
		"state: {file: "+filepath.Join(t.TempDir(), "vigil.state")+"}\nmetrics:\n  listen: "+metricsAddr+"\n")
	deviceCfg := writeConfig(t, "device.yaml", "mqtt:\n  client_id: plant-sim-outage\n  username: device\n  password_file: "+b.PasswordFile("device")+"\n"+tlsBlock)

	var logs syncbuf.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &logs, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runDone := make(chan int, 1)
	go func() { runDone <- run(ctx, []string{"run", "--config", vigilCfg}, e) }()
	waitReady(t, metricsAddr, &logs)

	var simLogs syncbuf.Buffer
	se := &env{stdin: strings.NewReader(""), stdout: &simLogs, stderr: &simLogs, log: slog.New(slog.NewTextHandler(&simLogs, nil))}
	if code := run(t.Context(), []string{"simulate", "--broker", b.URL(), "--config", deviceCfg, "--devices", "6", "--anomalous", "4",
		"--lead-in", "5m", "--duration", "16m", "--speed", "200", "--inject-prob", "1"}, se); code != 0 {
		t.Fatalf("simulate: exit %d:\n%s", code, simLogs.String())
	}
	published := 6 * 16 * 60
	body := waitMetric(t, metricsAddr, fmt.Sprintf("vigil_readings_processed_total %d\n", published), &logs)
	select {
	case code := <-runDone:
		t.Fatalf("vigil run exited (%d) while NATS was down:\n%s", code, logs.String())
	default:
	}
	raw, _ := os.ReadFile(alertsFile)
	fileAlerts := readAlerts(t, string(raw))
	if len(fileAlerts) < 5 {
		t.Fatalf("the file output has %d alerts; want the stream's anomalies there while NATS is down", len(fileAlerts))
	}
	if !regexp.MustCompile(`vigil_output_lag_alerts\{output="bus"\} [1-9]`).MatchString(body) {
		t.Errorf("metrics do not show the NATS output's lag:\n%s", grepLines(body, "vigil_output"))
	}
	ready := httpGet(t, "http://"+metricsAddr+"/readyz")
	if !strings.HasPrefix(ready, "ready\n") || !strings.Contains(ready, "output bus degraded") {
		t.Errorf("/readyz: got %q; want ready, noting the degraded output", ready)
	}

	// NATS comes up, with a stream for the alerts.
	natsServer(t, natsAddr, filepath.Join(dir, "nats"))
	got := streamEventIDs(t, alertStream(t, natsAddr), len(fileAlerts))
	var want []string
	for i := range fileAlerts {
		want = append(want, fileAlerts[i].EventID())
	}
	if !slices.Equal(got, want) {
		t.Errorf("NATS got %d alerts; want the %d the file output has, in order, once each", len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("first difference at %d: NATS %s, file %s (%+v)", i, got[i], want[i], fileAlerts[i])
				break
			}
		}
	}
	cancel()
	if code := <-runDone; code != 0 {
		t.Errorf("vigil run exited %d after a normal stop:\n%s", code, logs.String())
	}
}

func waitReady(t *testing.T, addr string, logs *syncbuf.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil run never became ready; logs:\n%s", logs.String())
		}
	}
}

func waitMetric(t *testing.T, addr, want string, logs *syncbuf.Buffer) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		body = httpGet(t, "http://"+addr+"/metrics")
		if strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q:\n%s\nlogs:\n%s", want, grepLines(body, "vigil_readings"), logs.String())
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return buf.String()
}
