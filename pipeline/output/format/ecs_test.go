package format_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
)

// ecsDoc is the part of an ECS document the tests read back.
type ecsDoc struct {
	Timestamp time.Time `json:"@timestamp"`
	Message   string    `json:"message"`
	ECS       struct {
		Version string `json:"version"`
	} `json:"ecs"`
	Event struct {
		Kind     string     `json:"kind"`
		Category []string   `json:"category"`
		Type     []string   `json:"type"`
		Severity *int       `json:"severity"`
		ID       string     `json:"id"`
		Action   string     `json:"action"`
		Start    time.Time  `json:"start"`
		End      *time.Time `json:"end"`
	} `json:"event"`
	Observer map[string]string `json:"observer"`
	Rule     map[string]string `json:"rule"`
	Device   *struct {
		ID string `json:"id"`
	} `json:"device"`
	Vigil struct {
		AlertID    string   `json:"alert_id"`
		State      string   `json:"state"`
		Escalation *bool    `json:"escalation"`
		Severity   string   `json:"severity"`
		Signal     string   `json:"signal"`
		Topic      string   `json:"topic"`
		Value      *float64 `json:"value"`
		Threshold  *float64 `json:"threshold"`
		Unit       string   `json:"unit"`
		Observed   *float64 `json:"observed"`
		Baseline   struct {
			Mean *float64 `json:"mean"`
			Std  *float64 `json:"std"`
		} `json:"baseline"`
		Score *float64 `json:"score"`
	} `json:"vigil"`
}

func checkECS(t testing.TB, m output.Meta, a *pipeline.Alert, b []byte) {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %q", b)
	}
	var d ecsDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	sev := 3
	if a.State == pipeline.Firing && a.Severity == pipeline.Critical {
		sev = 9
	} else if a.State == pipeline.Firing && a.Severity == pipeline.Warning {
		sev = 6
	}
	cat := "host"
	if len(a.Kind) > 8 && a.Kind[:8] == "traffic." {
		cat = "intrusion_detection"
	}
	act := a.State.String()
	if a.State == pipeline.Firing && a.Escalation {
		act = "escalation"
	}
	check := func(field string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %v; want %v", field, got, want)
		}
	}
	check("@timestamp", d.Timestamp.UnixNano(), a.Time)
	check("message", d.Message, sanitize(a.Message))
	check("ecs.version", d.ECS.Version, format.ECSVersion)
	check("event.kind", d.Event.Kind, "alert")
	check("event.category", len(d.Event.Category) == 1 && d.Event.Category[0] == cat, true)
	check("event.type", len(d.Event.Type) == 1 && d.Event.Type[0] == "info", true)
	check("event.severity", d.Event.Severity != nil && *d.Event.Severity == sev, true)
	check("event.id", d.Event.ID, sanitize(a.EventID()))
	check("event.action", d.Event.Action, act)
	check("event.start", d.Event.Start.UnixNano(), a.Started)
	check("event.end", d.Event.End != nil, a.State == pipeline.Resolved)
	if d.Event.End != nil {
		check("event.end", d.Event.End.UnixNano(), a.Time)
	}
	check("observer.vendor", d.Observer["vendor"], sanitize(m.Vendor))
	check("observer.product", d.Observer["product"], sanitize(m.Product))
	check("observer.version", d.Observer["version"], sanitize(m.Version))
	check("observer.hostname", d.Observer["hostname"], sanitize(m.Hostname))
	check("observer.type", d.Observer["type"], "ids")
	rule := a.Detector
	if rule == "" {
		rule = a.Kind
	}
	check("rule.id", d.Rule["id"], sanitize(rule))
	check("rule.category", d.Rule["category"], sanitize(a.Kind))
	check("device", d.Device != nil, a.Device != "")
	if d.Device != nil {
		check("device.id", d.Device.ID, sanitize(a.Device))
	}
	check("vigil.alert_id", d.Vigil.AlertID, sanitize(a.ID))
	check("vigil.state", d.Vigil.State, a.State.String())
	check("vigil.escalation", d.Vigil.Escalation != nil && *d.Vigil.Escalation == a.Escalation, true)
	check("vigil.signal", d.Vigil.Signal, sanitize(a.Signal))
	check("vigil.topic", d.Vigil.Topic, sanitize(a.Topic))
	check("vigil.unit", d.Vigil.Unit, sanitize(a.Unit))
	for _, n := range []struct {
		name string
		got  *float64
		want float64
	}{{"value", d.Vigil.Value, a.Value}, {"threshold", d.Vigil.Threshold, a.Threshold}, {"observed", d.Vigil.Observed, a.Observed},
		{"baseline.mean", d.Vigil.Baseline.Mean, a.Mean}, {"baseline.std", d.Vigil.Baseline.Std, a.Std}, {"score", d.Vigil.Score, a.Score}} {
		if math.IsNaN(n.want) || math.IsInf(n.want, 0) {
			check("vigil."+n.name+" omitted", n.got == nil, true)
		} else {
			check("vigil."+n.name, n.got != nil && *n.got == n.want, true)
		}
	}
}

func TestECSVariants(t *testing.T) {
	f := format.NewECS(exampleMeta)
	for name, a := range alertVariants() {
		t.Run(name, func(t *testing.T) { checkECS(t, exampleMeta, a, f.Append(nil, a)) })
	}
}

func TestECSEscaping(t *testing.T) {
	for _, n := range nasty {
		t.Run(n.name, func(t *testing.T) {
			m := output.Meta{Vendor: n.s, Product: n.s, Version: n.s, Hostname: n.s}
			a := baseAlert()
			a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message = n.s, n.s, n.s, n.s, n.s, n.s, n.s, n.s
			checkECS(t, withDefaultMeta(m), a, format.NewECS(m).Append(nil, a))
		})
	}
}

func FuzzECS(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, n.s, 1.5, int64(0), false)
	}
	f.Fuzz(func(t *testing.T, id, device, msg string, v float64, ts int64, resolved bool) {
		m := output.Meta{Vendor: msg, Product: "Vigil", Version: id, Hostname: device}
		a := baseAlert()
		a.ID, a.Device, a.Detector, a.Signal, a.Message, a.Topic, a.Unit, a.Kind = id, device, msg, id, msg, msg, device, device
		a.Value, a.Score, a.Time = v, -v, ts
		if resolved {
			a.State = pipeline.Resolved
		}
		checkECS(t, withDefaultMeta(m), a, format.NewECS(m).Append(nil, a))
	})
}

func FuzzJSON(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, 1.5)
	}
	f.Fuzz(func(t *testing.T, id, msg string, v float64) {
		a := baseAlert()
		a.ID, a.Message, a.Device, a.Value = id, msg, msg, v
		b := format.JSON{}.Append(nil, a)
		var back pipeline.Alert
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if back.ID != sanitize(id) || back.Message != sanitize(msg) {
			t.Errorf("got %q %q; want %q %q", back.ID, back.Message, sanitize(id), sanitize(msg))
		}
	})
}
