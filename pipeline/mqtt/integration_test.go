package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// thresholdProcessor fires an alert when a device's pressure exceeds 50 and
// resolves it when it drops below 0. It records every sequence number seen.
type thresholdProcessor struct {
	firing map[string]string // device → alert ID
	seen   *seqSet
}

type seqSet struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *seqSet) add(i int) {
	s.mu.Lock()
	s.m[i]++
	s.mu.Unlock()
}

func (s *seqSet) unique() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (p *thresholdProcessor) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	var pressure, seq float64
	for _, v := range r.Values {
		switch v.Name {
		case "pressure":
			pressure = v.V
		case "seq":
			seq = v.V
		}
	}
	p.seen.add(int(seq))
	id, firing := p.firing[r.Device]
	switch {
	case pressure > 50 && !firing:
		id = fmt.Sprintf("%s-%d", r.Device, int(seq))
		p.firing[r.Device] = id
		return append(out, pipeline.Alert{ID: id, Seq: r.Seq, Time: r.Time, Started: r.Time, Device: r.Device,
			Topic: r.Topic, Kind: "overpressure", Detector: "overpressure.limit", Severity: pipeline.Critical,
			State: pipeline.Firing, Signal: "pressure", Value: pressure, Threshold: 50, Unit: "bar", Message: "pressure above limit"})
	case pressure < 0 && firing:
		delete(p.firing, r.Device)
		return append(out, pipeline.Alert{ID: id, Seq: r.Seq, Time: r.Time, Started: r.Time, Device: r.Device,
			Topic: r.Topic, Kind: "overpressure", Detector: "overpressure.limit", Severity: pipeline.Critical,
			State: pipeline.Resolved, Signal: "pressure", Value: pressure, Threshold: 50, Unit: "bar", Message: "pressure back to normal"})
	}
	return out
}

func (p *thresholdProcessor) Devices() int { return len(p.firing) }

// received is what a dashboard subscriber saw.
type received struct {
	mu     sync.Mutex
	alerts []paho.Publish
	states map[string][]byte
}

func (r *received) onPublish(pr paho.PublishReceived) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.HasPrefix(pr.Packet.Topic, "vigil/state/") {
		r.states[pr.Packet.Topic] = pr.Packet.Payload
	} else {
		r.alerts = append(r.alerts, *pr.Packet)
	}
	return true, nil
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.alerts)
}

