package httpout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// fakeES is an Elasticsearch _bulk endpoint. Documents of device "busy-*"
// are rejected with 429 the first time, those of device "bad-*" always with
// a mapping error; create on an existing _id answers 409.
type fakeES struct {
	mu       sync.Mutex
	auth     string     // expected Authorization
	script   []response // whole-request answers, before normal service
	docs     map[string]map[string]any
	index    map[string]string // _id → _index
	rejected map[string]bool
	order    []string // alert ids in the order they were stored
	requests int
	problems []string
}

func newFakeES(auth string) *fakeES {
	return &fakeES{auth: auth, docs: map[string]map[string]any{}, index: map[string]string{}, rejected: map[string]bool{}}
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if got := r.Header.Get("Authorization"); got != f.auth {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"type":"security_exception","reason":"unable to authenticate with `+got+`"},"status":401}`)
		return
	}
	if r.URL.Path != "/_bulk" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		f.problems = append(f.problems, "request "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	}
	if !strings.Contains(r.URL.Query().Get("filter_path"), "items.*.status") {
		f.problems = append(f.problems, "no filter_path")
	}
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
	type result struct {
		Status int            `json:"status"`
		Error  map[string]any `json:"error,omitempty"`
		ID     string         `json:"_id"`
		Index  string         `json:"_index"`
	}
	var items []map[string]result
	errorsSeen := false
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line"},"status":400}`)
			return
		}
		if !sc.Scan() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			f.problems = append(f.problems, "document not JSON: "+sc.Text())
		}
		for op, meta := range action {
			res := result{Status: 201, ID: meta.ID, Index: meta.Index}
			device, _ := doc["device"].(string)
			switch {
			case strings.HasPrefix(device, "busy") && !f.rejected[meta.ID]:
				f.rejected[meta.ID] = true
				res.Status, res.Error = 429, map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
			case strings.HasPrefix(device, "bad"):
				res.Status, res.Error = 400, map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [value] of type [long]"}
			case f.docs[meta.ID] != nil && op == "create":
				res.Status, res.Error = 409, map[string]any{"type": "version_conflict_engine_exception", "reason": "[" + meta.ID + "]: version conflict, document already exists"}
			default:
				f.docs[meta.ID], f.index[meta.ID] = doc, meta.Index
				id, _ := doc["id"].(string)
				f.order = append(f.order, id)
			}
			errorsSeen = errorsSeen || res.Error != nil
			items = append(items, map[string]result{op: res})
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": errorsSeen, "items": items})
}

func newBulk(t *testing.T, f *fakeES, mod func(*BulkConfig)) *Bulk {
	t.Helper()
	_, cc := tlsServer(t, f)
	cfg := BulkConfig{ClientConfig: cc, APIKeyFile: secretFile(t, apiKey)}
	if mod != nil {
		mod(&cfg)
	}
	o, err := NewBulk(cfg, jsonFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, o)
	return o
}

func TestBulkPartialFailureAndRetry(t *testing.T) {
	f := newFakeES("ApiKey " + apiKey)
	o := newBulk(t, f, nil)
	batch := testAlerts(5)
	batch[1].Device = "busy-1"
	batch[2].Device = "bad-2"
	// Alert 3 was stored by an earlier attempt whose answer was lost.
	f.docs[batch[3].EventID()] = map[string]any{"device": "dev-3"}

	err := o.Write(context.Background(), batch)
	noSecret(t, err)
	if got, want := items(err), []string{"1:retry", "2:permanent"}; !slices.Equal(got, want) {
		t.Fatalf("items: got %v (%v); want %v", got, err, want)
	}
	var be *output.BatchError
	errors.As(err, &be)
	for _, it := range be.Failed {
		if it.Index == 2 && !strings.Contains(it.Err.Error(), "mapper_parsing_exception: failed to parse field [value]") {
			t.Errorf("item 2: got %q; want the reason", it.Err)
		}
	}

	// The Runner retries the retryable failures only.
	if err := o.Write(context.Background(), []pipeline.Alert{batch[1]}); err != nil {
		t.Fatalf("retry: got %v; want nil", err)
	}
	// A retry of the whole batch (a lost response) stores nothing twice.
	err = o.Write(context.Background(), batch)
	if got, want := items(err), []string{"2:permanent"}; !slices.Equal(got, want) {
		t.Errorf("resend: got %v (%v); want %v", got, err, want)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		t.Error(p)
	}
	for _, i := range []int{0, 1, 3, 4} {
		if f.docs[batch[i].EventID()] == nil {
			t.Errorf("alert %d (%s) not stored", i, batch[i].EventID())
		}
	}
	if got := len(f.docs); got != 4 {
		t.Errorf("stored %d documents; want 4", got)
	}
	if got, want := f.index[batch[0].EventID()], "vigil-alerts-2026.05.03"; got != want {
		t.Errorf("index: got %q; want %q", got, want)
	}
}

