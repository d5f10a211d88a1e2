package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/state"
)

// learnedState is a snapshot read back for a restore.
type learnedState struct {
	path    string
	header  state.Header
	pos     pipeline.Position
	fleet   []byte // nil when the snapshot has none
	engine  detectors.EngineState
	devices []state.Record
}

// stateKeys reads the snapshot encryption keys of cfg (nil when snapshots
// are not encrypted).
func stateKeys(cfg *config.File) (*state.Keys, error) {
	enc := cfg.State.Encryption
	if !enc.On() {
		return nil, nil
	}
	src := map[string][]byte{}
	var order []string
	if enc.KeyFile != "" {
		b, err := os.ReadFile(enc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("state.encryption.key_file: %w", err)
		}
		src["state.encryption.key_file"], order = b, append(order, "state.encryption.key_file")
	} else {
		v, ok := os.LookupEnv(enc.KeyEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("state.encryption.key_env: environment variable %s is not set", enc.KeyEnv)
		}
		src["state.encryption.key_env"], order = []byte(v), append(order, "state.encryption.key_env")
	}
	for i, f := range enc.OldKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("state.encryption.old_key_files[%d]: %w", i, err)
		}
		name := fmt.Sprintf("state.encryption.old_key_files[%d]", i)
		src[name], order = b, append(order, name)
	}
	return state.ParseKeys(src, order)
}

// createState starts a snapshot file, encrypted when keys are given.
func createState(path string, h state.Header, keys *state.Keys) (*state.Writer, error) {
	if keys != nil {
		return state.CreateEncrypted(path, h, keys)
	}
	return state.Create(path, h)
}

// loadState reads and checks the snapshot at path.
func loadState(path string, keys *state.Keys) (*learnedState, error) {
	h, recs, err := state.ReadWith(path, keys)
	if err != nil {
		return nil, err
	}
	return parseLearned(path, h, recs)
}

