package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// counter counts the readings of each device, ticks once per batch (an
// alert), and snapshots its counts.
type counter struct {
	seen map[string]int
}

func (c *counter) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	c.seen[r.Device]++
	return out
}

func (c *counter) Devices() int { return len(c.seen) }

func (c *counter) Tick(start, clock int64, out []pipeline.Alert) []pipeline.Alert {
	return append(out, pipeline.Alert{Kind: "tick", Time: clock, Device: fmt.Sprint(len(c.seen))})
}

func (c *counter) SnapshotTo(w pipeline.RecordWriter) error {
	for d, n := range c.seen {
		if err := w.Add(pipeline.RecordDevice, d, []byte(strconv.Itoa(n))); err != nil {
			return err
		}
	}
	return nil
}

type records struct {
	kinds []byte
	keys  []string
	vals  []string
}

func (r *records) Add(kind byte, key string, value []byte) error {
	r.kinds = append(r.kinds, kind)
	r.keys = append(r.keys, key)
	r.vals = append(r.vals, string(value))
	return nil
}

// slowSource yields one small batch at a time with a pause, so that a
// snapshot falls in the middle of the stream.
type slowSource struct {
	payloads [][]byte
	next     int
}

func (s *slowSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	time.Sleep(200 * time.Microsecond)
	for n := 0; n < 7 && s.next < len(s.payloads); n++ {
		b.Add("", s.payloads[s.next], 0, "test", int64(s.next+1))
		s.next++
	}
	if s.next >= len(s.payloads) {
		return io.EOF
	}
	return nil
}

func (s *slowSource) Close() error { return nil }

// TestSnapshotBarrier: snapshots taken while a stream runs are consistent
// cuts (the shards' counts add up to exactly the frames before the
// barrier, for every number of workers), and they change nothing in the
// output.
func TestSnapshotBarrier(t *testing.T) {
	ps := payloads(3000, 13)
	run := func(workers int, snapshots bool) ([]pipeline.Alert, []*records, []pipeline.Position) {
		sink := &collect{}
		pl, err := pipeline.New(pipeline.Config{Workers: workers, Decoders: 2, BatchSize: 7,
			NewProcessor:  func(int) pipeline.Processor { return &counter{seen: map[string]int{}} },
			FleetSnapshot: func() []byte { return []byte("fleet") }})
		if err != nil {
			t.Fatal(err)
		}
		var snaps []*records
		var pos []pipeline.Position
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		if snapshots {
			wg.Go(func() {
				for ctx.Err() == nil {
					r := &records{}
					p, err := pl.Snapshot(ctx, r)
					if err != nil {
						return
					}
					snaps, pos = append(snaps, r), append(pos, p)
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		if err := pl.Run(context.Background(), &slowSource{payloads: ps}, sink); err != nil {
			t.Fatal(err)
		}
		cancel()
		wg.Wait()
		if _, err := pl.Snapshot(context.Background(), &records{}); err != pipeline.ErrNotRunning {
			t.Errorf("Snapshot after Run: got %v; want ErrNotRunning", err)
		}
		return sink.alerts, snaps, pos
	}
	for _, workers := range []int{1, 3} {
		want, _, _ := run(workers, false)
		got, snaps, pos := run(workers, true)
		if len(snaps) < 3 {
			t.Fatalf("%d workers: %d snapshots during the run; want several", workers, len(snaps))
		}
		for i, s := range snaps {
			if s.kinds[0] != pipeline.RecordPosition || s.kinds[1] != pipeline.RecordFleet || s.vals[1] != "fleet" {
				t.Fatalf("snapshot %d starts %v; want the position, then the fleet", i, s.kinds[:2])
			}
			p, err := pipeline.DecodePosition([]byte(s.vals[0]))
			if err != nil || p != pos[i] {
				t.Errorf("snapshot %d: position record %+v (%v); want %+v", i, p, err, pos[i])
			}
			total := 0
			for j := 2; j < len(s.vals); j++ {
				n, _ := strconv.Atoi(s.vals[j])
				total += n
			}
			if uint64(total) != pos[i].Seq {
				t.Errorf("%d workers, snapshot %d: the shards counted %d readings; want exactly the %d before the barrier", workers, i, total, pos[i].Seq)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%d workers with snapshots: %d alerts; want the %d of a run without", workers, len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i].Device != want[i].Device || got[i].Time != want[i].Time || got[i].Seq != want[i].Seq {
				t.Errorf("alert %d: got %+v; want %+v", i, got[i], want[i])
				break
			}
		}
	}
}

// TestReconfigureBarrier: a reconfiguration reaches every shard once at one
// stream position, its alerts are written, and merge runs after.
func TestReconfigureBarrier(t *testing.T) {
	sink := &collect{}
	procs := make([]*counter, 3)
	pl, err := pipeline.New(pipeline.Config{Workers: 3, Decoders: 2, BatchSize: 7,
		NewProcessor: func(i int) pipeline.Processor { procs[i] = &counter{seen: map[string]int{}}; return procs[i] }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pl.Run(context.Background(), &slowSource{payloads: payloads(3000, 13)}, sink) }()
	time.Sleep(20 * time.Millisecond)
	var mu sync.Mutex
	applied := map[int]int{} // shard → readings seen at the barrier
	merged := false
	err = pl.Reconfigure(context.Background(), func(shard int, clock int64, proc pipeline.Processor, out []pipeline.Alert) []pipeline.Alert {
		n := 0
		for _, k := range proc.(*counter).seen {
			n += k
		}
		mu.Lock()
		applied[shard] = n
		mu.Unlock()
		return append(out, pipeline.Alert{Kind: "reconfigured", Device: strconv.Itoa(shard), Time: clock})
	}, func() {
		mu.Lock()
		merged = len(applied) == 3
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(applied) != 3 || !merged {
		t.Errorf("applied on %v, merged after all shards %v; want every shard, then merge", applied, merged)
	}
	var got int
	for _, a := range sink.alerts {
		if a.Kind == "reconfigured" {
			got++
		}
	}
	if got != 3 {
		t.Errorf("%d reconfiguration alerts written; want 3", got)
	}
}

// seenTap is a Tap that counts the readings it observes.
type seenTap struct{ n int }

func (s *seenTap) Observe(*pipeline.Reading) { s.n++ }

// TestTaps: each shard's taps observe every reading routed to it, and the
// processor keeps its own hooks (its ticks reach the sink).
func TestTaps(t *testing.T) {
	sink := &collect{}
	procs := make([]*counter, 2)
	taps := make([]*seenTap, 2)
	pl, err := pipeline.New(pipeline.Config{Workers: 2, Decoders: 1, BatchSize: 50,
		NewProcessor: func(i int) pipeline.Processor { procs[i] = &counter{seen: map[string]int{}}; return procs[i] },
		Taps:         func(i int) []pipeline.Tap { taps[i] = &seenTap{}; return []pipeline.Tap{taps[i]} }})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Run(context.Background(), &sliceSource{payloads: payloads(500, 7)}, sink); err != nil {
		t.Fatal(err)
	}
	total, ticks := 0, 0
	for i := range taps {
		total += taps[i].n
	}
	for _, a := range sink.alerts {
		if a.Kind == "tick" {
			ticks++
		}
	}
	if total != 500 || ticks == 0 {
		t.Errorf("taps observed %d readings, %d tick alerts; want 500 and the processor's ticks", total, ticks)
	}
}
