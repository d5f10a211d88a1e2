package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthCommand: "vigil health" exits 0 on a 200 answer and 1 on any
// other answer or none, with the reason; a bad --url is a usage error.
func TestHealthCommand(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && status != http.StatusOK {
			http.Error(w, "not ready: not connected to the broker", status)
			return
		}
		w.Write([]byte("ready\noutput siem behind: 3 alerts waiting\n"))
	}))
	defer srv.Close()

	code, out, errs := runCLI(t, "health", "--url", srv.URL+"/readyz")
	if code != 0 || out != srv.URL+"/readyz: ready\n" {
		t.Errorf("healthy: exit %d, stdout %q, stderr %q; want exit 0 and the first line of the answer", code, out, errs)
	}
	status = http.StatusServiceUnavailable
	code, _, errs = runCLI(t, "health", "--url", srv.URL+"/readyz")
	if code != 1 || !strings.Contains(errs, "503") || !strings.Contains(errs, "not connected to the broker") {
		t.Errorf("not ready: exit %d, stderr %q; want exit 1 with the status and the reason", code, errs)
	}

	// Nothing listening: a closed server's address.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/healthz"
	dead.Close()
	if code, _, errs := runCLI(t, "health", "--url", deadURL, "--timeout", "2s"); code != 1 || !strings.Contains(errs, "connection refused") {
		t.Errorf("nothing listening: exit %d, stderr %q; want exit 1, connection refused", code, errs)
	}

	for _, args := range [][]string{
		{"health", "--url", "ftp://127.0.0.1/healthz"},
		{"health", "--url", "http://user:secret@127.0.0.1:9464/healthz"},
		{"health", "--timeout", "0s"},
		{"health", "extra"},
	} {
		code, _, errs := runCLI(t, args...)
		if code != 2 || strings.Contains(errs, "secret") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 (usage) without echoing credentials", args, code, errs)
		}
	}
}
