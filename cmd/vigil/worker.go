package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsclient "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/admin"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/cluster"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/state"
)

// errFenced ends a partition's run whose ownership this worker can no
// longer vouch for: its lease lapsed (a pause, a partition from NATS) or
// another worker took the partition over. Its alerts are not written.
var errFenced = errors.New("partition fenced: ownership lost")

// worker runs the partitions of the stream this process owns, one
// pipeline per partition (docs/SCALEOUT.md §3–4): it joins the members,
// takes the partitions the assignment gives it, restores each from its
// checkpoint and replays the partition from the checkpoint's mark, judges
// it live, checkpoints it every interval, and hands it over (checkpoint,
// release) when the assignment moves it or the process stops.
type worker struct {
	cfg      *config.File
	dc       pipeline.DecoderConfig
	stream   jetstream.Config
	id       string
	interval time.Duration
	log      *slog.Logger
	ms       *metrics.Set
	js       natsjs.JetStream
	set      *detectors.Set
	keys     *state.Keys
	out      *output.Fanout
	member   *cluster.Member
	records  *cluster.Records
	ckpts    *cluster.Checkpoints

	mu    sync.Mutex
	parts map[int]*partRun
	wg    sync.WaitGroup

	owned, takeovers, fenced, checkpoints, checkpointFails, damagedPacks, misrouted *metrics.Counter
	fleetM                                                                          fleetMetrics
}

// partRun is one owned partition's run.
type partRun struct {
	p      int
	member *cluster.Member // the incarnation that took it; a rejoin makes another
	own    *cluster.Ownership
	pl     *pipeline.Pipeline
	eng    *detectors.Engine
	src    *jetstream.PartitionSource
	stop   context.CancelFunc // soft: drain what was read, then hand over
	done   chan struct{}      // closed when the run and its hand-over ended
	fenced atomic.Bool
	ckptMu sync.Mutex // one checkpoint at a time
	last   string     // the object of the last committed checkpoint
	n      int        // checkpoints written in this ownership
	ckptAt atomic.Int64
	err    error
	// counter reports the partition's newcomers to the fleet stream (nil
	// when fleet judgement is off); judge, on partition 0 only, judges
	// the fleet.
	counter *jetstream.FleetCounter
	judge   *fleetJudge
}

// fencedSink writes a partition's alerts only while this worker still
// holds its lease and the partition: a worker that was paused (SIGSTOP, a
// long GC, a VM migration) past its lease must not publish what it judged
// from messages another owner is judging too.
type fencedSink struct {
	out    pipeline.Sink
	w      *worker
	run    *partRun
	wrote  *metrics.Counter
	refuse *metrics.Counter
}

func (s *fencedSink) Write(ctx context.Context, as []pipeline.Alert) error {
	if s.run.fenced.Load() || !time.Now().Before(s.run.member.ValidUntil()) {
		s.run.fenced.Store(true)
		s.refuse.Add(len(as))
		return errFenced
	}
	if err := s.out.Write(ctx, as); err != nil {
		return err
	}
	s.wrote.Add(len(as))
	return nil
}

func (s *fencedSink) Close() error { return nil }

