package mqtt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Broker = "mqtts://broker.example:8883"
	c.ClientID = "vigil-1"
	c.Username = "vigil"
	c.PasswordFile = "/run/secrets/mqtt"
	c.Subscriptions = []Subscription{{Filter: "plant/#", QoS: 1}}
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"zero durations take defaults", func(c *Config) { *c = Config{Broker: c.Broker, ClientID: "x"} }, ""},
		{"missing broker", func(c *Config) { c.Broker = "" }, "broker: required"},
		{"no scheme", func(c *Config) { c.Broker = "broker.example:8883" }, "broker:"},
		{"bad scheme", func(c *Config) { c.Broker = "http://broker.example" }, `unsupported scheme "http"`},
		{"credentials in URL", func(c *Config) { c.Broker = "mqtts://u:p@broker.example" }, "credentials must not be part of the URL"},
		{"path", func(c *Config) { c.Broker = "mqtts://broker.example/x" }, "no path"},
		{"bad port", func(c *Config) { c.Broker = "mqtts://broker.example:99999" }, "invalid port"},
		{"plaintext remote refused", func(c *Config) { c.Broker = "mqtt://broker.example" }, "allow_plaintext"},
		{"plaintext remote allowed", func(c *Config) { c.Broker = "mqtt://broker.example"; c.AllowPlaintext = true }, ""},
		{"plaintext loopback", func(c *Config) { c.Broker = "mqtt://127.0.0.1:1883" }, ""},
		{"plaintext localhost", func(c *Config) { c.Broker = "tcp://localhost" }, ""},
		{"plaintext ::1", func(c *Config) { c.Broker = "mqtt://[::1]:1883" }, ""},
		{"plaintext with tls files", func(c *Config) { c.Broker = "mqtt://localhost"; c.TLS.CAFile = "ca.pem" }, "tls: set, but broker"},
		{"missing client id", func(c *Config) { c.ClientID = "" }, "client_id: required"},
		{"client id NUL", func(c *Config) { c.ClientID = "a\x00b" }, "client_id: must be valid UTF-8"},
		{"two password sources", func(c *Config) { c.PasswordEnv = "PW" }, "password_file: set only one"},
		{"password without username", func(c *Config) { c.Username = "" }, "username: required"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls.cert_file"},
		{"tls 1.1", func(c *Config) { c.TLS.MinVersion = "1.1" }, "tls.min_version"},
		{"tls 1.3", func(c *Config) { c.TLS.MinVersion = "1.3" }, ""},
		{"bad filter", func(c *Config) { c.Subscriptions[0].Filter = "plant/#/x" }, "subscriptions[0].filter"},
		{"partial wildcard", func(c *Config) { c.Subscriptions[0].Filter = "plant/a+" }, "whole level"},
		{"empty filter", func(c *Config) { c.Subscriptions[0].Filter = "" }, "subscriptions[0].filter: empty"},
		{"qos 3", func(c *Config) { c.Subscriptions[0].QoS = 3 }, "subscriptions[0].qos"},
		{"negative keep alive", func(c *Config) { c.KeepAlive = -time.Second }, "keep_alive"},
		{"backoff max below min", func(c *Config) { c.ReconnectBackoff = Backoff{Min: time.Second, Max: time.Millisecond} }, "reconnect_backoff.max"},
		{"receive maximum too large", func(c *Config) { c.ReceiveMaximum = 70000 }, "receive_maximum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v; want no error", err)
			case tc.want != "" && err == nil:
				t.Fatalf("got no error; want one containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got %q; want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestConfigErrorsMaskCredentials: a broker URL with a password, parsable or
// not, is refused with the password masked, never repeated; so is a
// password written into password_env.
func TestConfigErrorsMaskCredentials(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct {
		broker, want string
		creds        bool // refused for carrying credentials (not for its form)
	}{
		{"mqtts://vigil:" + secret + "@broker.example:8883", `"mqtts://vigil:xxxxx@broker.example:8883"`, true},
		{"mqtts://vigil:" + secret + "@broker.example:port", `"mqtts://vigil:xxxxx@broker.example:port"`, true},
		{"mqtt://vigil:p@" + secret + "@host:port/%zz", `"mqtt://vigil:xxxxx@host:port/%zz"`, true},
		{"mqtts://vigil:" + secret + "%zz@broker.example", `"mqtts://vigil:xxxxx@broker.example"`, true},
		{"//vigil:" + secret + "@broker.example:8883", `"//vigil:xxxxx@broker.example:8883"`, true},
		{"mqtts://" + secret + "@broker.example", `"mqtts://xxxxx@broker.example"`, true},
		// url.Parse reads these as a fragment and a query.
		{"mqtts://vigil:12#" + secret + "@broker.example", `"mqtts://vigil:xxxxx@broker.example"`, false},
		{"mqtts://broker.example:8883/?password=" + secret, `"mqtts://broker.example:8883/?password=xxxxx"`, false},
	} {
		c := validConfig()
		c.Broker = tc.broker
		err := c.Validate()
		if err == nil {
			t.Errorf("broker %q: no error", tc.broker)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, secret) || !strings.HasPrefix(msg, "broker: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("broker %q: got %q; want the key named and the URL as %s, without the password", tc.broker, msg, tc.want)
		}
		if tc.creds && (!strings.Contains(err.Error(), "credentials must not be part of the URL") || !strings.Contains(err.Error(), "password_file or password_env")) {
			t.Errorf("broker %q: got %q; want credentials refused, pointing to password_file or password_env", tc.broker, err)
		}
		if _, err := NewPublisher(c, PublisherOptions{}); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("NewPublisher with broker %q: got %v; want an error without the password", tc.broker, err)
		}
	}
	c := validConfig()
	c.PasswordFile, c.PasswordEnv = "", secret+"!"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "password_env: not an environment variable name") {
		t.Errorf("password_env holding the password: got %v; want it refused without repeating it", err)
	}
}

