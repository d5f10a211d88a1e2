package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/report"
	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
	"github.com/vigil-iot/vigil/pipeline/state"
)

// replayOptions are the flags of "vigil replay".
type replayOptions struct {
	config     string
	alerts     string
	deadLetter string
	summary    string
	format     string
	csv        csvFlags
	speed      float64
	workers    int
	decoders   int
	eval       evalOptions
	report     reportOptions
	saveState  string
	loadState  string
	// maxRejected is the share of rejected frames at which the replay
	// exits with status 3.
	maxRejected float64
}

// reportOptions are the flags of the HTML report.
type reportOptions struct {
	path       string
	devices    string
	maxDevices int
	z          float64
}

func runReplay(ctx context.Context, e *env, args []string) error {
	var o replayOptions
	fs := newFlags(e, "replay", "[flags] FILE... (\"-\" reads stdin; .gz files are decompressed)")
	fs.StringVar(&o.config, "config", "", "configuration `file` (YAML); defaults apply without one")
	fs.StringVar(&o.alerts, "alerts", "-", "write alerts as JSON lines to `file` (\"-\" is stdout)")
	fs.StringVar(&o.deadLetter, "dead-letter", "", "write each rejected line with its reason to `file`")
	fs.StringVar(&o.summary, "summary", "text", "summary on stderr at the end: text, json or none")
	fs.StringVar(&o.format, "format", "auto", "input format: auto (by name and content), jsonl (payloads or \"topic payload\" lines) or csv")
	o.csv.register(fs)
	fs.Float64Var(&o.speed, "speed", 0, "pace replay at this multiple of real time (0: as fast as possible)")
	fs.IntVar(&o.workers, "workers", 0, "shard workers (0: one per CPU)")
	fs.IntVar(&o.decoders, "decoders", 0, "decode workers (0: one per CPU)")
	fs.StringVar(&o.eval.labels, "labels", "", "score the alerts against ground truth: a labels `file` (NAB windows JSON or a list of {device, kind, start, end}), \"status\" (the devices' status >= 1) or \"column\" (a label column in CSV input)")
	fs.StringVar(&o.eval.json, "eval-json", "", "with --labels: write the evaluation as JSON to `file`")
	fs.DurationVar(&o.eval.before, "eval-before", 0, "with --labels: an alert this long before a window still detects it")
	fs.DurationVar(&o.eval.after, "eval-after", 30*time.Second, "with --labels: an alert this long after a window still detects it (hold counts)")
	fs.BoolVar(&o.eval.matchKind, "eval-kind", true, "with --labels: an alert detects a window only if its kind matches the window's kind (when it has one)")
	fs.IntVar(&o.eval.devices, "eval-devices", 20, "with --labels: list at most this many devices in the table (-1: all)")
	fs.StringVar(&o.report.path, "report", "", "write a self-contained HTML report (summary, evaluation, charts per device) to `file`")
	fs.StringVar(&o.report.devices, "report-devices", "", "report: chart only devices matching these comma-separated `patterns` (e.g. \"press-*,pump-1\")")
	fs.IntVar(&o.report.maxDevices, "report-max-devices", 50, "report: chart at most this many devices (-1: all)")
	fs.Float64Var(&o.report.z, "report-z", 6, "report: draw the learned band as median ± z·spread")
	fs.StringVar(&o.saveState, "save-state", "", "after the replay, write everything learned (baselines, episodes, traffic, the fleet, the stream position) to `file`, for --load-state or \"vigil run --state\"")
	fs.StringVar(&o.loadState, "load-state", "", "start from the learned state in `file` (written by --save-state) and continue its stream")
	fs.Float64Var(&o.maxRejected, "max-rejected", 1, "exit with status 3 when at least this `fraction` of the input's frames was rejected (1: when every frame was)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no input files (use \"-\" for stdin)", errUsage)
	}
	if !(o.maxRejected > 0 && o.maxRejected <= 1) {
		return fmt.Errorf("%w: --max-rejected must be a fraction in (0, 1]", errUsage)
	}
	if o.speed < 0 {
		return fmt.Errorf("%w: -speed must not be negative", errUsage)
	}
	switch o.summary {
	case "text", "json", "none":
	default:
		return fmt.Errorf("%w: -summary must be text, json or none", errUsage)
	}
	format, err := file.ParseFormat(o.format)
	if err != nil {
		return fmt.Errorf("%w: -format: %v", errUsage, err)
	}

	mode, err := parseLabelSpec(o.eval.labels)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if o.eval.json != "" && mode == labelsNone {
		return fmt.Errorf("%w: --eval-json needs --labels", errUsage)
	}

	cfg := config.Default()
	if o.config != "" {
		if cfg, err = loadConfig(o.config); err != nil {
			return err
		}
	}
	csvm, err := o.csv.mapping()
	if err != nil {
		return err
	}
	res, err := replay(ctx, e, cfg, fs.Args(), o, file.Options{Format: format, CSV: csvm}, mode)
	if err != nil {
		return err
	}
	if err := printSummary(e.stderr, o.summary, res); err != nil {
		return err
	}
	var rep *eval.Report
	var windows []eval.Window
	if mode != labelsNone {
		if rep, windows, err = evaluate(e.stderr, o.eval, mode, res.alerts, res.data, res.points); err != nil {
			return err
		}
	}
	if o.report.path != "" {
		if err := writeReport(o.report, res, rep, windows, reportConfig(o.config, cfg, res.Files, res.workers, res.decoders)); err != nil {
			return err
		}
	}
	return checkRejected(res.Stats, o.maxRejected)
}