// newWorker connects the parts of a worker; run starts it.
func newWorker(cfg *config.File, dc pipeline.DecoderConfig, js natsjs.JetStream, keys *state.Keys, out *output.Fanout, log *slog.Logger, ms *metrics.Set) (*worker, error) {
	set, err := detectors.New(cfg.DetectorConfig())
	if err != nil {
		return nil, err
	}
	id := cfg.Cluster.WorkerID
	if id == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster.worker_id is not set and the host name is unknown: %w", err)
		}
		id = h
	}
	w := &worker{
		cfg: cfg, dc: dc, stream: cfg.Cluster.Config.WithDefaults(), id: id,
		interval: cmp.Or(cfg.Cluster.CheckpointInterval, config.DefaultCheckpointInterval),
		log:      log, ms: ms, js: js, set: set, keys: keys, out: out,
		parts:           map[int]*partRun{},
		owned:           ms.NewCounter(`vigil_partition_acquired_total`),
		takeovers:       ms.NewCounter(`vigil_partition_takeovers_total`),
		fenced:          ms.NewCounter(`vigil_partition_fenced_total`),
		checkpoints:     ms.NewCounter(`vigil_partition_checkpoints_total`),
		checkpointFails: ms.NewCounter(`vigil_partition_checkpoint_failures_total`),
		damagedPacks:    ms.NewCounter(`vigil_partition_damaged_packs_total`),
		misrouted:       ms.NewCounter(`vigil_partition_misrouted_total`),
		fleetM:          newFleetMetrics(ms),
	}
	ms.NewGauge(`vigil_partitions_owned`, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return float64(len(w.parts))
	})
	// Per partition, 0 on the workers that do not own it (aggregate with
	// max by (partition)).
	for p := range w.stream.Partitions {
		lbl := `{partition="` + strconv.Itoa(p) + `"}`
		gauge := func(name string, f func(r *partRun) float64) {
			ms.NewGauge(name+lbl, func() float64 {
				w.mu.Lock()
				defer w.mu.Unlock()
				if r := w.parts[p]; r != nil {
					return f(r)
				}
				return 0
			})
		}
		gauge(`vigil_partition_owned`, func(*partRun) float64 { return 1 })
		gauge(`vigil_partition_mark`, func(r *partRun) float64 { return float64(r.src.Last()) })
		gauge(`vigil_partition_lag_messages`, func(r *partRun) float64 { return float64(r.src.Pending()) })
		gauge(`vigil_partition_checkpoint_age_seconds`, func(r *partRun) float64 {
			if at := r.ckptAt.Load(); at != 0 {
				return float64(time.Now().UnixNano()-at) / 1e9
			}
			return 0
		})
	}
	return w, nil
}

// run keeps the worker's partitions in line with the assignment until ctx
// ends, then hands every partition over and leaves. It returns errLost
// when the worker's membership lapsed (every partition was stopped
// without writing anything more): the caller joins again.
func (w *worker) run(ctx context.Context) error {
	retry := time.NewTicker(w.stream.Lease / 2)
	defer retry.Stop()
	for {
		w.reconcile(ctx)
		select {
		case <-ctx.Done():
			w.stopAll(false)
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := w.member.Leave(lctx); err != nil {
				w.log.Warn("leaving the cluster", "err", err)
			}
			w.waitPartitions(10 * time.Second)
			return nil
		case <-w.member.Lost():
			w.log.Error("membership lost (lease expired): stopping every partition without writing more")
			w.stopAll(true)
			// Not waiting for the partitions stopAll left behind: they
			// are fenced, and a worker that waited for a stuck one would
			// never rejoin (CI saw exactly that).
			return errLost
		case <-w.member.Changed():
		case <-retry.C:
		}
	}
}

// waitPartitions waits for every partition goroutine, those left behind
// by a lost incarnation included, for at most limit.
func (w *worker) waitPartitions(limit time.Duration) {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		w.log.Error("partitions still running at shutdown; leaving them", "waited", limit)
	}
}

// errLost reports a worker whose membership lapsed.
var errLost = errors.New("cluster membership lost")