func TestParseBroker(t *testing.T) {
	tests := []struct {
		in, addr, origin string
		tls              bool
	}{
		{"mqtts://broker.example", "broker.example:8883", "mqtts://broker.example:8883", true},
		{"ssl://10.0.0.1", "10.0.0.1:8883", "ssl://10.0.0.1:8883", true},
		{"TLS://h:1234", "h:1234", "tls://h:1234", true},
		{"mqtt://h", "h:1883", "mqtt://h:1883", false},
		{"tcp://[::1]", "[::1]:1883", "tcp://[::1]:1883", false},
	}
	for _, tc := range tests {
		b, err := parseBroker(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if b.addr != tc.addr || b.origin != tc.origin || b.tls != tc.tls {
			t.Errorf("%s: got %+v; want addr %s origin %s tls %v", tc.in, b, tc.addr, tc.origin, tc.tls)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true,
		"::ffff:127.0.0.1": true, "10.0.0.1": false, "broker.example": false, "localhost.example": false, "0.0.0.0": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v; want %v", host, got, want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	text := `
broker: mqtts://broker.example
client_id: vigil-1
username: vigil
password_file: /run/secrets/mqtt
tls: {ca_file: /etc/vigil/ca.pem, min_version: "1.3"}
subscriptions:
  - plant/#
  - {filter: "site/+/status", qos: 0}
  - {filter: "site/+/alarm"}
keep_alive: 45s
reconnect_backoff: {max: 1m}
`
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Subscription{{"plant/#", 1}, {"site/+/status", 0}, {"site/+/alarm", 1}}
	if len(c.Subscriptions) != len(want) {
		t.Fatalf("got %v; want %v", c.Subscriptions, want)
	}
	for i := range want {
		if c.Subscriptions[i] != want[i] {
			t.Errorf("subscriptions[%d] = %+v; want %+v", i, c.Subscriptions[i], want[i])
		}
	}
	if c.KeepAlive != 45*time.Second || c.ReconnectBackoff != (Backoff{Min: DefaultBackoffMin, Max: time.Minute, MaxUnreachable: DefaultBackoffDown}) ||
		c.SessionExpiry != DefaultSessionExpiry || c.TLS.MinVersion != "1.3" || c.ReceiveMaximum != DefaultReceiveMaximum {
		t.Errorf("defaults not kept or values not decoded: %+v", c)
	}

	bad := DefaultConfig()
	err := yaml.Unmarshal([]byte("subscriptions: [{filter: a, qos: 1, retain: true}]"), &bad)
	if err == nil || !strings.Contains(err.Error(), `unknown subscription key "retain"`) {
		t.Errorf("got %v; want an unknown key error", err)
	}
}

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	for content, want := range map[string]string{"s3cret\n": "s3cret", "s3cret\r\n": "s3cret", "s3 cret ": "s3 cret "} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		c := Config{PasswordFile: file}
		got, err := c.password()
		if err != nil || string(got) != want {
			t.Errorf("password file %q: got %q, %v; want %q", content, got, err, want)
		}
	}
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Config{PasswordFile: file}).password(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: got %v; want an error", err)
	}
	if _, err := (&Config{PasswordFile: filepath.Join(dir, "nope")}).password(); err == nil || !strings.HasPrefix(err.Error(), "password_file: ") {
		t.Errorf("missing file: got %v; want a password_file error", err)
	}
	t.Setenv("VIGIL_TEST_MQTT_PW", "from-env")
	if got, err := (&Config{PasswordEnv: "VIGIL_TEST_MQTT_PW"}).password(); err != nil || string(got) != "from-env" {
		t.Errorf("env: got %q, %v", got, err)
	}
	if _, err := (&Config{PasswordEnv: "VIGIL_TEST_MQTT_UNSET"}).password(); err == nil || !strings.Contains(err.Error(), "not set") {
		t.Errorf("unset env: got %v", err)
	}
	if got, err := (&Config{}).password(); got != nil || err != nil {
		t.Errorf("no password: got %q, %v", got, err)
	}
}

func TestNewSourceFailsFastOnConfig(t *testing.T) {
	c := validConfig()
	c.Broker = "mqtt://broker.example:1883"
	_, err := NewSource(c, SourceOptions{})
	if err == nil || !strings.Contains(err.Error(), "plaintext connection to non-loopback host") || !strings.Contains(err.Error(), "allow_plaintext") {
		t.Errorf("plaintext: got %v", err)
	}
	c = validConfig()
	c.Subscriptions = nil
	if _, err := NewSource(c, SourceOptions{}); err == nil || !strings.Contains(err.Error(), "subscriptions") {
		t.Errorf("no subscriptions: got %v", err)
	}
	c = validConfig()
	c.PasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, err := NewSource(c, SourceOptions{}); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("missing password file: got %v", err)
	}
	c = validConfig()
	c.PasswordFile = ""
	c.TLS.CAFile = filepath.Join(t.TempDir(), "missing-ca.pem")
	if _, err := NewSource(c, SourceOptions{}); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("missing CA file: got %v", err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second}
	top := func(k int64) int64 { return k - 1 } // the largest jitter
	bottom := func(int64) int64 { return 0 }
	for n, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 8: 30 * time.Second, 100: 30 * time.Second} {
		if got := b.delay(n, top); got != want {
			t.Errorf("delay(%d) max = %v; want %v", n, got, want)
		}
		if got := b.delay(n, bottom); got != b.Min {
			t.Errorf("delay(%d) min = %v; want %v", n, got, b.Min)
		}
	}
}
