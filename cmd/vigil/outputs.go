package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	natsink "github.com/vigil-iot/vigil/pipeline/nats"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/httpout"
	"github.com/vigil-iot/vigil/pipeline/output/syslog"
)

// extraOutput is an in-process consumer of alerts (the demo's view).
type extraOutput struct {
	name string
	sink pipeline.Sink
}

// buildOutputs opens the journal and makes the outputs of cfg; the caller
// starts and closes the Fanout. It returns the dead-letter file to close
// after the Fanout.
func buildOutputs(e *env, cfg *config.File, extra []extraOutput, log *slog.Logger, ms *metrics.Set) (*output.Fanout, *output.DeadLetterFile, error) {
	meta := vigilMeta()
	outs, err := cfg.AllOutputs()
	if err != nil {
		return nil, nil, err
	}
	var specs []output.Spec
	for _, o := range outs {
		out, err := makeOutput(e, cfg, o, meta, log, ms)
		if err != nil {
			return nil, nil, fmt.Errorf("alerts output %s: %w", o.Name, err)
		}
		specs = append(specs, output.Spec{Name: o.Name, Output: out, Batch: o.Batch, Retry: o.Retry})
	}
	for _, x := range extra {
		specs = append(specs, output.Spec{Name: x.name, Output: output.SinkOutput{Sink: x.sink}})
	}
	if len(specs) == 0 {
		return nil, nil, errors.New("no alert destination: list one in alerts.outputs (or set alerts.mqtt, alerts.nats, alerts.file or alerts.stdout)")
	}
	jc, err := cfg.Alerts.Journal.JournalConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("alerts.journal.%w", err)
	}
	if err := os.MkdirAll(jc.Dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("alerts.journal.dir: %w", err)
	}
	dlPath := cmp.Or(cfg.Alerts.DeadLetter, filepath.Join(filepath.Dir(filepath.Clean(jc.Dir)), "dead-letters.jsonl"))
	dl, err := output.OpenDeadLetterFile(dlPath)
	if err != nil {
		return nil, nil, fmt.Errorf("alerts.dead_letter: %w", err)
	}
	fo, err := output.New(output.Config{
		Journal: jc, Outputs: specs, DeadLetters: dl, DrainTimeout: cfg.Alerts.DrainTimeout,
		Logger: log, Metrics: ms,
	})
	if err != nil {
		dl.Close()
		return nil, nil, err
	}
	log.Info("alert outputs", "journal", jc.Dir, "outputs", len(specs), "dead_letters", dlPath)
	return fo, dl, nil
}

// makeOutput makes one configured output.
func makeOutput(e *env, cfg *config.File, o config.Output, meta output.Meta, log *slog.Logger, ms *metrics.Set) (output.Output, error) {
	f, err := format.New(format.Config{Format: config.FormatOf(o), LEEFDelimiter: o.LEEFDelimiter}, meta)
	if err != nil {
		return nil, err
	}
	switch s := o.Settings.(type) {
	case *config.FileOutput:
		return &output.File{Path: s.Path, Format: f, Sync: s.Fsync == nil || *s.Fsync}, nil
	case *struct{}:
		if o.Type == config.TypeStdout {
			return &output.Writer{W: e.stdout, Format: f}, nil
		}
	case *config.MQTTOutput:
		opts := s.PublisherOptions
		opts.Logger, opts.Metrics = log.With("component", "mqtt-alerts", "output", o.Name), ms
		return mqtt.NewOutput(cfg.MQTT, opts)
	case *natsink.Config:
		return &natsOutput{cfg: *s, log: log.With("output", o.Name), ms: ms}, nil
	case *syslog.Config:
		out, err := syslog.New(*s, f, meta)
		if err != nil {
			return nil, err
		}
		ms.GetOrCreateGauge(fmt.Sprintf(`vigil_output_truncated{output=%q}`, o.Name), func() float64 { return float64(out.Truncated()) })
		return out, nil
	case *httpout.HECConfig:
		return httpout.NewHEC(*s, f, log.With("output", o.Name))
	case *httpout.BulkConfig:
		return httpout.NewBulk(*s, f, log.With("output", o.Name))
	case *httpout.WebhookConfig:
		return httpout.NewWebhook(*s, f, log.With("output", o.Name))
	}
	return nil, fmt.Errorf("BUG: no output for type %q", o.Type)
}

// vigilMeta describes this binary for the SIEM formats.
func vigilMeta() output.Meta {
	m := output.Meta{Vendor: "Vigil", Product: "Vigil", Version: "devel"}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		m.Version = bi.Main.Version
	}
	m.Hostname, _ = os.Hostname()
	return m
}

// natsOutput is the NATS alert publisher as an output: it connects when
// the server is there (not only at start), and the client reconnects by
// itself after that.
type natsOutput struct {
	cfg natsink.Config
	log *slog.Logger
	ms  *metrics.Set
	p   *natsink.Publisher
}

func (o *natsOutput) Connect(context.Context) error {
	if o.p != nil {
		return nil
	}
	p, err := natsink.NewPublisher(o.cfg, o.log, o.ms)
	if err != nil {
		return err
	}
	o.p = p
	return nil
}

func (o *natsOutput) Write(ctx context.Context, batch []pipeline.Alert) error {
	return o.p.Write(ctx, batch)
}

func (o *natsOutput) Close(context.Context) error {
	if o.p == nil {
		return nil
	}
	return o.p.Close()
}