// reconcile starts the partitions assigned to this worker that it does not
// run, and hands over those it runs that are no longer its own.
func (w *worker) reconcile(ctx context.Context) {
	want := map[int]bool{}
	for _, p := range cluster.Owned(w.member.Live(), w.id, w.stream.Partitions) {
		want[p] = true
	}
	w.mu.Lock()
	running := maps.Clone(w.parts)
	w.mu.Unlock()
	for p, r := range running {
		select {
		case <-r.done: // ended by itself (fenced, failed): forget it
			w.mu.Lock()
			delete(w.parts, p)
			w.mu.Unlock()
			delete(running, p)
			continue
		default:
		}
		if !want[p] {
			w.log.Info("handing the partition over", "partition", p)
			r.stop()
		}
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if _, ok := running[p]; ok || ctx.Err() != nil {
			continue
		}
		if err := w.start(ctx, p); err != nil {
			var owned *cluster.OwnedError
			if errors.As(err, &owned) {
				w.log.Debug("partition still owned; waiting", "partition", p, "owner", owned.Owner)
				continue
			}
			if ctx.Err() == nil {
				w.log.Error("cannot take the partition", "partition", p, "err", err)
			}
		}
	}
}

// start takes partition p: fences it, restores its checkpoint and starts
// its pipeline from the checkpoint's mark.
func (w *worker) start(ctx context.Context, p int) error {
	// Not cancelled by a stop arriving meanwhile: a take whose answer was
	// abandoned could leave the record ours with nobody to release it.
	// Once started, the stop drains and releases the partition.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	own, rec, err := w.records.Take(ctx, p, w.member)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		if !started { // taken but not started: give it back at once
			w.release(own)
		}
	}()
	w.owned.Inc()
	if rec.Owner != "" && rec.Owner != w.member.Key() && !rec.Released {
		w.takeovers.Inc()
	}
	eng := w.set.NewEngine()
	eng.ShareCap(detectors.NewDeviceCap(w.cfg.Pipeline.MaxDevices))
	var resume pipeline.Position
	devices := 0
	var counter *jetstream.FleetCounter
	if w.cfg.Fleet.Enabled {
		counter = jetstream.NewFleetCounter(p, fleetReportWidth(w.cfg.Fleet.Window))
	}
	if ck := rec.Checkpoint; ck != nil {
		b, err := w.ckpts.Get(ctx, ck.Object, ck.Digest)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", ck.Object, err)
		}
		h, recs, err := state.ReadFrom(bytes.NewReader(b), w.keys)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", ck.Object, err)
		}
		ls, err := parseLearned(ck.Object, h, recs)
		if err != nil {
			return err
		}
		var rep detectors.RestoreReport
		if err := ls.restoreEngine(eng, 0, 1, &rep); err != nil {
			return err
		}
		resume, devices = ls.pos, len(ls.devices)
		if counter != nil && ls.fleet != nil {
			if err := counter.RestoreState(ls.fleet); err != nil {
				// The window in progress is counted from the mark on.
				w.log.Warn("fleet count not restored", "partition", p, "err", err)
			}
		}
	}
	run := &partRun{p: p, member: w.member, own: own, eng: eng, done: make(chan struct{}), counter: counter}
	if rec.Checkpoint != nil {
		run.last = rec.Checkpoint.Object
		run.ckptAt.Store(rec.Checkpoint.Created.UnixNano())
	} else {
		run.ckptAt.Store(time.Now().UnixNano()) // nothing to lose before now
	}
	src, err := jetstream.NewPartitionSource(ctx, w.js, jetstream.PartitionSourceConfig{
		Stream: w.stream.Stream, Partition: p, After: resume.Mark, Logger: w.log,
		DamagedPacks: w.damagedPacks,
		Partitions:   w.stream.Partitions, Misrouted: w.misrouted,
	})
	if err != nil {
		return err
	}
	pl, err := pipeline.New(pipeline.Config{
		// One shard and one decoder: a partition is the unit of
		// parallelism, and its own stream clock makes its alerts the
		// same whoever owns it.
		Workers: 1, Decoders: 1,
		BatchSize:    w.cfg.Pipeline.BatchSize,
		Decoder:      w.dc,
		NewProcessor: func(int) pipeline.Processor { return eng },
		Fleet:        w.fleetReporter(counter),
		FleetSnapshot: func() []byte {
			if counter == nil {
				return nil
			}
			return counter.AppendState(nil)
		},
		Resume:       resume,
		DrainTimeout: w.cfg.Pipeline.DrainTimeout,
		Logger:       w.log.With("partition", p),
	})
	if err != nil {
		src.Close()
		return err
	}
	run.pl, run.src = pl, src
	started = true
	runCtx, stop := context.WithCancel(context.Background())
	run.stop = stop
	w.mu.Lock()
	w.parts[p] = run
	w.mu.Unlock()
	lbl := `{partition="` + strconv.Itoa(p) + `"}`
	sink := &fencedSink{out: w.out, w: w, run: run,
		wrote:  w.ms.GetOrCreateCounter(`vigil_partition_alerts_total` + lbl),
		refuse: w.ms.GetOrCreateCounter(`vigil_partition_alerts_refused_total` + lbl)}
	if p == 0 {
		var judged int64
		if rec.Checkpoint != nil {
			judged = rec.Checkpoint.FleetJudged
		}
		run.judge = w.newFleetJudge(sink, judged)
	}
	w.log.Info("partition taken", "partition", p, "epoch", own.Epoch(), "from", rec.Owner,
		"checkpoint_mark", resume.Mark, "devices", devices)
	w.wg.Go(func() { w.runPartition(runCtx, run, sink) })
	return nil
}

