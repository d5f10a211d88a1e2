package main

import (
	"fmt"
	"strings"
)

// topic is a "vigil help TOPIC" page.
type topic struct {
	name, summary string
	text          func() string
}

func helpTopics() []topic {
	return []topic{
		{"config", "the configuration file: where it is documented, its sections", configHelp},
		{"alerts", "the alert records Vigil writes: fields and where they are documented", alertsHelp},
		{"exit-codes", "what each exit status means", exitCodesHelp},
	}
}

// helpTopic returns the topic called name.
func helpTopic(name string) (topic, bool) {
	for _, t := range helpTopics() {
		if t.name == name {
			return t, true
		}
	}
	return topic{}, false
}

// examples are the lines "-h" shows after a command's flags.
func examples(command string) []string {
	switch command {
	case "run":
		return []string{
			"vigil run --config /etc/vigil/vigil.yaml",
			"vigil run --config vigil.yaml --state warm.state    # start from what a replay learned",
			"vigil config check vigil.yaml && vigil run --config vigil.yaml",
		}
	case "cluster status":
		return []string{
			"vigil cluster status --config /etc/vigil/cluster.yaml",
			"vigil cluster status --config cluster.yaml --json | jq '.unowned'",
		}
	case "bridge":
		return []string{
			"vigil bridge --config /etc/vigil/bridge.yaml    # mqtt, cluster and bridge sections",
		}
	case "replay":
		return []string{
			"vigil replay plant.log > alerts.jsonl",
			"vigil replay --labels plant.labels.json --report report.html plant.log",
			"vigil replay --config vigil.yaml --format csv --csv-device node_id historian/*.csv",
		}
	case "tune":
		return []string{
			"vigil simulate --out plant.log    # writes plant.log and plant.labels.json",
			"vigil tune --spec docs/plant-tune.yaml --labels plant.labels.json --out tuned.yaml plant.log",
			"vigil tune --config docs/nab-base.yaml --spec docs/nab-tune.yaml --labels combined_windows.json --out nab-tuned.yaml nab/*/*.csv",
		}
	case "simulate":
		return []string{
			"vigil simulate --out plant.log    # and plant.labels.json beside it",
			"vigil simulate --out plant.log --devices 50 --duration 2h --traffic all",
			"vigil simulate --broker mqtts://broker:8883 --config vigil.yaml --speed 10",
		}
	}
	return nil
}

// configSections describes each top-level key of the configuration file;
// a test checks it against config.File.
func configSections() [][2]string {
	return [][2]string{
		{"mqtt", "the broker connection of \"vigil run\": broker URL, client ID, credentials (*_file, *_env), TLS, subscriptions"},
		{"source", "how the MQTT source reads: topics to skip (vigil/ by default), buffering"},
		{"alerts", "where alerts go: the journal, alerts.outputs (file, stdout, mqtt, nats, hec, elasticsearch, webhook, syslog), dead letters"},
		{"state", "snapshots of what was learned, so a restart starts warm: file, interval, keep, encryption"},
		{"metrics", "the listener for /metrics, /healthz and /readyz"},
		{"decoder", "payload limits and the mapping of data fields to signals (p → pressure, …)"},
		{"pipeline", "workers, decoders, batch size, drain timeout, device cap"},
		{"detectors", "the detectors' parameters: baseline, overpressure, thermal, vibration, status, signal, traffic, hysteresis, …"},
		{"classes", "device classes (by device or topic pattern) whose detectors section overlays the top-level one"},
		{"fleet", "judging the fleet as a whole (new identities appearing at once)"},
		{"cluster", "the JetStream scale-out: NATS URL, credentials file, TLS, stream, partitions, replicas, retention (docs/SCALEOUT.md)"},
		{"bridge", "\"vigil bridge\": publishes in flight, ticks, drain timeout"},
	}
}

func configHelp() string {
	var b strings.Builder
	b.WriteString(`The configuration file

Vigil reads one YAML (or JSON) document of at most 1 MiB, given with --config
(run, replay, tune, state inspect, simulate --broker). Every key is optional and
has a default; unknown keys, keys given twice and values of the wrong type are
errors that name the key path and line, e.g.

  pipeline.drain_timeout (line 3): "30 seconds" is not a duration (use e.g. 30s, 1m30s)

Secrets never go in the file: credentials come from *_file or *_env keys.

Sections:
`)
	for _, s := range configSections() {
		fmt.Fprintf(&b, "  %-10s %s\n", s[0], s[1])
	}
	b.WriteString(`
Every key, annotated, with its default: docs/vigil.example.yaml.
Detectors and their parameters: docs/DETECTION.md. Outputs and SIEM formats:
docs/SIEM.md. Check a file (and the files it names) with:

  vigil config check vigil.yaml
`)
	return b.String()
}

