// Package admin serves Vigil's operational endpoints: Prometheus metrics,
// liveness and readiness.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Config configures the listener.
type Config struct {
	// Listen is the address, default 127.0.0.1:9464; "" disables the server.
	Listen string `yaml:"listen"`
}

// ReadyFunc reports nil when Vigil is ready to do its job (e.g. connected to
// the broker), or why not.
type ReadyFunc func() error

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	mux   *http.ServeMux
	srv   *http.Server
	ln    net.Listener
	log   *slog.Logger
	notes func() []string
}

// Handle registers an endpoint beside /metrics, /healthz and /readyz
// (pattern as for http.ServeMux, e.g. "POST /snapshot"). Call it before
// Serve.
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// SetNotes adds lines to a ready /readyz answer: conditions worth knowing
// that do not stop detection, such as an alert output that is failing.
// Call it before Serve.
func (s *Server) SetNotes(fn func() []string) { s.notes = fn }

// New listens on cfg.Listen. Metrics come from sets (each written in order)
// plus the Go process metrics.
func New(cfg Config, ready ReadyFunc, log *slog.Logger, sets ...*metrics.Set) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	s := &Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for _, s := range sets {
			s.WritePrometheus(w)
		}
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
		if s.notes != nil {
			for _, n := range s.notes() {
				fmt.Fprintln(w, n)
			}
		}
	})
	*s = Server{
		mux: mux,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:  ln,
		log: log.With("component", "admin"),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("serving metrics and health", "addr", s.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
