package httpout

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Defaults of ClientConfig.
const (
	// DefaultTimeout bounds one HTTP request: connecting, sending the body
	// and reading the response.
	DefaultTimeout = 10 * time.Second
	// MaxRetryAfter caps the delay a RetryAfterError carries, whatever the
	// server asked for.
	MaxRetryAfter = time.Hour
)

// ClientConfig is the HTTP part every output of the package shares. In YAML
// its keys sit beside the output's own keys (the struct is inlined).
//
// Credentials never appear here: each output reads its token, key or
// password from a file (*_file) or an environment variable (*_env) at every
// Connect, so they can be rotated without a restart.
type ClientConfig struct {
	// URL is the destination, https:// (or http:// when the host is
	// loopback or AllowPlaintext is set). It must not carry user
	// information. HEC and Bulk append their API paths to it, so it may
	// end in a path prefix (a reverse proxy's) but carries no query.
	URL string `yaml:"url"`
	// TLS configures the server's CA, a client certificate for mutual TLS,
	// the expected server name and the minimum version (https:// only).
	TLS output.TLS `yaml:"tls"`
	// Timeout bounds each HTTP request (default DefaultTimeout). The
	// caller's context may end it sooner.
	Timeout time.Duration `yaml:"timeout"`
	// AllowPlaintext permits http:// to a host that is not loopback.
	// Without it such a URL is refused: alerts and credentials would cross
	// the network in clear text.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// Headers are extra static headers sent with every request. They are
	// configuration text, not secrets: Authorization, Proxy-Authorization
	// and Cookie are refused here, and so are the headers the outputs set
	// themselves.
	Headers map[string]string `yaml:"headers"`
}

// reservedHeaders are set by the outputs or carry credentials.
var reservedHeaders = map[string]bool{
	"Authorization":            true,
	"Proxy-Authorization":      true,
	"Cookie":                   true,
	"Content-Type":             true,
	"Content-Length":           true,
	"Content-Encoding":         true,
	"Transfer-Encoding":        true,
	"Host":                     true,
	"Connection":               true,
	"X-Splunk-Request-Channel": true,
	SignatureHeader:            true,
	TimestampHeader:            true,
	IdempotencyHeader:          true,
}

// Validate checks the settings without reading any file. Errors name the
// key; they never repeat the URL's user information.
func (c *ClientConfig) Validate() error {
	return c.validate("the output's *_file or *_env keys")
}

// validate is Validate with the keys that hold the output's credentials,
// which a refusal of credentials in the URL points to.
func (c *ClientConfig) validate(credentialKeys string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	u, err := redact.Parse(c.URL)
	switch {
	case c.URL == "":
		bad("url", "required (e.g. https://collector.example:8088)")
	case redact.HasUserinfo(c.URL):
		bad("url", "must not carry credentials (%q); use %s", redact.URL(c.URL), credentialKeys)
	case err != nil:
		bad("url", "not a URL: %v", err)
	case u.Scheme != "https" && u.Scheme != "http":
		bad("url", "scheme %q: want https (or http)", u.Scheme)
	case u.Host == "":
		bad("url", "no host in %q", redact.URL(c.URL))
	case u.Fragment != "":
		bad("url", "must not have a #fragment")
	case u.Scheme == "http":
		if t := c.TLS; t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			bad("tls", "set, but url is plaintext http://; use https://")
		}
		if !c.AllowPlaintext && !loopback(u.Hostname()) {
			bad("url", "plaintext http:// to non-loopback host %q refused: use https://, or set allow_plaintext: true if the network is trusted", u.Hostname())
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	for k, v := range c.Headers {
		switch {
		case !validHeaderName(k):
			bad("headers", "%q is not a valid header name", k)
		case reservedHeaders[http.CanonicalHeaderKey(k)]:
			bad("headers", "%s may not be set here (credentials come from *_file or *_env; the output sets the others)", http.CanonicalHeaderKey(k))
		case !validHeaderValue(v):
			bad("headers."+k, "value has control characters")
		}
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s has no control characters but tab, so
// it cannot split or end a header.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// envNames checks the *_env settings of an output, by key: each must name
// an environment variable. The error does not repeat a value that is not a
// name (it is usually the secret itself).
func envNames(keys map[string]string) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if v := keys[k]; v != "" {
			if err := redact.EnvName(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
		}
	}
	return errs
}

// secret reads a credential with output.Secret and checks it fits in a
// header. Errors name the key, never the value.
func secret(key, file, env string) ([]byte, error) {
	b, err := output.Secret(key, file, env)
	if err != nil {
		return nil, err
	}
	if !validHeaderValue(string(b)) {
		k := key + "_file"
		if file == "" {
			k = key + "_env"
		}
		return nil, fmt.Errorf("%s: the value has control characters", k)
	}
	return b, nil
}

// client is the HTTP client of one output, built by Connect.
type client struct {
	hc      *http.Client
	tr      *http.Transport
	base    *url.URL
	timeout time.Duration
	headers http.Header // static headers from the configuration
	secrets [][]byte    // redacted from every error text
}

// newClient builds a keep-alive client for c, reading the TLS files.
func (c *ClientConfig) newClient() (*client, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, errors.New("url: not a URL")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
	}
	if u.Scheme == "https" {
		tc, err := c.TLS.Client(u.Hostname(), tls.NewLRUClientSessionCache(8))
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	h := make(http.Header, len(c.Headers)+1)
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "vigil")
	}
	return &client{
		hc: &http.Client{
			Transport: tr,
			// A redirect would resend alerts (and drop or leak the
			// credentials) to an address nobody configured: report it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tr:      tr,
		base:    u,
		timeout: timeout,
		headers: h,
	}, nil
}

// endpoint returns the base URL with elem appended to its path.
func (cl *client) endpoint(elem ...string) string {
	return cl.base.JoinPath(elem...).String()
}

// close drops the idle connections; in-flight requests are not affected.
func (cl *client) close() {
	if cl != nil {
		cl.tr.CloseIdleConnections()
	}
}

// reply is an HTTP response whose body was read (up to a limit) and closed.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to target with the static headers and hdr, within the
// request timeout, and reads up to limit bytes of the response.
func (cl *client) post(ctx context.Context, target string, hdr http.Header, body []byte, limit int64) (*reply, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range cl.headers {
		req.Header[k] = v
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		return nil, cl.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, cl.transportError(fmt.Errorf("read response: %w", err))
	}
	// Drain a little more so the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	return &reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// transportError shows only the scheme and host of the URL in a
// *url.Error (a webhook's path or a query may carry a token, as Slack's
// and Teams' incoming webhooks do) and redacts the secrets.
func (cl *client) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = origin(ue.URL)
	}
	if msg := err.Error(); maskSecrets(msg, cl.secrets) != msg {
		return errors.New(maskSecrets(msg, cl.secrets))
	}
	return err
}

