package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/tune"
	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline/file"
)

// runTune is "vigil tune": search detector parameters over labelled logs.
func runTune(ctx context.Context, e *env, args []string) error {
	var (
		specPath, labelSpec, cfgPath, out, jsonOut, format string
		csvf                                               csvFlags
		rows                                               int
	)
	fs := newFlags(e, "tune", "--spec FILE --labels FILE|status|column [flags] LOG...")
	fs.StringVar(&specPath, "spec", "", "tuning `file` (YAML): objective, search, parameters and their ranges")
	fs.StringVar(&labelSpec, "labels", "", "ground truth: a labels `file`, \"status\" or \"column\" (as for replay)")
	fs.StringVar(&cfgPath, "config", "", "base configuration `file` (default: the defaults)")
	fs.StringVar(&out, "out", "", "write the best settings as a configuration `file` that run and replay accept")
	fs.StringVar(&jsonOut, "json", "", "write every trial as JSON to `file`")
	fs.IntVar(&rows, "rows", 30, "show at most this many trials in the table (the base and the Pareto front always)")
	fs.StringVar(&format, "format", "auto", "input format: auto, jsonl or csv")
	csvf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case specPath == "":
		return fmt.Errorf("%w: --spec is required", errUsage)
	case labelSpec == "":
		return fmt.Errorf("%w: --labels is required: tuning needs ground truth", errUsage)
	case fs.NArg() == 0:
		return fmt.Errorf("%w: no input files", errUsage)
	}
	mode, err := parseLabelSpec(labelSpec)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ff, err := file.ParseFormat(format)
	if err != nil {
		return fmt.Errorf("%w: -format: %v", errUsage, err)
	}
	spec, err := tune.LoadSpec(specPath)
	if err != nil {
		return err
	}
	base := config.Default()
	if cfgPath != "" {
		if base, err = loadConfig(cfgPath); err != nil {
			return err
		}
	}
	dc, err := base.DecoderConfig()
	if err != nil {
		return err
	}

	csvm, err := csvf.mapping()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "loading %s…\n", sample(fs.Args(), 3))
	ds, err := tune.LoadContext(ctx, fs.Args(), file.Options{Format: ff, MaxLine: dc.MaxPayload, CSV: csvm}, dc)
	if err != nil {
		return err
	}
	st := ds.Stats()
	fmt.Fprintf(e.stderr, "loaded %d readings of %d devices (%d rejected) in %s\n", st.Readings, ds.Devices(), st.Frames-uint64(st.Readings), st.Elapsed.Round(1e6))

	var labels *eval.Labels
	switch mode {
	case labelsFile:
		if labels, err = eval.LoadLabels(labelSpec); err != nil {
			return err
		}
	case labelsStatus:
		labels = ds.LabelsFromStatus()
	case labelsColumn:
		labels = ds.LabelsFromColumn()
	}

	progress := func(done, total int) {}
	if isTerminal(e.stderr) {
		progress = func(done, total int) {
			fmt.Fprintf(e.stderr, "\r\x1b[Ktrials %d/%d", done, total)
			if done == total {
				fmt.Fprint(e.stderr, "\r\x1b[K")
			}
		}
	}
	res, runErr := tune.Run(ctx, ds, labels, base, spec, tune.RunOptions{Progress: progress})
	if res == nil {
		return runErr
	}
	if len(res.UnknownDevices) > 0 {
		fmt.Fprintf(e.stderr, "labels: %d labelled devices are not in the data and are ignored: %s\n", len(res.UnknownDevices), sample(res.UnknownDevices, 5))
	}
	if err := res.WriteTableRows(e.stdout, rows); err != nil {
		return err
	}
	if jsonOut != "" {
		if err := writeFile(jsonOut, res.WriteJSON); err != nil {
			return err
		}
	}
	if out != "" && res.Best != nil {
		if err := writeFile(out, func(w io.Writer) error { return tune.WriteConfig(w, res, res.Best) }); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "best settings written to %s (use with replay --config or run --config)\n", out)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if runErr != nil {
		fmt.Fprintln(e.stderr, "interrupted: the table and settings cover the trials finished so far")
	}
	return nil
}

// writeFile creates path and writes it with write, reporting close errors.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := createFile(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
