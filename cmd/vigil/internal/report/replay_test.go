package report

import (
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// replayConfig sizes a simulated replay.
type replayConfig struct {
	devices, anomalous int
	duration           time.Duration
	shards             int
	opts               Options
}

// simReplay runs a simulated fleet through the decoder and detectors.Engine
// of a few shards, recording as `vigil replay --report` does, and returns the
// report's input, with labels and an evaluation.
func simReplay(tb testing.TB, rc replayConfig) Input {
	tb.Helper()
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Duration = rc.devices, rc.anomalous, rc.duration
	cfg.LeadIn = min(cfg.LeadIn, rc.duration/3)
	cfg.InjectProb = 1
	g, err := sim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	recs := make([]*Recorder, rc.shards)
	procs := make([]pipeline.Processor, rc.shards)
	for i := range procs {
		e := set.NewEngine()
		recs[i] = NewRecorder(rc.opts, e.Band)
		procs[i] = tapped(recs[i], e)
	}
	dec := pipeline.NewDecoder(pipeline.DefaultDecoderConfig())
	var (
		r      pipeline.Reading
		alerts []pipeline.Alert
		data   = eval.DataInfo{Times: map[string][]int64{}}
		stats  = pipeline.Stats{Rejected: map[string]uint64{"malformed": 3}, Alerts: map[string]uint64{}}
		seq    uint64
	)
	for m, ok := g.Next(); ok; m, ok = g.Next() {
		if err := dec.Decode(m.Payload, m.Topic, 0, &r); err != nil {
			tb.Fatal(err)
		}
		r.Seq = seq
		seq++
		h := fnv.New32a()
		h.Write([]byte(r.Device))
		alerts = procs[h.Sum32()%uint32(rc.shards)].Process(&r, alerts)
		data.Add(r.Device, r.Time)
		stats.Frames++
		stats.Bytes += uint64(len(m.Payload))
		stats.Decoded++
		stats.Processed++
	}
	stats.Frames += 3
	for _, a := range alerts {
		stats.Alerts[a.Kind+"/"+a.State.String()]++
	}
	for _, p := range procs {
		stats.Devices += p.Devices()
	}
	stats.Elapsed = 1234 * time.Millisecond

	labels := eval.NewLabels()
	for _, l := range g.Labels() {
		if err := labels.Add(eval.Window{Device: l.Device, Kind: l.Kind, Detail: l.Detail, Start: l.Start.UnixNano(), End: l.End.UnixNano()}); err != nil {
			tb.Fatal(err)
		}
	}
	rep := eval.Evaluate(alerts, labels, data, eval.Options{After: 30 * time.Second})
	return Input{
		Files:     []string{"testdata/plant.jsonl"},
		Stats:     stats,
		Alerts:    alerts,
		Labels:    labels.Windows(),
		Eval:      rep,
		Recording: Merge(recs...),
	}
}

func TestSimReplayHasAlertsAndLabels(t *testing.T) {
	in := simReplay(t, replayConfig{devices: 3, anomalous: 2, duration: 20 * time.Minute, shards: 2})
	if len(in.Alerts) == 0 || len(in.Labels) == 0 {
		t.Fatalf("got %d alerts, %d label windows; want some of each", len(in.Alerts), len(in.Labels))
	}
	if got := len(in.Recording.Devices); got != 3 {
		t.Fatalf("got %d recorded devices; want 3", got)
	}
	var kinds []string
	for _, a := range in.Alerts {
		kinds = append(kinds, a.Detector)
	}
	t.Logf("%d readings, %d alerts (%s), %d windows", in.Stats.Processed, len(in.Alerts), strings.Join(kinds, " "), len(in.Labels))
}
