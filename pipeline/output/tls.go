package output

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/vigil-iot/vigil/internal/redact"
)

// TLS configures the client side of a TLS connection to a destination.
// Files are read at every connection, so certificates can be rotated
// without a restart.
type TLS struct {
	// CAFile is a PEM bundle of the CAs that may sign the server's
	// certificate (default: the system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for servers that require mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name the server's certificate is checked
	// against (default: the host being dialled).
	ServerName string `yaml:"server_name"`
	// MinVersion is the lowest TLS version accepted: "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Validate checks the settings without reading the files.
func (t *TLS) Validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	if _, err := tlsVersion(t.MinVersion); err != nil {
		return fmt.Errorf("tls.min_version: %w", err)
	}
	return nil
}

// Files lists the files the settings refer to, by key, for "config check".
func (t *TLS) Files() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"tls.ca_file": t.CAFile, "tls.cert_file": t.CertFile, "tls.key_file": t.KeyFile} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// Client builds the client configuration for a connection to host, reading
// the CA and certificate files. cache, when not nil, lets sessions resume.
func (t *TLS) Client(host string, cache tls.ClientSessionCache) (*tls.Config, error) {
	minVer, err := tlsVersion(t.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("tls.min_version: %w", err)
	}
	tc := &tls.Config{MinVersion: minVer, ServerName: host, ClientSessionCache: cache}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: no PEM certificates in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q: want 1.2 or 1.3", s)
}

// Secret reads a credential (a token, a password) from a file or an
// environment variable, never from the configuration text. key names the
// configuration key in errors; the value never appears in them, and
// neither does an env that is not a variable name (it is usually the secret
// itself, written where the name belongs). A trailing newline in the file
// is trimmed.
func Secret(key, file, env string) ([]byte, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s_file: %w", key, err)
		}
		for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
			b = b[:len(b)-1]
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%s_file: %s is empty", key, file)
		}
		return b, nil
	case env != "":
		if err := redact.EnvName(env); err != nil {
			return nil, fmt.Errorf("%s_env: %w", key, err)
		}
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s_env: environment variable %s is not set", key, env)
		}
		return []byte(v), nil
	}
	return nil, nil
}