// origin returns scheme://host of a URL, with "/…" standing for a path,
// query or fragment.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(URL withheld)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		s += "/…"
	}
	return s
}

// StatusError is an HTTP response the destination answered with an error
// status. Body holds the start of the response body (or the destination's
// error code and text), with any credential redacted.
type StatusError struct {
	StatusCode int
	Body       string
}

func (e *StatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// RetryAfterError is a retryable failure for which the destination said how
// long to wait before the next attempt (a Retry-After header on a 429 or
// 503). It is never wrapped with output.Permanent. A runner that knows the
// type should wait at least Delay (at most MaxRetryAfter) before retrying;
// one that does not sees a plain retryable error.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.Delay)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter reports the delay the server asked for; the output runner
// waits at least that long before the next attempt.
func (e *RetryAfterError) RetryAfter() time.Duration { return e.Delay }

// retryable reports whether an HTTP status is worth retrying: 408, 429 and
// every 5xx.
//
// 401, 403 and 404 are retried too: they say the credentials or the URL are
// wrong, which an operator fixes, not that this alert is bad. Alerts then
// wait in the journal (the output's status and log say why) instead of
// filling the dead letters, which are for alerts a destination refuses.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return status >= 500
}

// classify maps a response to nil (2xx), a plain or *RetryAfterError
// (retryable), or a permanent error; detail, when not empty, replaces the
// start of the body in the message.
func (cl *client) classify(r *reply, detail string) error {
	if r.status >= 200 && r.status < 300 {
		return nil
	}
	if detail == "" {
		detail = snippet(r.body, cl.secrets)
	}
	err := &StatusError{StatusCode: r.status, Body: detail}
	switch {
	case r.status >= 300 && r.status < 400:
		err.Body = "redirects are not followed; set url to the final address"
		return err // a configuration problem: the alerts wait in the journal
	case retryable(r.status):
		return withRetryAfter(err, r.header, time.Now())
	}
	return output.Permanent(err)
}

// withRetryAfter wraps err in a *RetryAfterError when h has a valid
// Retry-After.
func withRetryAfter(err error, h http.Header, now time.Time) error {
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		return &RetryAfterError{Delay: d, Err: err}
	}
	return err
}

// parseRetryAfter reads delta-seconds or an HTTP date, capped to
// MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		d = MaxRetryAfter
		if n < int64(MaxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, MaxRetryAfter), true
}

const snippetLen = 256

// snippet returns the start of a response body for an error message:
// secrets redacted first, then cut to snippetLen bytes of valid UTF-8 with
// control characters turned into spaces.
func snippet(body []byte, secrets [][]byte) string {
	s := maskSecrets(string(bytes.TrimSpace(body)), secrets)
	if len(s) > snippetLen {
		cut := snippetLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// maskSecrets replaces every occurrence of a secret in s.
func maskSecrets(s string, secrets [][]byte) string {
	for _, sec := range secrets {
		if len(sec) > 0 {
			s = strings.ReplaceAll(s, string(sec), "[redacted]")
		}
	}
	return s
}

// appendEvent appends a formatted event as a JSON value: a JSON object as
// it is, anything else (CEF, LEEF, a bare string) as a JSON string.
func appendEvent(b, ev []byte) []byte {
	if t := bytes.TrimSpace(ev); len(t) > 0 && t[0] == '{' && json.Valid(t) {
		return append(b, t...)
	}
	return appendString(b, ev)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what RFC 8259 requires
// and replacing invalid UTF-8 with U+FFFD.
func appendString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != '"' && c != '\\':
				b = append(b, c)
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
