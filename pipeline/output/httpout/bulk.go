package httpout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Defaults of BulkConfig.
const (
	DefaultIndex  = "vigil-alerts-{2006.01.02}"
	DefaultOpType = "create"
)

// BulkConfig configures the Elasticsearch / OpenSearch _bulk output.
type BulkConfig struct {
	ClientConfig `yaml:",inline"`
	// Index names the index of each alert (default DefaultIndex). Text in
	// braces is a Go time layout applied to the alert's time in UTC:
	// "vigil-alerts-{2006.01.02}" writes an alert of 3 May 2026 to
	// vigil-alerts-2026.05.03. A data stream is a name without a date
	// ("logs-vigil-default") with op_type create; its documents need an
	// @timestamp, which the formatter (ECS) provides.
	Index string `yaml:"index"`
	// OpType is "create" (default) or "index". Both use the alert's
	// EventID as the document _id, so a retried alert is stored once: with
	// create a retry finds the document there (409, counted as success);
	// with index it overwrites it. Data streams accept create only.
	OpType string `yaml:"op_type"`
	// APIKeyFile or APIKeyEnv holds an API key (the base64 "encoded" form
	// Elasticsearch returns), sent as "Authorization: ApiKey <key>".
	APIKeyFile string `yaml:"api_key_file"`
	APIKeyEnv  string `yaml:"api_key_env"`
	// Username with PasswordFile or PasswordEnv authenticates with HTTP
	// basic authentication instead.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
}

// Validate checks the configuration without reading any file.
func (c *BulkConfig) Validate() error {
	errs := []error{c.ClientConfig.validate("username with password_file or password_env, or api_key_file or api_key_env")}
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if u, err := url.Parse(c.URL); err == nil && (u.RawQuery != "" || u.ForceQuery) {
		bad("url", "must not have a query; the output adds /_bulk")
	}
	index := c.Index
	if index == "" {
		index = DefaultIndex
	}
	if t, err := parseIndex(index); err != nil {
		bad("index", "%v", err)
	} else if err := validIndexName(t.render(time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC))); err != nil {
		bad("index", "%q: %v", index, err)
	}
	switch c.OpType {
	case "", "create", "index":
	default:
		bad("op_type", "%q: want create or index", c.OpType)
	}
	apiKey := c.APIKeyFile != "" || c.APIKeyEnv != ""
	password := c.PasswordFile != "" || c.PasswordEnv != ""
	switch {
	case c.APIKeyFile != "" && c.APIKeyEnv != "":
		bad("api_key_file", "set only one of api_key_file and api_key_env")
	case c.PasswordFile != "" && c.PasswordEnv != "":
		bad("password_file", "set only one of password_file and password_env")
	case apiKey && (password || c.Username != ""):
		bad("api_key_file", "set either an API key or username and password, not both")
	case password && c.Username == "":
		bad("username", "required with password_file or password_env")
	case c.Username != "" && !password:
		bad("password_file", "required with username (or password_env)")
	case strings.ContainsRune(c.Username, ':') || !validHeaderValue(c.Username):
		bad("username", "must not contain ':' or control characters")
	}
	errs = append(errs, envNames(map[string]string{"api_key_env": c.APIKeyEnv, "password_env": c.PasswordEnv})...)
	return errors.Join(errs...)
}

// indexTemplate is a parsed index name: literal parts and time layouts.
type indexTemplate []indexPart

type indexPart struct {
	text   string
	layout bool // text is a time layout
}

func parseIndex(s string) (indexTemplate, error) {
	var t indexTemplate
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			t = append(t, indexPart{s, false})
			break
		}
		if s[i] == '}' {
			return nil, errors.New("} without {")
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, errors.New("{ without }")
		}
		if j == 1 {
			return nil, errors.New("empty {} (want a Go time layout such as {2006.01.02})")
		}
		if i > 0 {
			t = append(t, indexPart{s[:i], false})
		}
		t = append(t, indexPart{s[i+1 : i+j], true})
		s = s[i+j+1:]
	}
	return t, nil
}

func (t indexTemplate) appendTo(b []byte, tm time.Time) []byte {
	for _, p := range t {
		if p.layout {
			b = tm.AppendFormat(b, p.text)
		} else {
			b = append(b, p.text...)
		}
	}
	return b
}

func (t indexTemplate) render(tm time.Time) string { return string(t.appendTo(nil, tm)) }

// validIndexName applies Elasticsearch's rules for index names.
func validIndexName(s string) error {
	switch {
	case s == "" || s == "." || s == "..":
		return errors.New("not a valid index name")
	case len(s) > 255:
		return errors.New("longer than 255 bytes")
	case strings.ContainsAny(s[:1], "-_+"):
		return errors.New("must not start with -, _ or +")
	case strings.ContainsAny(s, "\\/*?\"<>| ,#:"):
		return errors.New(`must not contain \ / * ? " < > | space , # or :`)
	case strings.ToLower(s) != s:
		return errors.New("must be lower case")
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	return nil
}

// Bulk writes alerts to Elasticsearch or OpenSearch with the _bulk API, one
// request per batch, and reports failed items individually.
type Bulk struct {
	cfg      BulkConfig
	f        output.Formatter
	log      *slog.Logger
	index    indexTemplate
	cl       *client
	auth     string
	buf      []byte // formatter scratch
	sizeHint int
}

// NewBulk validates cfg and returns the output; it does not connect. f
// renders each alert's document, which must be a JSON object. log may be
// nil.
func NewBulk(cfg BulkConfig, f output.Formatter, log *slog.Logger) (*Bulk, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bulk: invalid config: %w", err)
	}
	if f == nil {
		return nil, errors.New("bulk: no formatter")
	}
	if cfg.Index == "" {
		cfg.Index = DefaultIndex
	}
	if cfg.OpType == "" {
		cfg.OpType = DefaultOpType
	}
	index, _ := parseIndex(cfg.Index)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bulk{cfg: cfg, f: f, log: log.With("component", "bulk"), index: index}, nil
}

