package mqtt

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

func alert(id, device string, state pipeline.AlertState, sev pipeline.Severity, started time.Time) pipeline.Alert {
	return pipeline.Alert{
		ID: id, Device: device, Kind: "overpressure", Detector: "overpressure.spike", Severity: sev, State: state,
		Signal: "pressure", Time: started.Add(time.Second).UnixNano(), Started: started.UnixNano(),
		Value: 12.5, Threshold: 10, Unit: "bar", Message: "pressure spike",
	}
}

type stateJSON struct {
	Device string `json:"device"`
	Firing []struct {
		ID, Kind, Detector, Severity, Since string
	} `json:"firing"`
}

func TestPublisherRender(t *testing.T) {
	cfg := validConfig()
	cfg.PasswordFile, cfg.Username = "", ""
	p, err := NewPublisher(cfg, PublisherOptions{StateTopic: "vigil/state/{device}"})
	if err != nil {
		t.Fatal(err)
	}
	if p.link.clientID != "vigil-1-pub" {
		t.Errorf("client ID %q; want vigil-1-pub", p.link.clientID)
	}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	jobs := p.render([]pipeline.Alert{
		alert("a1", "pump/7", pipeline.Firing, pipeline.Warning, t0),
		alert("b1", "fan-2", pipeline.Firing, pipeline.Critical, t0),
		alert("a2", "pump/7", pipeline.Firing, pipeline.Critical, t0.Add(time.Minute)),
		alert("a1", "pump/7", pipeline.Firing, pipeline.Critical, t0), // escalated
	})
	if len(jobs) != 2 || len(jobs[0]) != 4 || len(jobs[1]) != 2 {
		t.Fatalf("got %d jobs; want pump/7 (3 alerts + state) then fan-2 (1 + state)", len(jobs))
	}
	m := jobs[0][0]
	if m.Topic != "vigil/alerts/overpressure/pump_7" || m.QoS != 1 || m.Retain {
		t.Errorf("alert message: topic %q qos %d retain %v", m.Topic, m.QoS, m.Retain)
	}
	if m.Properties.ContentType != "application/json" {
		t.Errorf("content type %q", m.Properties.ContentType)
	}
	props := map[string]string{}
	for _, u := range m.Properties.User {
		props[u.Key] = u.Value
	}
	if props["severity"] != "warning" || props["kind"] != "overpressure" || props["state"] != "firing" {
		t.Errorf("user properties %v", props)
	}
	var back pipeline.Alert
	if err := json.Unmarshal(m.Payload, &back); err != nil || back.ID != "a1" || back.Device != "pump/7" {
		t.Errorf("payload %s: %v", m.Payload, err)
	}

	st := jobs[0][3]
	if st.Topic != "vigil/state/pump_7" || !st.Retain {
		t.Errorf("state message: topic %q retain %v", st.Topic, st.Retain)
	}
	var s stateJSON
	if err := json.Unmarshal(st.Payload, &s); err != nil {
		t.Fatal(err)
	}
	if s.Device != "pump/7" || len(s.Firing) != 2 || s.Firing[0].ID != "a1" || s.Firing[0].Severity != "critical" ||
		s.Firing[1].ID != "a2" || s.Firing[0].Since != "2026-11-21T10:00:00Z" {
		t.Errorf("state %s", st.Payload)
	}

	// Resolving everything leaves an empty list, and the device is forgotten.
	jobs = p.render([]pipeline.Alert{
		alert("a1", "pump/7", pipeline.Resolved, pipeline.Critical, t0),
		alert("a2", "pump/7", pipeline.Resolved, pipeline.Critical, t0),
	})
	if got := string(jobs[0][2].Payload); got != `{"device":"pump/7","firing":[]}` {
		t.Errorf("state after resolving: %s", got)
	}
	if _, ok := p.firing["pump/7"]; ok {
		t.Error("resolved device still tracked")
	}
}

func TestNewPublisherOptions(t *testing.T) {
	cfg := validConfig()
	cfg.PasswordFile, cfg.Username = "", ""
	for _, tc := range []struct {
		opts PublisherOptions
		want string
	}{
		{PublisherOptions{Topic: "vigil/{site}"}, "topic:"},
		{PublisherOptions{StateTopic: "vigil/state"}, "state_topic:"},
		{PublisherOptions{QoS: 3}, "qos:"},
		{PublisherOptions{ClientID: "vigil-1"}, "client_id: must differ"},
	} {
		if _, err := NewPublisher(cfg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v; want an error containing %q", tc.opts, err, tc.want)
		}
	}
}
