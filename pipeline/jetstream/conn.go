package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	vnats "github.com/vigil-iot/vigil/pipeline/nats"

	natsclient "github.com/nats-io/nats.go"

	"github.com/vigil-iot/vigil/internal/redact"
)

// ConnConfig is the connection to the NATS servers that hold the stream.
// Credentials never appear in it: they come from CredsFile.
type ConnConfig struct {
	// URL is the server, nats:// (plaintext) or tls://; several, comma
	// separated, for a cluster. It must not carry credentials.
	URL string `yaml:"url"`
	// CredsFile is a NATS credentials file (JWT and seed).
	CredsFile string `yaml:"creds_file"`
	// CAFile, CertFile and KeyFile configure TLS (tls:// URLs).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AllowPlaintext permits nats:// to a host that is not loopback.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// Timeout bounds connecting and JetStream requests (default 5s).
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultTimeout is ConnConfig.Timeout's default.
const DefaultTimeout = 5 * time.Second

// Validate checks the connection settings; errors name the key and show
// URLs with any credentials masked.
func (c *ConnConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: required (e.g. tls://nats.example:4222)"))
	}
	for _, raw := range splitURLs(c.URL) {
		if redact.HasUserinfo(raw) {
			errs = append(errs, fmt.Errorf("url: credentials must not be part of the URL (%q): put them in a NATS credentials file named by creds_file", redact.URL(raw)))
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("url: want nats://host:port or tls://host:port, got %q", redact.URL(raw)))
			continue
		}
		switch u.Scheme {
		case "nats":
			if !c.AllowPlaintext && !loopback(u.Hostname()) {
				errs = append(errs, fmt.Errorf("url: plaintext nats:// to %s is refused; use tls:// or set allow_plaintext", u.Hostname()))
			}
		case "tls":
		default:
			errs = append(errs, fmt.Errorf("url: scheme %q: want nats or tls", u.Scheme))
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file go together"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

func splitURLs(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Connect validates c and connects, reconnecting forever after the first
// success; name identifies the client to the server. Connection changes
// are logged to log (nil: discarded).
func Connect(c ConnConfig, name string, log *slog.Logger) (*natsclient.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("jetstream: invalid connection config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	nc, err := vnats.Dial(c.URL, name, timeout, vnats.Files{Creds: c.CredsFile, CA: c.CAFile, Cert: c.CertFile, Key: c.KeyFile}, log)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, nil
}
