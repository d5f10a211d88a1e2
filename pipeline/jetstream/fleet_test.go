package jetstream

import (
	"slices"
	"testing"
	"time"
)

// TestFleetCounter: newcomers are counted in the window of the clock that
// brought them; a window is reported once, when the clock leaves it, with
// Upto the window the clock moved to; a restored counter carries on with
// the window in progress; a state of another width is refused.
func TestFleetCounter(t *testing.T) {
	const s = int64(time.Second)
	c := NewFleetCounter(3, 10*time.Second)
	var got []FleetReport
	add := func(clock int64, n int) {
		if r, ok := c.Add(clock, n); ok {
			got = append(got, r)
		}
	}
	add(1000*s+1, 5) // window 1000
	add(1004*s, 2)
	state := c.AppendState(nil)
	add(1009*s, 1)
	add(1010*s, 4) // leaves 1000: 8
	add(1045*s, 0) // leaves 1010: 4; skips 1020-1040
	want := []FleetReport{{3, 1000 * s, 8, 1010 * s}, {3, 1010 * s, 4, 1040 * s}}
	if !slices.Equal(got, want) {
		t.Fatalf("reports %+v; want %+v", got, want)
	}
	r := NewFleetCounter(3, 10*time.Second)
	if err := r.RestoreState(state); err != nil {
		t.Fatal(err)
	}
	r.Add(1009*s, 1)
	if rep, ok := r.Add(1010*s, 4); !ok || rep != want[0] {
		t.Errorf("restored counter reported %+v, %v; want %+v", rep, ok, want[0])
	}
	if err := NewFleetCounter(3, 5*time.Second).RestoreState(state); err == nil {
		t.Error("a state of 10s windows restored into a 5s counter")
	}
	if err := NewFleetCounter(3, 10*time.Second).RestoreState([]byte("FC1\xff")); err == nil {
		t.Error("a damaged state restored")
	}
}

// TestFleetSums: a window is summed once every partition has passed it,
// each partition counted once however often its report comes; a window a
// partition does not report is closed MaxWait (wall time) after its first
// report with that partition missing; windows close in order and late
// reports are ignored; windows nobody reports close as one empty window.
func TestFleetSums(t *testing.T) {
	const s = int64(time.Second)
	t0 := time.Now()
	now := t0
	sums := NewFleetSums(3, 10*time.Second, 30*time.Second)
	var out []FleetSum
	add := func(p int, w int64, n int, upto int64) {
		out = sums.Add(FleetReport{Partition: p, Window: w * s, Count: n, Upto: upto * s}, now, out)
	}
	add(0, 0, 2, 10)
	add(1, 0, 3, 10)
	add(1, 0, 3, 10) // a replay's report: counted once
	if len(out) != 0 {
		t.Fatalf("closed %+v before partition 2 reported", out)
	}
	add(2, 0, 1, 20)
	if len(out) != 1 || out[0].Window != 0 || out[0].End != 10*s || out[0].Count != 6 || out[0].Missing != nil {
		t.Fatalf("got %+v; want window 0 summed to 6", out)
	}
	// Partition 2 falls silent: window 20 waits for it for 30 s of wall
	// time, however far the others' clocks run ahead.
	out = out[:0]
	add(0, 10, 1, 20)
	add(1, 10, 1, 20)
	add(0, 20, 4, 300)
	add(1, 20, 0, 300)
	if len(out) != 1 || out[0].Window != 10*s || out[0].Count != 2 {
		t.Fatalf("got %+v; want window 10 (partition 2's upto passed it)", out)
	}
	out = out[:0]
	now = t0.Add(29 * time.Second)
	if out = sums.Expire(now, out); len(out) != 0 {
		t.Fatalf("closed %+v 29 s after window 20 opened", out)
	}
	now = t0.Add(30 * time.Second)
	out = sums.Expire(now, out)
	if len(out) != 1 || out[0].Window != 20*s || out[0].Count != 4 || !slices.Equal(out[0].Missing, []int{2}) {
		t.Fatalf("got %+v; want window 20 summed to 4 without partition 2", out)
	}
	out = out[:0]
	add(2, 20, 9, 30) // too late: window 20 is closed
	if len(out) != 0 {
		t.Fatalf("a late report closed %+v", out)
	}

	// Clocks that jump past windows nobody reports: one empty window
	// ends where every partition has passed.
	gap := NewFleetSums(2, 10*time.Second, 30*time.Second)
	out = gap.Add(FleetReport{Partition: 0, Window: 0, Count: 1, Upto: 50 * s}, t0, nil)
	out = gap.Add(FleetReport{Partition: 1, Window: 0, Count: 0, Upto: 70 * s}, t0, out)
	if len(out) != 2 || out[0].End != 10*s || out[0].Count != 1 || out[1].End != 50*s || out[1].Count != 0 {
		t.Fatalf("got %+v; want window 0 with 1, then an empty window ending at 50 s", out)
	}
}
