package format

import (
	"strconv"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// OCSFVersion is the OCSF schema version the OCSF events conform to
// (metadata.version). The tests validate against this release's published
// schema files in testdata.
const OCSFVersion = "1.8.0"

// OCSF Detection Finding identifiers (Findings category 2, class 4).
const (
	ocsfCategoryUID = 2
	ocsfClassUID    = 2004
)

// OCSF renders an alert as an OCSF Detection Finding (class_uid 2004): a
// first firing creates the finding (activity Create, type_uid 200401), an
// escalation updates it (Update, 200402), resolution closes it (Close,
// 200403). The episode ID is finding_info.uid, so a consumer folds the
// transitions into one finding. Baseline and observation go in
// anomaly_analyses, the detector in finding_info.analytic, the plant device
// in device, and what OCSF has no attribute for under unmapped.vigil. See
// the package documentation for the mapping. Create one with NewOCSF.
type OCSF struct {
	product []byte // `"product":{…}`
	host    string
}

// NewOCSF returns an OCSF formatter that names Vigil with m.
func NewOCSF(m output.Meta) *OCSF {
	m = withDefaults(m)
	o := jsonObject{b: []byte(`"product":`)}
	o.open()
	o.str("name", m.Product)
	o.str("vendor_name", m.Vendor)
	o.str("version", m.Version)
	o.close()
	return &OCSF{product: o.b, host: m.Hostname}
}

// ocsfSeverity maps the grade onto severity_id: warning 3 Medium, critical
// 5 Critical. A resolved transition keeps the grade of its finding.
func ocsfSeverity(s pipeline.Severity) (int64, string) {
	switch s {
	case pipeline.Warning:
		return 3, "Medium"
	case pipeline.Critical:
		return 5, "Critical"
	}
	return 0, "Unknown"
}

// ocsfActivity maps the transition onto activity_id.
func ocsfActivity(a *pipeline.Alert) (int64, string) {
	switch {
	case a.State == pipeline.Resolved:
		return 3, "Close"
	case a.Escalation:
		return 2, "Update"
	}
	return 1, "Create"
}

// Append implements output.Formatter.
func (f *OCSF) Append(dst []byte, a *pipeline.Alert) []byte {
	act, actName := ocsfActivity(a)
	sev, sevName := ocsfSeverity(a.Severity)
	started, t := epochMillis(a.Started), epochMillis(a.Time)

	o := jsonObject{b: dst}
	o.open()
	o.int("activity_id", act)
	o.str("activity_name", actName)
	o.int("category_uid", ocsfCategoryUID)
	o.str("category_name", "Findings")
	o.int("class_uid", ocsfClassUID)
	o.str("class_name", "Detection Finding")
	o.int("type_uid", ocsfClassUID*100+act)
	o.key("type_name")
	o.b = append(o.b, `"Detection Finding: `...)
	o.b = append(o.b, actName...)
	o.b = append(o.b, '"')
	o.int("severity_id", sev)
	o.str("severity", sevName)
	if a.State == pipeline.Resolved {
		o.int("status_id", 4)
		o.str("status", "Resolved")
	} else {
		o.int("status_id", 1)
		o.str("status", "New")
		o.bool("is_alert", true)
	}
	o.int("time", t)
	o.int("start_time", started)
	if a.State == pipeline.Resolved {
		o.int("end_time", t)
	}
	o.str("message", a.Message)

	o.object("metadata")
	o.str("version", OCSFVersion)
	o.key("uid")
	o.b = append(o.b, '"')
	o.b = appendEventIDJSON(o.b, a)
	o.b = append(o.b, '"', ',')
	o.b = append(o.b, f.product...)
	o.close()

	o.object("finding_info")
	o.str("uid", a.ID)
	o.key("title")
	o.b = appendJSONTitle(o.b, a)
	o.str("desc", a.Message)
	if a.Kind != "" {
		o.key("types")
		o.b = append(o.b, '[')
		o.b = appendJSONString(o.b, a.Kind)
		o.b = append(o.b, ']')
	}
	o.int("created_time", started)
	o.int("first_seen_time", started)
	o.int("last_seen_time", t)
	o.object("analytic")
	o.str("uid", ruleName(a))
	o.str("name", ruleName(a))
	o.strOpt("category", a.Kind)
	o.int("type_id", 3)
	o.str("type", "Statistical")
	o.close()
	o.close()

	if a.Device != "" {
		o.object("device")
		o.int("type_id", 7)
		o.str("type", "IOT")
		o.str("uid", a.Device)
		o.str("name", a.Device)
		o.close()
	}

	o.key("anomaly_analyses")
	o.b = append(o.b, '[')
	o.open()
	o.key("analysis_targets")
	o.b = append(o.b, '[')
	o.open()
	if a.Device != "" {
		o.str("name", a.Device)
		o.str("type", "Device")
	} else {
		o.str("name", "fleet")
		o.str("type", "Fleet")
	}
	o.close()
	o.b = append(o.b, ']')
	param := a.Signal
	if param == "" {
		param = a.Kind
	}
	o.key("anomalies")
	o.b = append(o.b, '[')
	o.open()
	o.str("observation_parameter", param)
	o.str("observation_type", ruleName(a))
	o.key("observations")
	o.b = appendObservation(o.b, a.Observed)
	o.close()
	o.b = append(o.b, ']')
	o.key("baselines")
	o.b = append(o.b, '[')
	o.open()
	o.key("observation_parameter")
	o.b = appendJSONSuffixed(o.b, param, " mean")
	o.str("observation_type", "exponentially weighted mean")
	o.key("observations")
	o.b = appendObservation(o.b, a.Mean)
	o.close()
	o.b = append(o.b, ',')
	o.open()
	o.key("observation_parameter")
	o.b = appendJSONSuffixed(o.b, param, " std")
	o.str("observation_type", "exponentially weighted standard deviation")
	o.key("observations")
	o.b = appendObservation(o.b, a.Std)
	o.close()
	o.b = append(o.b, ']')
	o.close()
	o.b = append(o.b, ']')

	o.object("unmapped")
	o.object("vigil")
	o.str("alert_id", a.ID)
	o.str("state", a.State.String())
	o.bool("escalation", a.Escalation)
	o.str("severity", a.Severity.String())
	o.strOpt("detector", a.Detector)
	o.strOpt("signal", a.Signal)
	o.strOpt("topic", a.Topic)
	o.num("value", a.Value)
	o.num("threshold", a.Threshold)
	o.strOpt("unit", a.Unit)
	o.num("observed", a.Observed)
	o.num("score", a.Score)
	o.strOpt("observer_hostname", f.host)
	o.close()
	o.close()

	o.close()
	return o.b
}

// appendObservation writes a one-element observations array; OCSF types
// observation.value as a string, so NaN and ±Inf are spelt as Go does.
func appendObservation(dst []byte, v float64) []byte {
	dst = append(dst, `[{"value":"`...)
	if finite(v) {
		dst = appendNumber(dst, v)
	} else {
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	return append(dst, `"}]`...)
}

// appendJSONTitle writes the alert's title as a JSON string.
func appendJSONTitle(dst []byte, a *pipeline.Alert) []byte {
	dst = append(dst, '"')
	dst = appendJSONChars(dst, ruleName(a))
	if a.Signal != "" {
		dst = append(dst, " on "...)
		dst = appendJSONChars(dst, a.Signal)
	}
	return append(dst, '"')
}

// appendJSONSuffixed writes the JSON string s+suffix, where suffix is plain
// text that needs no escape.
func appendJSONSuffixed(dst []byte, s, suffix string) []byte {
	dst = append(dst, '"')
	dst = appendJSONChars(dst, s)
	dst = append(dst, suffix...)
	return append(dst, '"')
}
