package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// plantPublisher publishes readings of named devices with event times one
// second apart.
type plantPublisher struct {
	t   *testing.T
	pub *mqtt.Publisher
	n   map[string]int
	t0  time.Time
}

func newPlantPublisher(t *testing.T, b *mqtttest.Broker) *plantPublisher {
	cfg := mqtt.DefaultConfig()
	cfg.Broker, cfg.ClientID, cfg.Username = b.URL(), "restart-device", "device"
	cfg.PasswordFile, cfg.TLS.CAFile = b.PasswordFile("device"), b.CAFile
	pub, err := mqtt.NewPublisher(cfg, mqtt.PublisherOptions{ClientID: "restart-device-pub"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return &plantPublisher{t: t, pub: pub, n: map[string]int{}, t0: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
}

// send publishes n readings of device with pressure p (and some noise).
func (pp *plantPublisher) send(device string, n int, p float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range n {
		i := pp.n[device]
		pp.n[device]++
		noise := float64((i*7919)%11-5) / 100
		payload := fmt.Appendf(nil, `{"timestamp":%q,"node_id":%q,"data":{"p":%.3f,"t":%.2f,"v":%.2f},"status":0}`,
			pp.t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), device, p+noise, 60+noise, 2+noise/10)
		if err := pp.pub.Publish(ctx, "plant/line-a/"+device+"/telemetry", payload, 1); err != nil {
			pp.t.Fatal(err)
		}
	}
}

// TestRestartKeepsLearnedState: "vigil run" stopped (SIGTERM: the snapshot
// is written after the drain) or killed (SIGKILL after a snapshot asked for
// with SIGUSR1) while an alert is firing comes back warm: the alert does not
// fire again, it resolves under the same ID when the device recovers, and a
// device learned before the restart is judged at once (a fresh start would
// spend 300 readings warming up).
func TestRestartKeepsLearnedState(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	bin := buildVigil(t)
	for _, stop := range []string{"SIGTERM", "SIGKILL after SIGUSR1"} {
		t.Run(stop, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{})
			dir := t.TempDir()
			alertsFile := filepath.Join(dir, "alerts.jsonl")
			metricsAddr := freeAddr(t)
			cfg := writeConfig(t, "vigil.yaml", mqttSection(b, "vigil-restart")+
				"alerts:\n  journal: {dir: "+filepath.Join(dir, "journal")+"}\n  mqtt: {enabled: false}\n  file: "+alertsFile+"\n"+
				"state: {file: "+filepath.Join(dir, "vigil.state")+", interval: 0s}\n"+
				"detectors: {traffic: {enabled: false}}\nfleet: {enabled: false}\n"+
				"metrics:\n  listen: "+metricsAddr+"\n")
			alerts := func(want func([]pipeline.Alert) bool, what string, logs *syncbuf.Buffer) []pipeline.Alert {
				t.Helper()
				for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					raw, _ := os.ReadFile(alertsFile)
					as := readAlerts(t, string(raw))
					if want(as) {
						return as
					}
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s; alerts:\n%s\nlogs:\n%s", what, raw, logs.String())
					}
				}
			}
			pp := newPlantPublisher(t, b)

			first, logs := startVigil(t, bin, cfg, metricsAddr)
			pp.send("pump-1", 400, 4)
			pp.send("pump-2", 400, 4)
			pp.send("pump-1", 3, 7) // overpressure: fires and stays firing
			fired := alerts(func(as []pipeline.Alert) bool { return len(overpressure(as, "pump-1", pipeline.Firing)) > 0 }, "pump-1's overpressure alert", logs)
			firstDet := overpressure(fired, "pump-1", pipeline.Firing)[0].Detector
			if stop == "SIGTERM" {
				first.Process.Signal(syscall.SIGTERM)
			} else {
				first.Process.Signal(syscall.SIGUSR1)
				waitMetric(t, metricsAddr, "vigil_state_snapshots_total 1\n", logs)
				first.Process.Signal(syscall.SIGKILL)
			}
			first.Wait()
			if stop == "SIGTERM" && !strings.Contains(logs.String(), "why=shutdown") {
				t.Fatalf("no snapshot at shutdown:\n%s", logs.String())
			}

			_, logs = startVigil(t, bin, cfg, metricsAddr)
			if !strings.Contains(logs.String(), "restored learned state") {
				t.Fatalf("the restart did not restore the snapshot:\n%s", logs.String())
			}
			pp.send("pump-1", 3, 7)   // still anomalous: the alert must not fire again
			pp.send("pump-2", 1, 9)   // a spike right after the restart
			pp.send("pump-1", 700, 4) // recovered, for longer than the rise check's keep_firing_for (10 minutes)
			as := alerts(func(as []pipeline.Alert) bool {
				open := map[string]bool{}
				for _, a := range overpressure(as, "pump-1", pipeline.Firing) {
					open[a.Detector] = true
				}
				for _, a := range overpressure(as, "pump-1", pipeline.Resolved) {
					delete(open, a.Detector)
				}
				return len(open) == 0 && len(overpressure(as, "pump-2", pipeline.Firing)) > 0
			}, "every pump-1 alert to resolve and pump-2's spike", logs)
			// One continuous anomaly: each check fires once in all and
			// resolves once, under the ID it fired with.
			fires := map[string][]string{}
			for _, a := range overpressure(as, "pump-1", pipeline.Firing) {
				fires[a.Detector] = append(fires[a.Detector], a.ID)
			}
			for det, ids := range fires {
				if len(ids) != 1 {
					t.Errorf("pump-1 %s fired %d times (%v) across the restart; want once", det, len(ids), ids)
				}
			}
			resolved := map[string][]string{}
			for _, a := range overpressure(as, "pump-1", pipeline.Resolved) {
				resolved[a.Detector] = append(resolved[a.Detector], a.ID)
			}
			for det, ids := range fires {
				if r := resolved[det]; len(r) != 1 || r[0] != ids[0] {
					t.Errorf("pump-1 %s resolved as %v; want once, as %s", det, r, ids[0])
				}
			}
			if _, ok := fires[firstDet]; !ok {
				t.Errorf("the alert that fired before the restart (%s) is not among %v", firstDet, fires)
			}
		})
	}
}

// overpressure returns the overpressure alerts of device in state st.
func overpressure(as []pipeline.Alert, device string, st pipeline.AlertState) []pipeline.Alert {
	var out []pipeline.Alert
	for _, a := range as {
		if a.Device == device && a.Kind == "overpressure" && a.State == st && !a.Escalation {
			out = append(out, a)
		}
	}
	return out
}
