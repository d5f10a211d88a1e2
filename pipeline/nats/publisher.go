// Package nats republishes Vigil's alerts to NATS: core NATS subjects for
// live consumers, or JetStream, where every alert is acknowledged by the
// stream before Write returns, so none is lost while a consumer is away.
package nats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline"
)

// DefaultSubject is the default subject template of alerts.
const DefaultSubject = "vigil.alerts.{kind}.{device}"

// Config configures the NATS alert publisher.
type Config struct {
	// URL is the server, nats:// (plaintext) or tls://. It must not carry
	// credentials (user:password@ or a token@): they come from CredsFile.
	URL string `yaml:"url"`
	// Subject is the subject template: {kind}, {device}, {severity} and
	// {detector} are replaced by the alert's values, with the characters a
	// subject token cannot hold (. * > and white space) turned into "_".
	Subject string `yaml:"subject"`
	// JetStream publishes with acknowledgements into the stream that
	// captures the subjects (it must exist); Write returns only when the
	// stream has stored every alert. Each message carries a Nats-Msg-Id, so a
	// retried batch is not stored twice.
	JetStream bool `yaml:"jetstream"`
	// CredsFile is a NATS credentials file (JWT and seed); never a secret on
	// the command line.
	CredsFile string `yaml:"creds_file"`
	// TLS: CA bundle, client certificate and key (for tls:// URLs).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AllowPlaintext permits nats:// to a host that is not loopback.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// Timeout bounds connecting and each Write's wait for acknowledgements
	// beyond the caller's context (default 5s).
	Timeout time.Duration `yaml:"timeout"`
}

// Validate checks the configuration; errors name the key and show the URL
// with any credentials masked.
func (c *Config) Validate() error {
	if redact.HasUserinfo(c.URL) {
		return fmt.Errorf("url: credentials must not be part of the URL (%q): put them in a NATS credentials file named by creds_file", redact.URL(c.URL))
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("url: want nats://host:port or tls://host:port, got %q", redact.URL(c.URL))
	}
	switch u.Scheme {
	case "nats":
		if !c.AllowPlaintext && !loopback(u.Hostname()) {
			return fmt.Errorf("url: plaintext nats:// to %s is refused; use tls:// or set allow_plaintext", u.Hostname())
		}
	case "tls":
	default:
		return fmt.Errorf("url: scheme %q: want nats or tls", u.Scheme)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cert_file and key_file go together")
	}
	if c.Timeout < 0 {
		return errors.New("timeout must not be negative")
	}
	if _, err := parseSubject(cmp.Or(c.Subject, DefaultSubject)); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// subjectTemplate is a parsed subject template.
type subjectTemplate []string // literal and placeholder parts, placeholders as "{name}"

func parseSubject(s string) (subjectTemplate, error) {
	var parts subjectTemplate
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			parts = append(parts, s)
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed { in %q", s)
		}
		name := s[i : i+j+1]
		switch name {
		case "{kind}", "{device}", "{severity}", "{detector}":
		default:
			return nil, fmt.Errorf("unknown placeholder %s (want {kind}, {device}, {severity} or {detector})", name)
		}
		if i > 0 {
			parts = append(parts, s[:i])
		}
		parts = append(parts, name)
		s = s[i+j+1:]
	}
	if strings.ContainsAny(strings.Join(literals(parts), ""), "*> \t") {
		return nil, errors.New("wildcards and spaces are not allowed in a publish subject")
	}
	return parts, nil
}

func literals(parts subjectTemplate) []string {
	var ls []string
	for _, p := range parts {
		if !strings.HasPrefix(p, "{") {
			ls = append(ls, p)
		}
	}
	return ls
}

// token makes a value safe as (part of) one subject token.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}

func (t subjectTemplate) render(a *pipeline.Alert) string {
	var b strings.Builder
	for _, p := range t {
		switch p {
		case "{kind}":
			b.WriteString(token(a.Kind))
		case "{device}":
			b.WriteString(token(a.Device))
		case "{severity}":
			b.WriteString(a.Severity.String())
		case "{detector}":
			b.WriteString(token(a.Detector))
		default:
			b.WriteString(p)
		}
	}
	return b.String()
}

// Publisher is a pipeline.Sink that publishes alerts to NATS.
type Publisher struct {
	cfg     Config
	subject subjectTemplate
	nc      *natsclient.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	sent    *metrics.Counter
	failed  *metrics.Counter
}

// Files are the credential and TLS files of a NATS connection; empty
// fields are not used.
type Files struct{ Creds, CA, Cert, Key string }

