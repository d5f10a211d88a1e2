package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCredentialsInURLs: a URL with a password, in any section, is refused
// naming the key path and where credentials go, and no error repeats the
// password, including URLs url.Parse rejects (its errors quote the URL
// whole). Each file goes through Load, as "vigil run" and "config check"
// read it.
func TestCredentialsInURLs(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct{ name, text, want string }{
		{"mqtt broker, does not parse",
			"mqtt: {broker: \"mqtt://vigil:p@" + secret + "@broker.plant:port/%zz\", client_id: v}\n",
			`mqtt.broker: credentials must not be part of the URL ("mqtt://vigil:xxxxx@broker.plant:port/%zz"): set username, and password_file or password_env`},
		{"mqtt broker, parses",
			"mqtt: {broker: \"mqtts://vigil:" + secret + "@broker.plant:8883\", client_id: v}\n",
			`mqtt.broker: credentials must not be part of the URL ("mqtts://vigil:xxxxx@broker.plant:8883")`},
		{"nats output",
			"alerts:\n  outputs:\n    - {type: nats, name: bus, url: \"tls://vigil:" + secret + "@nats.plant:port\"}\n",
			`alerts.outputs[0] (bus).url: credentials must not be part of the URL ("tls://vigil:xxxxx@nats.plant:port"): put them in a NATS credentials file named by creds_file`},
		{"legacy nats",
			"alerts:\n  nats: {url: \"nats://" + secret + "@nats.plant:4222\"}\n",
			`alerts.nats.url: credentials must not be part of the URL ("nats://xxxxx@nats.plant:4222")`},
		{"hec",
			"alerts:\n  outputs:\n    - {type: hec, url: \"https://x:" + secret + "@splunk.plant:port\", token_file: /t}\n",
			`alerts.outputs[0] (hec).url: must not carry credentials ("https://x:xxxxx@splunk.plant:port"); use token_file or token_env`},
		{"elasticsearch",
			"alerts:\n  outputs:\n    - {type: elasticsearch, url: \"https://elastic:" + secret + "@es.plant:9200\"}\n",
			`alerts.outputs[0] (elasticsearch).url: must not carry credentials ("https://elastic:xxxxx@es.plant:9200"); use username with password_file or password_env, or api_key_file or api_key_env`},
		{"webhook",
			"alerts:\n  outputs:\n    - {type: webhook, url: \"https://?token=" + secret + "\"}\n",
			`alerts.outputs[0] (webhook).url: no host in "https://?token=xxxxx"`},
		{"syslog",
			"alerts:\n  outputs:\n    - {type: syslog, address: \"vigil:" + secret + "@siem.plant:6514\"}\n",
			`alerts.outputs[0] (syslog).address: "vigil:xxxxx@siem.plant:6514": credentials must not be part of the address`},
		{"a password in password_env",
			"mqtt: {broker: mqtts://b:8883, client_id: v, username: u, password_env: \"" + secret + "!\"}\n",
			"mqtt.password_env: not an environment variable name"},
		{"a key in key_env",
			"state:\n  encryption: {key_env: \"AGE-SECRET-KEY-1" + secret + "\"}\n",
			"state.encryption.key_env: not an environment variable name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vigil.yaml")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q repeats the secret", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q; want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestEveryLineNamesItsKey: a section's Validate joins its errors; each
// line names its key path, not only the first.
func TestEveryLineNamesItsKey(t *testing.T) {
	_, err := Parse([]byte("mqtt: {broker: \"mqtt://b.plant\", tls: {min_version: \"1.1\"}}\n" +
		"alerts:\n  outputs:\n    - {type: hec, url: \"ftp://splunk\"}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"mqtt.broker: plaintext connection",
		"mqtt.client_id: required",
		"mqtt.tls.min_version:",
		"alerts.outputs[0] (hec).url: scheme \"ftp\"",
		"alerts.outputs[0] (hec).token_file: required",
	} {
		found := false
		for _, line := range strings.Split(err.Error(), "\n") {
			found = found || strings.HasPrefix(line, want)
		}
		if !found {
			t.Errorf("no line starts with %q in:\n%v", want, err)
		}
	}
}
