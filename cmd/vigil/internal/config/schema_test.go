package config

import (
	"strings"
	"testing"
)

// TestDecodeErrorsNameKeyAndLine: every error of decoding (unknown keys,
// values of the wrong type, bad durations and sizes) names the key path and
// the file's line, at the top level, nested, inside lists, and inside the
// parts decoded from a node of their own (a class's detectors, an output).
func TestDecodeErrorsNameKeyAndLine(t *testing.T) {
	outputs := "alerts:\n" + //  1
		"  outputs:\n" + //        2
		"    - type: stdout\n" + // 3
		"    - type: webhook\n" + //4
		"      url:\n" + //         5
		"        - https://a\n" //  6
	classes := "pipeline:\n" + //  1
		"  workers: 2\n" + //       2
		"classes:\n" + //           3
		"  - name: presses\n" + //  4
		"    devices: [p1]\n" + //  5
		"    detectors:\n" + //     6
		"      overpressure:\n" + //7
		"        limit: 8\n" + //   8
		"      x: 1\n" //           9
	for _, tc := range []struct{ name, text, want string }{
		{"bad duration", "pipeline: {drain_timeout: 30 seconds}",
			`pipeline.drain_timeout (line 1): "30 seconds" is not a duration (use e.g. 30s, 1m30s)`},
		{"number as duration", "state:\n  keep: 2\n  interval: 300\n",
			`state.interval (line 3): 300 is not a duration (use e.g. 30s, 1m30s)`},
		{"string for an integer", "pipeline:\n  workers: four\n",
			`pipeline.workers (line 2): want an integer, got "four"`},
		{"string for a number", "detectors:\n  thermal:\n    high: hot\n",
			`detectors.thermal.high (line 3): want a number, got "hot"`},
		{"string for a bool", "decoder: {ignore_unmapped: maybe}",
			`decoder.ignore_unmapped (line 1): want true or false, got "maybe"`},
		{"scalar for a section", "pipeline: 4",
			`pipeline (line 1): want a section of keys (key: value), got 4`},
		{"scalar for a list", "state:\n  encryption:\n    key_file: k\n    old_key_files: old.key\n",
			`state.encryption.old_key_files (line 4): want a list, got "old.key"`},
		{"unknown top-level key", "\npipline: {workers: 2}",
			"pipline (line 2): unknown key (want one of: alerts, bridge, classes, cluster, decoder, detectors, fleet, metrics, mqtt, pipeline, source, state)"},
		{"unknown nested key", "pipeline:\n  workers: 2\n  wokers: 3\n",
			"pipeline.wokers (line 3): unknown key (want one of: batch_size, decoders, drain_timeout, max_devices, workers)"},
		{"inside a class's detectors", classes,
			"classes[0].detectors.x (line 9): unknown key (want one of: …"},
		{"wrong type in a class's detectors", strings.Replace(classes, "limit: 8", "limit: high", 1),
			"classes[0].detectors.overpressure.limit (line 8): want a number, got \"high\"\n" +
				"classes[0].detectors.x (line 9): unknown key (want one of: …"},
		{"inside an output", outputs,
			"alerts.outputs[1].url (line 5): want a string, got a list"},
		{"unknown key of an output", "alerts:\n  outputs:\n    - type: stdout\n    - type: file\n      path: a.jsonl\n      topic: x\n",
			"alerts.outputs[1].topic (line 6): unknown key (want one of: batch, format, fsync, leef_delimiter, name, path, retry, type)"},
		{"duration inside an output", "alerts:\n  outputs:\n    - type: stdout\n      batch: {period: soon}\n",
			`alerts.outputs[0].batch.period (line 4): "soon" is not a duration (use e.g. 30s, 1m30s)`},
		{"bad size", "alerts:\n  journal:\n    max_size: 12XB\n",
			`alerts.journal.max_size (line 3): "12XB" is not a size (want bytes, or a number with KiB, MiB or GiB)`},
		{"bad output type", "alerts:\n  outputs:\n    - type: kafka\n",
			`alerts.outputs[0].type (line 3): "kafka" is not an output type (want one of elasticsearch, file, hec, mqtt, nats, stdout, syslog, webhook)`},
		{"in a map", "decoder:\n  signals:\n    p: {name: pressure, kind: [x]}\n",
			"decoder.signals.p.kind (line 3): want a string, got a list"},
		{"every error, in file order", "pipeline:\n  workers: four\n  drain_timeout: 1 minute\nstate: {keep: many}\n",
			"pipeline.workers (line 2): want an integer, got \"four\"\n" +
				"pipeline.drain_timeout (line 3): \"1 minute\" is not a duration (use e.g. 30s, 1m30s)\n" +
				"state.keep (line 4): want an integer, got \"many\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			// The detectors' keys change as detectors are added: "…" ends
			// the comparison there.
			want, prefix := strings.CutSuffix(tc.want, "…")
			if err == nil || !prefix && err.Error() != want || prefix && !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
}

// TestCheckAcceptsWhatDecodes: the check is no stricter than the decoder:
// the forms YAML accepts (null, merge keys, aliases, numbers for strings,
// subscriptions as strings or mappings) pass.
func TestCheckAcceptsWhatDecodes(t *testing.T) {
	for _, text := range []string{
		"pipeline: ~\nstate: {interval: '0'}\n",
		"x: &d {drain_timeout: 5s}\npipeline: *d\n",
		"mqtt: {broker: 'mqtts://b:8883', client_id: v, subscriptions: [plant/#, {filter: a/#, qos: 0}]}\n",
		"alerts:\n  outputs: [{type: file, path: 12, batch: {count: 2.0}}]\n",
		"# only a comment\n",
	} {
		if _, err := Parse([]byte(text)); err != nil && !strings.Contains(err.Error(), "x (line 1): unknown key") {
			t.Errorf("Parse(%q): %v; want accepted", text, err)
		}
	}
}
