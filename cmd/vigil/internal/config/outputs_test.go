package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestOutputsConfig(t *testing.T) {
	f, err := Parse([]byte(`
alerts:
  journal: {dir: /var/lib/vigil/journal, fsync: 250ms, segment_size: 4MiB, max_size: 2GiB, when_full: drop_oldest}
  file: /tmp/alerts.jsonl
  outputs:
    - {type: file, name: cef-file, format: cef, path: /tmp/cef.log, batch: {count: 50, period: 200ms}, retry: {initial: 1s, max: 1m}}
    - {type: stdout, format: leef, leef_delimiter: "0x09"}
    - {type: syslog, name: qradar, format: leef, address: "siem.plant:6514", tls: {ca_file: /etc/vigil/ca.pem}}
`))
	if err != nil {
		t.Fatal(err)
	}
	jc, err := f.Alerts.Journal.JournalConfig()
	if err != nil || jc.SyncEvery != 250*time.Millisecond || jc.SegmentSize != 4<<20 || jc.MaxSize != 2<<30 || jc.WhenFull != "drop_oldest" {
		t.Errorf("journal: got %+v, %v", jc, err)
	}
	outs, err := f.AllOutputs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range outs {
		names = append(names, o.Name+"/"+o.Type+"/"+FormatOf(o))
	}
	if got, want := strings.Join(names, " "), "cef-file/file/cef stdout/stdout/leef qradar/syslog/leef file/file/json"; got != want {
		t.Errorf("got outputs %s; want %s", got, want)
	}
	fo := outs[0].Settings.(*FileOutput)
	if fo.Path != "/tmp/cef.log" || outs[0].Batch.Count != 50 || outs[0].Batch.Period != 200*time.Millisecond || outs[0].Retry.Max != time.Minute {
		t.Errorf("got %+v %+v; want the file output's settings", outs[0], fo)
	}
}

func TestOutputsConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"alerts:\n  outputs: [{type: kafka}]", `alerts.outputs[0].type (line 2): "kafka" is not an output type`},
		{"alerts:\n  outputs: [{type: file, path: x, topic: y}]", "alerts.outputs[0].topic (line 2): unknown key"},
		{"alerts:\n  outputs: [{type: file}]", "alerts.outputs[0] (file).path: required"},
		{"alerts:\n  outputs: [{type: stdout, name: a}, {type: file, name: a, path: x}]", `name "a" is also used`},
		{"alerts:\n  file: x\n  outputs: [{type: stdout, name: file}]", "alerts.file: an output in alerts.outputs is named \"file\" too"},
		{"alerts:\n  outputs: [{type: stdout, format: xml}]", `format: "xml"`},
		{"mqtt: {broker: mqtts://b:8883, client_id: v}\nalerts:\n  outputs: [{type: mqtt, format: cef}]", "a mqtt output carries json"},
		{"alerts:\n  outputs: [{type: mqtt}]", "has none"},
		{"alerts:\n  outputs: [{type: stdout, leef_delimiter: \"=\", format: leef}]", "delimiter"},
		{"alerts:\n  outputs: [{type: stdout, batch: {count: -1}}]", "batch: count"},
		{"alerts:\n  outputs: [{type: stdout, name: ../x}]", "name"},
		{"alerts:\n  journal: {fsync: sometimes}", "alerts.journal.fsync"},
		{"alerts:\n  journal: {max_size: 12XB}", "is not a size"},
		{"alerts:\n  journal: {segment_size: 1GiB, max_size: 1GiB}", "two segments"},
		{"alerts:\n  journal: {when_full: panic}", "when_full"},
		{"alerts:\n  nats: {url: \"nats://10.0.0.5:4222\"}", "alerts.nats.url: plaintext"},
		{"alerts:\n  outputs: [{type: syslog, address: \"10.0.0.9:514\", network: tcp}]", "plaintext"},
		{"alerts:\n  outputs: [{type: syslog, address: \"siem:6514\", facility: kernel9}]", "facility"},
		{"alerts:\n  outputs: [{type: hec, url: \"https://splunk:8088\"}]", "token"},
		{"alerts:\n  outputs: [{type: elasticsearch, url: \"http://10.1.1.1:9200\"}]", "plaintext"},
		{"alerts:\n  outputs: [{type: webhook, url: \"https://hooks\", per_alert: maybe}]", `alerts.outputs[0].per_alert (line 2): want true or false, got "maybe"`},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): got %v; want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("x"), 0o600)
	f, err := Parse([]byte("mqtt: {broker: mqtts://b:8883, client_id: v, username: u, password_file: " + filepath.Join(dir, "missing") + ", tls: {ca_file: " + ca + "}}\n" +
		"alerts:\n  nats: {url: tls://n:4222, creds_file: " + filepath.Join(dir, "nats.creds") + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = f.CheckFiles()
	if err == nil || !strings.Contains(err.Error(), "mqtt.password_file") || !strings.Contains(err.Error(), "alerts.nats.creds_file") || strings.Contains(err.Error(), "ca_file") {
		t.Errorf("got %v; want the missing password_file and creds_file named, not the CA that exists", err)
	}
}

// TestSecretWarnings: a secret file (password, private key, token, NATS
// credentials, state encryption key, old or new) that group or others may
// read is named by its key path with the chmod that fixes it; public
// material (CA, certificate) and files only the owner may read are not.
func TestSecretWarnings(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits do not say who may read a file on Windows")
	}
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := "mqtt:\n  broker: mqtts://b:8883\n  client_id: v\n  username: u\n" +
		"  password_file: " + file("mqtt.pass", 0o644) + "\n" +
		"  tls: {ca_file: " + file("ca.pem", 0o644) + ", cert_file: " + file("cert.pem", 0o644) + ", key_file: " + file("key.pem", 0o640) + "}\n" +
		"state:\n  encryption:\n    key_file: " + file("state.key", 0o600) + "\n    old_key_files: [" + file("old.key", 0o604) + "]\n" +
		"alerts:\n  nats: {url: tls://n:4222, creds_file: " + file("nats.creds", 0o400) + "}\n" +
		"  outputs:\n    - {type: webhook, url: https://hooks.example, secret_file: " + file("hook.secret", 0o660) + "}\n"
	f, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	got := f.SecretWarnings()
	want := []string{
		"alerts.outputs[0].secret_file: the secret file " + filepath.Join(dir, "hook.secret") + " is open to its group (mode 0660); restrict it with: chmod 600 " + filepath.Join(dir, "hook.secret"),
		"mqtt.password_file: the secret file " + filepath.Join(dir, "mqtt.pass") + " is open to group and others (mode 0644); restrict it with: chmod 600 " + filepath.Join(dir, "mqtt.pass"),
		"mqtt.tls.key_file: the secret file " + filepath.Join(dir, "key.pem") + " is open to its group (mode 0640); restrict it with: chmod 600 " + filepath.Join(dir, "key.pem"),
		"state.encryption.old_key_files[0]: the secret file " + filepath.Join(dir, "old.key") + " is open to others (mode 0604); restrict it with: chmod 600 " + filepath.Join(dir, "old.key"),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
