package config

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

func TestDefaultsWithoutFile(t *testing.T) {
	f, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := f.DecoderConfig()
	if err != nil {
		t.Fatal(err)
	}
	if dc.MaxPayload != 64<<10 || dc.Signals["p"] != (pipeline.SignalSpec{Name: "pressure", Kind: pipeline.Pressure}) || len(dc.Signals) != 3 {
		t.Errorf("default decoder config %+v; want 64 KiB and the p/t/v mapping", dc)
	}
	if f.Detectors.Overpressure.Spike.Z != 6 || f.Detectors.Baseline.WarmupSamples != 300 {
		t.Errorf("default detectors %+v; want spike z 6, warm-up 300", f.Detectors)
	}
}

func TestClassOverlay(t *testing.T) {
	f, err := Parse([]byte(`
detectors:
  baseline: {warmup_samples: 100, warmup_duration: 2m}
  overpressure:
    limit: 8
    spike: {z: 5}
classes:
  - name: presses
    devices: ["press-*"]
    detectors:
      overpressure: {limit: 12}
  - name: plain
    devices: ["pump-*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	top := f.Detectors
	if *top.Overpressure.Limit != 8 || top.Overpressure.Spike.Z != 5 || top.Overpressure.Spike.Hold != 1 {
		t.Errorf("top-level overpressure %+v; want limit 8, z 5 and the default hold 1 kept", top.Overpressure)
	}
	if top.Baseline.WarmupDuration != 2*time.Minute {
		t.Errorf("warmup_duration = %v; want 2m", top.Baseline.WarmupDuration)
	}
	dc := f.DetectorConfig()
	if len(dc.Classes) != 2 {
		t.Fatalf("%d classes; want 2", len(dc.Classes))
	}
	presses := dc.Classes[0].Params
	if *presses.Overpressure.Limit != 12 {
		t.Errorf("class limit %v; want 12", *presses.Overpressure.Limit)
	}
	if presses.Overpressure.Spike.Z != 5 || presses.Baseline.WarmupSamples != 100 {
		t.Errorf("class did not inherit the top-level values: z %v warm-up %d; want 5 and 100", presses.Overpressure.Spike.Z, presses.Baseline.WarmupSamples)
	}
	if *top.Overpressure.Limit != 8 {
		t.Errorf("the class changed the top-level limit to %v", *top.Overpressure.Limit)
	}
	if plain := dc.Classes[1].Params; *plain.Overpressure.Limit != 8 {
		t.Errorf("class without overrides has limit %v; want the top-level 8", *plain.Overpressure.Limit)
	}
}

func TestSignalsReplaceDefaults(t *testing.T) {
	f, err := Parse([]byte("decoder:\n  signals:\n    pres: {name: pressure, kind: pressure}\n    temp_c: {kind: temperature}\n"))
	if err != nil {
		t.Fatal(err)
	}
	dc, err := f.DecoderConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Signals) != 2 || dc.Signals["pres"].Kind != pipeline.Pressure || dc.Signals["temp_c"].Name != "temp_c" {
		t.Errorf("signals %+v; want exactly pres→pressure and temp_c (named after its field)", dc.Signals)
	}
}

// TestTrafficAndFleetSections: the traffic section is per class, the fleet
// section global, both with their defaults.
func TestTrafficAndFleetSections(t *testing.T) {
	f, err := Parse([]byte("detectors:\n  traffic: {silence: {intervals: 8}}\nfleet: {max_new: 5}\nclasses:\n  - name: slow\n    devices: [\"meter-*\"]\n    detectors: {traffic: {enabled: false}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Detectors.Traffic.Silence.Intervals != 8 || f.Detectors.Traffic.Flood.Factor != 5 || f.Fleet.MaxNew != 5 || !f.Fleet.Enabled {
		t.Errorf("traffic %+v, fleet %+v; want silence.intervals 8 over the defaults, fleet max_new 5", f.Detectors.Traffic, f.Fleet)
	}
	cl := f.DetectorConfig().Classes[0].Params.Traffic
	if cl.Enabled || cl.Silence.Intervals != 8 {
		t.Errorf("class traffic %+v; want disabled, with the top-level silence.intervals 8", cl)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"decoder: {max_payload: -5}", "max_payload"},
		{"decoder:\n  signals:\n    a: {name: x, kind: pressure}\n    b: {name: x, kind: pressure}\n", `both map to signal "x"`},
		{"pipeline: {workers: -1}", "pipeline: workers"},
		{"source: {linger: 1s}", "source.linger: must be between 0s and 100ms, not 1s"},
		{"source: {linger: -1ms}", "source.linger"},
		{"detectors: {hysteresis: 2}", "hysteresis"},
		{"detectors:\n  thermal: {high: 10, low: 20}\n", "low (20) must be below high (10)"},
		{"detectors:\n  baseline: {half_life: 0}\n", "half_life"},
		{"detectors:\n  baseline: {warmup_duration: soon}\n", `detectors.baseline.warmup_duration (line 2): "soon" is not a duration`},
		{"classes:\n  - name: a\n    devices: [x]\n  - name: a\n    devices: [y]\n", "duplicate class name"},
		{"classes:\n  - name: a\n    devices: [x]\n    detectors: {overpressure: {spike: {zz: 1}}}\n", "classes[0].detectors.overpressure.spike.zz (line 4): unknown key"},
		{"nonsense: true", "nonsense (line 1): unknown key"},
		{"alerts:\n  nats: {url: \"nats://10.0.0.5:4222\"}\n", "alerts.nats.url: plaintext nats:// to 10.0.0.5 is refused"},
		{"detectors:\n  traffic: {flood: {factor: 1}}\n", "detectors: traffic: flood: need factor > 1"},
		{"detectors:\n  traffic: {identity: {topic_pattern: \"plant/+/x\"}}\n", "detectors: traffic: identity: topic_pattern"},
		{"classes:\n  - name: a\n    devices: [x]\n    detectors: {traffic: {silence: {intervals: 1}}}\n", "a: detectors: traffic: silence"},
		{"fleet: {max_new: 0}", "fleet: need"},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func TestSourceLinger(t *testing.T) {
	f, err := Parse([]byte("mqtt: {broker: \"mqtts://b:8883\", client_id: v, subscriptions: [plant/#]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Source.Linger != time.Millisecond {
		t.Errorf("default source.linger %v; want 1ms", f.Source.Linger)
	}
	f, err = Parse([]byte("source: {linger: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Source.Linger != 0 {
		t.Errorf("source.linger: 0s gave %v; want 0 (off)", f.Source.Linger)
	}
}

// TestClusterAndBridgeSections: the scale-out's sections decode inline
// into the jetstream package's types, and their errors name the key.
func TestClusterAndBridgeSections(t *testing.T) {
	f, err := Parse([]byte("cluster:\n  url: nats://127.0.0.1:4222\n  partitions: 24\n  replicas: 3\n  max_age: 24h\n  creds_file: /etc/vigil/nats.creds\nbridge:\n  max_pending: 100\n  tick: 2s\n  pack: 16\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Cluster.URL != "nats://127.0.0.1:4222" || f.Cluster.Partitions != 24 || f.Cluster.Replicas != 3 || f.Cluster.MaxAge != 24*time.Hour ||
		f.Bridge.MaxPending != 100 || f.Bridge.Tick != 2*time.Second || f.Bridge.Pack != 16 {
		t.Errorf("got cluster %+v, bridge %+v", f.Cluster, f.Bridge)
	}
	if got := f.Files()["cluster.creds_file"]; got != "/etc/vigil/nats.creds" {
		t.Errorf("Files: cluster.creds_file = %q", got)
	}
	for _, tc := range []struct{ text, want string }{
		{"cluster:\n  url: nats://broker.plant:4222\n", "cluster.url: plaintext nats:// to broker.plant is refused"},
		{"cluster:\n  url: tls://vigil:secret@nats:4222\n", "cluster.url: credentials must not be part of the URL"},
		{"cluster:\n  partitions: 0\n  lease: 100ms\n", "cluster.lease: 100ms: at least 1s"},
		{"cluster:\n  worker_id: a.b\n", "cluster.worker_id: \"a.b\""},
		{"cluster:\n  checkpoint_interval: 10ms\n", "cluster.checkpoint_interval: 10ms: at least 1s"},
		{"cluster:\n  url: tls://nats:4222\n  partitions: 2000\n", "cluster.partitions: 2000: want 1 to 1024"},
		{"bridge:\n  max_pending: -1\n", "bridge.max_pending: must not be negative"},
		{"bridge:\n  tick: 1ms\n", "bridge.tick: 1ms: at least 100ms"},
		{"bridge:\n  pack: 5000\n", "bridge.pack: 5000: want 1 to 4096"},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: got %v; want an error containing %q (and no password)", tc.text, err, tc.want)
		}
	}
}
