package mqtt

import (
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

func TestTopicTemplate(t *testing.T) {
	all := []string{"kind", "device", "severity", "detector"}
	a := pipeline.Alert{Kind: "overpressure", Device: "pump-7", Severity: pipeline.Critical, Detector: "overpressure.spike"}
	tests := []struct {
		tmpl   string
		device string
		want   string
	}{
		{DefaultAlertTopic, "pump-7", "vigil/alerts/overpressure/pump-7"},
		{"vigil/{severity}/{detector}/{device}", "pump-7", "vigil/critical/overpressure.spike/pump-7"},
		{"vigil/alerts/{device}-x", "pump-7", "vigil/alerts/pump-7-x"},
		{DefaultAlertTopic, "a/b", "vigil/alerts/overpressure/a_b"},
		{DefaultAlertTopic, "+", "vigil/alerts/overpressure/_"},
		{DefaultAlertTopic, "#", "vigil/alerts/overpressure/_"},
		{DefaultAlertTopic, "../../x/#", "vigil/alerts/overpressure/.._.._x__"},
		{DefaultAlertTopic, "", "vigil/alerts/overpressure/_"},
		{DefaultAlertTopic, "nul\x00", "vigil/alerts/overpressure/nul_"},
		{DefaultAlertTopic, "bad\xffutf8", "vigil/alerts/overpressure/bad_utf8"},
		{DefaultAlertTopic, "Pumpe-ä", "vigil/alerts/overpressure/Pumpe-ä"},
		{"{device}/alerts", "$SYS", "_SYS/alerts"},
	}
	for _, tc := range tests {
		tt, err := parseTopicTemplate(tc.tmpl, all, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		a.Device = tc.device
		if got := tt.render(&a); got != tc.want {
			t.Errorf("%q with device %q: got %q; want %q", tc.tmpl, tc.device, got, tc.want)
		}
	}

	for tmpl, want := range map[string]string{
		"":                      "empty",
		"vigil/{kind":           "unclosed",
		"vigil/kind}":           "unbalanced",
		"vigil/{site}/x":        "unknown placeholder {site}",
		"vigil/+/{device}":      "wildcards",
		"vigil/#":               "wildcards",
		"$SYS/x":                "reserved",
		"vigil/state":           "must contain {device}",
		"vigil/{kind}/{device}": "unknown placeholder {kind}",
	} {
		allowed := all
		var required []string
		if strings.HasPrefix(tmpl, "vigil/state") || strings.HasPrefix(tmpl, "vigil/{kind}") {
			allowed, required = []string{"device"}, []string{"device"}
		}
		if _, err := parseTopicTemplate(tmpl, allowed, required); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v; want an error containing %q", tmpl, err, want)
		}
	}
}
