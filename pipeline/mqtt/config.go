package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-iot/vigil/internal/redact"
)

// Config is the connection to one MQTT broker, shared by the Source and the
// Publisher (each uses its own client ID). Zero fields take the defaults of
// DefaultConfig; a configuration file is decoded on top of DefaultConfig.
//
// Credentials never appear in the configuration text: the password is read
// from PasswordFile or the environment variable PasswordEnv when connecting,
// and is never logged. A Broker URL carrying user information is refused,
// and errors show it with the password masked (package redact).
type Config struct {
	// Broker is the broker URL: mqtts://, tls:// or ssl:// for TLS (default
	// port 8883), mqtt:// or tcp:// for plaintext (default port 1883).
	Broker string `yaml:"broker"`
	// ClientID identifies the client and its persistent session on the
	// broker. It must be stable across restarts and unique per instance.
	ClientID string `yaml:"client_id"`
	// Username is sent in CONNECT when set.
	Username string `yaml:"username"`
	// PasswordFile names a file holding the password (a trailing newline is
	// trimmed). It is read at every connection attempt, so it can be rotated.
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	// TLS configures the TLS connection (mqtts:// URLs only).
	TLS TLSConfig `yaml:"tls"`
	// AllowPlaintext permits a plaintext (mqtt://) connection to a host that
	// is not loopback. Without it such a configuration is refused.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// Subscriptions are the topic filters the Source subscribes to.
	Subscriptions []Subscription `yaml:"subscriptions"`
	// CleanStart discards the broker-side session when the client first
	// connects. The default (false) resumes the persistent session, so
	// messages that arrived while Vigil was down are delivered.
	CleanStart bool `yaml:"clean_start"`
	// SessionExpiry is how long the broker keeps the session after a
	// disconnect (default 1h).
	SessionExpiry time.Duration `yaml:"session_expiry"`
	// KeepAlive is the MQTT keep-alive interval (default 30s).
	KeepAlive time.Duration `yaml:"keep_alive"`
	// ConnectTimeout bounds one connection attempt: TCP, TLS and CONNACK
	// (default 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReconnectBackoff is the delay between connection attempts.
	ReconnectBackoff Backoff `yaml:"reconnect_backoff"`
	// ReceiveMaximum is the flow-control window: the most unacknowledged
	// QoS 1 and 2 messages the broker may send (default 1024, at most 65535).
	ReceiveMaximum int `yaml:"receive_maximum"`
}

// TLSConfig configures TLS. Files are read at every connection attempt, so
// certificates can be rotated without a restart.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs that may sign the broker's
	// certificate (default: the system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for brokers that require a client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name the broker's certificate is checked
	// against (default: the host of the broker URL).
	ServerName string `yaml:"server_name"`
	// MinVersion is the lowest TLS version accepted: "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Subscription is a topic filter and the maximum QoS to receive it with.
//
// In YAML a subscription is either a mapping {filter, qos} or just the filter
// string; the QoS defaults to 1 there. In Go the zero value is QoS 0, so set
// QoS: 1 explicitly for at-least-once delivery.
type Subscription struct {
	Filter string `yaml:"filter"`
	QoS    byte   `yaml:"qos"`
}

// Backoff is an exponential backoff with full jitter: before attempt n
// (counting from 1) the client waits a random time in [Min, min(cap,
// Min·2^(n-1))]. The cap is Max while the broker answers and refuses (bad
// credentials, server busy, quota: retrying fast would only load it), and
// MaxUnreachable while it cannot be reached at all (connection refused, timed
// out, reset): then a connection attempt costs the broker nothing, and a
// short cap means Vigil is back within about a second of the broker.
type Backoff struct {
	Min            time.Duration `yaml:"min"`             // default 250ms
	Max            time.Duration `yaml:"max"`             // default 30s
	MaxUnreachable time.Duration `yaml:"max_unreachable"` // default 1s, at most Max
}

// Defaults.
const (
	DefaultSessionExpiry  = time.Hour
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultBackoffMin     = 250 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultBackoffDown    = time.Second
	DefaultReceiveMaximum = 1024
)