// runPartition runs p's pipeline until it is stopped or fails, with a
// checkpoint every interval, then hands it over: a final checkpoint and
// the release, unless it was fenced.
func (w *worker) runPartition(ctx context.Context, run *partRun, sink *fencedSink) {
	defer close(run.done)
	ckCtx, stopCk := context.WithCancel(ctx)
	var ckWG sync.WaitGroup
	ckWG.Go(func() {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-ckCtx.Done():
				return
			case <-t.C:
				if err := w.checkpoint(ckCtx, run, false); err != nil && !errors.Is(err, pipeline.ErrNotRunning) && ckCtx.Err() == nil {
					w.log.Warn("checkpoint failed", "partition", run.p, "err", err)
				}
			}
		}
	})
	var judgeWG sync.WaitGroup
	if run.judge != nil {
		judgeWG.Go(func() { run.judge.run(ctx) })
	}
	err := run.pl.Run(ctx, run.src, sink)
	stopCk()
	ckWG.Wait()
	judgeWG.Wait() // ctx ended it too: its last window is final
	run.src.Close()
	if errors.Is(err, errFenced) || run.fenced.Load() {
		w.fenced.Inc()
		w.log.Warn("partition fenced: stopped without writing more", "partition", run.p)
		run.err = errFenced
		return
	}
	if err != nil {
		w.log.Error("partition stopped", "partition", run.p, "err", err)
		run.err = err
	}
	// Drained: a final checkpoint covers everything judged, then the
	// partition is released so its next owner need not wait for a lease.
	hctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.checkpoint(hctx, run, true); err != nil {
		w.log.Error("final checkpoint failed; the next owner replays from the previous one", "partition", run.p, "err", err)
		return
	}
	if err := w.records.Release(hctx, run.own); err != nil {
		w.log.Warn("releasing the partition", "partition", run.p, "err", err)
		return
	}
	w.log.Info("partition handed over", "partition", run.p, "mark", run.pl.Position().Mark)
}

