package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// reloader re-reads the configuration on SIGHUP and applies what can
// change in place (detector parameters, classes, the fleet judge, the
// device cap) at a barrier, keeping everything learned.
type reloader struct {
	path      string
	watch     time.Duration // poll the file's content this often (0: SIGHUP only)
	statePath string        // --state: overrides state.file
	seen      [sha256.Size]byte
	cur       *config.File
	pl        *pipeline.Pipeline
	engines   []*detectors.Engine
	fleet     **detectors.Fleet    // replaced on the merge stage's goroutine
	devCap    *detectors.DeviceCap // shared by the engines
	log       *slog.Logger

	ok, failed *metrics.Counter
}

func (r *reloader) loop(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if r.watch > 0 {
		t := time.NewTicker(r.watch)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.seen, _ = r.hash()
			r.reload(ctx)
		case <-tick:
			// The content, not the time stamp: a ConfigMap update swaps a
			// symlink, an editor may keep the time. A file that cannot be
			// read now (being replaced) is looked at again next time.
			h, err := r.hash()
			if err != nil || h == r.seen {
				continue
			}
			r.seen = h
			r.log.Info("configuration file changed", "file", r.path)
			r.reload(ctx)
		}
	}
}

// hash returns the SHA-256 of the configuration file's content.
func (r *reloader) hash() ([sha256.Size]byte, error) {
	b, err := os.ReadFile(r.path)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// reload applies the configuration file if it is valid; otherwise the
// running one stays. Sections that need a new connection or listener are
// reported, not applied.
func (r *reloader) reload(ctx context.Context) {
	log := r.log.With("file", r.path)
	next, err := config.Load(r.path)
	if err == nil && r.statePath != "" {
		next.State.File = r.statePath
	}
	var set *detectors.Set
	if err == nil {
		dcfg := next.DetectorConfig()
		set, err = detectors.New(dcfg)
	}
	if err != nil {
		r.failed.Inc()
		log.Error("configuration reload refused; the running configuration stays", "err", err)
		return
	}
	var restart []string
	for _, s := range []struct {
		name     string
		old, new any
	}{
		{"mqtt", r.cur.MQTT, next.MQTT}, {"source", r.cur.Source, next.Source},
		{"alerts", r.cur.Alerts, next.Alerts}, {"metrics", r.cur.Metrics, next.Metrics},
		{"state", r.cur.State, next.State}, {"decoder", r.cur.Decoder, next.Decoder},
		{"pipeline (workers, decoders, batch_size, drain_timeout)", []any{r.cur.Pipeline.Workers, r.cur.Pipeline.Decoders, r.cur.Pipeline.BatchSize, r.cur.Pipeline.DrainTimeout},
			[]any{next.Pipeline.Workers, next.Pipeline.Decoders, next.Pipeline.BatchSize, next.Pipeline.DrainTimeout}},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			restart = append(restart, s.name)
		}
	}
	if len(restart) > 0 {
		log.Warn("these sections changed and take effect at the next restart", "sections", restart)
	}
	reports := make([]detectors.RestoreReport, len(r.engines))
	errs := make([]error, len(r.engines))
	err = r.pl.Reconfigure(ctx, func(shard int, clock int64, proc pipeline.Processor, out []pipeline.Alert) []pipeline.Alert {
		eng := r.engines[shard]
		out, reports[shard], errs[shard] = eng.Reconfigure(set, clock, out)
		return out
	}, func() { *r.fleet = (*r.fleet).Reconfigure(set) })
	if err == nil {
		for _, e := range errs {
			if e != nil {
				err = e
				break
			}
		}
	}
	if err != nil {
		r.failed.Inc()
		log.Error("configuration reload failed", "err", err)
		return
	}
	var devices, dropped, reclassed int
	for _, rep := range reports {
		devices, dropped, reclassed = devices+rep.Devices, dropped+rep.DroppedEpisodes, reclassed+rep.Reclassed
	}
	r.devCap.SetMax(next.Pipeline.MaxDevices)
	r.cur = next
	r.ok.Inc()
	log.Info("configuration reloaded; learned state carried over", "devices", devices, "episodes_of_removed_checks", dropped, "devices_whose_class_is_gone", reclassed)
}