// DefaultConfig returns a Config with every default filled in; Broker,
// ClientID, credentials and Subscriptions are left empty.
func DefaultConfig() Config {
	return Config{
		TLS:              TLSConfig{MinVersion: "1.2"},
		SessionExpiry:    DefaultSessionExpiry,
		KeepAlive:        DefaultKeepAlive,
		ConnectTimeout:   DefaultConnectTimeout,
		ReconnectBackoff: Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax, MaxUnreachable: DefaultBackoffDown},
		ReceiveMaximum:   DefaultReceiveMaximum,
	}
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TLS.MinVersion == "" {
		c.TLS.MinVersion = d.TLS.MinVersion
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = d.SessionExpiry
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = d.KeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.ReconnectBackoff.Min == 0 {
		c.ReconnectBackoff.Min = d.ReconnectBackoff.Min
	}
	if c.ReconnectBackoff.Max == 0 {
		c.ReconnectBackoff.Max = max(d.ReconnectBackoff.Max, c.ReconnectBackoff.Min)
	}
	if c.ReconnectBackoff.MaxUnreachable == 0 {
		c.ReconnectBackoff.MaxUnreachable = max(d.ReconnectBackoff.MaxUnreachable, c.ReconnectBackoff.Min)
	}
	c.ReconnectBackoff.MaxUnreachable = min(c.ReconnectBackoff.MaxUnreachable, c.ReconnectBackoff.Max)
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = d.ReceiveMaximum
	}
	return c
}

// Validate checks the configuration; zero fields count as their defaults.
// Each error names the offending key. Subscriptions are checked here but only
// required by NewSource.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if c.Broker == "" {
		bad("broker", "required (e.g. mqtts://broker.example:8883)")
	} else if b, err := parseBroker(c.Broker); err != nil {
		errs = append(errs, fmt.Errorf("broker: %w", err))
	} else {
		if !b.tls {
			if t := c.TLS; t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
				bad("tls", "set, but broker %q is plaintext; use an mqtts:// URL", redact.URL(c.Broker))
			}
			if !c.AllowPlaintext && !isLoopback(b.host) {
				bad("broker", "plaintext connection to non-loopback host %q refused: use mqtts:// (TLS), or set allow_plaintext: true if the network is trusted", b.host)
			}
		}
	}

	switch {
	case c.ClientID == "":
		bad("client_id", "required: a stable ID names the persistent session")
	case !utf8.ValidString(c.ClientID) || strings.ContainsRune(c.ClientID, 0):
		bad("client_id", "must be valid UTF-8 without NUL characters")
	case len(c.ClientID) > 65535-4: // room for the publisher's "-pub" suffix
		bad("client_id", "too long (%d bytes)", len(c.ClientID))
	}
	if strings.ContainsRune(c.Username, 0) || !utf8.ValidString(c.Username) {
		bad("username", "must be valid UTF-8 without NUL characters")
	}
	if c.PasswordFile != "" && c.PasswordEnv != "" {
		bad("password_file", "set only one of password_file and password_env")
	}
	if c.PasswordEnv != "" {
		if err := redact.EnvName(c.PasswordEnv); err != nil {
			errs = append(errs, fmt.Errorf("password_env: %w", err))
		}
	}
	if (c.PasswordFile != "" || c.PasswordEnv != "") && c.Username == "" {
		bad("username", "required when a password is configured")
	}

	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file", "tls.cert_file and tls.key_file must be set together")
	}
	if _, err := tlsVersion(c.TLS.MinVersion); err != nil {
		errs = append(errs, fmt.Errorf("tls.min_version: %w", err))
	}

	for i, s := range c.Subscriptions {
		if err := validFilter(s.Filter); err != nil {
			errs = append(errs, fmt.Errorf("subscriptions[%d].filter: %w", i, err))
		}
		if s.QoS > 2 {
			bad(fmt.Sprintf("subscriptions[%d].qos", i), "must be 0, 1 or 2, not %d", s.QoS)
		}
	}

	if c.SessionExpiry < 0 || c.SessionExpiry > math.MaxUint32*time.Second {
		bad("session_expiry", "must be between 1s and %v", math.MaxUint32*time.Second)
	}
	if c.KeepAlive < 0 || c.KeepAlive > math.MaxUint16*time.Second {
		bad("keep_alive", "must be between 1s and %v", math.MaxUint16*time.Second)
	}
	if c.ConnectTimeout < 0 {
		bad("connect_timeout", "must not be negative")
	}
	bo := c.withDefaults().ReconnectBackoff
	if c.ReconnectBackoff.Min < 0 || c.ReconnectBackoff.Max < 0 || c.ReconnectBackoff.MaxUnreachable < 0 {
		bad("reconnect_backoff", "min, max and max_unreachable must not be negative")
	} else if bo.Max < bo.Min {
		bad("reconnect_backoff.max", "%v is less than min %v", bo.Max, bo.Min)
	}
	if c.ReceiveMaximum < 0 || c.ReceiveMaximum > math.MaxUint16 {
		bad("receive_maximum", "must be between 1 and 65535, not %d", c.ReceiveMaximum)
	}
	return errors.Join(errs...)
}