// checkpoint writes run's learned state to the object store and commits it
// to the partition's record: consistent at a barrier while the pipeline
// runs, or, final, after it stopped.
func (w *worker) checkpoint(ctx context.Context, run *partRun, final bool) error {
	run.ckptMu.Lock()
	defer run.ckptMu.Unlock()
	if run.fenced.Load() || !time.Now().Before(run.member.ValidUntil()) {
		return errFenced
	}
	start := time.Now()
	// The fleet windows judged so far: their alerts are written, so the
	// delivery waited for below covers them.
	var judged int64
	if run.judge != nil {
		judged = run.judge.judged.Load()
	}
	var buf bytes.Buffer
	run.n++
	sw, err := state.NewWriter(&buf, state.Header{Sequence: run.own.Epoch()<<20 | uint64(run.n), Created: start}, w.keys)
	if err != nil {
		return err
	}
	var pos pipeline.Position
	if final {
		pos = run.pl.Position()
		if err = sw.Add(pipeline.RecordPosition, "", pipeline.AppendPosition(nil, pos)); err == nil && run.counter != nil {
			err = sw.Add(pipeline.RecordFleet, "", run.counter.AppendState(nil))
		}
		if err == nil {
			err = run.eng.SnapshotTo(sw)
		}
	} else {
		pos, err = run.pl.Snapshot(ctx, sw)
	}
	if err == nil {
		err = sw.Commit()
	}
	if err == nil {
		// The alerts of the messages the checkpoint covers are in the
		// journal (the barrier came after them); they must also have
		// left it, or a failover from this checkpoint would lose those
		// still waiting here.
		err = w.out.WaitDelivered(ctx, w.out.Appended())
	}
	if err == nil && run.counter != nil {
		// Likewise the fleet reports of the windows before the barrier:
		// the next owner publishes only those after the checkpoint.
		select {
		case <-w.js.PublishAsyncComplete():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		w.checkpointFails.Inc()
		return err
	}
	name := fmt.Sprintf("p%d/e%d/n%d", run.p, run.own.Epoch(), run.n)
	digest, size, err := w.ckpts.Put(ctx, name, bytes.NewReader(buf.Bytes()))
	if err != nil {
		w.checkpointFails.Inc()
		return err
	}
	ck := cluster.Checkpoint{Object: name, Digest: digest, Bytes: size, Mark: pos.Mark, Clock: pos.Clock, Created: start, FleetJudged: judged}
	if err := w.records.Commit(ctx, run.own, ck); err != nil {
		w.checkpointFails.Inc()
		_ = w.ckpts.Delete(context.WithoutCancel(ctx), name)
		if errors.Is(err, cluster.ErrFenced) {
			run.fenced.Store(true)
			run.stop()
		}
		return err
	}
	if run.last != "" {
		if err := w.ckpts.Delete(ctx, run.last); err != nil {
			w.log.Warn("deleting the previous checkpoint", "partition", run.p, "object", run.last, "err", err)
		}
	}
	run.last = name
	run.ckptAt.Store(time.Now().UnixNano())
	w.checkpoints.Inc()
	w.log.Debug("checkpoint", "partition", run.p, "object", name, "bytes", size, "mark", pos.Mark, "took", time.Since(start))
	return nil
}

// fleetReporter returns the pipeline's fleet hook of a partition: it
// reports the newcomers of every window the partition's clock leaves.
func (w *worker) fleetReporter(c *jetstream.FleetCounter) pipeline.FleetFunc {
	if c == nil {
		return nil
	}
	return func(clock int64, n int, out []pipeline.Alert) []pipeline.Alert {
		if r, ok := c.Add(clock, n); ok {
			w.publishReport(r)
		}
		return out
	}
}

// release gives up a partition taken but not started.
func (w *worker) release(own *cluster.Ownership) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.records.Release(ctx, own); err != nil {
		w.log.Warn("releasing a partition not started", "err", err)
	}
}

// stopAll stops every partition: handed over (drained, checkpointed,
// released), or, fenced, at once without writing anything more.
func (w *worker) stopAll(fenced bool) {
	w.mu.Lock()
	runs := slices.Collect(maps.Values(w.parts))
	w.mu.Unlock()
	for _, r := range runs {
		if fenced {
			r.fenced.Store(true)
		}
		r.stop()
	}
	// A hand-over ends within the drain and the final checkpoint's
	// bounds. A fenced run writes nothing more whatever it is doing (its
	// sink and checkpoints check its own, lost, membership; its record
	// writes fail the CAS), so a worker that must rejoin does not wait
	// for one that is slow to notice.
	limit := time.After(time.Minute)
	if fenced {
		limit = time.After(5 * time.Second)
	}
	late := false
	for _, r := range runs {
		if !late {
			select {
			case <-r.done:
				continue
			case <-limit:
				late = true
			}
		}
		select {
		case <-r.done:
		default:
			w.log.Error("a partition did not stop in time; leaving it behind", "partition", r.p, "fenced", fenced)
		}
	}
	w.mu.Lock()
	clear(w.parts)
	w.mu.Unlock()
}