func TestBulkWholeRequest(t *testing.T) {
	tests := []struct {
		name   string
		script []response
		want   []string
	}{
		{name: "503 then 200", script: []response{{status: 503, body: `{"error":"unavailable"}`}}, want: []string{"retry", "ok"}},
		{name: "429 with Retry-After", script: []response{{status: 429, header: map[string]string{"Retry-After": "2"}}}, want: []string{"retry-after", "ok"}},
		{name: "400 bad request", script: []response{{status: 400, body: `{"error":{"type":"illegal_argument_exception"},"status":400}`}}, want: []string{"permanent"}},
		{name: "unreadable 200", script: []response{{status: 200, body: `<html>proxy</html>`}}, want: []string{"retry", "ok"}},
		{name: "item count mismatch", script: []response{{status: 200, body: `{"errors":true,"items":[]}`}}, want: []string{"retry", "ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeES("ApiKey " + apiKey)
			f.script = tc.script
			o := newBulk(t, f, nil)
			for i, want := range tc.want {
				err := o.Write(context.Background(), testAlerts(3))
				noSecret(t, err)
				if got := kind(err); got != want {
					t.Fatalf("write %d: got %s (%v); want %s", i, got, err, want)
				}
			}
		})
	}
}

func TestBulkAuth(t *testing.T) {
	basic := "Basic ZWxhc3RpYzplcy1wYXNzd29yZC1TRUNSRVQtOQ==" // elastic:es-password-SECRET-9
	tests := []struct {
		name   string
		server string // the Authorization the server expects
		mod    func(*testing.T, *BulkConfig)
		want   string
	}{
		{name: "api key", server: "ApiKey " + apiKey, want: "ok"},
		{name: "basic", server: basic, mod: func(t *testing.T, c *BulkConfig) {
			c.APIKeyFile, c.Username, c.PasswordFile = "", "elastic", secretFile(t, esPassword)
		}, want: "ok"},
		{name: "wrong api key, echoed by the server", server: basic, want: "retry"},
		{name: "wrong password, echoed by the server", server: "ApiKey " + apiKey, mod: func(t *testing.T, c *BulkConfig) {
			c.APIKeyFile, c.Username, c.PasswordFile = "", "elastic", secretFile(t, esPassword)
		}, want: "retry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeES(tc.server)
			o := newBulk(t, f, func(c *BulkConfig) {
				if tc.mod != nil {
					tc.mod(t, c)
				}
			})
			err := o.Write(context.Background(), testAlerts(1))
			noSecret(t, err)
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(basic, "Basic ")) {
				t.Errorf("error %q contains the basic credentials", err)
			}
			if got := kind(err); got != tc.want {
				t.Errorf("got %s (%v); want %s", got, err, tc.want)
			}
		})
	}
}

func TestBulkOpTypeIndexAndDataStream(t *testing.T) {
	f := newFakeES("ApiKey " + apiKey)
	o := newBulk(t, f, func(c *BulkConfig) { c.OpType, c.Index = "index", "logs-vigil-default" })
	batch := testAlerts(2)
	for range 2 { // index overwrites: a resend is no error
		if err := o.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.docs) != 2 || f.index[batch[1].EventID()] != "logs-vigil-default" {
		t.Errorf("got %d documents in %q; want 2 in logs-vigil-default", len(f.docs), f.index[batch[1].EventID()])
	}
}

func TestBulkDocuments(t *testing.T) {
	// Pretty-printed JSON is compacted to one line; text that is not a JSON
	// object is refused without being sent.
	pretty := output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte {
		if a.Device == "cef" {
			return append(dst, "CEF:0|Vigil|..."...)
		}
		var buf bytes.Buffer
		json.Indent(&buf, a.AppendJSON(nil), "", "  ")
		return append(dst, buf.Bytes()...)
	})
	f := newFakeES("ApiKey " + apiKey)
	_, cc := tlsServer(t, f)
	o, err := NewBulk(BulkConfig{ClientConfig: cc, APIKeyFile: secretFile(t, apiKey)}, pretty, nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, o)
	batch := testAlerts(3)
	batch[1].Device = "cef"
	err = o.Write(context.Background(), batch)
	if got, want := items(err), []string{"1:permanent"}; !slices.Equal(got, want) {
		t.Errorf("got %v (%v); want %v", got, err, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		t.Error(p)
	}
	if len(f.docs) != 2 {
		t.Errorf("stored %d documents; want 2", len(f.docs))
	}
}

func TestIndexTemplate(t *testing.T) {
	tm := time.Date(2026, 5, 3, 23, 30, 0, 0, time.FixedZone("CEST", 2*3600)).UTC()
	tests := []struct {
		tmpl, want, err string
	}{
		{tmpl: DefaultIndex, want: "vigil-alerts-2026.05.03"},
		{tmpl: "alerts-v1-{2006.01}", want: "alerts-v1-2026.05"},
		{tmpl: "logs-vigil-default", want: "logs-vigil-default"},
		{tmpl: "a-{2006}-b-{01}", want: "a-2026-b-05"},
		{tmpl: "x-{2006", err: "{ without }"},
		{tmpl: "x-}", err: "} without {"},
		{tmpl: "x-{}", err: "empty {}"},
	}
	for _, tc := range tests {
		p, err := parseIndex(tc.tmpl)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseIndex(%q): got %v; want %q", tc.tmpl, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseIndex(%q): %v", tc.tmpl, err)
			continue
		}
		if got := p.render(tm); got != tc.want {
			t.Errorf("render(%q): got %q; want %q", tc.tmpl, got, tc.want)
		}
	}
}