// broker is a parsed broker URL.
type broker struct {
	tls    bool
	host   string // without port or brackets
	addr   string // host:port
	origin string // scheme://host:port, for logs and Frame.Origin
}

// parseBroker parses a broker URL. Its errors show the URL through
// redact.URL: one that does not parse, or has a path, may still carry a
// password.
func parseBroker(raw string) (broker, error) {
	if redact.HasUserinfo(raw) {
		return broker{}, fmt.Errorf("credentials must not be part of the URL (%q): set username, and password_file or password_env", redact.URL(raw))
	}
	u, err := redact.Parse(raw)
	if err != nil {
		return broker{}, fmt.Errorf("invalid URL: %w", err)
	}
	var b broker
	port := "1883"
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
	case "mqtts", "tls", "ssl":
		b.tls, port = true, "8883"
	case "":
		return broker{}, fmt.Errorf("%q has no scheme; use mqtts://host:8883 (or mqtt:// for plaintext)", redact.URL(raw))
	default:
		return broker{}, fmt.Errorf("unsupported scheme %q (use mqtts, tls, ssl, mqtt or tcp)", u.Scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return broker{}, fmt.Errorf("%q: a broker URL has no path, query or fragment", redact.URL(raw))
	}
	b.host = u.Hostname()
	if b.host == "" {
		return broker{}, fmt.Errorf("%q has no host", redact.URL(raw))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return broker{}, fmt.Errorf("invalid port %q", p)
		}
		port = p
	}
	b.addr = net.JoinHostPort(b.host, port)
	b.origin = strings.ToLower(u.Scheme) + "://" + b.addr
	return b, nil
}

// isLoopback reports whether host is "localhost" or a loopback address
// (127.0.0.0/8, ::1). Other names are not resolved: a name that resolves to
// loopback today may not tomorrow.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not supported (use \"1.2\" or \"1.3\")", v)
}

// validFilter checks an MQTT topic filter: non-empty UTF-8 without NUL, and
// wildcards only as whole levels, '#' last.
func validFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
		return fmt.Errorf("%q: must be valid UTF-8 without NUL characters", f)
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%q: '#' must be the last level", f)
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return fmt.Errorf("%q: wildcards must occupy a whole level", f)
		}
	}
	return nil
}

// password reads the configured password; nil when none is configured.
func (c *Config) password() ([]byte, error) {
	switch {
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(b) == 0 {
			return nil, fmt.Errorf("password_file: %s is empty", c.PasswordFile)
		}
		return b, nil
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("password_env: environment variable %s is not set", c.PasswordEnv)
		}
		return []byte(v), nil
	}
	return nil, nil
}

// tlsConfig builds the TLS configuration for one connection attempt, reading
// the CA and certificate files. cache is shared by all attempts so sessions
// resume. When no client certificate is configured, requested is set if the
// broker asks for one, so a rejection can be explained.
func (c *Config) tlsConfig(host string, cache tls.ClientSessionCache, requested *bool) (*tls.Config, error) {
	minVer, err := tlsVersion(c.TLS.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("tls.min_version: %w", err)
	}
	tc := &tls.Config{
		MinVersion:         minVer,
		ServerName:         host,
		ClientSessionCache: cache,
	}
	if c.TLS.ServerName != "" {
		tc.ServerName = c.TLS.ServerName
	}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: no PEM certificates in %s", c.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	} else {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			*requested = true
			return &tls.Certificate{}, nil // none: let the broker decide
		}
	}
	return tc, nil
}

// UnmarshalYAML accepts a subscription as a filter string or as a mapping
// {filter, qos}; the QoS defaults to 1. Unknown keys are errors.
func (s *Subscription) UnmarshalYAML(n *yaml.Node) error {
	*s = Subscription{QoS: 1}
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Decode(&s.Filter)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var err error
			switch k.Value {
			case "filter":
				err = v.Decode(&s.Filter)
			case "qos":
				err = v.Decode(&s.QoS)
			default:
				return fmt.Errorf("line %d: unknown subscription key %q (want filter, qos)", k.Line, k.Value)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", k.Value, err)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: a subscription is a topic filter or {filter, qos}", n.Line)
}
