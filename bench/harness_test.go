package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// fleetConfig is the generated workload: 1,000 devices publishing every
// second for 40 minutes, 2,400,000 lines of ~118 bytes (~285 MB). One device
// in ten gets injected anomalies, so alerts are produced, but rarely (about
// one message in a thousand), as in a healthy plant.
func fleetConfig() sim.Config {
	cfg := sim.DefaultConfig()
	cfg.Devices = 1000
	cfg.Anomalous = 100
	cfg.Duration = 40 * time.Minute
	return cfg
}

// workload is a generated log file and what it holds.
type workload struct {
	path  string
	lines int64
	size  int64
}

var (
	fleetOnce sync.Once
	fleet     workload
	fleetErr  error
	tmpDir    string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// fleetLog returns the generated log, writing it on first use. It lives in a
// temporary directory shared by every benchmark of the process and removed
// when the process ends.
func fleetLog(b *testing.B) workload {
	b.Helper()
	fleetOnce.Do(func() {
		tmpDir, fleetErr = os.MkdirTemp("", "vigil-bench-")
		if fleetErr != nil {
			return
		}
		fleet, fleetErr = writeLog(filepath.Join(tmpDir, "fleet.log"), fleetConfig())
	})
	if fleetErr != nil {
		b.Fatal(fleetErr)
	}
	return fleet
}

// writeLog writes the simulated run of cfg to path and counts its lines.
func writeLog(path string, cfg sim.Config) (workload, error) {
	f, err := os.Create(path)
	if err != nil {
		return workload{}, err
	}
	if _, err := sim.WriteLog(f, cfg); err != nil {
		f.Close()
		return workload{}, err
	}
	if err := f.Close(); err != nil {
		return workload{}, err
	}
	return inspect(path)
}

// inspect sizes an existing log and counts its lines.
func inspect(path string) (workload, error) {
	lines, size, err := scanLines(path)
	if err != nil {
		return workload{}, err
	}
	return workload{path: path, lines: lines, size: size}, nil
}

// fixture returns ../fixtures/plant.log, skipping the benchmark when absent.
func fixture(tb testing.TB) workload {
	tb.Helper()
	const path = "../fixtures/plant.log"
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		tb.Skip("no ", path)
	}
	w, err := inspect(path)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// scanLines is the in-process wc -l: a bufio.Scanner over the file, counting
// lines (and bytes, to size the file in the same pass).
func scanLines(path string) (lines, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 256<<10), 1<<20)
	for sc.Scan() {
		lines++
		size += int64(len(sc.Bytes())) + 1
	}
	return lines, size, sc.Err()
}

// noop is a Processor that judges nothing: the pipeline's cost without
// detection.
type noop struct{}

