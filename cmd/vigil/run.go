package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/admin"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// runLive is "vigil run": the pipeline as a sidecar to an MQTT broker.
func runLive(ctx context.Context, e *env, args []string) error {
	var cfgPath string
	fs := newFlags(e, "run", "--config FILE")
	fs.StringVar(&cfgPath, "config", "", "configuration `file` (YAML; see docs/vigil.example.yaml)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfgPath == "" {
		return fmt.Errorf("%w: --config is required (the broker, credentials and subscriptions live there)", errUsage)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if cfg.MQTT.Broker == "" {
		return fmt.Errorf("config %s: mqtt.broker is required for run", cfgPath)
	}
	return live(ctx, e, cfg, nil)
}

// liveHooks lets the demo observe a live run.
type liveHooks struct {
	extraSink pipeline.Sink                                // also receives every alert
	started   func(p *pipeline.Pipeline, src *mqtt.Source) // called once connected
}

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
	dcfg := cfg.DetectorConfig()
	dcfg.Fleet = cfg.Fleet
	set, err := detectors.New(dcfg)
	if err != nil {
		return err
	}

	srcOpts := cfg.Source
	srcOpts.Logger, srcOpts.Metrics = log.With("component", "mqtt-source"), ms
	src, err := mqtt.NewSource(cfg.MQTT, srcOpts)
	if err != nil {
		return err
	}
	defer src.Close()
	log.Info("connecting to the broker", "broker", cfg.MQTT.Broker, "client_id", cfg.MQTT.ClientID)
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

	pl, err := pipeline.New(pipeline.Config{
		Workers:   cfg.Pipeline.Workers,
		Decoders:  cfg.Pipeline.Decoders,
		BatchSize: cfg.Pipeline.BatchSize,
		Decoder:   dc,
		NewProcessor: func(int) pipeline.Processor {
			e := set.NewEngine()
			e.SetMaxDevices(cfg.Pipeline.EngineCap(cmp.Or(cfg.Pipeline.Workers, runtime.GOMAXPROCS(0))))
			return e
		},
		// Ticks let the traffic detectors notice silence although no
		// message arrives; Fleet judges the fleet as a whole (spraying).
		Tick:         time.Second,
		Fleet:        set.FleetFunc(),
		DrainTimeout: cfg.Pipeline.DrainTimeout,
		Logger:       log,
		Metrics:      ms,
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopAdmin()
		wg.Wait()
	}()
	if cfg.Metrics.Listen != "" {
		srv, err := admin.New(cfg.Metrics, func() error {
			if !src.Connected() {
				return errors.New("not connected to the broker")
			}
			return outs.Healthy()
		}, log, ms)
		if err != nil {
			return err
		}
		srv.SetNotes(func() []string { return outputNotes(outs.Statuses()) })
		wg.Go(func() {
			if err := srv.Serve(adminCtx); err != nil {
				log.Error("metrics listener", "err", err)
			}
		})
	}
	if hooks != nil && hooks.started != nil {
		hooks.started(pl, src)
	}
	log.Info("running", "workers", cfg.Pipeline.Workers, "subscriptions", len(cfg.MQTT.Subscriptions), "metrics", cfg.Metrics.Listen)
	err = pl.Run(ctx, src, outs)
	st := pl.Stats()
	log.Info("stopped", "messages", st.Frames, "decoded", st.Decoded, "devices", st.Devices, "alerts", sumValues(st.Alerts))
	return err
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