// parseLearned checks the records of the snapshot named name.
func parseLearned(name string, h state.Header, recs []state.Record) (*learnedState, error) {
	path := name
	var err error
	ls := &learnedState{path: path, header: h}
	havePos := false
	for _, r := range recs {
		switch r.Kind {
		case state.KindPosition:
			if ls.pos, err = pipeline.DecodePosition(r.Value); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			havePos = true
		case state.KindFleet:
			ls.fleet = r.Value
		case state.KindEngine:
			es, err := detectors.DecodeEngineState(r.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			ls.engine.Start = max(ls.engine.Start, es.Start)
			ls.engine.Evicted += es.Evicted
		case state.KindDevice:
			ls.devices = append(ls.devices, r)
		}
	}
	if !havePos {
		return nil, fmt.Errorf("%s: %w: no stream position", path, state.ErrCorrupt)
	}
	return ls, nil
}

// restoreEngine gives e the devices of the snapshot that belong to shard
// (of workers), in the snapshot's recency order.
func (ls *learnedState) restoreEngine(e *detectors.Engine, shard, workers int, rep *detectors.RestoreReport) error {
	es := ls.engine
	if shard != 0 {
		es.Evicted = 0
	}
	e.SetState(es)
	for _, r := range ls.devices {
		if pipeline.Partition(r.Key, workers) != shard {
			continue
		}
		if err := e.Restore(r.Value, rep); err != nil {
			return fmt.Errorf("%s: %w", ls.path, err)
		}
	}
	return nil
}

// restoreFleet gives f (nil when the fleet judge is off) the snapshot's
// fleet state.
func (ls *learnedState) restoreFleet(f *detectors.Fleet) error {
	if f == nil || ls.fleet == nil {
		return nil
	}
	if err := f.RestoreState(ls.fleet); err != nil {
		return fmt.Errorf("%s: %w", ls.path, err)
	}
	return nil
}

// engines collects a run's engines by shard, as NewProcessor makes them.
type engines struct {
	mu   sync.Mutex
	list []*detectors.Engine
}

func (es *engines) add(shard int, e *detectors.Engine) {
	es.mu.Lock()
	defer es.mu.Unlock()
	for len(es.list) <= shard {
		es.list = append(es.list, nil)
	}
	es.list[shard] = e
}

// logRestore says what a restore brought back and what it could not.
func logRestore(log *slog.Logger, ls *learnedState, rep detectors.RestoreReport) {
	log.Info("restored learned state", "file", ls.path, "snapshot", ls.header.Sequence,
		"taken", ls.header.Created.UTC().Format(time.RFC3339), "devices", rep.Devices,
		"stream_clock", time.Unix(0, ls.pos.Clock).UTC().Format(time.RFC3339Nano))
	if rep.DroppedEpisodes > 0 || rep.Reclassed > 0 {
		log.Warn("the configuration changed since the snapshot", "episodes_of_removed_checks", rep.DroppedEpisodes, "devices_whose_class_is_gone", rep.Reclassed)
	}
}

// runState is "vigil state inspect".
func runState(_ context.Context, e *env, args []string) error {
	usage := "vigil state inspect [--config FILE] [--devices PATTERNS] FILE"
	if len(args) == 0 || args[0] != "inspect" {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	fs := newFlags(e, "state inspect", "[--config FILE] [--devices PATTERNS] FILE")
	cfgPath := fs.String("config", "", "the configuration `file` the state is read with (classes and checks; defaults without one)")
	devices := fs.String("devices", "", "only devices matching these comma-separated `patterns` (e.g. \"press-*,pump-1\")")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = loadConfig(*cfgPath); err != nil {
			return err
		}
	}
	dcfg := cfg.DetectorConfig()
	set, err := detectors.New(dcfg)
	if err != nil {
		return err
	}
	keys, err := stateKeys(cfg)
	if err != nil {
		return err
	}
	ls, err := loadState(fs.Arg(0), keys)
	if err != nil {
		return err
	}
	var patterns []string
	if *devices != "" {
		patterns = strings.Split(*devices, ",")
	}
	eng := set.NewEngine()
	var rep detectors.RestoreReport
	if err := ls.restoreEngine(eng, 0, 1, &rep); err != nil {
		return err
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	fmt.Fprintf(w, "snapshot %d, taken %s, format %d\n", ls.header.Sequence, ls.header.Created.UTC().Format(time.RFC3339), ls.header.Version)
	fmt.Fprintf(w, "stream: started %s, clock %s, next frame %d\n", fmtNs(ls.pos.Start), fmtNs(ls.pos.Clock), ls.pos.Seq)
	fmt.Fprintf(w, "devices: %d", rep.Devices)
	if rep.DroppedEpisodes > 0 || rep.Reclassed > 0 {
		fmt.Fprintf(w, " (with this configuration: %d episodes of checks it lacks dropped, %d devices of classes it lacks reclassed)", rep.DroppedEpisodes, rep.Reclassed)
	}
	fmt.Fprintln(w)
	for _, r := range ls.devices {
		if !matchAny(patterns, r.Key) {
			continue
		}
		d := eng.Device(r.Key)
		fmt.Fprintf(w, "\n%s  class %s", d.Name, eng.Class(d.Name))
		if d.Topic != "" {
			fmt.Fprintf(w, "  topic %s", d.Topic)
		}
		if t := &d.Traffic; t.N > 0 {
			fmt.Fprintf(w, "  traffic: %d messages learned, every %.3g s", t.N, t.Interval)
		}
		fmt.Fprintln(w)
		for i := range d.Signals {
			s := &d.Signals[i]
			b := &s.Base
			warm := "warm"
			if !b.Warm {
				warm = "warming up"
			}
			fmt.Fprintf(w, "  %-14s %-11s n=%-7d mean %-10.5g std %-10.4g median %-10.5g MAD %-9.4g %s",
				s.Name, s.Kind, b.N, b.Mean, b.Std(), b.Median, b.MAD, warm)
			if p, st, ok := eng.Cycle(d.Name, s.Name); ok {
				fmt.Fprintf(w, "  cycle %s (strength %.2f)", p.Round(time.Second), st)
			}
			fmt.Fprintln(w)
		}
		var rel []string
		for i := range d.Signals {
			for j := i + 1; j < len(d.Signals); j++ {
				if r, ok := eng.Correlation(d.Name, d.Signals[i].Name, d.Signals[j].Name); ok {
					rel = append(rel, fmt.Sprintf("%s~%s %+.2f", d.Signals[i].Name, d.Signals[j].Name, r))
				}
			}
		}
		if len(rel) > 0 {
			fmt.Fprintf(w, "  relation (correlation): %s\n", strings.Join(rel, ", "))
		}
		for _, ep := range eng.OpenEpisodes(d.Name) {
			sig := ep.Signal
			if sig == "" {
				sig = "-"
			}
			fmt.Fprintf(w, "  open: %s on %s, %s %s since %s\n", ep.Detector, sig, ep.State, ep.Severity, fmtNs(ep.Started))
		}
	}
	return nil
}

func fmtNs(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.TrimSpace(p), s); ok {
			return true
		}
	}
	return false
}
