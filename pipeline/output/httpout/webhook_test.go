package httpout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// fakeReceiver checks the bearer token and the signature with the secret
// as a receiver would, then answers from a script (2xx once it runs out).
type fakeReceiver struct {
	mu     sync.Mutex
	script []response
	now    func() time.Time
	bodies []string
	keys   []string
	bad    []string
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if got := r.Header.Get("Authorization"); got != "Bearer "+webhookToken {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "bad token "+got)
		return
	}
	if err := VerifySignature([]byte(webhookSecret), r.Header, body, f.now(), 0); err != nil {
		f.bad = append(f.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.bad = append(f.bad, "content type "+ct)
	}
	f.bodies = append(f.bodies, string(body))
	f.keys = append(f.keys, r.Header.Get(IdempotencyHeader))
	if len(f.script) > 0 {
		resp := f.script[0]
		f.script = f.script[1:]
		for k, v := range resp.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.status)
		io.WriteString(w, resp.body)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func newWebhook(t *testing.T, f *fakeReceiver, mod func(*WebhookConfig)) *Webhook {
	t.Helper()
	if f.now == nil {
		f.now = time.Now
	}
	_, cc := tlsServer(t, f)
	cfg := WebhookConfig{
		ClientConfig: cc,
		TokenFile:    secretFile(t, webhookToken),
		SecretFile:   secretFile(t, webhookSecret),
	}
	if mod != nil {
		mod(&cfg)
	}
	w, err := NewWebhook(cfg, jsonFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, w)
	return w
}

func TestWebhookWrite(t *testing.T) {
	tests := []struct {
		name     string
		perAlert bool
		script   []response
		want     []string
		items    []string
	}{
		{name: "accepted", want: []string{"ok"}},
		{name: "503 then 200", script: []response{{status: 503, body: "down"}}, want: []string{"retry", "ok"}},
		{name: "429 with Retry-After", script: []response{{status: 429, header: map[string]string{"Retry-After": "3"}}}, want: []string{"retry-after", "ok"}},
		{name: "410 gone", script: []response{{status: 410, body: "this hook was deleted"}}, want: []string{"permanent"}},
		{name: "408", script: []response{{status: 408}}, want: []string{"retry", "ok"}},
		{
			name: "per alert: second gone", perAlert: true,
			script: []response{{status: 200}, {status: 410}},
			want:   []string{"batch"}, items: []string{"1:permanent"},
		},
		{
			name: "per alert: second unavailable, third not attempted", perAlert: true,
			script: []response{{status: 200}, {status: 503}},
			want:   []string{"batch"}, items: []string{"1:retry", "2:retry"},
		},
		{
			name: "per alert: first unavailable", perAlert: true,
			script: []response{{status: 503}},
			want:   []string{"retry", "ok"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeReceiver{script: tc.script}
			w := newWebhook(t, f, func(c *WebhookConfig) { c.PerAlert = tc.perAlert })
			for i, want := range tc.want {
				err := w.Write(context.Background(), testAlerts(3))
				noSecret(t, err)
				if got := kind(err); got != want {
					t.Fatalf("write %d: got %s (%v); want %s", i, got, err, want)
				}
				if i == 0 && tc.items != nil {
					if got := items(err); !slices.Equal(got, tc.items) {
						t.Errorf("items: got %v; want %v", got, tc.items)
					}
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, b := range f.bad {
				t.Errorf("receiver: %s", b)
			}
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	f := &fakeReceiver{script: []response{{status: 429, body: "quota", header: map[string]string{"Retry-After": "3"}}}}
	w := newWebhook(t, f, nil)
	err := w.Write(context.Background(), testAlerts(1))
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.Delay != 3*time.Second {
		t.Fatalf("got %v; want a *RetryAfterError of 3s", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Body != "quota" {
		t.Errorf("got %#v; want the 429 with its body", se)
	}
}

func TestWebhookBodyAndIdempotencyKey(t *testing.T) {
	f := &fakeReceiver{script: []response{{status: 502}}}
	w := newWebhook(t, f, nil)
	batch := testAlerts(2)
	if err := w.Write(context.Background(), batch); kind(err) != "retry" {
		t.Fatalf("got %v; want retry", err)
	}
	if err := w.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), batch[:1]); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.keys) != 3 || f.keys[0] != f.keys[1] || f.keys[1] == f.keys[2] {
		t.Errorf("keys: got %q; want the retry to repeat the first and another batch to differ", f.keys)
	}
	var events []map[string]any
	if err := json.Unmarshal([]byte(f.bodies[1]), &events); err != nil {
		t.Fatalf("body %s: %v", f.bodies[1], err)
	}
	if len(events) != 2 || events[1]["id"] != "ep-1" {
		t.Errorf("body: got %v; want the two formatted alerts", events)
	}
}

func TestWebhookPerAlertBody(t *testing.T) {
	f := &fakeReceiver{}
	w := newWebhook(t, f, func(c *WebhookConfig) { c.PerAlert = true })
	if err := w.Write(context.Background(), testAlerts(2)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) != 2 || !strings.HasPrefix(f.bodies[0], `{"id":"ep-0"`) {
		t.Errorf("bodies: got %q; want one object per request", f.bodies)
	}
	if f.keys[0] == f.keys[1] {
		t.Errorf("keys: got %q twice; want one per alert", f.keys[0])
	}
}

func TestWebhookStaleClock(t *testing.T) {
	// The receiver's clock is 10 minutes ahead: the signature is refused
	// (401, retried until fixed), and the secret is in no error.
	f := &fakeReceiver{now: func() time.Time { return time.Now().Add(10 * time.Minute) }}
	w := newWebhook(t, f, nil)
	err := w.Write(context.Background(), testAlerts(1))
	noSecret(t, err)
	if err == nil || output.IsPermanent(err) {
		t.Errorf("got %v; want a retryable 401 (a clock to fix, not a bad alert)", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) != 1 || f.bad[0] != ErrStale.Error() {
		t.Errorf("receiver: got %q; want %q", f.bad, ErrStale)
	}
}

func TestWebhookWrongTokenEchoed(t *testing.T) {
	f := &fakeReceiver{}
	w := newWebhook(t, f, func(c *WebhookConfig) { c.TokenFile = secretFile(t, "x"+webhookToken) })
	err := w.Write(context.Background(), testAlerts(1))
	noSecret(t, err)
	if err == nil || output.IsPermanent(err) || !strings.Contains(err.Error(), "bad token Bearer [redacted]") {
		t.Errorf("got %v; want a retryable 401 with the token redacted", err)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("k")
	body := []byte(`[{"id":"a"}]`)
	now := time.Unix(1_800_000_000, 0)
	ts := now.Unix()
	hdr := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(TimestampHeader, strconv.FormatInt(ts, 10))
		if sig != "" {
			h.Set(SignatureHeader, sig)
		}
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{name: "valid", h: hdr(ts, Sign(secret, ts, body)), body: body},
		{name: "4 minutes old", h: hdr(ts-240, Sign(secret, ts-240, body)), body: body},
		{name: "6 minutes old", h: hdr(ts-360, Sign(secret, ts-360, body)), body: body, want: ErrStale},
		{name: "6 minutes ahead", h: hdr(ts+360, Sign(secret, ts+360, body)), body: body, want: ErrStale},
		{name: "body changed", h: hdr(ts, Sign(secret, ts, body)), body: []byte(`[{"id":"b"}]`), want: ErrBadSignature},
		{name: "timestamp changed", h: hdr(ts-1, Sign(secret, ts, body)), body: body, want: ErrBadSignature},
		{name: "other secret", h: hdr(ts, Sign([]byte("other"), ts, body)), body: body, want: ErrBadSignature},
		{name: "no prefix", h: hdr(ts, strings.TrimPrefix(Sign(secret, ts, body), "sha256=")), body: body, want: ErrBadSignature},
		{name: "missing", h: hdr(ts, ""), body: body, want: ErrNoSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifySignature(secret, tc.h, tc.body, now, 0); !errors.Is(got, tc.want) {
				t.Errorf("got %v; want %v", got, tc.want)
			}
		})
	}
}

func ExampleSign() {
	body := []byte(`[{"id":"ep-1"}]`)
	fmt.Println(Sign([]byte("shared-secret"), 1777803630, body))
	// A receiver recomputes it over the raw body and the timestamp header:
	h := http.Header{}
	h.Set(TimestampHeader, "1777803630")
	h.Set(SignatureHeader, Sign([]byte("shared-secret"), 1777803630, body))
	fmt.Println(VerifySignature([]byte("shared-secret"), h, body, time.Unix(1777803660, 0), DefaultReplayWindow))
	// Output:
	// sha256=d46ea5cb9bc4413291279cc8547dd415051640c0fa401a88fb752ceb089a7441
	// <nil>
}

// The key depends on the transitions (EventIDs) only.
func TestIdempotencyKeyStable(t *testing.T) {
	a := testAlerts(2)
	b := testAlerts(2)
	b[0].Message = "changed text, same transition"
	if idempotencyKey(a) != idempotencyKey(b) {
		t.Error("key changed with the message; want it to depend on EventIDs only")
	}
	c := slices.Clone(a)
	c[1].State = pipeline.Resolved
	if idempotencyKey(a) == idempotencyKey(c) {
		t.Error("key did not change with the state; want one key per transition")
	}
}
