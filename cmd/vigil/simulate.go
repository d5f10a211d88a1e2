package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

func runSimulate(ctx context.Context, e *env, args []string) error {
	cfg := sim.DefaultConfig()
	var out, labels, start string
	fs := newFlags(e, "simulate", "--out FILE [flags]")
	fs.StringVar(&out, "out", "", "write the plant log (JSON lines) to `file` (\"-\" is stdout)")
	fs.StringVar(&labels, "labels", "", "write the injected anomalies as JSON to `file` (default: OUT with .labels.json)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "number of devices")
	fs.IntVar(&cfg.Anomalous, "anomalous", cfg.Anomalous, "how many of the devices get anomalies")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the simulated run (event time)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "publishing interval of each device")
	fs.DurationVar(&cfg.Cycle, "cycle", cfg.Cycle, "operating cycle; one anomaly per cycle in turn")
	fs.DurationVar(&cfg.LeadIn, "lead-in", cfg.LeadIn, "clean period at the start, for learning")
	fs.Float64Var(&cfg.InjectProb, "inject-prob", cfg.InjectProb, "probability of an injection per device and cycle")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (same seed, same log)")
	fs.BoolVar(&cfg.Drifts, "drifts", cfg.Drifts, "inject slow drifts (cooling failure, wear)")
	fs.BoolVar(&cfg.Faults, "faults", cfg.Faults, "inject a device status fault")
	fs.BoolVar(&cfg.Topics, "topics", cfg.Topics, "write \"topic payload\" lines as mosquitto_sub -v prints them")
	fs.StringVar(&start, "start", cfg.Start.Format(time.RFC3339), "event time of the first message (RFC 3339)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return fmt.Errorf("%w: -start: %v", errUsage, err)
	}
	cfg.Start = t
	if cfg.Duration == 0 {
		return fmt.Errorf("%w: -duration must be positive when writing a file", errUsage)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	var w io.Writer = e.stdout
	var f *os.File
	if out != "-" {
		if f, err = os.Create(out); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	ls, err := sim.WriteLog(bw, cfg)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
	}
	if labels == "" && out != "-" {
		labels = trimExt(out) + ".labels.json"
	}
	if labels != "" {
		lf, err := os.Create(labels)
		if err != nil {
			return err
		}
		if err := sim.WriteLabels(lf, ls); err != nil {
			lf.Close()
			return err
		}
		if err := lf.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "simulate: %d devices (%d anomalous), %s of telemetry, %d injected anomalies → %s, labels → %s\n",
		cfg.Devices, cfg.Anomalous, cfg.Duration, len(ls), out, labels)
	return nil
}

// trimExt removes the last extension of a path (and a .gz before it).
func trimExt(p string) string {
	for _, ext := range []string{".gz", ".log", ".jsonl", ".txt"} {
		if len(p) > len(ext) && p[len(p)-len(ext):] == ext {
			p = p[:len(p)-len(ext)]
		}
	}
	return p
}
