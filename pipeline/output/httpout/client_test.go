package httpout

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  interface{ Validate() error }
		want string // in the error; "" for valid
	}{
		{name: "hec https", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://splunk.example:8088"}, TokenFile: "/t"}},
		{name: "hec plaintext remote", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "http://splunk.example:8088"}, TokenFile: "/t"}, want: `url: plaintext http:// to non-loopback host "splunk.example" refused`},
		{name: "hec plaintext remote allowed", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "http://10.0.0.5:8088", AllowPlaintext: true}, TokenFile: "/t"}},
		{name: "hec plaintext loopback", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "http://127.0.0.1:8088"}, TokenFile: "/t"}},
		{name: "hec plaintext localhost", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "http://localhost:8088"}, TokenFile: "/t"}},
		{name: "hec plaintext ipv6 loopback", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "http://[::1]:8088"}, TokenFile: "/t"}},
		{name: "hec no token", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://s"}}, want: "token_file: required"},
		{name: "hec two tokens", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://s"}, TokenFile: "/t", TokenEnv: "T"}, want: "set only one"},
		{name: "hec query", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://s/?token=x"}, TokenFile: "/t"}, want: "url: must not have a query"},
		{name: "hec negative ack timeout", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://s"}, TokenFile: "/t", AckTimeout: -1}, want: "ack_timeout"},
		{name: "no url", cfg: &WebhookConfig{}, want: "url: required"},
		{name: "credentials in url", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://user:" + webhookToken + "@hook.example/"}}, want: "url: must not carry credentials"},
		// A URL with credentials that does not parse, and a query without a
		// host: refused without repeating the secret, pointing to the keys
		// that hold this output's credentials.
		{name: "hec credentials in a bad url", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://user:" + hecToken + "@splunk.example:port"}, TokenFile: "/t"}, want: `url: must not carry credentials ("https://user:xxxxx@splunk.example:port"); use token_file or token_env`},
		{name: "bulk credentials in url", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://elastic:" + esPassword + "@es:9200"}}, want: "use username with password_file or password_env, or api_key_file or api_key_env"},
		{name: "token in query, no host", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://?token=" + webhookToken}}, want: `url: no host in "https://?token=xxxxx"`},
		{name: "bad escape next to a token", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/%zz?token=" + webhookToken}}, want: `url: not a URL: parse "https://h/%zz?token=xxxxx": invalid URL escape "%zz"`},
		// A secret written where its variable's name belongs.
		{name: "hec token in token_env", cfg: &HECConfig{ClientConfig: ClientConfig{URL: "https://s"}, TokenEnv: hecToken}, want: "token_env: not an environment variable name"},
		{name: "webhook secret in secret_env", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/"}, SecretEnv: webhookSecret}, want: "secret_env: not an environment variable name"},
		{name: "bulk password in password_env", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Username: "u", PasswordEnv: esPassword}, want: "password_env: not an environment variable name"},
		{name: "ftp", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "ftp://hook.example/"}}, want: `scheme "ftp"`},
		{name: "tls with http", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "http://127.0.0.1/", TLS: output.TLS{CAFile: "/ca"}}}, want: "tls: set, but url is plaintext"},
		{name: "tls version", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/", TLS: output.TLS{MinVersion: "1.1"}}}, want: "tls.min_version"},
		{name: "negative timeout", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/", Timeout: -time.Second}}, want: "timeout"},
		{name: "authorization header", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/", Headers: map[string]string{"authorization": "Bearer " + webhookToken}}}, want: "headers: Authorization may not be set here"},
		{name: "signature header", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/", Headers: map[string]string{SignatureHeader: "x"}}}, want: "may not be set here"},
		{name: "header injection", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/", Headers: map[string]string{"X-Site": "a\r\nX-Evil: 1"}}}, want: "control characters"},
		{name: "bad header name", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/", Headers: map[string]string{"X Site": "a"}}}, want: "not a valid header name"},
		{name: "extra header", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/?q=1", Headers: map[string]string{"X-Site": "plant-7"}}}},
		{name: "webhook two secrets", cfg: &WebhookConfig{ClientConfig: ClientConfig{URL: "https://h/"}, SecretFile: "/s", SecretEnv: "S"}, want: "secret_file"},
		{name: "bulk defaults", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}}},
		{name: "bulk basic", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Username: "u", PasswordEnv: "P"}},
		{name: "bulk key and password", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, APIKeyFile: "/k", Username: "u", PasswordFile: "/p"}, want: "not both"},
		{name: "bulk password without user", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, PasswordFile: "/p"}, want: "username: required"},
		{name: "bulk user without password", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Username: "u"}, want: "password_file: required"},
		{name: "bulk upper-case index", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Index: "Vigil-{2006}"}, want: "must be lower case"},
		{name: "bulk month name", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Index: "vigil-{Jan}"}, want: "must be lower case"},
		{name: "bulk index chars", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Index: "vigil alerts"}, want: "must not contain"},
		{name: "bulk index start", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, Index: "_vigil"}, want: "must not start"},
		{name: "bulk op type", cfg: &BulkConfig{ClientConfig: ClientConfig{URL: "https://es:9200"}, OpType: "update"}, want: "op_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			noSecret(t, err)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	plain := ClientConfig{URL: "http://splunk.example:8088"}
	if _, err := NewHEC(HECConfig{ClientConfig: plain, TokenFile: "/t"}, jsonFormat, nil); err == nil {
		t.Error("NewHEC: got nil; want the plaintext URL refused")
	}
	if _, err := NewBulk(BulkConfig{ClientConfig: plain}, jsonFormat, nil); err == nil {
		t.Error("NewBulk: got nil; want the plaintext URL refused")
	}
	if _, err := NewWebhook(WebhookConfig{ClientConfig: plain}, jsonFormat, nil); err == nil {
		t.Error("NewWebhook: got nil; want the plaintext URL refused")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{v: "", ok: false},
		{v: "0", want: 0, ok: true},
		{v: " 120 ", want: 2 * time.Minute, ok: true},
		{v: "-5", ok: false},
		{v: "99999999999999999", want: MaxRetryAfter, ok: true},
		{v: "Sun, 03 May 2026 10:00:30 GMT", want: 30 * time.Second, ok: true},
		{v: "Sun, 03 May 2026 09:00:00 GMT", want: 0, ok: true},
		{v: "soon", ok: false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q): got %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	cl := &client{secrets: [][]byte{[]byte(hecToken)}}
	tests := []struct {
		status int
		want   string
	}{
		{200, "ok"}, {201, "ok"}, {204, "ok"},
		{301, "retry"}, {400, "permanent"}, {401, "retry"}, {403, "retry"},
		{404, "retry"}, {410, "permanent"}, {413, "permanent"}, {422, "permanent"},
		{408, "retry"}, {429, "retry"}, {500, "retry"}, {502, "retry"}, {503, "retry"}, {504, "retry"},
	}
	for _, tc := range tests {
		err := cl.classify(&reply{status: tc.status, header: http.Header{}, body: []byte("echo " + hecToken)}, "")
		noSecret(t, err)
		if got := kind(err); got != tc.want {
			t.Errorf("status %d: got %s (%v); want %s", tc.status, got, err, tc.want)
		}
	}
}

func TestSnippet(t *testing.T) {
	secrets := [][]byte{[]byte(hecToken)}
	long := strings.Repeat("é", 200) + hecToken // the secret straddles the cut
	tests := []struct{ in, want string }{
		{in: "  plain\r\ntext\t ", want: "plain  text"},
		{in: "token " + hecToken + " refused", want: "token [redacted] refused"},
		{in: "bad \xff byte", want: "bad \uFFFD byte"},
		{in: long, want: strings.Repeat("é", 128) + "…"},
	}
	for _, tc := range tests {
		if got := snippet([]byte(tc.in), secrets); got != tc.want {
			t.Errorf("snippet(%q): got %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestAppendEventAndString(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: `{"a":1}`, want: `{"a":1}`},
		{in: " {\"a\":\n1}\n", want: "{\"a\":\n1}"},
		{in: `{"a":`, want: `"{\"a\":"`},
		{in: `[1,2]`, want: `"[1,2]"`},
		{in: "CEF:0|V|V|1|x|\"q\"\\|\x01|3|\tä", want: `"CEF:0|V|V|1|x|\"q\"\\|\u0001|3|\tä"`},
		{in: "bad \xff", want: `"bad \ufffd"`},
	}
	for _, tc := range tests {
		got := string(appendEvent(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("appendEvent(%q): got %s; want %s", tc.in, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("appendEvent(%q) = %s: not JSON", tc.in, got)
		}
	}
}

func TestYAMLKeys(t *testing.T) {
	const doc = `
url: https://splunk.example:8088
tls: {ca_file: /etc/vigil/ca.pem, min_version: "1.3"}
timeout: 5s
allow_plaintext: false
headers: {X-Site: plant-7}
token_file: /run/secrets/hec
index: ot
sourcetype: vigil:ecs
ack: true
ack_timeout: 2m
`
	var c HECConfig
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://splunk.example:8088" || c.TLS.CAFile != "/etc/vigil/ca.pem" || c.TLS.MinVersion != "1.3" ||
		c.Timeout != 5*time.Second || c.Headers["X-Site"] != "plant-7" || c.TokenFile != "/run/secrets/hec" ||
		c.Index != "ot" || c.Sourcetype != "vigil:ecs" || !c.Ack || c.AckTimeout != 2*time.Minute {
		t.Errorf("got %+v; want every key decoded", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestTransportErrorHidesPath: a webhook URL may carry its secret in the
// path (Slack's and Teams' incoming webhooks do) or the query; a transport
// error names only the scheme and host.
func TestTransportErrorHidesPath(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the request fails in transport
	const pathSecret = "T0001-B0002-pathsecret"
	w, err := NewWebhook(WebhookConfig{ClientConfig: ClientConfig{URL: "http://" + addr + "/services/" + pathSecret + "?sig=" + webhookSecret, Timeout: time.Second}}, jsonFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, w)
	err = w.Write(context.Background(), []pipeline.Alert{{ID: "a", Device: "pump"}})
	if err == nil {
		t.Fatal("Write to a closed port succeeded")
	}
	noSecret(t, err)
	if msg := err.Error(); strings.Contains(msg, pathSecret) || !strings.Contains(msg, `"http://`+addr+`/…"`) {
		t.Errorf("got %q; want the URL shown as http://%s/… without its path", msg, addr)
	}
}
