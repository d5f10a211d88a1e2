package httpout

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Webhook headers.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256, keyed with
	// the shared secret, of the timestamp, a dot and the body.
	SignatureHeader = "X-Vigil-Signature"
	// TimestampHeader carries the Unix time (seconds) of the attempt.
	TimestampHeader = "X-Vigil-Timestamp"
	// IdempotencyHeader carries a hash of the request's alert EventIDs: a
	// retried request repeats it.
	IdempotencyHeader = "Idempotency-Key"
	// DefaultReplayWindow is how far a receiver should let a timestamp
	// stray from its clock.
	DefaultReplayWindow = 5 * time.Minute
)

// WebhookConfig configures the generic webhook output.
type WebhookConfig struct {
	ClientConfig `yaml:",inline"`
	// PerAlert sends one request per alert, whose body is the event
	// itself, instead of one request per batch whose body is a JSON array
	// of events.
	PerAlert bool `yaml:"per_alert"`
	// TokenFile or TokenEnv holds a token sent as "Authorization: Bearer
	// <token>" (optional).
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// SecretFile or SecretEnv holds the key of the request signature
	// (optional, recommended): see the package documentation for how a
	// receiver checks it.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
}

// Validate checks the configuration without reading any file.
func (c *WebhookConfig) Validate() error {
	errs := []error{c.ClientConfig.validate("token_file or token_env (a bearer token), and secret_file or secret_env (the signing key)")}
	if c.TokenFile != "" && c.TokenEnv != "" {
		errs = append(errs, errors.New("token_file: set only one of token_file and token_env"))
	}
	if c.SecretFile != "" && c.SecretEnv != "" {
		errs = append(errs, errors.New("secret_file: set only one of secret_file and secret_env"))
	}
	errs = append(errs, envNames(map[string]string{"token_env": c.TokenEnv, "secret_env": c.SecretEnv})...)
	return errors.Join(errs...)
}

// Webhook posts alerts as JSON to a URL, signed with HMAC-SHA256 when a
// secret is configured.
type Webhook struct {
	cfg    WebhookConfig
	f      output.Formatter
	log    *slog.Logger
	cl     *client
	auth   string
	secret []byte
	buf    []byte // formatter scratch
	now    func() time.Time
}

// NewWebhook validates cfg and returns the output; it does not connect. f
// renders each alert's event: a JSON object is sent as it is, any other
// text as a JSON string. log may be nil.
func NewWebhook(cfg WebhookConfig, f output.Formatter, log *slog.Logger) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: invalid config: %w", err)
	}
	if f == nil {
		return nil, errors.New("webhook: no formatter")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "webhook")
	if cfg.SecretFile == "" && cfg.SecretEnv == "" {
		log.Warn("webhook requests are not signed: set secret_file or secret_env")
	}
	return &Webhook{cfg: cfg, f: f, log: log, now: time.Now}, nil
}

// Connect implements output.Output: it drops the old connections, reads
// the token, the secret and the TLS files, and builds a new client. It does
// not dial.
func (w *Webhook) Connect(context.Context) error {
	w.cl.close()
	w.cl = nil
	tok, err := secret("token", w.cfg.TokenFile, w.cfg.TokenEnv)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	key, err := output.Secret("secret", w.cfg.SecretFile, w.cfg.SecretEnv)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	cl, err := w.cfg.newClient()
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	w.auth = ""
	if tok != nil {
		w.auth = "Bearer " + string(tok)
		cl.secrets = append(cl.secrets, tok)
	}
	if key != nil {
		cl.secrets = append(cl.secrets, key)
	}
	w.cl, w.secret = cl, key
	return nil
}

// Close implements output.Output.
func (w *Webhook) Close(context.Context) error {
	w.cl.close()
	w.cl = nil
	return nil
}