// TestEndToEnd runs the pipeline between a Source and a Publisher: a device
// publishes 2,000 QoS 1 readings, all are processed and acknowledged, and a
// dashboard receives the 200 alert transitions they cause with their user
// properties, content type and the retained per-device state.
func TestEndToEnd(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()

	set := metrics.NewSet()
	cfg := testConfig(b, "vigil", "vigil-e2e")
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	src, err := NewSource(cfg, SourceOptions{ExcludeTopicPrefix: "vigil/", Logger: testLogger(t), Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pub, err := NewPublisher(cfg, PublisherOptions{StateTopic: "vigil/state/{device}", Logger: testLogger(t), Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}

	dash := &received{states: map[string][]byte{}}
	dcm := dialDevice(t, b, "dash", "dash-e2e", dash.onPublish)
	if _, err := dcm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "vigil/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	seen := &seqSet{m: map[int]int{}}
	p, err := pipeline.New(pipeline.Config{
		Workers: 2, Decoders: 2, Metrics: set,
		NewProcessor: func(int) pipeline.Processor {
			return &thresholdProcessor{firing: map[string]string{}, seen: seen}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(runCtx, src, pub) }()

	// 10 devices; every 200 readings, each device exceeds the limit once and,
	// 100 readings later, drops below zero: 100 firing + 100 resolved.
	const n = 2000
	dev := dialDevice(t, b, "device", "device-e2e", nil)
	err = publishAll(ctx, dev, n, 4, 0, func(i int) (string, []byte) {
		d := fmt.Sprintf("dev-%d", i%10)
		pressure := 4.2
		switch (i / 10) % 20 {
		case 0:
			pressure = 99
		case 10:
			pressure = -1
		}
		return "plant/line-a/" + d + "/telemetry", telemetry(i, d, pressure)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "all readings processed", func() bool { return seen.unique() == n })
	waitFor(t, 10*time.Second, "200 alerts at the dashboard", func() bool { return dash.count() >= 200 })
	waitFor(t, 5*time.Second, "all messages acknowledged", func() bool {
		return set.GetOrCreateCounter("vigil_mqtt_messages_acked_total").Get() == n
	})
	stop()
	if err := <-runErr; err != nil {
		t.Fatalf("pipeline: %v", err)
	}

	dash.mu.Lock()
	defer dash.mu.Unlock()
	byState := map[string]int{}
	for _, m := range dash.alerts {
		if !strings.HasPrefix(m.Topic, "vigil/alerts/overpressure/dev-") {
			t.Errorf("alert topic %q", m.Topic)
		}
		if m.Properties == nil || m.Properties.ContentType != "application/json" {
			t.Fatalf("alert on %s without content type application/json: %+v", m.Topic, m.Properties)
		}
		if m.Properties.User.Get("severity") != "critical" || m.Properties.User.Get("kind") != "overpressure" {
			t.Errorf("user properties %+v", m.Properties.User)
		}
		var a pipeline.Alert
		if err := json.Unmarshal(m.Payload, &a); err != nil {
			t.Fatalf("alert payload %s: %v", m.Payload, err)
		}
		if m.Properties.User.Get("state") != a.State.String() || !strings.HasSuffix(m.Topic, "/"+a.Device) {
			t.Errorf("alert %s on %s with state property %q", m.Payload, m.Topic, m.Properties.User.Get("state"))
		}
		byState[a.State.String()]++
	}
	if byState["firing"] != 100 || byState["resolved"] != 100 {
		t.Errorf("alerts by state %v; want 100 firing and 100 resolved", byState)
	}
	if len(dash.states) != 10 {
		t.Errorf("state topics %d; want 10", len(dash.states))
	}
	for topic, payload := range dash.states {
		var s stateJSON
		if err := json.Unmarshal(payload, &s); err != nil || len(s.Firing) != 0 || topic != "vigil/state/"+s.Device {
			t.Errorf("final state on %s: %s (%v); want an empty firing list", topic, payload, err)
		}
	}

	var out bytes.Buffer
	set.WritePrometheus(&out)
	for _, want := range []string{
		`vigil_mqtt_connected{role="source"} 1`,
		`vigil_mqtt_connected{role="publisher"} 1`,
		"vigil_mqtt_messages_received_total 2000",
		"vigil_mqtt_alerts_published_total 200",
		`vigil_mqtt_tls_handshakes_total{role="source"} 1`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", out.String())
	}
}

// TestConnectErrors checks that Start fails fast, with a message naming what
// to check, for each configuration mistake.
func TestConnectErrors(t *testing.T) {
	skipShort(t)
	open := mqtttest.Start(t, mqtttest.Options{Plaintext: true, Extra: []string{"clientid_prefixes vigil-"}})
	strict := mqtttest.Start(t, mqtttest.Options{RequireClientCert: true})
	tests := []struct {
		name   string
		broker *mqtttest.Broker
		edit   func(*Config, *mqtttest.Broker)
		want   []string // substrings of the error; nil for success
	}{
		{"wrong password", open, func(c *Config, b *mqtttest.Broker) { c.PasswordFile = b.PasswordFile("dash") },
			[]string{"broker refused the connection: not authorized", "password_file"}},
		{"unknown user", open, func(c *Config, b *mqtttest.Broker) { c.Username = "nobody" },
			[]string{"broker refused the connection", "check username"}},
		{"client ID refused", open, func(c *Config, b *mqtttest.Broker) { c.ClientID = "intruder" },
			[]string{"broker refused the connection", "client_id"}},
		{"untrusted CA", open, func(c *Config, b *mqtttest.Broker) { c.TLS.CAFile = b.UntrustedCAFile },
			[]string{"TLS: broker certificate not trusted", "x509", "tls.ca_file"}},
		{"wrong server name", open, func(c *Config, b *mqtttest.Broker) { c.TLS.ServerName = "broker.example" },
			[]string{"does not match", "tls.server_name"}},
		{"TLS to a plaintext port", open, func(c *Config, b *mqtttest.Broker) {
			c.Broker = "mqtts://" + strings.TrimPrefix(b.PlainURL(), "mqtt://")
		}, []string{"TLS handshake failed", "a TLS listener?"}},
		{"missing client certificate", strict, func(c *Config, b *mqtttest.Broker) {},
			[]string{"TLS: broker requires a client certificate", "tls.cert_file"}},
		{"client certificate from another CA", strict, func(c *Config, b *mqtttest.Broker) {
			c.TLS.CertFile, c.TLS.KeyFile = b.UntrustedClientCertFile, b.UntrustedClientKeyFile
		}, []string{"TLS: broker rejected the handshake", "tls.cert_file"}},
		{"client certificate", strict, func(c *Config, b *mqtttest.Broker) {
			c.TLS.CertFile, c.TLS.KeyFile = b.ClientCertFile, b.ClientKeyFile
		}, nil},
		{"client certificate, TLS 1.2 minimum", strict, func(c *Config, b *mqtttest.Broker) {
			c.TLS.CertFile, c.TLS.KeyFile, c.TLS.MinVersion = b.ClientCertFile, b.ClientKeyFile, "1.2"
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.broker, "vigil", "vigil-errors")
			cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
			tc.edit(&cfg, tc.broker)
			src, err := NewSource(cfg, SourceOptions{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
			defer cancel()
			start := time.Now()
			err = src.Start(ctx)
			took := time.Since(start)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v; want a connection", err)
				}
				return
			}
			if err == nil {
				t.Fatal("connected; want an error")
			}
			t.Logf("error after %v: %v", took.Round(time.Millisecond), err)
			if took > 3*time.Second {
				t.Errorf("took %v; want a fast failure", took)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q; want it to contain %q", err, w)
				}
			}
			var ce *ConnectError
			if !errors.As(err, &ce) || !ce.Permanent {
				t.Errorf("got %T %v; want a permanent *ConnectError", err, err)
			}
			if strings.Contains(err.Error(), tc.broker.Password("vigil")) || strings.Contains(err.Error(), tc.broker.Password("dash")) {
				t.Error("the error contains a password")
			}
		})
	}

	t.Run("plaintext to a remote host", func(t *testing.T) {
		cfg := testConfig(open, "vigil", "vigil-errors")
		cfg.Broker = "mqtt://192.0.2.10:1883"
		cfg.TLS = TLSConfig{}
		cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
		_, err := NewSource(cfg, SourceOptions{})
		if err == nil || !strings.Contains(err.Error(), "plaintext connection to non-loopback host \"192.0.2.10\" refused") ||
			!strings.Contains(err.Error(), "allow_plaintext") {
			t.Fatalf("got %v; want a refusal naming allow_plaintext", err)
		}
	})

	t.Run("unreachable broker", func(t *testing.T) {
		cfg := testConfig(open, "vigil", "vigil-errors")
		cfg.Broker = "mqtts://127.0.0.1:1" // nothing listens
		cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
		src, err := NewSource(cfg, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		err = src.Start(ctx)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cannot reach broker") {
			t.Fatalf("got %v; want a timeout naming the last attempt's error", err)
		}
	})
}

// TestBrokerKilled kills the broker with SIGKILL while a device publishes and
// restarts it: the Source reconnects and every message is received at least
// once. The device retries until the broker acknowledges each message.
//
// The broker saves its state after every change (autosave_on_changes), as a
// crash-safe broker must: with Mosquitto's default (every 30 minutes) the
// restarted broker has forgotten Vigil's session and subscription, and what
// devices publish before Vigil resubscribes is lost (6-13 % in this test).
func TestBrokerKilled(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{AutosaveOnChanges: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	set := metrics.NewSet()
	cfg := testConfig(b, "vigil", "vigil-kill")
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	src, err := NewSource(cfg, SourceOptions{Logger: testLogger(t), Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := consume(ctx, src, true)
	dev := dialDevice(t, b, "device", "device-kill", nil)

	const n = 2000
	published := make(chan error, 1)
	go func() {
		published <- publishAll(ctx, dev, n, 8, 500*time.Microsecond, func(i int) (string, []byte) {
			return "plant/line-a/d1/telemetry", telemetry(i, "d1", 1)
		})
	}()
	waitFor(t, 10*time.Second, "a third of the messages", func() bool { return c.unique(n) > n/3 })
	b.Kill()
	t.Logf("killed the broker after %d messages", c.unique(n))
	time.Sleep(300 * time.Millisecond)
	b.Restart()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.unique(n) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := c.unique(n); got != n {
		t.Fatalf("received %d distinct messages of %d; missing %v", got, n, c.missing(n))
	}
	t.Logf("received %d frames for %d messages (duplicates allowed)", c.total(), n)
	if got := set.GetOrCreateCounter(`vigil_mqtt_reconnects_total{role="source"}`).Get(); got < 1 {
		t.Errorf("reconnects = %d; want at least 1", got)
	}
}

// TestTLSResumption drops the connection: the reconnect resumes the TLS
// session instead of a full handshake.
func TestTLSResumption(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{RequireClientCert: true})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	set := metrics.NewSet()
	cfg := testConfig(b, "vigil", "vigil-resume")
	cfg.TLS.CertFile, cfg.TLS.KeyFile = b.ClientCertFile, b.ClientKeyFile
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	src, err := NewSource(cfg, SourceOptions{Logger: testLogger(t), Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st, ok := src.TLSConnectionState(); !ok || st.DidResume {
		t.Fatalf("first handshake: ok %v, resumed %v; want a full handshake", ok, st.DidResume)
	}
	connects := set.GetOrCreateCounter(`vigil_mqtt_connects_total{role="source"}`)
	for i := range 2 {
		src.link.manager().TerminateConnectionForTest()
		waitFor(t, 5*time.Second, "reconnect", func() bool { return connects.Get() == uint64(i+2) })
		st, ok := src.TLSConnectionState()
		if !ok || !st.DidResume {
			t.Fatalf("reconnect %d: resumed %v; want a resumed TLS session", i+1, st.DidResume)
		}
	}
	if got := set.GetOrCreateCounter(`vigil_mqtt_tls_resumed_total{role="source"}`).Get(); got != 2 {
		t.Errorf("tls_resumed_total = %d; want 2", got)
	}
}

// TestPersistentSession closes the Source, publishes while it is away, and
// starts a new Source with the same client ID: it receives what was missed.
func TestPersistentSession(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := testConfig(b, "vigil", "vigil-session")
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	dev := dialDevice(t, b, "device", "device-session", nil)
	publish := func(from, to int) {
		t.Helper()
		err := publishAll(ctx, dev, to-from, 4, 0, func(i int) (string, []byte) {
			return "plant/line-a/d1/telemetry", telemetry(from+i, "d1", 1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	src, err := NewSource(cfg, SourceOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	c := consume(rctx, src, true)
	publish(0, 300)
	waitFor(t, 5*time.Second, "the first 300 messages", func() bool { return c.unique(300) == 300 })
	stop()
	<-c.done
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	publish(300, 1000) // while Vigil is away

	src, err = NewSource(cfg, SourceOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c = consume(ctx, src, true)
	waitFor(t, 10*time.Second, "the 700 messages published meanwhile", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := 300; i < 1000; i++ {
			if c.seen[i] == 0 {
				return false
			}
		}
		return true
	})
}

// TestRedelivery reads messages without acknowledging them and loses the
// connection (or stops): the broker delivers them again. Acknowledgements
// made afterwards for the old connection are skipped.
func TestRedelivery(t *testing.T) {
	skipShort(t)
	const n = 200
	for _, how := range []string{"connection lost", "restart"} {
		t.Run(how, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			set := metrics.NewSet()
			cfg := testConfig(b, "vigil", "vigil-redeliver")
			cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
			src, err := NewSource(cfg, SourceOptions{Logger: testLogger(t), Metrics: set})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { src.Close() }()
			if err := src.Start(ctx); err != nil {
				t.Fatal(err)
			}
			dev := dialDevice(t, b, "device", "device-redeliver", nil)
			if err := publishAll(ctx, dev, n, 4, 0, func(i int) (string, []byte) {
				return "plant/line-a/d1/telemetry", telemetry(i, "d1", 1)
			}); err != nil {
				t.Fatal(err)
			}

			// Read everything, acknowledge nothing (a crash before processing).
			var acks []func()
			got := map[int]bool{}
			for len(got) < n {
				var fb pipeline.FrameBatch
				if err := src.ReadBatch(ctx, &fb, 64); err != nil {
					t.Fatal(err)
				}
				for i := range fb.Frames {
					got[seqOf(fb.Payload(&fb.Frames[i]))] = true
				}
				acks = append(acks, fb.Ack)
			}

			if how == "restart" {
				if err := src.Close(); err != nil {
					t.Fatal(err)
				}
				src, err = NewSource(cfg, SourceOptions{Logger: testLogger(t), Metrics: set})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				src.link.manager().TerminateConnectionForTest()
			}
			c := consume(ctx, src, true)
			waitFor(t, 10*time.Second, "redelivery of all messages", func() bool { return c.unique(n) == n })
			for _, ack := range acks {
				ack()
			}
			if got := set.GetOrCreateCounter("vigil_mqtt_acks_skipped_total").Get(); got != n {
				t.Errorf("acks skipped = %d; want %d (all of the old connection)", got, n)
			}
			// Acknowledged now: a further reconnect brings nothing back.
			waitFor(t, 5*time.Second, "acks", func() bool {
				return set.GetOrCreateCounter("vigil_mqtt_messages_acked_total").Get() >= n
			})
			time.Sleep(3 * ackFlushInterval)
			before := c.total()
			src.link.manager().TerminateConnectionForTest()
			time.Sleep(500 * time.Millisecond)
			if after := c.total(); after != before {
				t.Errorf("%d messages redelivered after they were acknowledged", after-before)
			}
		})
	}
}

// TestExcludeTopicPrefix checks that excluded messages are dropped, counted
// and acknowledged (in order, so the window keeps moving).
func TestExcludeTopicPrefix(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	set := metrics.NewSet()
	cfg := testConfig(b, "vigil", "vigil-exclude")
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	cfg.ReceiveMaximum = 20 // the window would jam if excluded messages were not acknowledged
	src, err := NewSource(cfg, SourceOptions{ExcludeTopicPrefix: "plant/line-b/", Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c := consume(ctx, src, true)
	waitFor(t, 5*time.Second, "connection", src.Connected)
	dev := dialDevice(t, b, "device", "device-exclude", nil)
	const n = 400
	if err := publishAll(ctx, dev, n, 4, 0, func(i int) (string, []byte) {
		line := "a"
		if i%2 == 1 {
			line = "b"
		}
		return "plant/line-" + line + "/d1/telemetry", telemetry(i, "d1", 1)
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "line-a messages", func() bool { return c.total() >= n/2 })
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	for seq := range c.seen {
		if seq%2 == 1 {
			t.Errorf("excluded message %d delivered", seq)
		}
	}
	c.mu.Unlock()
	if got := set.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="excluded_topic"}`).Get(); got != n/2 {
		t.Errorf("excluded = %d; want %d", got, n/2)
	}
}

// TestPublisherRefused checks that an alert the broker's ACL refuses fails
// Write with a clear error instead of being retried forever or lost.
func TestPublisherRefused(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cfg := testConfig(b, "vigil", "vigil-refused")
	pub, err := NewPublisher(cfg, PublisherOptions{Topic: "plant/alerts/{device}"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	a := alert("x1", "pump-1", pipeline.Firing, pipeline.Critical, time.Now())
	err = pub.Write(ctx, []pipeline.Alert{a})
	var pe *PublishError
	if !errors.As(err, &pe) || pe.Code != 0x87 || !strings.Contains(err.Error(), "not authorized") || !strings.Contains(err.Error(), `"vigil" needs write access`) {
		t.Fatalf("got %v; want a PublishError for not authorized", err)
	}
}

// TestPublisherOutage writes while the broker is down: Write blocks until the
// broker is back and has acknowledged the alerts; the dashboard gets them.
func TestPublisherOutage(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := testConfig(b, "vigil", "vigil-outage")
	pub, err := NewPublisher(cfg, PublisherOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	dash := &received{states: map[string][]byte{}}
	dcm := dialDevice(t, b, "dash", "dash-outage", dash.onPublish)
	if _, err := dcm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "vigil/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	b.Stop()
	waitFor(t, 5*time.Second, "the publisher to notice", func() bool { return !pub.Connected() })
	var batch []pipeline.Alert
	for i := range 50 {
		batch = append(batch, alert(fmt.Sprintf("a%d", i), fmt.Sprintf("pump-%d", i%5), pipeline.Firing, pipeline.Warning, time.Now()))
	}
	done := make(chan error, 1)
	go func() { done <- pub.Write(ctx, batch) }()
	select {
	case err := <-done:
		t.Fatalf("Write returned %v while the broker was down", err)
	case <-time.After(500 * time.Millisecond):
	}
	b.Restart()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "50 alerts at the dashboard", func() bool { return dash.count() >= 50 })
}

// TestRetriesAfterStart checks that once started, the Source retries
// failures that would have failed Start (here a wrong password), reading the
// password file again at each attempt, and recovers when it is fixed.
func TestRetriesAfterStart(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(b.Password("vigil")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	cfg := testConfig(b, "vigil", "vigil-retry")
	cfg.PasswordFile = pwFile
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	src, err := NewSource(cfg, SourceOptions{Logger: testLogger(t), Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src.link.manager().TerminateConnectionForTest()
	errs := set.GetOrCreateCounter(`vigil_mqtt_connect_errors_total{role="source"}`)
	waitFor(t, 5*time.Second, "failed reconnects", func() bool { return errs.Get() >= 3 })
	if src.Connected() {
		t.Fatal("connected with a wrong password")
	}
	if err := os.WriteFile(pwFile, []byte(b.Password("vigil")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "reconnect with the fixed password", src.Connected)
}

// TestCloseLeavesNothing checks that Close sends DISCONNECT (the broker logs
// a clean disconnect, not a dropped connection) and that no goroutine of the
// Source or the Publisher outlives Close.
func TestCloseLeavesNothing(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	cfg := testConfig(b, "vigil", "vigil-close")
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	set := metrics.NewSet()
	src, err := NewSource(cfg, SourceOptions{Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(cfg, PublisherOptions{StateTopic: "vigil/state/{device}"})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Write(ctx, []pipeline.Alert{alert("c1", "pump-1", pipeline.Firing, pipeline.Warning, time.Now())}); err != nil {
		t.Fatal(err)
	}
	src.link.manager().TerminateConnectionForTest() // a reconnect in between
	waitFor(t, 5*time.Second, "reconnect", func() bool {
		return set.GetOrCreateCounter(`vigil_mqtt_connects_total{role="source"}`).Get() == 2
	})
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
	// Mosquitto logs "disconnected" for a DISCONNECT, "closed its connection" otherwise.
	waitFor(t, 5*time.Second, "the broker to log clean disconnects", func() bool {
		log := b.Log()
		return strings.HasSuffix(strings.TrimSpace(log), "disconnected.") &&
			strings.Contains(log, "Client vigil-close disconnected.") && strings.Contains(log, "Client vigil-close-pub disconnected.")
	})
}

// TestMaxPacketSize: the source announces a Maximum Packet Size, so a
// real Mosquitto drops messages larger than the decoder would accept before
// sending them (Vigil never allocates them), and the messages around them
// arrive, every one.
func TestMaxPacketSize(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	set := metrics.NewSet()
	cfg := testConfig(b, "vigil", "vigil-maxpacket")
	cfg.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	src, err := NewSource(cfg, SourceOptions{MaxPacketSize: PacketSizeFor(64 << 10), Metrics: set, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c := consume(ctx, src, true)
	waitFor(t, 5*time.Second, "connection", src.Connected)
	dev := dialDevice(t, b, "device", "device-maxpacket", nil)
	const n = 200
	if err := publishAll(ctx, dev, n, 2, 0, func(i int) (string, []byte) {
		p := telemetry(i, "d1", 1)
		if i%10 == 5 { // 2 MB: far above what the decoder accepts
			p = append(p[:len(p):len(p)], bytes.Repeat([]byte{' '}, 2<<20)...)
		}
		return "plant/d1/telemetry", p
	}); err != nil {
		t.Fatal(err)
	}
	want := n - n/10
	waitFor(t, 10*time.Second, "the small messages", func() bool { return c.total() >= want })
	time.Sleep(200 * time.Millisecond) // anything late would show now
	c.mu.Lock()
	for seq := range c.seen {
		if seq%10 == 5 {
			t.Errorf("2 MB message %d delivered despite the Maximum Packet Size", seq)
		}
	}
	c.mu.Unlock()
	if got := c.unique(n); got != want {
		t.Errorf("%d distinct small messages arrived; want %d (missing %v)", got, want, c.missing(n))
	}
	if got := set.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="too_large"}`).Get(); got != 0 {
		t.Errorf("too_large = %d: the broker sent oversized messages; want it to drop them", got)
	}
}
