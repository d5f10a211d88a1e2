package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsclient "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
)

// Fleet judgement in the scale-out (docs/SCALEOUT.md §6): every
// partition's pipeline reports its newcomers per window of fleetReportWidth
// to the fleet stream; the worker that owns partition 0 also runs the
// fleet judge, which sums the reports per window and judges the sums with
// the fleet detector, writing its alerts through partition 0's fenced
// sink. The judge moves with partition 0.

// fleetReportWidth is the width of the windows partitions report for a
// fleet detector's window: a sixth of it, between 1 s and 10 s.
func fleetReportWidth(window time.Duration) time.Duration {
	return min(max(window/6, time.Second), 10*time.Second)
}

// fleetMaxWait is how long (wall time) a window waits for the partitions
// that have not reported it (no owner, or lagging) after its first report.
const fleetMaxWait = 30 * time.Second

// fleetMetrics are the worker's fleet counters.
type fleetMetrics struct {
	reports, reportFails, windows, incomplete, badReports *metrics.Counter
}

func newFleetMetrics(ms *metrics.Set) fleetMetrics {
	return fleetMetrics{
		reports:     ms.NewCounter(`vigil_fleet_reports_total`),
		reportFails: ms.NewCounter(`vigil_fleet_report_failures_total`),
		windows:     ms.NewCounter(`vigil_fleet_windows_total`),
		incomplete:  ms.NewCounter(`vigil_fleet_windows_incomplete_total`),
		badReports:  ms.NewCounter(`vigil_fleet_bad_reports_total`),
	}
}

// publishReport publishes a partition's fleet report without waiting: a
// report lost is counted as 0 by the judge after fleetMaxWait, and one
// published twice (a replay after a failover) is stored once.
func (w *worker) publishReport(r jetstream.FleetReport) {
	body, err := json.Marshal(r)
	if err != nil {
		w.fleetM.reportFails.Inc()
		return
	}
	m := &natsclient.Msg{Subject: jetstream.FleetSubject(r.Partition), Data: body, Header: natsclient.Header{}}
	m.Header.Set(natsjs.MsgIDHeader, r.MsgID())
	if _, err := w.js.PublishMsgAsync(m); err != nil {
		w.fleetM.reportFails.Inc()
		return
	}
	w.fleetM.reports.Inc()
}

// fleetJudge sums the partitions' reports and judges the fleet.
type fleetJudge struct {
	w     *worker
	sink  pipeline.Sink
	fleet *detectors.Fleet
	sums  *jetstream.FleetSums
	log   *slog.Logger
	// suppress is the end of the last window whose alerts a previous
	// judge had delivered (partition 0's checkpoint): the state is rebuilt
	// from the whole fleet stream, those alerts are not raised again.
	suppress int64
	// judged is the end of the last window judged and written.
	judged   atomic.Int64
	lastWarn time.Time
}

func (w *worker) newFleetJudge(sink pipeline.Sink, suppress int64) *fleetJudge {
	f := w.set.NewFleet()
	if f == nil {
		return nil
	}
	width := fleetReportWidth(w.cfg.Fleet.Window)
	j := &fleetJudge{w: w, sink: sink, fleet: f, suppress: suppress,
		sums: jetstream.NewFleetSums(w.stream.Partitions, width, fleetMaxWait),
		log:  w.log.With("component", "fleet-judge")}
	j.judged.Store(suppress)
	return j
}

// run reads the fleet stream from its start until ctx ends or the sink is
// fenced. It reads with an ordered consumer, made again after an error or
// a silence of a minute (the bridge's ticks make every partition report
// every window, so a longer silence means a consumer lost with its server).
func (j *fleetJudge) run(ctx context.Context) {
	name := jetstream.FleetStreamName(j.w.stream)
	var last uint64 // stream sequence of the last report taken
	var sums []jetstream.FleetSum
	for ctx.Err() == nil {
		oc := natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverAllPolicy}
		if last > 0 {
			oc.DeliverPolicy, oc.OptStartSeq = natsjs.DeliverByStartSequencePolicy, last+1
		}
		cons, err := j.w.js.OrderedConsumer(ctx, name, oc)
		if err != nil {
			if ctx.Err() == nil {
				j.log.Warn("reading the fleet reports; retrying", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		quiet := time.Now()
		for ctx.Err() == nil && time.Since(quiet) < time.Minute {
			batch, err := cons.Fetch(256, natsjs.FetchMaxWait(2*time.Second))
			if err != nil {
				sleepCtx(ctx, time.Second) // then a new consumer
				break
			}
			for m := range batch.Messages() {
				quiet = time.Now()
				md, err := m.Metadata()
				if err != nil {
					continue
				}
				if md.Sequence.Stream <= last {
					continue
				}
				last = md.Sequence.Stream
				r, err := jetstream.ParseFleetReport(m.Data())
				if err != nil {
					j.w.fleetM.badReports.Inc()
					continue
				}
				sums = j.sums.Add(r, time.Now(), sums[:0])
				if !j.judge(ctx, sums) {
					return
				}
			}
			if sums = j.sums.Expire(time.Now(), sums[:0]); !j.judge(ctx, sums) {
				return
			}
			if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, natsjs.ErrNoMessages) {
				break
			}
		}
	}
}

// judge judges closed windows, in order; false means stop (fenced, or the
// sink failed).
func (j *fleetJudge) judge(ctx context.Context, sums []jetstream.FleetSum) bool {
	if err := j.judgeSums(ctx, sums); err != nil {
		if !errors.Is(err, errFenced) && ctx.Err() == nil {
			j.log.Error("writing fleet alerts", "err", err)
		}
		return false
	}
	return true
}

func (j *fleetJudge) judgeSums(ctx context.Context, sums []jetstream.FleetSum) error {
	for _, s := range sums {
		j.w.fleetM.windows.Inc()
		if len(s.Missing) > 0 {
			j.w.fleetM.incomplete.Inc()
			if time.Since(j.lastWarn) > time.Minute {
				j.lastWarn = time.Now()
				j.log.Warn("fleet window judged without some partitions' counts (no owner, or lagging past the wait)",
					"window", time.Unix(0, s.Window).UTC(), "missing", s.Missing, "wait", fleetMaxWait)
			}
		}
		as := j.fleet.Judge(s.End, s.Count, nil)
		if len(as) > 0 && s.End > j.suppress {
			if err := j.sink.Write(ctx, as); err != nil {
				return err
			}
		}
		j.judged.Store(s.End)
	}
	return nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
