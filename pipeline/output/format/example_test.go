package format_test

import (
	"fmt"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
)

// exampleMeta and exampleAlert are the sample of docs/ALERTS.md, used by the
// examples and by the docs/SIEM.md check.
var exampleMeta = output.Meta{Vendor: "Vigil", Product: "Vigil", Version: "0.4.0", Hostname: "edge-gw-1"}

func exampleAlert() *pipeline.Alert {
	t := time.Date(2026, 11, 21, 10, 10, 10, 576e6, time.UTC)
	return &pipeline.Alert{
		ID: "8cdd14602ade09bc", Time: t.UnixNano(), Started: t.Add(-time.Second).UnixNano(),
		Device: "sensor-node-01", Topic: "plant/line-a/sensor-node-01/telemetry",
		Kind: "overpressure", Detector: "overpressure.spike",
		Severity: pipeline.Critical, State: pipeline.Firing, Signal: "pressure",
		Value: 6.31, Threshold: 4.63, Unit: "bar", Observed: 6.31, Mean: 4.27, Std: 0.061, Score: 5.6,
		Message: "pressure 6.31 bar is above the learned band: threshold 4.63 bar (baseline mean 4.27 bar, std 0.061 bar), 5.6× the allowed deviation.",
	}
}

func ExampleCEF() {
	f := format.NewCEF(exampleMeta)
	fmt.Println(string(f.Append(nil, exampleAlert())))
	// Output:
	// CEF:0|Vigil|Vigil|0.4.0|overpressure.spike|overpressure.spike on pressure|9|rt=1795255810576 start=1795255809576 externalId=8cdd14602ade09bc deviceExternalId=sensor-node-01 dvchost=edge-gw-1 cat=overpressure msg=pressure 6.31 bar is above the learned band: threshold 4.63 bar (baseline mean 4.27 bar, std 0.061 bar), 5.6× the allowed deviation. cs1Label=signal cs1=pressure cs2Label=detector cs2=overpressure.spike cs3Label=topic cs3=plant/line-a/sensor-node-01/telemetry cs4Label=unit cs4=bar cs5Label=eventId cs5=8cdd14602ade09bc-firing-1795255810576000000-critical cs6Label=observed cs6=6.31 cfp1Label=value cfp1=6.31 cfp2Label=threshold cfp2=4.63 cfp3Label=baselineMean cfp3=4.27 cfp4Label=score cfp4=5.6 act=firing
}

func ExampleLEEF() {
	f, err := format.NewLEEF(exampleMeta, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(f.Append(nil, exampleAlert())))
	// Output:
	// LEEF:2.0|Vigil|Vigil|0.4.0|overpressure.spike|^|devTime=2026-11-21T10:10:10.576+0000^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^sev=9^cat=overpressure^act=firing^alertId=8cdd14602ade09bc^eventId=8cdd14602ade09bc-firing-1795255810576000000-critical^device=sensor-node-01^topic=plant/line-a/sensor-node-01/telemetry^detector=overpressure.spike^signal=pressure^value=6.31^threshold=4.63^unit=bar^observed=6.31^baselineMean=4.27^baselineStd=0.061^score=5.6^startTime=2026-11-21T10:10:09.576+0000^msg=pressure 6.31 bar is above the learned band: threshold 4.63 bar (baseline mean 4.27 bar, std 0.061 bar), 5.6× the allowed deviation.^obsHost=edge-gw-1
}

func ExampleECS() {
	f := format.NewECS(exampleMeta)
	fmt.Println(string(f.Append(nil, exampleAlert())))
	// Output:
	// {"@timestamp":"2026-11-21T10:10:10.576Z","message":"pressure 6.31 bar is above the learned band: threshold 4.63 bar (baseline mean 4.27 bar, std 0.061 bar), 5.6× the allowed deviation.","ecs":{"version":"8.11.0"},"event":{"kind":"alert","category":["host"],"type":["info"],"severity":9,"id":"8cdd14602ade09bc-firing-1795255810576000000-critical","action":"firing","start":"2026-11-21T10:10:09.576Z","module":"vigil","dataset":"vigil.alert"},"observer":{"vendor":"Vigil","product":"Vigil","version":"0.4.0","hostname":"edge-gw-1","type":"ids"},"rule":{"id":"overpressure.spike","name":"overpressure.spike","category":"overpressure","ruleset":"Vigil"},"device":{"id":"sensor-node-01"},"vigil":{"alert_id":"8cdd14602ade09bc","state":"firing","escalation":false,"severity":"critical","kind":"overpressure","detector":"overpressure.spike","signal":"pressure","topic":"plant/line-a/sensor-node-01/telemetry","value":6.31,"threshold":4.63,"unit":"bar","observed":6.31,"baseline":{"mean":4.27,"std":0.061},"score":5.6}}
}

func ExampleOCSF() {
	f := format.NewOCSF(exampleMeta)
	fmt.Println(string(f.Append(nil, exampleAlert())))
	// Output:
	// {"activity_id":1,"activity_name":"Create","category_uid":2,"category_name":"Findings","class_uid":2004,"class_name":"Detection Finding","type_uid":200401,"type_name":"Detection Finding: Create","severity_id":5,"severity":"Critical","status_id":1,"status":"New","is_alert":true,"time":1795255810576,"start_time":1795255809576,"message":"pressure 6.31 bar is above the learned band: threshold 4.63 bar (baseline mean 4.27 bar, std 0.061 bar), 5.6× the allowed deviation.","metadata":{"version":"1.8.0","uid":"8cdd14602ade09bc-firing-1795255810576000000-critical","product":{"name":"Vigil","vendor_name":"Vigil","version":"0.4.0"}},"finding_info":{"uid":"8cdd14602ade09bc","title":"overpressure.spike on pressure","desc":"pressure 6.31 bar is above the learned band: threshold 4.63 bar (baseline mean 4.27 bar, std 0.061 bar), 5.6× the allowed deviation.","types":["overpressure"],"created_time":1795255809576,"first_seen_time":1795255809576,"last_seen_time":1795255810576,"analytic":{"uid":"overpressure.spike","name":"overpressure.spike","category":"overpressure","type_id":3,"type":"Statistical"}},"device":{"type_id":7,"type":"IOT","uid":"sensor-node-01","name":"sensor-node-01"},"anomaly_analyses":[{"analysis_targets":[{"name":"sensor-node-01","type":"Device"}],"anomalies":[{"observation_parameter":"pressure","observation_type":"overpressure.spike","observations":[{"value":"6.31"}]}],"baselines":[{"observation_parameter":"pressure mean","observation_type":"exponentially weighted mean","observations":[{"value":"4.27"}]},{"observation_parameter":"pressure std","observation_type":"exponentially weighted standard deviation","observations":[{"value":"0.061"}]}]}],"unmapped":{"vigil":{"alert_id":"8cdd14602ade09bc","state":"firing","escalation":false,"severity":"critical","detector":"overpressure.spike","signal":"pressure","topic":"plant/line-a/sensor-node-01/telemetry","value":6.31,"threshold":4.63,"unit":"bar","observed":6.31,"score":5.6,"observer_hostname":"edge-gw-1"}}}
}
