package httpout

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Secrets the tests write to files; no error may contain them.
const (
	hecToken      = "hec-token-5f1e0c7a-SECRET"
	apiKey        = "YXBpLWtleS1TRUNSRVQ6c2VjcmV0LWtleQ=="
	esPassword    = "es-password-SECRET-9"
	webhookToken  = "webhook-bearer-SECRET-3"
	webhookSecret = "webhook-hmac-SECRET-7"
)

var allSecrets = []string{hecToken, apiKey, esPassword, webhookToken, webhookSecret}

var jsonFormat = output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte { return a.AppendJSON(dst) })

// t0 is 2026-05-03T10:20:30.123456789Z.
var t0 = time.Date(2026, 5, 3, 10, 20, 30, 123456789, time.UTC)

// testAlerts returns n distinct firing alerts, one second apart.
func testAlerts(n int) []pipeline.Alert {
	as := make([]pipeline.Alert, n)
	for i := range as {
		ts := t0.Add(time.Duration(i) * time.Second).UnixNano()
		as[i] = pipeline.Alert{
			ID: fmt.Sprintf("ep-%d", i), Time: ts, Started: ts - int64(time.Minute),
			Device: fmt.Sprintf("dev-%d", i), Kind: "overpressure", Detector: "overpressure.spike",
			Severity: pipeline.Critical, State: pipeline.Firing, Signal: "pressure",
			Value: 12.5, Threshold: 10, Unit: "bar", Message: "pressure spike",
		}
	}
	return as
}

// tlsServer starts an HTTPS server and returns it with a ClientConfig that
// trusts its certificate through a CA file.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, ClientConfig) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writeCertPEM(t, ca, srv)
	return srv, ClientConfig{URL: srv.URL, TLS: output.TLS{CAFile: ca}, Timeout: 5 * time.Second}
}

// writeCertPEM writes the certificate of srv to path, for a CA file.
func writeCertPEM(t *testing.T, path string, srv *httptest.Server) {
	t.Helper()
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
}

// secretFile writes value (with a trailing newline, as editors do) to a
// file and returns its path.
func secretFile(t *testing.T, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// noSecret fails the test if err's text contains a test secret.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range allSecrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret", err)
		}
	}
}

// kind summarises how the Runner would treat err.
func kind(err error) string {
	var ra *RetryAfterError
	var be *output.BatchError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &be):
		return "batch"
	case output.IsPermanent(err):
		return "permanent"
	case errors.As(err, &ra):
		return "retry-after"
	}
	return "retry"
}

// items summarises a *BatchError as "index:kind" strings, sorted.
func items(err error) []string {
	var be *output.BatchError
	if !errors.As(err, &be) {
		return nil
	}
	var s []string
	for _, it := range be.Failed {
		s = append(s, fmt.Sprintf("%d:%s", it.Index, kind(it.Err)))
	}
	sort.Strings(s)
	return s
}

// connect builds an output with New and connects it.
func connect(t *testing.T, o output.Output) {
	t.Helper()
	if err := o.Connect(context.Background()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
}

var (
	_ output.Output = (*HEC)(nil)
	_ output.Output = (*Bulk)(nil)
	_ output.Output = (*Webhook)(nil)
)