// Connect implements output.Output: it drops the old connections, reads
// the credentials and the TLS files, and builds a new client. It does not
// dial.
func (o *Bulk) Connect(context.Context) error {
	o.cl.close()
	o.cl = nil
	var auth string
	var secrets [][]byte
	switch {
	case o.cfg.APIKeyFile != "" || o.cfg.APIKeyEnv != "":
		key, err := secret("api_key", o.cfg.APIKeyFile, o.cfg.APIKeyEnv)
		if err != nil {
			return fmt.Errorf("bulk: %w", err)
		}
		auth, secrets = "ApiKey "+string(key), [][]byte{key}
	case o.cfg.Username != "":
		pw, err := secret("password", o.cfg.PasswordFile, o.cfg.PasswordEnv)
		if err != nil {
			return fmt.Errorf("bulk: %w", err)
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(o.cfg.Username, string(pw))
		auth = req.Header.Get("Authorization")
		secrets = [][]byte{pw, []byte(strings.TrimPrefix(auth, "Basic "))}
	}
	cl, err := o.cfg.newClient()
	if err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	cl.secrets = secrets
	o.cl, o.auth = cl, auth
	return nil
}

// Close implements output.Output.
func (o *Bulk) Close(context.Context) error {
	o.cl.close()
	o.cl = nil
	return nil
}

// bulkResponse is the part of a _bulk response the output reads.
type bulkResponse struct {
	Errors bool                  `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

type bulkItem struct {
	Status int `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// filterPath trims the response to what bulkResponse reads.
const filterPath = "errors,items.*.status,items.*.error.type,items.*.error.reason"

// Write implements output.Output. It returns nil when every alert is
// stored (or, with op_type create, was already stored), a *BatchError
// naming the alerts that were not, or an error about the whole request.
// Documents that are not JSON objects are refused without being sent.
func (o *Bulk) Write(ctx context.Context, batch []pipeline.Alert) error {
	if len(batch) == 0 {
		return nil
	}
	if o.cl == nil {
		return errors.New("bulk: not connected")
	}
	var local []output.ItemError // refused before sending
	sent := make([]int, 0, len(batch))
	body := make([]byte, 0, o.sizeHint)
	for i := range batch {
		a := &batch[i]
		o.buf = o.f.Append(o.buf[:0], a)
		doc := bytes.TrimSpace(o.buf)
		if len(doc) == 0 || doc[0] != '{' || !json.Valid(doc) {
			local = append(local, output.ItemError{Index: i, Err: output.Permanent(errors.New("bulk: the formatter's output is not a JSON object"))})
			continue
		}
		body = append(body, `{"`...)
		body = append(body, o.cfg.OpType...)
		body = append(body, `":{"_index":`...)
		body = appendString(body, o.index.appendTo(nil, time.Unix(0, a.Time).UTC()))
		body = append(body, `,"_id":`...)
		body = appendString(body, a.EventID())
		body = append(body, "}}\n"...)
		if bytes.ContainsAny(doc, "\r\n") { // NDJSON: one line per document
			var c bytes.Buffer
			_ = json.Compact(&c, doc) // valid, checked above
			doc = c.Bytes()
		}
		body = append(body, doc...)
		body = append(body, '\n')
		sent = append(sent, i)
	}
	o.sizeHint = max(o.sizeHint, len(body))
	if len(sent) == 0 {
		return &output.BatchError{Failed: local}
	}

	hdr := http.Header{"Content-Type": {"application/x-ndjson"}, "Accept": {"application/json"}}
	if o.auth != "" {
		hdr.Set("Authorization", o.auth)
	}
	target := o.cl.endpoint("_bulk") + "?filter_path=" + url.QueryEscape(filterPath)
	r, err := o.cl.post(ctx, target, hdr, body, 32<<20)
	if err == nil {
		err = o.cl.classify(r, "")
	}
	if err != nil {
		err = fmt.Errorf("bulk: %d documents: %w", len(sent), err)
		if local == nil {
			return err
		}
		for _, i := range sent {
			local = append(local, output.ItemError{Index: i, Err: err})
		}
		return &output.BatchError{Failed: local}
	}

	var resp bulkResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		return fmt.Errorf("bulk: unreadable response (%v): %s", err, snippet(r.body, o.cl.secrets))
	}
	failed := local
	if resp.Errors {
		if len(resp.Items) != len(sent) {
			return fmt.Errorf("bulk: the response has %d items for %d documents", len(resp.Items), len(sent))
		}
		for k, m := range resp.Items {
			if err := o.itemError(m); err != nil {
				failed = append(failed, output.ItemError{Index: sent[k], Err: err})
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &output.BatchError{Failed: failed}
}

// itemError classifies one item of the response: nil when stored, a plain
// error for 429 and 5xx, output.Permanent for the other refusals.
func (o *Bulk) itemError(m map[string]bulkItem) error {
	var op string
	var it bulkItem
	for op, it = range m { // one action per item
	}
	if it.Status >= 200 && it.Status < 300 {
		return nil
	}
	if it.Status == http.StatusConflict && op == "create" {
		return nil // a retry of a document already stored with this _id
	}
	detail := ""
	if it.Error != nil {
		detail = it.Error.Type + ": " + it.Error.Reason
	}
	err := fmt.Errorf("bulk: %w", &StatusError{StatusCode: it.Status, Body: snippet([]byte(detail), o.cl.secrets)})
	if retryable(it.Status) || it.Status == http.StatusConflict || it.Status == 0 {
		return err
	}
	return output.Permanent(err)
}
