package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/admin"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	natsink "github.com/vigil-iot/vigil/pipeline/nats"
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

	var sinks pipeline.Tee
	var pub *mqtt.Publisher
	if cfg.Alerts.MQTT.On() {
		opts := cfg.Alerts.MQTT.PublisherOptions
		opts.Logger, opts.Metrics = log.With("component", "mqtt-alerts"), ms
		if pub, err = mqtt.NewPublisher(cfg.MQTT, opts); err != nil {
			return err
		}
		if err := pub.Start(ctx); err != nil {
			pub.Close()
			return err
		}
		sinks = append(sinks, pub)
	}
	if cfg.Alerts.NATS.URL != "" {
		np, err := natsink.NewPublisher(cfg.Alerts.NATS, log, ms)
		if err != nil {
			return err
		}
		sinks = append(sinks, np)
	}
	if cfg.Alerts.File != "" {
		f, err := os.OpenFile(cfg.Alerts.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("alerts.file: %w", err)
		}
		sinks = append(sinks, &flushingSink{JSONLines: pipeline.NewJSONLines(f)})
	}
	if cfg.Alerts.Stdout {
		sinks = append(sinks, &flushingSink{JSONLines: pipeline.NewJSONLines(nopCloser{e.stdout})})
	}
	if hooks != nil && hooks.extraSink != nil {
		sinks = append(sinks, hooks.extraSink)
	}
	if len(sinks) == 0 {
		return errors.New("no alert destination: enable alerts.mqtt, alerts.nats, alerts.file or alerts.stdout")
	}
	defer func() {
		if err := sinks.Close(); err != nil {
			log.Error("closing alert sinks", "err", err)
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
			if pub != nil && !pub.Connected() {
				return errors.New("alert publisher not connected to the broker")
			}
			return nil
		}, log, ms)
		if err != nil {
			return err
		}
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
	err = pl.Run(ctx, src, sinks)
	st := pl.Stats()
	log.Info("stopped", "messages", st.Frames, "decoded", st.Decoded, "devices", st.Devices, "alerts", sumValues(st.Alerts))
	return err
}

// flushingSink flushes after every batch: live alerts must reach the file
// now, not when a buffer fills.
type flushingSink struct{ *pipeline.JSONLines }

func (s *flushingSink) Write(ctx context.Context, batch []pipeline.Alert) error {
	if err := s.JSONLines.Write(ctx, batch); err != nil {
		return err
	}
	return s.Flush()
}

// nopCloser keeps Close from closing stdout.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func sumValues(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
