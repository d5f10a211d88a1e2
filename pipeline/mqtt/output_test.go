package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// refusingPublisher refuses, like a broker's ACL, the alerts of one device.
type refusingPublisher struct {
	refuse    string
	published []string
}

func (p *refusingPublisher) Start(context.Context) error { return nil }
func (p *refusingPublisher) Close() error                { return nil }
func (p *refusingPublisher) WriteOnce(_ context.Context, batch []pipeline.Alert) error {
	for i := range batch {
		if batch[i].Device == p.refuse {
			return &PublishError{Topic: "vigil/alerts/x/" + p.refuse, Code: 0x87}
		}
	}
	for i := range batch {
		p.published = append(p.published, batch[i].ID)
	}
	return nil
}

// TestOutputRefusal: only the alerts the broker refuses are permanent
// failures (dead letters); the others of the batch are delivered.
func TestOutputRefusal(t *testing.T) {
	pub := &refusingPublisher{refuse: "rogue"}
	o := &Output{p: pub}
	batch := []pipeline.Alert{{ID: "a", Device: "pump"}, {ID: "b", Device: "rogue"}, {ID: "c", Device: "fan"}}
	err := o.Write(context.Background(), batch)
	var be *output.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 1 || !output.IsPermanent(be.Failed[0].Err) {
		t.Fatalf("got %v; want alert 1 (the refused device) reported as permanent, alone", err)
	}
	if !slices.Equal(pub.published, []string{"a", "c"}) {
		t.Errorf("published %v; want the alerts the broker accepts", pub.published)
	}
	if err := o.Write(context.Background(), batch[1:2]); !output.IsPermanent(err) {
		t.Errorf("a single refused alert: got %v; want a permanent error", err)
	}
	if err := o.Write(context.Background(), batch[:1]); err != nil {
		t.Errorf("an accepted alert: got %v", err)
	}
}

// deadLetters collects what the runner gives up on.
type deadLetters struct {
	mu  sync.Mutex
	ids []string
}

func (d *deadLetters) Put(_ string, a *pipeline.Alert, _ error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = append(d.ids, a.ID)
	return nil
}

func (d *deadLetters) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}

// TestOutputBrokerDown runs two MQTT outputs through the journal and the
// runners while the broker is down: each Write is one attempt, so the
// runner sees the failures (status LastError, vigil_output_failures_total)
// and its max_attempts applies (the output with max_attempts 2 gives the
// alerts to the dead letters); the other delivers every alert once the
// broker is back, and its status recovers.
func TestOutputBrokerDown(t *testing.T) {
	skipShort(t)
	b := mqtttest.Start(t, mqtttest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ms := metrics.NewSet()
	newOut := func(clientID string) *Output {
		cfg := testConfig(b, "vigil", clientID)
		cfg.ConnectTimeout = time.Second
		o, err := NewOutput(cfg, PublisherOptions{Topic: "vigil/alerts/" + clientID + "/{device}", PublishTimeout: time.Second, Logger: testLogger(t), Metrics: ms})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	dl := &deadLetters{}
	retry := output.Retry{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	capped := retry
	capped.MaxAttempts = 2
	f, err := output.New(output.Config{
		Journal: journal.Config{Dir: t.TempDir()},
		Outputs: []output.Spec{
			{Name: "mqtt", Output: newOut("out-a"), Retry: retry},
			{Name: "capped", Output: newOut("out-b"), Retry: capped},
		},
		DeadLetters: dl, DrainTimeout: time.Second, Logger: testLogger(t), Metrics: ms,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx)
	defer f.Close()

	dash := &received{states: map[string][]byte{}}
	dcm := dialDevice(t, b, "dash", "dash-output", dash.onPublish)
	if _, err := dcm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "vigil/alerts/out-a/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	batch := func(from, n int) []pipeline.Alert {
		var as []pipeline.Alert
		for i := range n {
			as = append(as, alert(fmt.Sprintf("a%03d", from+i), fmt.Sprintf("pump-%d", i%3), pipeline.Firing, pipeline.Warning, time.Now()))
		}
		return as
	}
	if err := f.Write(ctx, batch(0, 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "10 alerts at the dashboard", func() bool { return dash.count() >= 10 })

	b.Stop()
	if err := f.Write(ctx, batch(10, 10)); err != nil {
		t.Fatal(err)
	}
	status := func(name string) output.Status {
		for _, s := range f.Statuses() {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no output %s", name)
		return output.Status{}
	}
	waitFor(t, 20*time.Second, "the outage in the output's status", func() bool { return status("mqtt").LastError != "" })
	if st := status("mqtt"); st.Lag == 0 || !strings.Contains(st.LastError, "mqtt") {
		t.Errorf("status while the broker is down: %+v; want the MQTT error and the alerts waiting", st)
	}
	var text bytes.Buffer
	ms.WritePrometheus(&text)
	if strings.Contains(text.String(), `vigil_output_failures_total{output="mqtt"} 0`) {
		t.Errorf("failures not counted while the broker is down:\n%s", text.String())
	}
	waitFor(t, 20*time.Second, "max_attempts to send the capped output's alerts to the dead letters", func() bool { return dl.count() >= 10 })

	b.Restart()
	waitFor(t, 30*time.Second, "20 alerts at the dashboard", func() bool { return dash.count() >= 20 })
	waitFor(t, 10*time.Second, "the status to recover", func() bool { st := status("mqtt"); return st.LastError == "" && st.Lag == 0 })
	dash.mu.Lock()
	seen := map[string]bool{}
	for _, p := range dash.alerts {
		var a struct{ ID string }
		if i := bytes.Index(p.Payload, []byte(`"id":"`)); i >= 0 {
			rest := p.Payload[i+6:]
			a.ID = string(rest[:bytes.IndexByte(rest, '"')])
		}
		seen[a.ID] = true
	}
	dash.mu.Unlock()
	for i := range 20 {
		if id := fmt.Sprintf("a%03d", i); !seen[id] {
			t.Errorf("alert %s never reached the dashboard", id)
		}
	}
}
