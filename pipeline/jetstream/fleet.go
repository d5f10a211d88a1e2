package jetstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Fleet judgements across partitions (docs/SCALEOUT.md §6): each
// partition's pipeline counts the devices it sees for the first time per
// aligned window of its stream clock (FleetCounter) and publishes the count
// of every window it leaves to FleetSubject(p) in the fleet stream; one
// judge sums the partitions' counts per window (FleetSums) and feeds the
// sums to the fleet detector. Counts are a function of the partition's
// messages, so a partition replayed after a failover reports the same
// counts under the same message IDs, which the stream stores once.

// Fleet stream settings.
const (
	// FleetPrefix is the prefix of the fleet reports' subjects:
	// FleetPrefix.<partition>.
	FleetPrefix = "vigil.fleet"
	// FleetMaxAge is how long the fleet stream keeps reports: a judge that
	// starts (after a failover) rebuilds its state from them, so it must
	// exceed the fleet detector's learning period and window.
	FleetMaxAge = 2 * time.Hour
	// fleetDuplicates is the fleet stream's duplicate window: longer than a
	// checkpoint interval plus a failover, the span a new owner replays.
	fleetDuplicates = 10 * time.Minute
)

// FleetStreamName is the name of the fleet reports' stream of cfg.
func FleetStreamName(cfg Config) string { return cfg.WithDefaults().Stream + "_FLEET" }

// FleetSubject is the subject of partition p's fleet reports.
func FleetSubject(p int) string { return FleetPrefix + "." + strconv.Itoa(p) }

// FleetStreamConfig is the fleet stream of cfg.
func FleetStreamConfig(cfg Config) jetstream.StreamConfig {
	cfg = cfg.WithDefaults()
	return jetstream.StreamConfig{
		Name:        FleetStreamName(cfg),
		Description: "Vigil per-partition counts of devices first seen, per window",
		Subjects:    []string{FleetPrefix + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      FleetMaxAge,
		Duplicates:  fleetDuplicates,
		MaxMsgSize:  1 << 10,
	}
}

// FleetReport is one partition's count of newcomers in one window.
type FleetReport struct {
	Partition int `json:"p"`
	// Window is the window's start (Unix ns, a multiple of its width).
	Window int64 `json:"w"`
	// Count is the devices the partition saw first in the window.
	Count int `json:"n"`
	// Upto is the start of the window the partition's clock moved to: its
	// counts of every window before Upto are final.
	Upto int64 `json:"upto"`
}

// MsgID is the report's message ID: a partition's report of a window is
// stored once, however often a replay publishes it again.
func (r FleetReport) MsgID() string {
	return strconv.Itoa(r.Partition) + "." + strconv.FormatInt(r.Window, 10)
}

// ParseFleetReport decodes a report's payload.
func ParseFleetReport(b []byte) (FleetReport, error) {
	var r FleetReport
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("fleet report: %w", err)
	}
	if r.Partition < 0 || r.Count < 0 || r.Upto <= r.Window {
		return r, fmt.Errorf("fleet report: partition %d, count %d, window %d, upto %d: out of range", r.Partition, r.Count, r.Window, r.Upto)
	}
	return r, nil
}

// FleetCounter counts one partition's newcomers per aligned window of its
// stream clock. It is called on the pipeline's merge stage (in stream
// order) and needs no lock.
type FleetCounter struct {
	p     int
	width int64
	cur   int64 // start of the current window; 0 before the first clock
	n     int
}

// NewFleetCounter returns the counter of partition p with windows of width.
func NewFleetCounter(p int, width time.Duration) *FleetCounter {
	return &FleetCounter{p: p, width: max(int64(width), 1)}
}

// Add counts n newcomers at clock. When clock has left the current window
// it returns that window's report (the newcomers of the batch that moved
// the clock count in the new window).
func (c *FleetCounter) Add(clock int64, n int) (FleetReport, bool) {
	w := clock - clock%c.width
	var rep FleetReport
	ok := false
	switch {
	case c.cur == 0:
		c.cur = w
	case w > c.cur:
		rep = FleetReport{Partition: c.p, Window: c.cur, Count: c.n, Upto: w}
		ok = true
		c.cur, c.n = w, 0
	}
	c.n += n
	return rep, ok
}

// fleetCounterMagic starts a FleetCounter's state, telling it from the
// single Vigil's fleet judge state stored under the same record kind.
const fleetCounterMagic = "FC1"

// AppendState appends the counter's state (for a checkpoint).
func (c *FleetCounter) AppendState(b []byte) []byte {
	b = append(b, fleetCounterMagic...)
	b = binary.AppendVarint(b, c.width)
	b = binary.AppendVarint(b, c.cur)
	return binary.AppendUvarint(b, uint64(c.n))
}

