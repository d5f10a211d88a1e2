package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/admin"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
)

// serveAdmin starts the metrics and health listener of cfg.Metrics, when
// one is configured, on a goroutine of wg until ctx ends: ready answers
// /readyz, and setup (when set) adds notes and handlers before it serves.
// It is what run, the worker and the bridge share.
func serveAdmin(ctx context.Context, wg *sync.WaitGroup, cfg *config.File, ready admin.ReadyFunc, setup func(*admin.Server), log *slog.Logger, ms *metrics.Set) error {
	if cfg.Metrics.Listen == "" {
		return nil
	}
	srv, err := admin.New(cfg.Metrics, ready, log, ms)
	if err != nil {
		return err
	}
	if setup != nil {
		setup(srv)
	}
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			log.Error("metrics listener", "err", err)
		}
	})
	return nil
}
