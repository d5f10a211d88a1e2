package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/admin"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/state"
)

// runLive is "vigil run": the pipeline as a sidecar to an MQTT broker.
func runLive(ctx context.Context, e *env, args []string) error {
	var cfgPath, statePath, source string
	var watch bool
	fs := newFlags(e, "run", "--config FILE [--state FILE] [--watch-config] [--source mqtt|jetstream]")
	fs.StringVar(&source, "source", "mqtt", "where telemetry comes from: `mqtt` (the broker of the mqtt section) or jetstream (a worker of the scale-out: the partitions of the cluster section's stream it owns; docs/SCALEOUT.md)")
	fs.StringVar(&cfgPath, "config", "", "configuration `file` (YAML; see docs/vigil.example.yaml)")
	fs.StringVar(&statePath, "state", "", "learned-state snapshot `file` to start from and to keep (overrides state.file; e.g. one written by \"vigil replay --save-state\")")
	fs.BoolVar(&watch, "watch-config", false, "also reload the configuration when the file's content changes (checked every 2 s; a ConfigMap update or an editor's save), as on SIGHUP")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfgPath == "" {
		return fmt.Errorf("%w: --config is required (the broker, credentials and subscriptions live there)", errUsage)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	switch source {
	case "mqtt":
	case "jetstream":
		if statePath != "" || watch {
			return fmt.Errorf("%w: --state and --watch-config are for --source mqtt; a worker keeps its learned state in the cluster's checkpoints", errUsage)
		}
		return runWorkerLive(ctx, e, cfg, cfgPath)
	default:
		return fmt.Errorf("%w: --source %q: want mqtt or jetstream", errUsage, source)
	}
	if cfg.MQTT.Broker == "" {
		return fmt.Errorf("config %s: mqtt.broker is required for run", cfgPath)
	}
	if statePath != "" {
		cfg.State.File = statePath
	}
	hooks := &liveHooks{configPath: cfgPath, statePath: statePath}
	if watch {
		// The content loaded, as the watch's starting point: taken now,
		// not when the watch starts, so a change made meanwhile is seen.
		hooks.watch = watchInterval
		if b, err := os.ReadFile(cfgPath); err == nil {
			hooks.loaded = sha256.Sum256(b)
		}
	}
	return live(ctx, e, cfg, hooks)
}

// liveHooks lets the demo observe a live run.
type liveHooks struct {
	extraSink pipeline.Sink                                // also receives every alert
	started   func(p *pipeline.Pipeline, src *mqtt.Source) // called once connected
	// configPath, when set, is re-read on SIGHUP (see reloader), and every
	// watch when positive, if its content changed.
	configPath string
	watch      time.Duration
	statePath  string // --state, which overrides state.file in every reload too
	loaded     [sha256.Size]byte
}

// watchInterval is how often --watch-config looks at the file.
const watchInterval = 2 * time.Second

// live runs the pipeline on the broker of cfg until ctx is cancelled, then
// drains: the source stops, in-flight messages are processed and their alerts
// written, messages are acknowledged, and the connections close.
func live(ctx context.Context, e *env, cfg *config.File, hooks *liveHooks) error {
	log := e.log
	ms := metrics.NewSet()
	dc, err := cfg.DecoderConfig()
	if err != nil {
		return err
	}

	srcOpts := cfg.Source
	srcOpts.Logger, srcOpts.Metrics = log.With("component", "mqtt-source"), ms
	// The broker drops, before sending, what the decoder would reject as
	// too large anyway: a publisher cannot make Vigil allocate more.
	srcOpts.MaxPacketSize = mqtt.PacketSizeFor(dc.MaxPayload)
	src, err := mqtt.NewSource(cfg.MQTT, srcOpts)
	if err != nil {
		return err
	}
	defer src.Close()
	log.Info("connecting to the broker", "broker", redact.URL(cfg.MQTT.Broker), "client_id", cfg.MQTT.ClientID)
	if err := src.Start(ctx); err != nil {
		return err
	}

	var extra []extraOutput
	if hooks != nil && hooks.extraSink != nil {
		extra = append(extra, extraOutput{name: "view", sink: hooks.extraSink})
	}
	outs, deadLetters, err := buildOutputs(e, cfg, extra, log, ms)
	if err != nil {
		return err
	}
	defer deadLetters.Close()
	outs.Start(ctx)
	defer func() {
		if err := outs.Close(); err != nil {
			log.Error("closing alert outputs", "err", err)
		}
	}()

	// What was learned before: the newest good snapshot, restored into
	// the engines (one per shard) and the fleet judge before the run.
	workers := cmp.Or(cfg.Pipeline.Workers, runtime.GOMAXPROCS(0))
	var learned *learnedState
	var keys *state.Keys
	if cfg.State.File != "" {
		if keys, err = stateKeys(cfg); err != nil {
			return err
		}
		if learned, err = loadNewest(cfg.State.File, cfg.State.Keep, keys, log); err != nil {
			log.Error("starting without learned state", "err", err)
		}
	}
	det, err := buildDetection(cfg, workers, learned, log)
	if err != nil {
		return err
	}
	ms.NewGauge(`vigil_devices_limit`, func() float64 { return float64(det.devCap.Max()) })
	pcfg := det.pipelineConfig(cfg, dc, log)
	// Ticks let the traffic detectors notice silence although no message
	// arrives.
	pcfg.Tick = time.Second
	pcfg.Metrics = ms
	pl, err := pipeline.New(pcfg)
	if err != nil {
		return err
	}

	var snaps *snapshots
	if cfg.State.File != "" {
		var seq uint64
		if learned != nil {
			seq = learned.header.Sequence
		}
		snaps = newSnapshots(cfg.State.File, cfg.State.Keep, seq, keys, log, ms)
	}
	var wg sync.WaitGroup
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopAdmin()
		wg.Wait()
	}()
	if err := serveAdmin(adminCtx, &wg, cfg, func() error {
		if !src.Connected() {
			return errors.New("not connected to the broker")
		}
		return outs.Healthy()
	}, func(srv *admin.Server) {
		srv.SetNotes(func() []string { return outputNotes(outs.Statuses()) })
		if snaps != nil {
			srv.Handle("POST /snapshot", func(w http.ResponseWriter, r *http.Request) {
				if err := snaps.take(r.Context(), pl, "requested"); err != nil {
					http.Error(w, "snapshot failed: "+err.Error(), http.StatusInternalServerError)
					return
				}
				fmt.Fprintln(w, "snapshot saved")
			})
		}
	}, log, ms); err != nil {
		return err
	}
	if hooks != nil && hooks.started != nil {
		hooks.started(pl, src)
	}
	log.Info("running", "workers", cfg.Pipeline.Workers, "subscriptions", len(cfg.MQTT.Subscriptions), "metrics", cfg.Metrics.Listen)
	if hooks != nil && hooks.configPath != "" {
		r := &reloader{path: hooks.configPath, watch: hooks.watch, seen: hooks.loaded, statePath: hooks.statePath, cur: cfg, pl: pl, engines: det.engines, fleet: &det.fleet, devCap: det.devCap, log: log,
			ok: ms.NewCounter(`vigil_config_reloads_total`), failed: ms.NewCounter(`vigil_config_reload_failures_total`)}
		reloadCtx, stopReload := context.WithCancel(adminCtx)
		defer stopReload()
		wg.Go(func() { r.loop(reloadCtx) })
	}
	if snaps != nil {
		// Periodic snapshots and SIGUSR1, while the pipeline runs.
		snapCtx, stopSnaps := context.WithCancel(adminCtx)
		defer stopSnaps()
		wg.Go(func() { snapshotLoop(snapCtx, snaps, pl, cfg.State.Interval) })
	}
	err = pl.Run(ctx, src, outs)
	if snaps != nil {
		if serr := snaps.final(pl.Position(), det.fleet, det.engines); serr != nil && err == nil {
			err = fmt.Errorf("state: %w", serr)
		}
	}
	st := pl.Stats()
	log.Info("stopped", "messages", st.Frames, "decoded", st.Decoded, "devices", st.Devices, "alerts", sumValues(st.Alerts))
	return err
}

// snapshotLoop takes a snapshot every interval (when positive) and on each
// SIGUSR1 until ctx ends.
func snapshotLoop(ctx context.Context, snaps *snapshots, pl *pipeline.Pipeline, interval time.Duration) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		why := "periodic"
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-usr1:
			why = "SIGUSR1"
		}
		if err := snaps.take(ctx, pl, why); errors.Is(err, pipeline.ErrNotRunning) {
			return
		}
	}
}

// outputNotes describes the outputs that are failing or behind, for /readyz:
// detection goes on meanwhile, so readiness does not change.
func outputNotes(st []output.Status) []string {
	var notes []string
	for _, s := range st {
		switch {
		case s.LastError != "":
			notes = append(notes, fmt.Sprintf("output %s degraded: failing for %s, %d alerts waiting (oldest %s): %s",
				s.Name, s.FailingFor.Round(time.Second), s.Lag, s.LagTime.Round(time.Second), s.LastError))
		case s.Lag > 0 && s.LagTime > 10*time.Second:
			notes = append(notes, fmt.Sprintf("output %s behind: %d alerts waiting (oldest %s)", s.Name, s.Lag, s.LagTime.Round(time.Second)))
		}
	}
	return notes
}

func sumValues(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
