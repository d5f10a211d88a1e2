package format_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
)

// checkOCSF validates b against the published Detection Finding class and
// checks the fields Vigil maps.
func checkOCSF(t testing.TB, a *pipeline.Alert, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %q", b)
	}
	ev := decodeEvent(t, b)
	for _, e := range loadOCSF(t).validateClass("detection_finding", ev) {
		t.Errorf("schema: %s", e)
	}
	act, status, sev := "1", "1", "0"
	switch {
	case a.State == pipeline.Resolved:
		act, status = "3", "4"
	case a.Escalation:
		act = "2"
	}
	switch a.Severity {
	case pipeline.Warning:
		sev = "3"
	case pipeline.Critical:
		sev = "5"
	}
	fi, _ := ev["finding_info"].(map[string]any)
	md, _ := ev["metadata"].(map[string]any)
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"activity_id", str(ev["activity_id"]), act},
		{"type_uid", str(ev["type_uid"]), "20040" + act},
		{"status_id", str(ev["status_id"]), status},
		{"severity_id", str(ev["severity_id"]), sev},
		{"time", str(ev["time"]), strconv.FormatInt(epochMillis(a.Time), 10)},
		{"metadata.version", md["version"], format.OCSFVersion},
		{"metadata.uid", md["uid"], sanitize(a.EventID())},
		{"finding_info.uid", fi["uid"], sanitize(a.ID)},
		{"finding_info.desc", fi["desc"], sanitize(a.Message)},
		{"message", ev["message"], sanitize(a.Message)},
		{"device present", ev["device"] != nil, a.Device != ""},
		{"is_alert", ev["is_alert"], map[bool]any{true: nil, false: true}[a.State == pipeline.Resolved]},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v; want %v", c.field, c.got, c.want)
		}
	}
	return ev
}

func str(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return "<not a number>"
}

func TestOCSFVariants(t *testing.T) {
	f := format.NewOCSF(exampleMeta)
	for name, a := range alertVariants() {
		t.Run(name, func(t *testing.T) { checkOCSF(t, a, f.Append(nil, a)) })
	}
}

func TestOCSFEscaping(t *testing.T) {
	for _, n := range nasty {
		t.Run(n.name, func(t *testing.T) {
			m := output.Meta{Vendor: n.s, Product: n.s, Version: n.s, Hostname: n.s}
			a := baseAlert()
			a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message = n.s, n.s, n.s, n.s, n.s, n.s, n.s, n.s
			checkOCSF(t, a, format.NewOCSF(m).Append(nil, a))
		})
	}
}

// TestOCSFValidatorRejects proves the validator is not a rubber stamp: each
// mutation of a valid event must be reported.
func TestOCSFValidatorRejects(t *testing.T) {
	s := loadOCSF(t)
	valid := format.NewOCSF(exampleMeta).Append(nil, baseAlert())
	if errs := s.validateClass("detection_finding", decodeEvent(t, valid)); len(errs) > 0 {
		t.Fatalf("the example is invalid: %v", errs)
	}
	tests := []struct {
		name   string
		mutate func(ev map[string]any)
		want   string
	}{
		{"drop severity_id", func(ev map[string]any) { delete(ev, "severity_id") }, "severity_id: required"},
		{"drop time", func(ev map[string]any) { delete(ev, "time") }, "time: required"},
		{"drop finding_info", func(ev map[string]any) { delete(ev, "finding_info") }, "finding_info: required"},
		{"drop finding_info.uid", func(ev map[string]any) { delete(obj(ev, "finding_info"), "uid") }, "finding_info.uid: required"},
		{"drop metadata.product", func(ev map[string]any) { delete(obj(ev, "metadata"), "product") }, "metadata.product: required"},
		{"drop metadata.version", func(ev map[string]any) { delete(obj(ev, "metadata"), "version") }, "metadata.version: required"},
		{"drop analytic.type_id", func(ev map[string]any) { delete(obj(obj(ev, "finding_info"), "analytic"), "type_id") }, "analytic.type_id: required"},
		{"drop device.type_id", func(ev map[string]any) { delete(obj(ev, "device"), "type_id") }, "device.type_id: required"},
		{"drop anomalies", func(ev map[string]any) {
			delete(ev["anomaly_analyses"].([]any)[0].(map[string]any), "anomalies")
		}, "anomaly_analyses[0].anomalies: required"},
		{"unknown attribute", func(ev map[string]any) { ev["vigil"] = "x" }, "vigil: not an attribute"},
		{"unknown nested attribute", func(ev map[string]any) { obj(ev, "device")["plant"] = "x" }, "device.plant: not an attribute"},
		{"profile attribute", func(ev map[string]any) { ev["cloud"] = map[string]any{} }, "cloud: not an attribute"},
		{"bad enum", func(ev map[string]any) { ev["severity_id"] = json.Number("7") }, "severity_id: 7 is not in the enum"},
		{"bad caption", func(ev map[string]any) { ev["severity"] = "High" }, `severity: got "High"; want "Critical"`},
		{"string for timestamp", func(ev map[string]any) { ev["time"] = "2026-11-21" }, "time: got string; want an integer"},
		{"float for integer", func(ev map[string]any) { ev["status_id"] = json.Number("1.5") }, "status_id: 1.5 is not"},
		{"object for array", func(ev map[string]any) { obj(ev, "finding_info")["types"] = "x" }, "finding_info.types: got string; want an array"},
		{"number for string", func(ev map[string]any) { ev["message"] = json.Number("1") }, "message: got json.Number; want a string"},
		{"wrong type_uid", func(ev map[string]any) { ev["type_uid"] = json.Number("200402") }, "type_uid: got 200402; want 200401"},
		{"wrong class_uid", func(ev map[string]any) { ev["class_uid"] = json.Number("2001") }, "class_uid: got 2001; want 2004"},
		{"entity constraint", func(ev map[string]any) { delete(obj(obj(ev, "metadata"), "product"), "name") }, "constraint at_least_one [name uid]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := decodeEvent(t, valid)
			tc.mutate(ev)
			errs := s.validateClass("detection_finding", ev)
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e, tc.want)
			}
			if !found {
				t.Errorf("got %q; want an error containing %q", errs, tc.want)
			}
		})
	}
}

func obj(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }

func FuzzOCSF(f *testing.F) {
	for _, n := range nasty {
		f.Add(n.s, n.s, n.s, 1.5, false, false)
	}
	f.Fuzz(func(t *testing.T, id, device, msg string, v float64, escalation, resolved bool) {
		m := output.Meta{Vendor: msg, Product: id, Version: device, Hostname: device}
		a := baseAlert()
		a.ID, a.Device, a.Detector, a.Signal, a.Message, a.Topic, a.Unit, a.Kind = id, device, msg, id, msg, msg, device, device
		a.Value, a.Observed, a.Mean, a.Escalation = v, v, -v, escalation
		if resolved {
			a.State = pipeline.Resolved
		}
		checkOCSF(t, a, format.NewOCSF(m).Append(nil, a))
	})
}