// checkRejected returns errRejected when at least max of the frames read were
// rejected: a replay of the wrong file, or of a wrong format, should not look
// like a quiet plant to a script.
func checkRejected(st pipeline.Stats, max float64) error {
	var rejected uint64
	for _, n := range st.Rejected {
		rejected += n
	}
	if st.Frames == 0 || float64(rejected) < max*float64(st.Frames) {
		return nil
	}
	return fmt.Errorf("%w: %d of %d frames (%.1f%%, --max-rejected %g); see the summary for the reasons", errRejected,
		rejected, st.Frames, 100*float64(rejected)/float64(st.Frames), max)
}

// writeReport writes the HTML report of a replay.
func writeReport(o reportOptions, res *replayResult, rep *eval.Report, windows []eval.Window, settings []report.Setting) error {
	f, err := createFile(o.path)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	err = report.Write(f, report.Input{
		Title:      "Vigil replay report",
		Files:      res.Files,
		Stats:      res.Stats,
		Alerts:     res.alerts,
		Labels:     windows,
		Eval:       rep,
		Recording:  report.Merge(res.recorders...),
		Z:          o.z,
		DeviceHint: "choose devices with --report-devices and --report-max-devices",
		Config:     settings,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

// replayResult is what a replay reports.
type replayResult struct {
	Files []string       `json:"files"`
	Stats pipeline.Stats `json:"stats"`

	alerts    []pipeline.Alert   // with labels or a report: every alert
	data      eval.DataInfo      // with labels: reading times per device
	points    []eval.Point       // with point labels
	recorders []*report.Recorder // with a report: the shards' series
	workers   int                // shard workers
	decoders  int                // decode workers (0: one per CPU)
}

func replay(ctx context.Context, e *env, cfg *config.File, paths []string, o replayOptions, fopt file.Options, mode labelMode) (*replayResult, error) {
	dc, err := cfg.DecoderConfig()
	if err != nil {
		return nil, err
	}
	fopt.MaxLine = dc.MaxPayload

	var srcs []pipeline.Source
	closeAll := func() {
		for _, s := range srcs {
			s.Close()
		}
	}
	for _, p := range paths {
		var s pipeline.Source
		if p == "-" {
			s, err = file.NewReader(e.stdin, "-", fopt)
		} else {
			s, err = file.Open(p, fopt)
		}
		if err != nil {
			closeAll()
			return nil, err
		}
		srcs = append(srcs, s)
	}
	src := file.Merge(srcs, pipeline.NewDecoder(dc).PeekTime)
	defer src.Close()
	if o.speed > 0 {
		src = pipeline.Paced(src, o.speed, pipeline.NewDecoder(dc).PeekTime)
	}

	var out io.Writer = e.stdout
	if o.alerts != "-" && o.alerts != "" {
		f, err := createFile(o.alerts)
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		out = f
	}
	sink := pipeline.NewJSONLines(out)
	var sinks pipeline.Sink = sink
	workers, decoders := o.workers, o.decoders
	if workers == 0 {
		workers = cfg.Pipeline.Workers
	}
	if decoders == 0 {
		decoders = cfg.Pipeline.Decoders
	}
	nWorkers := cmp.Or(workers, runtime.GOMAXPROCS(0))
	var keys *state.Keys
	if o.loadState != "" || o.saveState != "" {
		if keys, err = stateKeys(cfg); err != nil {
			return nil, err
		}
	}
	var learned *learnedState
	if o.loadState != "" {
		if learned, err = loadState(o.loadState, keys); err != nil {
			return nil, err
		}
	}
	// The engines are made (and restored) before the run, one per shard.
	det, err := buildDetection(cfg, nWorkers, learned, e.log)
	if err != nil {
		return nil, err
	}
	built := det.engines
	var (
		log    *alertLog
		cols   *collectors
		recMu  sync.Mutex
		recs   []*report.Recorder
		recOpt = report.Options{MaxDevices: o.report.maxDevices}
	)
	if o.report.devices != "" {
		recOpt.Devices = strings.Split(o.report.devices, ",")
	}
	if err := recOpt.Validate(); err != nil {
		return nil, fmt.Errorf("%w: --report-devices: %v", errUsage, err)
	}
	if mode != labelsNone || o.report.path != "" {
		log = &alertLog{}
		sinks = pipeline.Tee{sink, log}
	}
	if mode != labelsNone {
		cols = &collectors{mode: mode}
	}
	// Each shard: the engine, observed by the evaluation collector and the
	// report recorder as taps (the recorder reads the engine's band just
	// before the engine sees each reading).
	var taps func(int) []pipeline.Tap
	if cols != nil || o.report.path != "" {
		taps = func(shard int) []pipeline.Tap {
			var ts []pipeline.Tap
			if cols != nil {
				ts = append(ts, cols.tap())
			}
			if o.report.path != "" {
				rec := report.NewRecorder(recOpt, built[shard].Band)
				recMu.Lock()
				recs = append(recs, rec)
				recMu.Unlock()
				ts = append(ts, rec)
			}
			return ts
		}
	}

	var dead io.Writer
	if o.deadLetter != "" {
		f, err := createFile(o.deadLetter)
		if err != nil {
			return nil, fmt.Errorf("dead-letter: %w", err)
		}
		defer f.Close()
		dead = f
	}

	pcfg := det.pipelineConfig(cfg, dc, e.log)
	pcfg.Decoders = decoders
	pcfg.Taps = taps // no Tick: replay ticks on the stream's own clock
	pcfg.DeadLetter = dead
	pl, err := pipeline.New(pcfg)
	if err != nil {
		return nil, err
	}
	stopProgress := startProgress(e.stderr, pl, paths)
	runErr := pl.Run(ctx, src, sinks)
	stopProgress()
	var closeErr error
	if out == e.stdout {
		closeErr = sink.Flush()
	} else {
		closeErr = sink.Close()
	}
	if runErr != nil {
		return nil, runErr
	}
	if closeErr != nil {
		return nil, fmt.Errorf("alerts: %w", closeErr)
	}
	if o.saveState != "" {
		var seq uint64 // the next snapshot continues the loaded one's sequence
		if learned != nil {
			seq = learned.header.Sequence
		}
		// One file, no rotation: keep 1.
		snaps := newSnapshots(o.saveState, 1, seq, keys, e.log, metrics.NewSet())
		if err := snaps.final(pl.Position(), det.fleet, built); err != nil {
			return nil, err
		}
	}
	res := &replayResult{Files: paths, Stats: pl.Stats(), recorders: recs, workers: nWorkers, decoders: decoders}
	if log != nil {
		res.alerts = log.alerts
	}
	if cols != nil {
		res.data, res.points = cols.merge()
	}
	return res, nil
}

func printSummary(w io.Writer, mode string, r *replayResult) error {
	switch mode {
	case "none":
		return nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(summaryJSON(r))
	}
	s := r.Stats
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Frames) / s.Elapsed.Seconds()
	}
	rejected := uint64(0)
	for _, n := range s.Rejected {
		rejected += n
	}
	files := strings.Join(r.Files, ", ")
	if len(r.Files) > 3 {
		files = fmt.Sprintf("%s and %d more files", strings.Join(r.Files[:2], ", "), len(r.Files)-2)
	}
	fmt.Fprintf(w, "replay summary (%s)\n", files)
	fmt.Fprintf(w, "  messages  %d read, %d decoded, %d rejected\n", s.Frames, s.Decoded, rejected)
	for _, k := range sortedKeys(s.Rejected) {
		fmt.Fprintf(w, "            rejected %-18s %d\n", k, s.Rejected[k])
	}
	if s.Evicted > 0 {
		fmt.Fprintf(w, "  devices   %d tracked, %d forgotten at the device cap (pipeline.max_devices)\n", s.Devices, s.Evicted)
	} else {
		fmt.Fprintf(w, "  devices   %d\n", s.Devices)
	}
	kinds, firing, resolved := s.AlertsByKind()
	if len(kinds) == 0 {
		fmt.Fprintf(w, "  alerts    none\n")
	}
	for i, k := range kinds {
		label := "  alerts   "
		if i > 0 {
			label = "           "
		}
		fmt.Fprintf(w, "%s %-14s %d firing, %d resolved\n", label, k, firing[k], resolved[k])
	}
	fmt.Fprintf(w, "  elapsed   %s (%.0f messages/s)\n", s.Elapsed.Round(time.Millisecond), rate)
	return nil
}

func summaryJSON(r *replayResult) map[string]any {
	s := r.Stats
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Frames) / s.Elapsed.Seconds()
	}
	return map[string]any{
		"files": r.Files, "messages": s.Frames, "decoded": s.Decoded, "rejected": s.Rejected,
		"devices": s.Devices, "evicted": s.Evicted, "alerts": s.Alerts, "elapsed_seconds": s.Elapsed.Seconds(),
		"messages_per_second": rate,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func runConfig(ctx context.Context, e *env, args []string) error {
	usage := "vigil config check [--files=false] FILE"
	if len(args) == 0 || args[0] != "check" {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(e.stderr, "Usage: "+usage)
			return nil
		}
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	fs := newFlags(e, "config check", "[--files=false] FILE")
	files := fs.Bool("files", true, "also check that every file the configuration names (TLS material, credentials) can be read, and warn about secret files others may read")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	path := fs.Arg(0)
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if *files {
		if err := cfg.CheckFiles(); err != nil {
			return configError{fmt.Errorf("config %s: %w", path, err)}
		}
		// Secrets others can read are not wrong, only unwise: warn, exit 0.
		for _, w := range cfg.SecretWarnings() {
			fmt.Fprintf(e.stderr, "vigil config check: warning: %s\n", w)
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok\n", path)
	return nil
}
