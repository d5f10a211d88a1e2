package format

import (
	"strconv"
	"strings"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// ECSVersion is the Elastic Common Schema version the ECS documents
// declare in ecs.version. Every field Vigil sets outside vigil.* exists in
// it (device.* since 8.7).
const ECSVersion = "8.11.0"

// ECS renders an alert as an Elastic Common Schema document (one JSON
// object): event.kind alert, observer.* for Vigil, rule.* for the detector,
// device.id for the plant device and the process values under vigil.*. See
// the package documentation for the mapping. Create one with NewECS.
type ECS struct {
	observer []byte // `,"observer":{…}`
	ruleset  string
}

// NewECS returns an ECS formatter that names Vigil with m.
func NewECS(m output.Meta) *ECS {
	m = withDefaults(m)
	o := jsonObject{b: []byte(`,"observer":`)}
	o.open()
	o.str("vendor", m.Vendor)
	o.str("product", m.Product)
	o.str("version", m.Version)
	o.strOpt("hostname", m.Hostname)
	o.str("type", "ids")
	o.close()
	return &ECS{observer: o.b, ruleset: m.Product}
}

// ecsCategory is event.category: intrusion_detection for the traffic
// checks, which judge how a device talks (flood, spoofed identity, replay,
// rogue nodes) as a network IDS would; host for process anomalies, which
// report the state of one plant device (device.*) and are not intrusions
// in themselves. ECS has no category for physical process values.
func ecsCategory(kind string) string {
	if strings.HasPrefix(kind, "traffic.") {
		return `["intrusion_detection"]`
	}
	return `["host"]`
}

// Append implements output.Formatter.
func (f *ECS) Append(dst []byte, a *pipeline.Alert) []byte {
	o := jsonObject{b: dst}
	o.open()
	o.time("@timestamp", a.Time)
	o.str("message", a.Message)
	o.object("ecs")
	o.str("version", ECSVersion)
	o.close()

	o.object("event")
	o.str("kind", "alert")
	o.key("category")
	o.b = append(o.b, ecsCategory(a.Kind)...)
	o.key("type")
	o.b = append(o.b, `["info"]`...)
	o.int("severity", int64(severity10(a)))
	o.key("id")
	o.b = append(o.b, '"')
	o.b = appendEventIDJSON(o.b, a)
	o.b = append(o.b, '"')
	o.str("action", action(a))
	o.time("start", a.Started)
	if a.State == pipeline.Resolved {
		o.time("end", a.Time)
	}
	o.str("module", "vigil")
	o.str("dataset", "vigil.alert")
	o.close()

	o.b = append(o.b, f.observer...)

	o.object("rule")
	o.str("id", ruleName(a))
	o.str("name", ruleName(a))
	o.strOpt("category", a.Kind)
	o.str("ruleset", f.ruleset)
	o.close()

	if a.Device != "" {
		o.object("device")
		o.str("id", a.Device)
		o.close()
	}

	o.object("vigil")
	o.str("alert_id", a.ID)
	o.str("state", a.State.String())
	o.bool("escalation", a.Escalation)
	o.str("severity", a.Severity.String())
	o.strOpt("kind", a.Kind)
	o.strOpt("detector", a.Detector)
	o.strOpt("signal", a.Signal)
	o.strOpt("topic", a.Topic)
	o.num("value", a.Value)
	o.num("threshold", a.Threshold)
	o.strOpt("unit", a.Unit)
	o.num("observed", a.Observed)
	o.object("baseline")
	o.num("mean", a.Mean)
	o.num("std", a.Std)
	o.close()
	o.num("score", a.Score)
	o.close()

	o.close()
	return o.b
}

// appendEventIDJSON appends a.EventID() as the inside of a JSON string.
func appendEventIDJSON(dst []byte, a *pipeline.Alert) []byte {
	dst = appendJSONChars(dst, a.ID)
	dst = append(dst, '-')
	dst = append(dst, a.State.String()...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, a.Time, 10)
	dst = append(dst, '-')
	return append(dst, a.Severity.String()...)
}