// Dial connects to url as client name, reconnecting forever after the first
// success (every 250 ms), with the files given; disconnections and
// reconnections are logged to log. Its error names the URL without
// credentials. extra options are applied last.
func Dial(url, name string, timeout time.Duration, f Files, log *slog.Logger, extra ...natsclient.Option) (*natsclient.Conn, error) {
	opts := []natsclient.Option{
		natsclient.Name(name),
		natsclient.Timeout(timeout),
		natsclient.MaxReconnects(-1),
		natsclient.ReconnectWait(250 * time.Millisecond),
		natsclient.DisconnectErrHandler(func(_ *natsclient.Conn, err error) {
			log.Warn("disconnected from NATS", "err", err)
		}),
		natsclient.ReconnectHandler(func(nc *natsclient.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if f.Creds != "" {
		opts = append(opts, natsclient.UserCredentials(f.Creds))
	}
	if f.CA != "" {
		opts = append(opts, natsclient.RootCAs(f.CA))
	}
	if f.Cert != "" {
		opts = append(opts, natsclient.ClientCert(f.Cert, f.Key))
	}
	nc, err := natsclient.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact.URL(url), err)
	}
	return nc, nil
}

// NewPublisher validates cfg and connects, failing fast with a readable error
// when the server is unreachable or refuses the credentials. Later
// disconnections are reconnected by the client; Write then waits (up to the
// timeout) and reports what was not delivered.
func NewPublisher(cfg Config, log *slog.Logger, ms *metrics.Set) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nats: invalid config: %w", err)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 5*time.Second)
	subject, _ := parseSubject(cmp.Or(cfg.Subject, DefaultSubject))
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ms == nil {
		ms = metrics.NewSet()
	}
	log = log.With("component", "nats-alerts")
	nc, err := Dial(cfg.URL, "vigil", cfg.Timeout, Files{Creds: cfg.CredsFile, CA: cfg.CAFile, Cert: cfg.CertFile, Key: cfg.KeyFile}, log)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	p := &Publisher{
		cfg: cfg, subject: subject, nc: nc, log: log,
		sent:   ms.GetOrCreateCounter(`vigil_nats_alerts_published_total`),
		failed: ms.GetOrCreateCounter(`vigil_nats_publish_failures_total`),
	}
	if cfg.JetStream {
		if p.js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats: jetstream: %w", err)
		}
	}
	log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted(), "jetstream", cfg.JetStream)
	return p, nil
}

// message builds the NATS message of an alert.
func (p *Publisher) message(a *pipeline.Alert) *natsclient.Msg {
	m := natsclient.NewMsg(p.subject.render(a))
	m.Data = a.AppendJSON(nil)
	m.Header.Set("Content-Type", "application/json")
	m.Header.Set("Vigil-Severity", a.Severity.String())
	m.Header.Set("Vigil-Kind", a.Kind)
	m.Header.Set("Vigil-State", a.State.String())
	// One ID per transition: JetStream drops a retried copy.
	m.Header.Set(jetstream.MsgIDHeader, a.EventID())
	return m
}

// Write implements pipeline.Sink. Core NATS: it publishes the batch and
// flushes, so the server has every alert when it returns. JetStream: it
// publishes asynchronously and returns when the stream acknowledged all of
// them, or with an error naming how many were not stored.
func (p *Publisher) Write(ctx context.Context, batch []pipeline.Alert) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if p.js == nil {
		for i := range batch {
			if err := p.nc.PublishMsg(p.message(&batch[i])); err != nil {
				p.failed.Add(len(batch) - i)
				return fmt.Errorf("nats: publish: %w", err)
			}
		}
		if err := p.nc.FlushWithContext(ctx); err != nil {
			p.failed.Add(len(batch))
			return fmt.Errorf("nats: flush %d alerts: %w", len(batch), err)
		}
		p.sent.Add(len(batch))
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for i := range batch {
		f, err := p.js.PublishMsgAsync(p.message(&batch[i]))
		if err != nil {
			p.failed.Add(len(batch) - i)
			return fmt.Errorf("nats: jetstream publish: %w", err)
		}
		futures = append(futures, f)
	}
	var failed int
	var first error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			failed++
			first = cmp.Or(first, err)
		case <-ctx.Done():
			failed++
			first = cmp.Or(first, ctx.Err())
		}
	}
	p.sent.Add(len(batch) - failed)
	if failed > 0 {
		p.failed.Add(failed)
		return fmt.Errorf("nats: jetstream stored %d of %d alerts: %w", len(batch)-failed, len(batch), first)
	}
	return nil
}

// Close flushes and closes the connection.
func (p *Publisher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	err := p.nc.FlushWithContext(ctx)
	p.nc.Close()
	if err != nil && !errors.Is(err, natsclient.ErrConnectionClosed) {
		return fmt.Errorf("nats: close: %w", err)
	}
	return nil
}