func (noop) Process(_ *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert { return out }
func (noop) Devices() int                                                       { return 0 }

// replayOpts selects what a replay runs.
type replayOpts struct {
	workers  int  // Workers and Decoders
	detect   bool // detectors.Engine per shard, otherwise noop
	alertsTo io.Writer
	// outputs, when set, makes the sink the live one: the journal in a
	// temporary directory and two SIEM outputs (CEF and ECS files); the
	// replay ends when both have delivered every alert.
	outputs *outputOpts
}

type outputOpts struct {
	syncEvery time.Duration // the journal's fsync policy: 0 per batch
}

// outputSink is the journal and two SIEM outputs, as "vigil run" wires
// them.
func outputSink(o *outputOpts) (*output.Fanout, func() error, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-journal-")
	if err != nil {
		return nil, nil, err
	}
	meta := output.Meta{Vendor: "Vigil", Product: "Vigil", Version: "bench", Hostname: "bench"}
	cef, _ := format.ByName("cef", meta)
	ecs, _ := format.ByName("ecs", meta)
	fo, err := output.New(output.Config{
		Journal: journal.Config{Dir: filepath.Join(dir, "journal"), SyncEvery: o.syncEvery},
		Outputs: []output.Spec{
			{Name: "cef", Output: &output.File{Path: filepath.Join(dir, "alerts.cef"), Format: cef, Sync: true}},
			{Name: "ecs", Output: &output.File{Path: filepath.Join(dir, "alerts.ecs.json"), Format: ecs, Sync: true}},
		},
		DrainTimeout: time.Minute,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	fo.Start(context.Background())
	return fo, func() error {
		err := fo.Close()
		for _, st := range fo.Statuses() {
			if st.Lag != 0 && err == nil {
				err = fmt.Errorf("output %s stopped %d alerts behind", st.Name, st.Lag)
			}
		}
		return errors.Join(err, os.RemoveAll(dir))
	}, nil
}

// replay runs the pipeline over path as "vigil replay" wires it (file source,
// one detectors.Engine per shard from the default configuration, JSON-lines
// sink) and returns the run's stats.
func replay(ctx context.Context, set *detectors.Set, path string, o replayOpts) (pipeline.Stats, error) {
	src, err := file.Open(path, file.Options{MaxLine: pipeline.DefaultDecoderConfig().MaxPayload})
	if err != nil {
		return pipeline.Stats{}, err
	}
	defer src.Close()
	newProc := func(int) pipeline.Processor { return noop{} }
	if o.detect {
		newProc = func(int) pipeline.Processor { return set.NewEngine() }
	}
	var fleet pipeline.FleetFunc
	if o.detect {
		fleet = set.FleetFunc()
	}
	pl, err := pipeline.New(pipeline.Config{
		Workers:      o.workers,
		Decoders:     o.workers,
		Decoder:      pipeline.DefaultDecoderConfig(),
		NewProcessor: newProc,
		Fleet:        fleet, // as vigil replay wires it
	})
	if err != nil {
		return pipeline.Stats{}, err
	}
	if o.outputs != nil {
		fo, done, err := outputSink(o.outputs)
		if err != nil {
			return pipeline.Stats{}, err
		}
		runErr := pl.Run(ctx, src, fo)
		return pl.Stats(), errors.Join(runErr, done())
	}
	w := o.alertsTo
	if w == nil {
		w = io.Discard
	}
	sink := pipeline.NewJSONLines(w)
	runErr := pl.Run(ctx, src, sink)
	return pl.Stats(), errors.Join(runErr, sink.Flush())
}

// traffic switches the traffic detectors (traffic.enabled and the fleet
// judge), to measure what they cost: go test -bench ... ./bench/ -args -traffic=false
var traffic = flag.Bool("traffic", true, "run the traffic detectors (traffic.enabled, fleet.enabled)")

// cycles and relation switch the cycle-aware baselines and the relation
// check, to measure what they cost: -args -cycles=false -relation=false
// gives the detectors of the wave's start.
var (
	cycles   = flag.Bool("cycles", true, "run the cycle-aware baselines (cycles.enabled)")
	relation = flag.Bool("relation", true, "run the relation check (relation.enabled)")
)

// defaultSet compiles the default detector configuration: every detector on
// (the traffic detectors, cycles and the relation check as the flags say).
func defaultSet(tb testing.TB) *detectors.Set {
	tb.Helper()
	cfg := detectors.DefaultConfig()
	cfg.Params.Traffic.Enabled = *traffic
	cfg.Fleet.Enabled = *traffic
	cfg.Params.Cycles.Enabled = *cycles
	cfg.Params.Relation.Enabled = *relation
	set, err := detectors.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// benchReplay replays w once per iteration and reports messages per second;
// the process's CPU time per message (all threads: decoders, workers, GC),
// which other load on the machine disturbs less than the wall clock; and
// allocations and bytes allocated per message.
func benchReplay(b *testing.B, w workload, o replayOpts) {
	set := defaultSet(b)
	ctx := context.Background()
	b.SetBytes(w.size)
	b.ReportAllocs()
	var before, after runtime.MemStats
	debug.FreeOSMemory() // start from a collected, scavenged heap
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	var msgs, alerts uint64
	for b.Loop() {
		st, err := replay(ctx, set, w.path, o)
		if err != nil {
			b.Fatal(err)
		}
		if st.Frames != uint64(w.lines) || st.Processed != st.Frames {
			b.Fatalf("read %d frames, processed %d; want %d", st.Frames, st.Processed, w.lines)
		}
		msgs += st.Frames
		for _, n := range st.Alerts {
			alerts += n
		}
	}
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(msgs), "cpu-ns/msg")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(msgs), "allocs/msg")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(msgs), "B/msg")
	b.ReportMetric(float64(alerts)/float64(b.N), "alerts/op")
}

// TestHarness checks, on a small generated log and quickly, that the replay
// the benchmarks time reads every line, judges every reading and gives the
// same alerts with one worker as with two.
func TestHarness(t *testing.T) {
	cfg := fleetConfig()
	cfg.Devices, cfg.Anomalous = 12, 8
	cfg.Duration = 15 * time.Minute
	w, err := writeLog(filepath.Join(t.TempDir(), "small.log"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	set := defaultSet(t)
	var outs [2]string
	for i, workers := range []int{1, 2} {
		var alerts strings.Builder
		st, err := replay(context.Background(), set, w.path, replayOpts{workers: workers, detect: true, alertsTo: &alerts})
		if err != nil {
			t.Fatal(err)
		}
		if st.Frames != uint64(w.lines) || st.Decoded != st.Frames || st.Processed != st.Frames {
			t.Fatalf("workers=%d: frames %d, decoded %d, processed %d; want %d each", workers, st.Frames, st.Decoded, st.Processed, w.lines)
		}
		if st.Devices != cfg.Devices {
			t.Errorf("workers=%d: %d devices; want %d", workers, st.Devices, cfg.Devices)
		}
		outs[i] = alerts.String()
	}
	if outs[0] == "" {
		t.Error("no alerts; the workload should produce some")
	}
	if outs[0] != outs[1] {
		t.Error("alerts differ between 1 and 2 workers")
	}
	if n, _, err := scanLines(w.path); err != nil || n != w.lines {
		t.Errorf("scanLines = %d, %v; want %d", n, err, w.lines)
	}
}
