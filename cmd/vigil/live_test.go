package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

type received struct {
	topic       string
	contentType string
	props       map[string]string
	alert       pipeline.Alert
}

// dashboard subscribes to the alert topics as the "dash" user with a plain
// paho client (not Vigil's code), as a plant dashboard would.
func dashboard(t *testing.T, b *mqtttest.Broker, got chan<- received) {
	t.Helper()
	u, _ := url.Parse(b.URL())
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(b.ClientCertFile, b.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	subscribed := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:      []*url.URL{u},
		TlsCfg:          &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		KeepAlive:       10,
		ConnectUsername: "dash",
		ConnectPassword: []byte(b.Password("dash")),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "vigil/alerts/#", QoS: 1}}}); err == nil {
					once.Do(func() { close(subscribed) })
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "dash-test",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				r := received{topic: pr.Packet.Topic, props: map[string]string{}}
				if p := pr.Packet.Properties; p != nil {
					r.contentType = p.ContentType
					for _, up := range p.User {
						r.props[up.Key] = up.Value
					}
				}
				if err := json.Unmarshal(pr.Packet.Payload, &r.alert); err != nil {
					t.Errorf("alert payload %q: %v", pr.Packet.Payload, err)
				}
				select {
				case got <- r:
				default:
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatalf("dashboard did not subscribe; broker log:\n%s", b.Log())
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		cm.Disconnect(dctx)
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLiveEndToEnd is the plant set-up end to end: the simulator publishes as
// user "device" to a hardened Mosquitto (TLS, client certificates, password
// file, ACL); "vigil run" reads as user "vigil" and republishes alerts, which a
// dashboard reads as user "dash". Every message published is processed; the
// alerts carry their MQTT 5 properties; readiness and metrics are served.
func TestLiveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	b := mqtttest.Start(t, mqtttest.Options{RequireClientCert: true})
	metricsAddr := freeAddr(t)
	tlsBlock := fmt.Sprintf("  tls: {ca_file: %s, cert_file: %s, key_file: %s}\n", b.CAFile, b.ClientCertFile, b.ClientKeyFile)
	vigilCfg := writeConfig(t, "vigil.yaml", "mqtt:\n  broker: "+b.URL()+"\n  client_id: vigil-it\n  username: vigil\n  password_file: "+
		b.PasswordFile("vigil")+"\n"+tlsBlock+"  subscriptions: [\"plant/#\"]\nalerts:\n  journal: {dir: "+filepath.Join(t.TempDir(), "journal")+"}\n  mqtt: {state_topic: \"vigil/state/{device}\"}\nstate: {file: "+filepath.Join(t.TempDir(), "vigil.state")+"}\nmetrics:\n  listen: "+metricsAddr+"\n")
	deviceCfg := writeConfig(t, "device.yaml", "mqtt:\n  client_id: plant-sim\n  username: device\n  password_file: "+b.PasswordFile("device")+"\n"+tlsBlock)

	got := make(chan received, 10000)
	dashboard(t, b, got)

	var logs syncbuf.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &logs, stderr: &logs, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runDone := make(chan int, 1)
	go func() { runDone <- run(ctx, []string{"run", "--config", vigilCfg}, e) }()

	// Ready once connected.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil run never became ready; logs:\n%s\nbroker:\n%s", logs.String(), b.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 6 devices, 5 min lead-in then 11 minutes with anomalies, at 200× real time.
	var simLogs syncbuf.Buffer
	se := &env{stdin: strings.NewReader(""), stdout: &simLogs, stderr: &simLogs, log: slog.New(slog.NewTextHandler(&simLogs, nil))}
	code := run(t.Context(), []string{"simulate", "--broker", b.URL(), "--config", deviceCfg, "--devices", "6", "--anomalous", "4",
		"--lead-in", "5m", "--duration", "16m", "--speed", "200", "--inject-prob", "1"}, se)
	if code != 0 {
		t.Fatalf("simulate --broker: exit %d:\n%s", code, simLogs.String())
	}
	m := regexp.MustCompile(`published (\d+) messages \((\d+) failed\)`).FindStringSubmatch(simLogs.String())
	if m == nil || m[2] != "0" {
		t.Fatalf("simulator summary: %q", simLogs.String())
	}
	published, _ := strconv.Atoi(m[1])
	if published != 6*16*60 {
		t.Fatalf("published %d messages; want %d", published, 6*16*60)
	}

	// Metrics while running: every message received.
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		body = buf.String()
		if strings.Contains(body, fmt.Sprintf("vigil_readings_processed_total %d\n", published)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every message was processed; metrics:\n%s", grepLines(body, "vigil_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{`vigil_mqtt_connected{role="source"} 1`, "vigil_processing_latency_seconds_bucket", `vigil_alerts_total{kind="overpressure"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Alerts reached the dashboard with their properties.
	var alerts []received
	for timeout := time.After(5 * time.Second); len(alerts) == 0 || len(got) > 0; {
		select {
		case r := <-got:
			alerts = append(alerts, r)
		case <-timeout:
			if len(alerts) == 0 {
				t.Fatalf("the dashboard received no alert; logs:\n%s", logs.String())
			}
		}
	}
	kinds := map[string]bool{}
	for _, r := range alerts {
		a := r.alert
		kinds[a.Kind] = true
		wantTopic := "vigil/alerts/" + a.Kind + "/" + a.Device
		if r.topic != wantTopic || r.contentType != "application/json" || r.props["severity"] != a.Severity.String() || r.props["kind"] != a.Kind {
			t.Errorf("alert on %q content type %q props %v; want topic %q, application/json and severity/kind properties matching %+v",
				r.topic, r.contentType, r.props, wantTopic, a)
		}
	}
	if !kinds["overpressure"] || !kinds["vibration"] || !kinds["thermal"] {
		t.Errorf("alert kinds %v; want overpressure, thermal and vibration from a 16-minute run with every injection on", kinds)
	}

	cancel()
	select {
	case code := <-runDone:
		if code != 0 {
			t.Fatalf("vigil run exited %d after SIGINT-style cancel; logs:\n%s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("vigil run did not shut down")
	}
	if !strings.Contains(logs.String(), "msg=stopped") || !strings.Contains(logs.String(), fmt.Sprintf("messages=%d", published)) {
		t.Errorf("shutdown log lacks the final counts; logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), b.Password("vigil")) {
		t.Error("the password appears in the logs")
	}
}

// TestRunFailsFast: wrong credentials or an untrusted CA stop "vigil run" at
// start-up with a message that says what to check, instead of retrying.
func TestRunFailsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	mqtttest.Require(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	bad := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(bad, []byte("not-the-password\n"), 0o600)
	for _, tc := range []struct{ name, extra, want string }{
		{"wrong password", "  username: vigil\n  password_file: " + bad + "\n  tls: {ca_file: " + b.CAFile + "}\n", "password_file"},
		{"untrusted CA", "  username: vigil\n  password_file: " + b.PasswordFile("vigil") + "\n  tls: {ca_file: " + b.UntrustedCAFile + "}\n", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, "vigil.yaml", "mqtt:\n  broker: "+b.URL()+"\n  client_id: vigil-ff\n"+tc.extra+"  subscriptions: [\"plant/#\"]\nmetrics: {listen: \"\"}\n")
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			code, _, errs := runCLIContext(ctx, t, "run", "--config", cfg)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and a message mentioning %q", code, errs, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to fail; want fast", d)
			}
		})
	}
}

func runCLIContext(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	e, out, errb := testEnv()
	code := run(ctx, args, e)
	return code, out.String(), errb.String()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// mqttSection is the mqtt section of a test configuration for broker b:
// TLS with b's CA, user vigil with its password file, subscribed to
// plant/#.
func mqttSection(b *mqtttest.Broker, clientID string) string {
	return "mqtt:\n  broker: " + b.URL() + "\n  client_id: " + clientID + "\n  username: vigil\n  password_file: " +
		b.PasswordFile("vigil") + "\n  tls: {ca_file: " + b.CAFile + "}\n  subscriptions: [\"plant/#\"]\n"
}
