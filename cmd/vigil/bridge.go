package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
)

// runBridge is "vigil bridge": the plant's MQTT broker into the partitioned
// JetStream stream of the scale-out (docs/SCALEOUT.md §2).
func runBridge(ctx context.Context, e *env, args []string) error {
	var cfgPath string
	fs := newFlags(e, "bridge", "--config FILE")
	fs.StringVar(&cfgPath, "config", "", "configuration `file` (YAML): the mqtt section (broker, credentials, subscriptions), cluster (NATS URL, stream, partitions) and bridge")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfgPath == "" {
		return fmt.Errorf("%w: --config is required (the broker, the NATS servers and the stream live there)", errUsage)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	switch {
	case cfg.MQTT.Broker == "":
		return configError{fmt.Errorf("config %s: mqtt.broker is required for bridge", cfgPath)}
	case cfg.Cluster.URL == "":
		return configError{fmt.Errorf("config %s: cluster.url is required for bridge", cfgPath)}
	}
	log := e.log
	ms := metrics.NewSet()
	dc, err := cfg.DecoderConfig()
	if err != nil {
		return err
	}

	nc, _, err := connectStream(ctx, cfg, "vigil-bridge", jetstream.EnsureStream, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	stream := cfg.Cluster.Config.WithDefaults()
	log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted(), "version", nc.ConnectedServerVersion(), "stream", stream.Stream, "partitions", stream.Partitions)

	srcOpts := cfg.Source
	srcOpts.Logger, srcOpts.Metrics = log.With("component", "mqtt-source"), ms
	srcOpts.MaxPacketSize = mqtt.PacketSizeFor(dc.MaxPayload)
	src, err := mqtt.NewSource(cfg.MQTT, srcOpts)
	if err != nil {
		return err
	}
	defer src.Close()
	br, err := jetstream.NewBridge(nc, jetstream.BridgeConfig{
		Partitions:   stream.Partitions,
		MaxPending:   cfg.Bridge.MaxPending,
		Tick:         cfg.Bridge.Tick,
		Timeout:      cfg.Cluster.Timeout,
		DrainTimeout: cfg.Bridge.DrainTimeout,
		Pack:         cfg.Bridge.Pack,
		Decoder:      dc,
		Logger:       log,
		Metrics:      ms,
	})
	if err != nil {
		return err
	}
	log.Info("connecting to the broker", "broker", redact.URL(cfg.MQTT.Broker), "client_id", cfg.MQTT.ClientID)
	if err := src.Start(ctx); err != nil {
		return err
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
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return nil
	}, nil, log, ms); err != nil {
		return err
	}
	log.Info("bridging", "subscriptions", len(cfg.MQTT.Subscriptions), "metrics", cfg.Metrics.Listen)
	err = br.Run(ctx, src)
	// The broker gets the acknowledgements made during the drain before
	// the connection closes; NATS last.
	if cerr := src.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if derr := nc.FlushTimeout(5 * time.Second); derr != nil {
		log.Warn("flushing the NATS connection", "err", derr)
	}
	log.Info("stopped",
		"published", ms.GetOrCreateCounter(`vigil_bridge_published_total`).Get(),
		"abandoned", ms.GetOrCreateCounter(`vigil_bridge_abandoned_total`).Get())
	return err
}