// RestoreState restores a state written by AppendState with the same
// window width; a state of another width is refused.
func (c *FleetCounter) RestoreState(b []byte) error {
	rest, ok := bytes.CutPrefix(b, []byte(fleetCounterMagic))
	if !ok {
		return errors.New("fleet counter: not a counter's state")
	}
	width, n1 := binary.Varint(rest)
	if n1 <= 0 {
		return errors.New("fleet counter: damaged state")
	}
	cur, n2 := binary.Varint(rest[n1:])
	if n2 <= 0 {
		return errors.New("fleet counter: damaged state")
	}
	n, n3 := binary.Uvarint(rest[n1+n2:])
	if n3 <= 0 || n > 1<<31 {
		return errors.New("fleet counter: damaged state")
	}
	if width != c.width {
		return fmt.Errorf("fleet counter: the state counts windows of %s, this counter %s", time.Duration(width), time.Duration(c.width))
	}
	c.cur, c.n = cur, int(n)
	return nil
}

// FleetSum is the fleet's count of newcomers in one window.
type FleetSum struct {
	Window int64 // start, Unix ns
	End    int64 // end, Unix ns: the clock the fleet detector judges it at
	Count  int
	// Missing lists the partitions that had not reported the window when
	// it was closed by MaxWait (counted as 0).
	Missing []int
}

// FleetSums sums the partitions' reports per window. A window is closed
// once every partition has reported a later one (its Upto passed it), or,
// when a partition lags or has no owner, MaxWait of wall time after its
// first report arrived. Wall time, not stream time: partitions catching up
// after a restart run ahead of each other by minutes of stream time in
// seconds, and their windows must still be summed whole. Closed windows
// come out in order, and a report for a closed window is ignored; windows
// no partition reported (they had nothing to report) come out as one empty
// window ending where every partition has passed. Not safe for concurrent
// use.
type FleetSums struct {
	parts   int
	width   int64
	maxWait time.Duration
	upto    []int64 // per partition: windows before it are final
	next    int64   // windows before next are closed
	open    map[int64]*fleetWindow
}

type fleetWindow struct {
	count    int
	reported []bool
	opened   time.Time
}

// NewFleetSums returns the sums of partitions' reports of windows of
// width, closing a window maxWait after its first report at the latest.
func NewFleetSums(partitions int, width, maxWait time.Duration) *FleetSums {
	return &FleetSums{parts: partitions, width: max(int64(width), 1), maxWait: maxWait,
		upto: make([]int64, partitions), open: map[int64]*fleetWindow{}}
}

// Add takes a report that arrived at now and appends to out the windows
// it closes.
func (s *FleetSums) Add(r FleetReport, now time.Time, out []FleetSum) []FleetSum {
	if r.Partition >= s.parts {
		return out
	}
	s.upto[r.Partition] = max(s.upto[r.Partition], r.Upto)
	if r.Window >= s.next {
		w := s.open[r.Window]
		if w == nil {
			w = &fleetWindow{reported: make([]bool, s.parts), opened: now}
			s.open[r.Window] = w
		}
		if !w.reported[r.Partition] {
			w.reported[r.Partition] = true
			w.count += r.Count
		}
	}
	return s.Expire(now, out)
}

// Expire appends to out the windows closed by now: those every partition
// has passed, and those open for MaxWait.
func (s *FleetSums) Expire(now time.Time, out []FleetSum) []FleetSum {
	low := slices.Min(s.upto)
	for _, start := range slices.Sorted(maps.Keys(s.open)) {
		w := s.open[start]
		end := start + s.width
		if end > low && now.Sub(w.opened) < s.maxWait {
			break
		}
		sum := FleetSum{Window: start, End: end, Count: w.count}
		if end > low {
			for p, ok := range w.reported {
				if !ok && s.upto[p] < end {
					sum.Missing = append(sum.Missing, p)
				}
			}
		}
		out = append(out, sum)
		delete(s.open, start)
		s.next = end
	}
	// Windows are aligned, so what is still open starts at low or later.
	if s.next < low {
		// Every partition has passed windows nobody reported (none of
		// them saw a newcomer or moved its clock there): one empty
		// window at the end of the gap moves the judge's clock, so an
		// episode resolves without waiting for the next report.
		out = append(out, FleetSum{Window: low - s.width, End: low})
		s.next = low
	}
	return out
}

// EnsureFleetStream creates or updates the fleet stream of cfg.
func EnsureFleetStream(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if _, err := js.CreateOrUpdateStream(ctx, FleetStreamConfig(cfg)); err != nil {
		return fmt.Errorf("jetstream: create stream %s: %w", FleetStreamName(cfg), err)
	}
	return nil
}
