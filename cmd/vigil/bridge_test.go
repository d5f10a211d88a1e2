package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// TestBridgeCommand: "vigil bridge" makes the stream, moves what a
// simulated plant publishes to Mosquitto into it, each message on its
// device's partition subject, reports readiness and its metrics, and stops
// cleanly with exit status 0.
func TestBridgeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := natstest.Start(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	metricsAddr := freeAddr(t)
	cfg := writeConfig(t, "bridge.yaml", mqttSection(b, "vigil-bridge")+
		"cluster:\n  url: "+srv.URL()+"\n  partitions: 6\nbridge:\n  tick: 200ms\nmetrics:\n  listen: "+metricsAddr+"\n")
	deviceCfg := writeConfig(t, "device.yaml", "mqtt:\n  client_id: plant-sim\n  username: device\n  password_file: "+b.PasswordFile("device")+
		"\n  tls: {ca_file: "+b.CAFile+"}\n")

	var logs syncbuf.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &logs, stderr: &logs, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"bridge", "--config", cfg}, e) }()
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil bridge never became ready; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	var simLogs syncbuf.Buffer
	se := &env{stdin: strings.NewReader(""), stdout: &simLogs, stderr: &simLogs, log: slog.New(slog.NewTextHandler(&simLogs, nil))}
	if code := run(t.Context(), []string{"simulate", "--broker", b.URL(), "--config", deviceCfg, "--devices", "5", "--anomalous", "2",
		"--duration", "4m", "--speed", "500"}, se); code != 0 {
		t.Fatalf("simulate --broker: exit %d:\n%s", code, simLogs.String())
	}
	m := regexp.MustCompile(`published (\d+) messages \((\d+) failed\)`).FindStringSubmatch(simLogs.String())
	if m == nil || m[2] != "0" {
		t.Fatalf("simulator summary: %q", simLogs.String())
	}
	published, _ := strconv.Atoi(m[1])

	js := natstest.JetStream(t, srv.URL())
	if _, err := js.Stream(t.Context(), jetstream.DefaultStream); err != nil {
		t.Fatalf("the bridge made no stream: %v", err)
	}
	var telemetry, packed int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		telemetry, packed = streamReadings(t, js, 6)
		if telemetry >= published {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d telemetry readings in the stream; %d published", telemetry, published)
		}
	}
	t.Logf("%d readings in the stream, %d of them packed", telemetry, packed)

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"vigil_bridge_published_total", "vigil_bridge_pending", "vigil_bridge_puback_seconds_bucket", "vigil_bridge_ticks_total", "vigil_mqtt_messages_acked_total"} {
		if !strings.Contains(body.String(), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	if !strings.Contains(body.String(), fmt.Sprintf("vigil_bridge_published_total %d\n", published)) {
		t.Errorf("metrics: %s; want vigil_bridge_published_total %d", grepLines(body.String(), "vigil_bridge_published_total"), published)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("vigil bridge: exit %d; logs:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vigil bridge did not stop")
	}
	if !strings.Contains(logs.String(), "abandoned=0") {
		t.Errorf("the stop abandoned messages; logs:\n%s", grepLines(logs.String(), "stopped"))
	}
	if strings.Contains(logs.String(), b.Password("vigil")) {
		t.Error("the MQTT password is in the logs")
	}
}

// streamReadings reads the whole stream and counts its readings, packed or
// not, checking that each is on its device's partition (and, unpacked, on
// its device's subject).
func streamReadings(t *testing.T, js natsjs.JetStream, partitions int) (readings, packed int) {
	t.Helper()
	s, err := js.Stream(t.Context(), jetstream.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq // ticks keep coming: read up to here
	c, err := js.OrderedConsumer(t.Context(), jetstream.DefaultStream, natsjs.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	device := func(payload []byte) string {
		var m struct {
			Node string `json:"node_id"`
		}
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		return m.Node
	}
	for {
		batch, err := c.Fetch(500, natsjs.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last {
				done = true
			}
			p, tok, err := jetstream.ParseSubject(m.Subject())
			if err != nil {
				t.Fatal(err)
			}
			switch tok {
			case jetstream.TickToken:
			case jetstream.PackToken:
				err := jetstream.EachPacked(m.Data(), func(_ []byte, _ int64, payload []byte) error {
					if dev := device(payload); jetstream.PartitionOf(dev, partitions) != p {
						return fmt.Errorf("device %q packed on partition %d; it belongs on %d", dev, p, jetstream.PartitionOf(dev, partitions))
					}
					readings++
					packed++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			default:
				if dev := device(m.Data()); jetstream.Subject(dev, partitions) != m.Subject() {
					t.Fatalf("device %q on %q; it belongs on %q", dev, m.Subject(), jetstream.Subject(dev, partitions))
				}
				readings++
			}
		}
		if n == 0 || done {
			return readings, packed
		}
	}
}
