package httpout

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// restartable is an HTTPS test server that can be stopped (its port
// closed) and started again on the same port, with the same certificate,
// accepting or requiring a client certificate the outputs do not have.
type restartable struct {
	t    *testing.T
	h    http.Handler
	addr string
	srv  *httptest.Server
}

func (r *restartable) start(requireClientCert bool) {
	r.t.Helper()
	addr := cmp.Or(r.addr, "127.0.0.1:0")
	var ln net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			r.t.Fatalf("listen again on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv := httptest.NewUnstartedServer(r.h)
	srv.Listener.Close()
	srv.Listener = ln
	if requireClientCert {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	}
	srv.StartTLS()
	r.srv, r.addr = srv, ln.Addr().String()
}

func (r *restartable) stop() { r.srv.Close() }

// TestOutageThroughJournal: an Elasticsearch _bulk endpoint and a webhook
// receiver are unreachable (port closed) or refuse the TLS handshake (they
// require a client certificate the output lacks), then come back on the
// same port accepting it. Through the journal and the runner, the output's
// status shows the failure while it lasts and recovers, and every alert is
// delivered once, in order.
func TestOutageThroughJournal(t *testing.T) {
	type target struct {
		name      string
		handler   http.Handler
		make      func(t *testing.T, cc ClientConfig) output.Output
		delivered func() []string
	}
	targets := []func() target{
		func() target {
			es := newFakeES("ApiKey " + apiKey)
			return target{name: "bulk", handler: es,
				make: func(t *testing.T, cc ClientConfig) output.Output {
					o, err := NewBulk(BulkConfig{ClientConfig: cc, APIKeyFile: secretFile(t, apiKey)}, jsonFormat, nil)
					if err != nil {
						t.Fatal(err)
					}
					return o
				},
				delivered: func() []string {
					es.mu.Lock()
					defer es.mu.Unlock()
					return slices.Clone(es.order)
				}}
		},
		func() target {
			rcv := &fakeReceiver{now: time.Now}
			return target{name: "webhook", handler: rcv,
				make: func(t *testing.T, cc ClientConfig) output.Output {
					o, err := NewWebhook(WebhookConfig{ClientConfig: cc, TokenFile: secretFile(t, webhookToken), SecretFile: secretFile(t, webhookSecret)}, jsonFormat, nil)
					if err != nil {
						t.Fatal(err)
					}
					return o
				},
				delivered: func() []string {
					rcv.mu.Lock()
					defer rcv.mu.Unlock()
					var ids []string
					for _, b := range rcv.bodies {
						var evs []struct{ ID string }
						if err := json.Unmarshal([]byte(b), &evs); err != nil {
							t.Errorf("webhook body %q: %v", b, err)
						}
						for _, e := range evs {
							ids = append(ids, e.ID)
						}
					}
					return ids
				}}
		},
	}
	scenarios := []struct {
		name    string
		refuse  bool   // the outage is a TLS refusal, not a closed port
		errWant string // in the status's LastError during the outage
	}{
		{"port closed", false, "connection refused"},
		{"client certificate required", true, "certificate"},
	}
	for _, mk := range targets {
		for _, sc := range scenarios {
			tg := mk()
			t.Run(tg.name+"/"+sc.name, func(t *testing.T) {
				srv := &restartable{t: t, h: tg.handler}
				srv.start(false)
				ca := filepath.Join(t.TempDir(), "ca.pem")
				writeCertPEM(t, ca, srv.srv)
				cc := ClientConfig{URL: "https://" + srv.addr, TLS: output.TLS{CAFile: ca}, Timeout: 5 * time.Second}
				fo, err := output.New(output.Config{
					Journal: journal.Config{Dir: filepath.Join(t.TempDir(), "journal")},
					Outputs: []output.Spec{{Name: tg.name, Output: tg.make(t, cc), Batch: output.Batching{Count: 7},
						Retry: output.Retry{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}}},
					DrainTimeout: 10 * time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				fo.Start(context.Background())
				alerts := testAlerts(40)
				ctx := context.Background()
				if err := fo.Write(ctx, alerts[:10]); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, "the first alerts delivered", func() bool { return len(tg.delivered()) >= 10 })

				srv.stop()
				if sc.refuse {
					srv.start(true)
				}
				for i := 10; i < 30; i += 10 {
					if err := fo.Write(ctx, alerts[i:i+10]); err != nil {
						t.Fatal(err)
					}
				}
				// The first failure can be the end of a kept-alive connection
				// the server dropped (EOF); the retries that follow it meet
				// the outage itself.
				waitUntil(t, "the outage in the status", func() bool { return strings.Contains(fo.Statuses()[0].LastError, sc.errWant) })
				t.Logf("status during the outage: %+v", fo.Statuses()[0])
				if st := fo.Statuses()[0]; !strings.Contains(st.LastError, sc.errWant) || st.Lag == 0 {
					t.Errorf("status during the outage: %+v; want %q in LastError and alerts waiting", st, sc.errWant)
				}
				if n := len(tg.delivered()); n != 10 {
					t.Errorf("%d alerts delivered during the outage; want 10", n)
				}

				if sc.refuse {
					srv.stop()
				}
				srv.start(false)
				if err := fo.Write(ctx, alerts[30:]); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, "every alert delivered", func() bool { return len(tg.delivered()) >= len(alerts) })
				waitUntil(t, "the status to recover", func() bool { st := fo.Statuses()[0]; return st.LastError == "" && st.Lag == 0 })
				if err := fo.Close(); err != nil {
					t.Fatal(err)
				}
				srv.stop()
				want := make([]string, len(alerts))
				for i := range alerts {
					want[i] = alerts[i].ID
				}
				if got := tg.delivered(); !slices.Equal(got, want) {
					t.Errorf("delivered %v; want each alert once, in order: %v", got, want)
				}
			})
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
