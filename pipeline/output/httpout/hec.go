package httpout

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Defaults of HECConfig.
const (
	DefaultSourcetype = "vigil:alert"
	DefaultAckTimeout = 60 * time.Second
)

// HECConfig configures the Splunk HTTP Event Collector output.
type HECConfig struct {
	ClientConfig `yaml:",inline"`
	// TokenFile or TokenEnv holds the HEC token (required).
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// Index, Source and Host set the event metadata; empty ones are left
	// out, so the token's defaults apply.
	Index  string `yaml:"index"`
	Source string `yaml:"source"`
	Host   string `yaml:"host"`
	// Sourcetype defaults to DefaultSourcetype.
	Sourcetype string `yaml:"sourcetype"`
	// Ack waits for indexer acknowledgement: Write returns nil only once
	// Splunk reports the request's events indexed. The token must have
	// acknowledgement enabled (Splunk Enterprise; Splunk Cloud offers it
	// only to Kinesis Firehose).
	Ack bool `yaml:"ack"`
	// AckTimeout bounds the wait for the acknowledgement (default
	// DefaultAckTimeout); when it passes, Write fails with a retryable
	// error and the batch is sent again.
	AckTimeout time.Duration `yaml:"ack_timeout"`
}

// Validate checks the configuration without reading any file.
func (c *HECConfig) Validate() error {
	errs := []error{c.ClientConfig.validate("token_file or token_env")}
	if u, err := url.Parse(c.URL); err == nil && (u.RawQuery != "" || u.ForceQuery) {
		errs = append(errs, errors.New("url: must not have a query; the output adds /services/collector/event"))
	}
	switch {
	case c.TokenFile == "" && c.TokenEnv == "":
		errs = append(errs, errors.New("token_file: required (or token_env)"))
	case c.TokenFile != "" && c.TokenEnv != "":
		errs = append(errs, errors.New("token_file: set only one of token_file and token_env"))
	}
	errs = append(errs, envNames(map[string]string{"token_env": c.TokenEnv})...)
	for k, v := range map[string]string{"index": c.Index, "source": c.Source, "host": c.Host, "sourcetype": c.Sourcetype} {
		if !validHeaderValue(v) {
			errs = append(errs, fmt.Errorf("%s: has control characters", k))
		}
	}
	if c.AckTimeout < 0 {
		errs = append(errs, errors.New("ack_timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// HEC sends alerts to a Splunk HTTP Event Collector, one request per batch
// (the events concatenated), optionally waiting for indexer
// acknowledgement.
type HEC struct {
	cfg         HECConfig
	f           output.Formatter
	log         *slog.Logger
	channel     string
	cl          *client
	auth        string
	buf         []byte // formatter scratch, reused across Writes
	id          []byte // EventID scratch
	sizeHint    int
	warnedNoAck bool
	// Acknowledgement polling: the first poll after pollMin, then doubling
	// up to pollMax.
	pollMin, pollMax time.Duration
}

// NewHEC validates cfg and returns the output; it does not connect. f
// renders the "event" of each alert. log may be nil.
func NewHEC(cfg HECConfig, f output.Formatter, log *slog.Logger) (*HEC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hec: invalid config: %w", err)
	}
	if f == nil {
		return nil, errors.New("hec: no formatter")
	}
	if cfg.Sourcetype == "" {
		cfg.Sourcetype = DefaultSourcetype
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HEC{
		cfg: cfg, f: f, log: log.With("component", "hec"),
		channel: newUUID(),
		pollMin: 200 * time.Millisecond, pollMax: 5 * time.Second,
	}, nil
}

// Channel returns the HEC data channel, a random UUID chosen once per
// output and sent with every request as X-Splunk-Request-Channel.
func (h *HEC) Channel() string { return h.channel }

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const x = hexDigits
	b := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, x[c>>4], x[c&0xf])
	}
	return string(b)
}

// Connect implements output.Output: it drops the old connections, reads
// the token and the TLS files, and builds a new client. It does not dial.
func (h *HEC) Connect(ctx context.Context) error {
	h.cl.close()
	h.cl = nil
	tok, err := secret("token", h.cfg.TokenFile, h.cfg.TokenEnv)
	if err != nil {
		return fmt.Errorf("hec: %w", err)
	}
	cl, err := h.cfg.newClient()
	if err != nil {
		return fmt.Errorf("hec: %w", err)
	}
	cl.secrets = [][]byte{tok}
	h.cl, h.auth = cl, "Splunk "+string(tok)
	return nil
}

// Close implements output.Output.
func (h *HEC) Close(context.Context) error {
	h.cl.close()
	h.cl = nil
	return nil
}

// hecReply is the JSON body of every HEC answer.
type hecReply struct {
	Text         string `json:"text"`
	Code         *int   `json:"code"`
	AckID        *int64 `json:"ackId"`
	InvalidEvent *int   `json:"invalid-event-number"`
}

func (h *HEC) headers() http.Header {
	return http.Header{
		"Authorization":            {h.auth},
		"Content-Type":             {"application/json"},
		"X-Splunk-Request-Channel": {h.channel},
	}
}

// Write implements output.Output. Without Ack it returns nil when HEC
// answers success (the events are received and valid); with Ack, only once
// the request's ackId reads true.
func (h *HEC) Write(ctx context.Context, batch []pipeline.Alert) error {
	if len(batch) == 0 {
		return nil
	}
	if h.cl == nil {
		return errors.New("hec: not connected")
	}
	body := make([]byte, 0, h.sizeHint)
	for i := range batch {
		body = h.appendEnvelope(body, &batch[i])
	}
	h.sizeHint = max(h.sizeHint, len(body))
	r, err := h.cl.post(ctx, h.cl.endpoint("services", "collector", "event"), h.headers(), body, 64<<10)
	if err != nil {
		return fmt.Errorf("hec: send %d events: %w", len(batch), err)
	}
	var rep hecReply
	parsed := json.Unmarshal(r.body, &rep) == nil && rep.Code != nil
	if r.status/100 == 2 && (!parsed || *rep.Code == 0) {
		if !h.cfg.Ack {
			return nil
		}
		if !parsed || rep.AckID == nil {
			if !h.warnedNoAck {
				h.warnedNoAck = true
				h.log.Warn("HEC answered without an ackId: indexer acknowledgement is off for this token, so a batch counts as delivered when HEC accepts it")
			}
			return nil
		}
		return h.waitAck(ctx, *rep.AckID)
	}
	return h.refusal(r, rep, parsed, len(batch))
}

// refusal classifies a failed send by the HEC status code when the body has
// one, by the HTTP status otherwise. The codes (Splunk's "HTTP Event
// Collector status codes"): 1 token disabled, 2 token required, 3 invalid
// authorization, 4 invalid token, 5 no data, 6 invalid data format, 7
// incorrect index, 8 internal server error, 9 server busy, 10 data channel
// missing, 11 invalid data channel, 12 event field required, 13 event field
// blank, 14 ACK disabled, 15 error in handling indexed fields, 16 query
// string authorization not enabled, 18-20 unhealthy.
func (h *HEC) refusal(r *reply, rep hecReply, parsed bool, n int) error {
	if !parsed {
		if err := h.cl.classify(r, ""); err != nil {
			return fmt.Errorf("hec: %w", err)
		}
		return fmt.Errorf("hec: unexpected reply: %s", snippet(r.body, h.cl.secrets))
	}
	detail := "code " + strconv.Itoa(*rep.Code) + " " + maskSecrets(rep.Text, h.cl.secrets)
	err := &StatusError{StatusCode: r.status, Body: detail}
	switch *rep.Code {
	case 8, 9, 18, 19, 20:
		return fmt.Errorf("hec: %w", withRetryAfter(err, r.header, time.Now()))
	case 1, 2, 3, 4, 16:
		// The token is wrong, disabled or not allowed: an operator fixes
		// it; meanwhile the alerts wait in the journal.
		return fmt.Errorf("hec: token refused: %w", err)
	case 7, 10, 11, 14:
		// The index, the channel or acknowledgements are set up wrong:
		// a configuration problem too, not this alert's.
		return fmt.Errorf("hec: %w", err)
	case 5, 6, 12, 13, 15:
		// invalid-event-number is the zero-based position of the event
		// HEC refused. Events before it may be indexed and those after
		// it were not: resend all but that one (duplicates rather than
		// loss).
		if i := rep.InvalidEvent; i != nil && *i >= 0 && *i < n && n > 1 {
			be := &output.BatchError{Failed: make([]output.ItemError, 0, n)}
			for j := range n {
				e := fmt.Errorf("hec: resend: event %d of the same request was refused (%v)", *i, err)
				if j == *i {
					e = output.Permanent(fmt.Errorf("hec: %w", err))
				}
				be.Failed = append(be.Failed, output.ItemError{Index: j, Err: e})
			}
			return be
		}
		return output.Permanent(fmt.Errorf("hec: %w", err))
	}
	if cerr := h.cl.classify(r, detail); cerr != nil {
		return fmt.Errorf("hec: %w", cerr)
	}
	return fmt.Errorf("hec: %w", err)
}

// appendEnvelope appends the HEC event of a.
func (h *HEC) appendEnvelope(b []byte, a *pipeline.Alert) []byte {
	t := time.Unix(0, a.Time)
	b = append(b, `{"time":`...)
	b = strconv.AppendInt(b, t.Unix(), 10)
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	for _, kv := range [...]struct{ k, v string }{
		{"host", h.cfg.Host}, {"source", h.cfg.Source},
		{"sourcetype", h.cfg.Sourcetype}, {"index", h.cfg.Index},
	} {
		if kv.v != "" {
			b = append(b, `,"`...)
			b = append(b, kv.k...)
			b = append(b, `":`...)
			b = appendString(b, kv.v)
		}
	}
	h.buf = h.f.Append(h.buf[:0], a)
	b = append(b, `,"event":`...)
	b = appendEvent(b, h.buf)
	b = append(b, `,"fields":{"alert_id":`...)
	b = appendString(b, a.ID)
	b = append(b, `,"event_id":`...)
	h.id = a.AppendEventID(h.id[:0])
	b = appendString(b, h.id)
	b = append(b, `,"device":`...)
	b = appendString(b, a.Device)
	b = append(b, `,"kind":`...)
	b = appendString(b, a.Kind)
	b = append(b, `,"severity":`...)
	b = appendString(b, a.Severity.String())
	b = append(b, `,"state":`...)
	b = appendString(b, a.State.String())
	return append(b, "}}\n"...)
}

// waitAck polls the acknowledgement endpoint until id reads true, the ack
// timeout passes (a retryable error: the batch is sent again) or ctx ends.
// Splunk reports an id true once only, so a true answer is final.
func (h *HEC) waitAck(ctx context.Context, id int64) error {
	actx, cancel := context.WithTimeout(ctx, h.cfg.AckTimeout)
	defer cancel()
	body := []byte(`{"acks":[` + strconv.FormatInt(id, 10) + `]}`)
	key := strconv.FormatInt(id, 10)
	delay := h.pollMin
	var last error
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-actx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("hec: waiting for ack %d: %w", id, ctx.Err())
			}
			err := fmt.Errorf("hec: ack %d on channel %s not confirmed within %v; the batch will be resent", id, h.channel, h.cfg.AckTimeout)
			if last != nil {
				err = fmt.Errorf("%w (last poll: %v)", err, last)
			}
			return err
		case <-timer.C:
		}
		r, err := h.cl.post(actx, h.cl.endpoint("services", "collector", "ack"), h.headers(), body, 64<<10)
		switch {
		case err != nil:
			last = err // the connection may come back: keep polling
		case r.status/100 == 2:
			var ack struct {
				Acks map[string]bool `json:"acks"`
			}
			if json.Unmarshal(r.body, &ack) != nil {
				last = fmt.Errorf("unexpected ack reply: %s", snippet(r.body, h.cl.secrets))
				break
			}
			if ack.Acks[key] {
				return nil
			}
			last = nil
		default:
			var rep hecReply
			detail := ""
			if json.Unmarshal(r.body, &rep) == nil && rep.Code != nil {
				detail = "code " + strconv.Itoa(*rep.Code) + " " + maskSecrets(rep.Text, h.cl.secrets)
				if *rep.Code == 9 {
					r.status = http.StatusServiceUnavailable
				}
			}
			last = h.cl.classify(r, detail)
			if output.IsPermanent(last) {
				// The status can no longer be read: send the batch
				// again rather than risk losing it.
				return fmt.Errorf("hec: ack %d: polling refused, the batch will be resent: %v", id, errors.Unwrap(last))
			}
		}
		delay = min(2*delay, h.pollMax)
		timer.Reset(delay)
	}
}