// Write implements output.Output: it returns nil when the receiver answered
// 2xx to every request. With per_alert, alerts whose request failed are
// reported in a *BatchError; after a retryable failure the rest of the
// batch is not attempted.
func (w *Webhook) Write(ctx context.Context, batch []pipeline.Alert) error {
	if len(batch) == 0 {
		return nil
	}
	if w.cl == nil {
		return errors.New("webhook: not connected")
	}
	if !w.cfg.PerAlert {
		body := []byte{'['}
		for i := range batch {
			if i > 0 {
				body = append(body, ',')
			}
			w.buf = w.f.Append(w.buf[:0], &batch[i])
			body = appendEvent(body, w.buf)
		}
		body = append(body, ']')
		return w.send(ctx, batch, body)
	}
	var failed []output.ItemError
	for i := range batch {
		w.buf = w.f.Append(w.buf[:0], &batch[i])
		err := w.send(ctx, batch[i:i+1], appendEvent(nil, w.buf))
		if err == nil {
			continue
		}
		failed = append(failed, output.ItemError{Index: i, Err: err})
		if output.IsPermanent(err) {
			continue
		}
		// The receiver is unavailable: leave the rest for the retry.
		if i == 0 {
			return err // nothing was attempted before: retry the whole batch
		}
		for j := i + 1; j < len(batch); j++ {
			failed = append(failed, output.ItemError{Index: j, Err: fmt.Errorf("webhook: not attempted: %w", err)})
		}
		break
	}
	if failed == nil {
		return nil
	}
	return &output.BatchError{Failed: failed}
}

// send posts one request carrying alerts.
func (w *Webhook) send(ctx context.Context, alerts []pipeline.Alert, body []byte) error {
	hdr := http.Header{
		"Content-Type":    {"application/json"},
		IdempotencyHeader: {idempotencyKey(alerts)},
	}
	if w.auth != "" {
		hdr.Set("Authorization", w.auth)
	}
	if w.secret != nil {
		ts := w.now().Unix()
		hdr.Set(TimestampHeader, strconv.FormatInt(ts, 10))
		hdr.Set(SignatureHeader, Sign(w.secret, ts, body))
	}
	r, err := w.cl.post(ctx, w.cl.endpoint(), hdr, body, 64<<10)
	if err == nil {
		err = w.cl.classify(r, "")
	}
	if err != nil {
		return fmt.Errorf("webhook: %d alerts: %w", len(alerts), err)
	}
	return nil
}

// idempotencyKey hashes the EventIDs of alerts, so the same alerts give the
// same key on every attempt.
func idempotencyKey(alerts []pipeline.Alert) string {
	h := sha256.New()
	var b []byte
	for i := range alerts {
		b = alerts[i].AppendEventID(b[:0])
		b = append(b, '\n')
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Sign returns the value of SignatureHeader for a request sent at Unix time
// ts with body: "sha256=" and the hex HMAC-SHA256 of "<ts>.<body>".
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrNoSignature  = errors.New("httpout: missing " + SignatureHeader + " or " + TimestampHeader)
	ErrBadSignature = errors.New("httpout: signature does not match")
	ErrStale        = errors.New("httpout: timestamp outside the replay window")
)

// VerifySignature checks a request received from a Webhook, as a receiver
// written in Go would: the timestamp must lie within window of now (0 means
// DefaultReplayWindow) and the signature must match body, compared in
// constant time. body is the raw request body, before any parsing.
func VerifySignature(secret []byte, h http.Header, body []byte, now time.Time, window time.Duration) error {
	sig, tsText := h.Get(SignatureHeader), h.Get(TimestampHeader)
	if sig == "" || tsText == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrNoSignature
	}
	if window <= 0 {
		window = DefaultReplayWindow
	}
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return ErrStale
	}
	got, ok := strings.CutPrefix(sig, "sha256=")
	mac, err := hex.DecodeString(got)
	if !ok || err != nil {
		return ErrBadSignature
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(Sign(secret, ts, body), "sha256="))
	if !hmac.Equal(mac, want) {
		return ErrBadSignature
	}
	return nil
}