// alertFields summarises the fields of an alert record; a test checks it
// against the table in docs/ALERTS.md.
func alertFields() [][2]string {
	return [][2]string{
		{"id", "episode ID, the same for every record of one episode"},
		{"time", "event time of the transition (RFC 3339 UTC)"},
		{"device", "the node_id (\"\" for traffic.spray, which concerns the fleet)"},
		{"topic", "the topic the device last published on, when known"},
		{"kind", "overpressure, thermal, vibration, status, signal, or traffic.*"},
		{"detector", "the check that fired, e.g. overpressure.spike, thermal.drift"},
		{"severity", "warning or critical"},
		{"state", "firing or resolved"},
		{"signal", "pressure, temperature, vibration, status, or a generic signal's name"},
		{"value", "the statistic compared with threshold"},
		{"threshold", "what value was compared with, in the same unit"},
		{"unit", "unit of value and threshold"},
		{"observed", "the signal's reading at the transition"},
		{"baseline", "the learned mean and std of the signal"},
		{"score", "how far past the threshold (1 at the threshold)"},
		{"message", "one human sentence with the above"},
		{"started", "event time of the episode's first anomalous sample"},
		{"escalation", "true on a firing record that raises an episode's severity"},
	}
}

func alertsHelp() string {
	var b strings.Builder
	b.WriteString(`Alerts

Vigil writes one JSON object per line and per transition of an alert episode
(firing, escalation, resolved; pending episodes are not emitted), with a fixed
field order: the same input gives the same bytes, in replay and live.

Fields:
`)
	for _, f := range alertFields() {
		fmt.Fprintf(&b, "  %-11s %s\n", f[0], f[1])
	}
	b.WriteString(`
The full schema, with an example and the traffic alerts: docs/ALERTS.md.
Where alerts go (journal, outputs, CEF/LEEF/ECS/OCSF for a SIEM): the alerts
section of docs/vigil.example.yaml, and docs/SIEM.md.
`)
	return b.String()
}

// exitCodesTable is the exit-status table of docs/CLI.md, verbatim: the one
// source of both (a test checks the document holds it).
const exitCodesTable = "| Status | Meaning |\n" +
	"|---|---|\n" +
	"| 0 | Done. Also after a clean stop on SIGINT (Ctrl-C) or SIGTERM, once the pipeline has drained, alerts are in the journal and the final snapshot is written. |\n" +
	"| 1 | A runtime error: an input or output file, the broker, the state file, a closed pipe (`--dead-letter /dev/stdout … \\| head`). The message on stderr says which. |\n" +
	"| 2 | Bad usage: an unknown command or flag, a bad flag value, missing arguments. |\n" +
	"| 3 | `replay`: the input's rejected frames reached `--max-rejected` (a fraction of the frames read; default 1, i.e. when every frame was rejected). Alerts, summary, evaluation and report are still written. A replay of the wrong file or format then fails a script instead of looking like a quiet plant. |\n" +
	"| 78 | The configuration is invalid or missing (`EX_CONFIG` of sysexits.h): a parse error, a bad value, a duplicate key, or, for `config check`, a file it names that cannot be read. A service manager can tell this from a transient failure: with systemd, `RestartPreventExitStatus=78` stops a restart loop on a bad config. |\n" +
	"| 141 | Killed by SIGPIPE: alerts were written to a standard output that was closed (`vigil replay plant.log \\| head -1`), as with other Unix tools. |\n" +
	"| 130, 143 | Killed by a *second* SIGINT or SIGTERM: the first asks for a clean stop; once it has, the next one ends the process at once, whatever it is waiting for (a stuck output, a full pipe). |\n"

// exitCodesHelp renders exitCodesTable for a terminal: the status, then
// its meaning wrapped beside it.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit status\n\n")
	for _, line := range strings.Split(strings.TrimSpace(exitCodesTable), "\n")[2:] {
		line = strings.ReplaceAll(line, `\|`, "\x00")
		cells := strings.Split(strings.Trim(line, "| "), "|")
		status := strings.TrimSpace(cells[0])
		meaning := strings.ReplaceAll(strings.TrimSpace(cells[1]), "\x00", "|")
		meaning = strings.NewReplacer("`", "", "*", "").Replace(meaning)
		for i, l := range wrap(meaning, 66) {
			if i == 0 {
				fmt.Fprintf(&b, "  %-9s %s\n", status, l)
			} else {
				fmt.Fprintf(&b, "  %-9s %s\n", "", l)
			}
		}
	}
	b.WriteString("\nThe same table is in docs/CLI.md.\n")
	return b.String()
}

// wrap breaks s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
