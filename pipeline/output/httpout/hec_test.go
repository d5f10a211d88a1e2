package httpout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// response is one scripted HTTP answer.
type response struct {
	status int
	body   string
	header map[string]string
}

// fakeHEC is a Splunk HTTP Event Collector: it checks the token and the
// channel, answers the event requests from a script (success once the
// script runs out), hands out ackIds and reads them true after ackAfter
// polls (never when ackAfter < 0).
type fakeHEC struct {
	mu        sync.Mutex
	script    []response
	ack       bool
	ackAfter  int
	pollBusy  int // answer this many polls with 503 code 9 first
	nextAck   int64
	polls     map[int64]int
	events    []map[string]any
	channels  []string
	ackBodies []string
}

func (f *fakeHEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	f.channels = append(f.channels, r.Header.Get("X-Splunk-Request-Channel"))
	if auth := r.Header.Get("Authorization"); auth != "Splunk "+hecToken {
		// Echo the token, as some proxies do, to check it is redacted.
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"text":"Invalid token `+strings.TrimPrefix(auth, "Splunk ")+`","code":4}`)
		return
	}
	switch r.URL.Path {
	case "/services/collector/event":
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
		dec := json.NewDecoder(bytes.NewReader(body))
		for {
			var ev map[string]any
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			f.events = append(f.events, ev)
		}
		if !f.ack {
			io.WriteString(w, `{"text":"Success","code":0}`)
			return
		}
		id := f.nextAck
		f.nextAck++
		io.WriteString(w, `{"text":"Success","code":0,"ackId":`+strconv.FormatInt(id, 10)+`}`)
	case "/services/collector/ack":
		f.ackBodies = append(f.ackBodies, string(body))
		if f.pollBusy > 0 {
			f.pollBusy--
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"text":"Server is busy","code":9}`)
			return
		}
		var req struct{ Acks []int64 }
		if err := json.Unmarshal(body, &req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"text":"Invalid data format","code":6}`)
			return
		}
		res := map[string]bool{}
		for _, id := range req.Acks {
			f.polls[id]++
			res[strconv.FormatInt(id, 10)] = f.ackAfter >= 0 && f.polls[id] > f.ackAfter
		}
		json.NewEncoder(w).Encode(map[string]any{"acks": res})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func newHEC(t *testing.T, f *fakeHEC, mod func(*HECConfig)) *HEC {
	t.Helper()
	if f.polls == nil {
		f.polls = map[int64]int{}
	}
	_, cc := tlsServer(t, f)
	cfg := HECConfig{ClientConfig: cc, TokenFile: secretFile(t, hecToken), Ack: f.ack}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHEC(cfg, jsonFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.pollMin, h.pollMax = 5*time.Millisecond, 40*time.Millisecond
	connect(t, h)
	return h
}

func TestHECWrite(t *testing.T) {
	busy := `{"text":"Server is busy","code":9}`
	tests := []struct {
		name   string
		script []response
		token  string // written to token_file instead of the right one
		want   []string
		items  []string // of the first Write's BatchError
	}{
		{name: "accepted", want: []string{"ok"}},
		{name: "503 then 200", script: []response{{status: 503, body: "unavailable"}}, want: []string{"retry", "ok"}},
		{name: "busy code 9 with Retry-After", script: []response{{status: 503, body: busy, header: map[string]string{"Retry-After": "7"}}}, want: []string{"retry-after", "ok"}},
		{name: "429", script: []response{{status: 429, body: "slow down"}}, want: []string{"retry", "ok"}},
		{name: "internal error code 8", script: []response{{status: 500, body: `{"text":"Internal server error","code":8}`}}, want: []string{"retry", "ok"}},
		{name: "invalid data format code 6", script: []response{{status: 400, body: `{"text":"Invalid data format","code":6}`}}, want: []string{"permanent"}},
		{name: "incorrect index code 7", script: []response{{status: 400, body: `{"text":"Incorrect index","code":7}`}}, want: []string{"retry"}},
		{name: "token disabled code 1", script: []response{{status: 403, body: `{"text":"Token disabled","code":1}`}}, want: []string{"retry"}},
		{name: "busy code in a 200", script: []response{{status: 200, body: busy}}, want: []string{"retry", "ok"}},
		{
			name:   "code 6 naming event 1",
			script: []response{{status: 400, body: `{"text":"Invalid data format","code":6,"invalid-event-number":1}`}},
			want:   []string{"batch"}, items: []string{"0:retry", "1:permanent", "2:retry"},
		},
		{name: "bad token", token: "wrong-" + hecToken, want: []string{"retry"}},
		{name: "redirect", script: []response{{status: 302, header: map[string]string{"Location": "https://elsewhere/"}}}, want: []string{"retry"}},
		{name: "plain 400 without a code", script: []response{{status: 400, body: "<html>bad</html>"}}, want: []string{"permanent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHEC{script: tc.script}
			h := newHEC(t, f, func(c *HECConfig) {
				if tc.token != "" {
					c.TokenFile = secretFile(t, tc.token)
				}
			})
			for i, want := range tc.want {
				err := h.Write(context.Background(), testAlerts(3))
				noSecret(t, err)
				if tc.token != "" && err != nil && strings.Contains(err.Error(), tc.token) {
					t.Errorf("error %q contains the token", err)
				}
				if got := kind(err); got != want {
					t.Fatalf("write %d: got %s (%v); want %s", i, got, err, want)
				}
				if i == 0 && tc.items != nil {
					if got := items(err); !slices.Equal(got, tc.items) {
						t.Errorf("items: got %v; want %v", got, tc.items)
					}
				}
			}
		})
	}
}

func TestHECRetryAfterDelay(t *testing.T) {
	f := &fakeHEC{script: []response{{status: 503, body: `{"text":"Server is busy","code":9}`, header: map[string]string{"Retry-After": "7"}}}}
	h := newHEC(t, f, nil)
	err := h.Write(context.Background(), testAlerts(1))
	var ra *RetryAfterError
	if !errors.As(err, &ra) {
		t.Fatalf("got %v; want a *RetryAfterError", err)
	}
	if ra.Delay != 7*time.Second {
		t.Errorf("delay: got %v; want 7s", ra.Delay)
	}
	if !strings.Contains(err.Error(), "code 9 Server is busy") {
		t.Errorf("error %q does not name HEC code 9", err)
	}
}

func TestHECBadTokenNotInError(t *testing.T) {
	f := &fakeHEC{}
	h := newHEC(t, f, func(c *HECConfig) { c.TokenFile = secretFile(t, "not-"+hecToken) })
	err := h.Write(context.Background(), testAlerts(1))
	if err == nil || output.IsPermanent(err) || !strings.Contains(err.Error(), "token refused") {
		t.Fatalf("got %v; want a retryable token refusal (the alerts wait for the token to be fixed)", err)
	}
	if strings.Contains(err.Error(), "not-"+hecToken) || strings.Contains(err.Error(), hecToken) {
		t.Errorf("error %q contains the token", err)
	}
	if !strings.Contains(err.Error(), "token refused") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: want the refusal, with the echoed token redacted", err)
	}
}

func TestHECEnvelope(t *testing.T) {
	f := &fakeHEC{}
	h := newHEC(t, f, func(c *HECConfig) { c.Index, c.Host = "ot", "gw-1" })
	batch := testAlerts(2)
	if err := h.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) != 2 {
		t.Fatalf("got %d events; want 2", len(f.events))
	}
	ev := f.events[0]
	for k, want := range map[string]any{
		"time": 1777803630.123, "host": "gw-1", "index": "ot", "sourcetype": DefaultSourcetype,
	} {
		if ev[k] != want {
			t.Errorf("%s: got %v; want %v", k, ev[k], want)
		}
	}
	if _, ok := ev["source"]; ok {
		t.Errorf("source: got %v; want it left out", ev["source"])
	}
	event, ok := ev["event"].(map[string]any)
	if !ok || event["device"] != "dev-0" {
		t.Errorf("event: got %v; want the formatter's JSON object", ev["event"])
	}
	fields, _ := ev["fields"].(map[string]any)
	want := map[string]any{
		"alert_id": "ep-0", "event_id": batch[0].EventID(), "device": "dev-0",
		"kind": "overpressure", "severity": "critical", "state": "firing",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("fields.%s: got %v; want %v", k, fields[k], v)
		}
	}
	if len(f.channels) == 0 || f.channels[0] != h.Channel() {
		t.Errorf("channel: got %v; want %s", f.channels, h.Channel())
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(h.Channel()) {
		t.Errorf("channel %q is not a version 4 UUID", h.Channel())
	}
}

func TestHECEventNotJSON(t *testing.T) {
	cef := output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte {
		return append(dst, `CEF:0|Vigil|Vigil|1|overpressure|"spike"\|x|10|`...)
	})
	h := &HEC{cfg: HECConfig{Sourcetype: "cef"}, f: cef}
	a := testAlerts(1)[0]
	a.Time = time.Date(2026, 1, 2, 3, 4, 5, 7_000_000, time.UTC).UnixNano()
	var ev struct {
		Time  json.Number
		Event any
	}
	b := h.appendEnvelope(nil, &a)
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if ev.Event != `CEF:0|Vigil|Vigil|1|overpressure|"spike"\|x|10|` {
		t.Errorf("event: got %#v; want the CEF line as a string", ev.Event)
	}
	if ev.Time != "1767323045.007" {
		t.Errorf("time: got %s; want 1767323045.007", ev.Time)
	}
}

func TestHECAck(t *testing.T) {
	tests := []struct {
		name       string
		ackAfter   int
		pollBusy   int
		noAckID    bool
		ackTimeout time.Duration
		want       string
	}{
		{name: "immediate", ackAfter: 0, want: "ok"},
		{name: "late: two polls false, then true", ackAfter: 2, want: "ok"},
		{name: "poll busy, then true", ackAfter: 0, pollBusy: 2, want: "ok"},
		{name: "never comes", ackAfter: -1, ackTimeout: 200 * time.Millisecond, want: "retry"},
		{name: "token without ack", noAckID: true, want: "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHEC{ack: !tc.noAckID, ackAfter: tc.ackAfter, pollBusy: tc.pollBusy, nextAck: 41}
			h := newHEC(t, f, func(c *HECConfig) {
				c.Ack = true
				c.AckTimeout = tc.ackTimeout
			})
			start := time.Now()
			err := h.Write(context.Background(), testAlerts(2))
			noSecret(t, err)
			if got := kind(err); got != tc.want {
				t.Fatalf("got %s (%v); want %s", got, err, tc.want)
			}
			if tc.ackTimeout > 0 {
				if el := time.Since(start); el < tc.ackTimeout || el > tc.ackTimeout+2*time.Second {
					t.Errorf("returned after %v; want about %v", el, tc.ackTimeout)
				}
				if !strings.Contains(err.Error(), "not confirmed") {
					t.Errorf("error %q does not say the ack was not confirmed", err)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, ch := range f.channels {
				if ch != h.Channel() {
					t.Errorf("channel: got %q; want %q on every request", ch, h.Channel())
				}
			}
			if tc.noAckID {
				if len(f.ackBodies) != 0 {
					t.Errorf("polled %v without an ackId", f.ackBodies)
				}
				return
			}
			if wantPolls := tc.ackAfter + 1; tc.want == "ok" && f.polls[41] != wantPolls {
				t.Errorf("polls: got %d; want %d", f.polls[41], wantPolls)
			}
			for _, b := range f.ackBodies {
				if b != `{"acks":[41]}` {
					t.Errorf("ack request: got %s; want {\"acks\":[41]}", b)
				}
			}
		})
	}
}

func TestHECAckContextCancelled(t *testing.T) {
	f := &fakeHEC{ack: true, ackAfter: -1}
	h := newHEC(t, f, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := h.Write(ctx, testAlerts(1))
	if kind(err) != "retry" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v; want a retryable context error", err)
	}
}

func TestHECTransportError(t *testing.T) {
	f := &fakeHEC{}
	srv, cc := tlsServer(t, f)
	h, err := NewHEC(HECConfig{ClientConfig: cc, TokenFile: secretFile(t, hecToken)}, jsonFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, h)
	srv.Close()
	err = h.Write(context.Background(), testAlerts(1))
	noSecret(t, err)
	if got := kind(err); got != "retry" {
		t.Errorf("got %s (%v); want retry", got, err)
	}
}

func TestHECConnect(t *testing.T) {
	_, cc := tlsServer(t, http.NotFoundHandler())
	tests := []struct {
		name string
		cfg  HECConfig
		want string // in the error
	}{
		{name: "missing token file", cfg: HECConfig{ClientConfig: cc, TokenFile: "/nonexistent/token"}, want: "token_file"},
		{name: "unset token env", cfg: HECConfig{ClientConfig: cc, TokenEnv: "VIGIL_TEST_UNSET_TOKEN"}, want: "token_env"},
		{name: "bad CA file", cfg: HECConfig{ClientConfig: ClientConfig{URL: cc.URL, TLS: output.TLS{CAFile: "/nonexistent/ca.pem"}}, TokenFile: secretFile(t, hecToken)}, want: "tls.ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHEC(tc.cfg, jsonFormat, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = h.Connect(context.Background())
			noSecret(t, err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error naming %s", err, tc.want)
			}
			if kind(err) != "retry" {
				t.Errorf("got %s; want a retryable error (the file may appear later)", kind(err))
			}
		})
	}
}

func TestHECTokenFromEnv(t *testing.T) {
	f := &fakeHEC{polls: map[int64]int{}}
	_, cc := tlsServer(t, f)
	t.Setenv("VIGIL_TEST_HEC_TOKEN", hecToken)
	h, err := NewHEC(HECConfig{ClientConfig: cc, TokenEnv: "VIGIL_TEST_HEC_TOKEN"}, jsonFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, h)
	if err := h.Write(context.Background(), testAlerts(1)); err != nil {
		t.Errorf("got %v; want nil", err)
	}
}
