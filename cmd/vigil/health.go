package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultHealthURL is /healthz on the default metrics listener.
const defaultHealthURL = "http://127.0.0.1:9464/healthz"

// runHealth is "vigil health": an HTTP probe of a running Vigil's /healthz
// (or /readyz) for images without curl or wget, such as distroless:
// HEALTHCHECK CMD ["vigil", "health"]. Exit 0 on a 200 answer, 1 otherwise.
func runHealth(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "health", "[--url URL] [--timeout D]")
	target := fs.String("url", defaultHealthURL, "`URL` to probe: /healthz (alive) or /readyz (connected and the journal writable) on metrics.listen")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: --url must be an http:// or https:// URL", errUsage)
	}
	if u.User != nil {
		return fmt.Errorf("%w: --url must not carry credentials (the health endpoints need none)", errUsage)
	}
	if *timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	first, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u.Redacted(), resp.Status, first)
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", u.Redacted(), first)
	return nil
}