// runWorkerLive is "vigil run --source jetstream": a worker of the
// scale-out. Alerts go through the journal and outputs as in a single
// Vigil; telemetry comes from the partitions this worker owns.
func runWorkerLive(ctx context.Context, e *env, cfg *config.File, cfgPath string) error {
	if cfg.Cluster.URL == "" {
		return configError{fmt.Errorf("config %s: cluster.url is required for run --source jetstream", cfgPath)}
	}
	log := e.log
	ms := metrics.NewSet()
	dc, err := cfg.DecoderConfig()
	if err != nil {
		return err
	}
	keys, err := stateKeys(cfg)
	if err != nil {
		return err
	}
	nc, js, err := connectStream(ctx, cfg, "vigil-worker", jetstream.Setup, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	stream := cfg.Cluster.Config.WithDefaults()

	outs, deadLetters, err := buildOutputs(e, cfg, nil, log, ms)
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
	w, err := newWorker(cfg, dc, js, keys, outs, log, ms)
	if err != nil {
		return err
	}
	kvm, err := js.KeyValue(ctx, stream.MembersBucket)
	if err != nil {
		return fmt.Errorf("jetstream: bucket %s: %w", stream.MembersBucket, err)
	}
	kvc, err := js.KeyValue(ctx, stream.ClusterBucket)
	if err != nil {
		return fmt.Errorf("jetstream: bucket %s: %w", stream.ClusterBucket, err)
	}
	obs, err := js.ObjectStore(ctx, stream.CheckpointsBucket)
	if err != nil {
		return fmt.Errorf("jetstream: object store %s: %w", stream.CheckpointsBucket, err)
	}
	w.records, w.ckpts = cluster.NewRecords(kvc), cluster.NewCheckpoints(obs)

	var wg sync.WaitGroup
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopAdmin()
		wg.Wait()
	}()
	if err := serveAdmin(adminCtx, &wg, cfg, func() error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return outs.Healthy()
	}, func(srv *admin.Server) { srv.SetNotes(func() []string { return outputNotes(outs.Statuses()) }) }, log, ms); err != nil {
		return err
	}
	log.Info("worker starting", "worker_id", w.id, "server", nc.ConnectedUrlRedacted(), "stream", stream.Stream,
		"partitions", stream.Partitions, "lease", stream.Lease, "checkpoint_interval", w.interval)
	for {
		m, err := cluster.Join(ctx, kvm, w.id, stream.Lease, log.With("component", "cluster"))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("cannot join the cluster; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(stream.Lease / 2):
			}
			continue
		}
		w.member = m
		err = w.run(ctx)
		m.Close()
		if !errors.Is(err, errLost) {
			return err
		}
		log.Info("rejoining the cluster as a new incarnation")
	}
}

// connectStream connects to the cluster section's NATS servers as name and
// prepares the scale-out with prepare (jetstream.Setup for workers,
// EnsureStream for the bridge, nil for none) within 30 s.
func connectStream(ctx context.Context, cfg *config.File, name string, prepare func(context.Context, natsjs.JetStream, jetstream.Config) error, log *slog.Logger) (*natsclient.Conn, natsjs.JetStream, error) {
	nc, err := jetstream.Connect(cfg.Cluster.ConnConfig, name, log.With("component", "nats"))
	if err != nil {
		return nil, nil, err
	}
	js, err := natsjs.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	if prepare != nil {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = prepare(sctx, js, cfg.Cluster.Config)
		cancel()
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	return nc, js, nil
}
