package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/state"
)

// snapshots writes a live run's snapshots to path, keeping the last keep
// (path, path.1, … path.keep-1), and counts them.
type snapshots struct {
	path string
	keep int
	keys *state.Keys // nil: plain
	log  *slog.Logger

	mu  sync.Mutex // one snapshot at a time
	seq uint64

	taken, failed *metrics.Counter
	secs          *metrics.Histogram
	lastOK        *metrics.Gauge
	bytes         *metrics.Gauge
}

func newSnapshots(path string, keep int, seq uint64, keys *state.Keys, log *slog.Logger, ms *metrics.Set) *snapshots {
	return &snapshots{
		path: path, keep: max(keep, 1), seq: seq, keys: keys, log: log.With("component", "state"),
		taken:  ms.NewCounter(`vigil_state_snapshots_total`),
		failed: ms.NewCounter(`vigil_state_snapshot_failures_total`),
		secs:   ms.NewHistogram(`vigil_state_snapshot_seconds`),
		lastOK: ms.NewGauge(`vigil_state_last_snapshot_timestamp_seconds`, nil),
		bytes:  ms.NewGauge(`vigil_state_snapshot_bytes`, nil),
	}
}

// take snapshots the running pipeline at a barrier.
func (s *snapshots) take(ctx context.Context, pl *pipeline.Pipeline, why string) error {
	return s.write(why, func(w *state.Writer) (int, error) {
		rc := &recordCounter{w: w}
		_, err := pl.Snapshot(ctx, rc)
		return rc.devices, err
	})
}

// final snapshots the stopped pipeline's engines.
func (s *snapshots) final(pos pipeline.Position, fleet *detectors.Fleet, es []*detectors.Engine) error {
	return s.write("shutdown", func(w *state.Writer) (int, error) {
		rc := &recordCounter{w: w}
		if err := rc.Add(pipeline.RecordPosition, "", pipeline.AppendPosition(nil, pos)); err != nil {
			return 0, err
		}
		if fleet != nil {
			if err := rc.Add(pipeline.RecordFleet, "", fleet.AppendState(nil)); err != nil {
				return 0, err
			}
		}
		for _, e := range es {
			if err := e.SnapshotTo(rc); err != nil {
				return rc.devices, err
			}
		}
		return rc.devices, nil
	})
}

// recordCounter counts the device records written through it.
type recordCounter struct {
	w       pipeline.RecordWriter
	devices int
}

func (r *recordCounter) Add(kind byte, key string, value []byte) error {
	if kind == pipeline.RecordDevice {
		r.devices++
	}
	return r.w.Add(kind, key, value)
}

func (s *snapshots) write(why string, fill func(*state.Writer) (int, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	s.seq++
	tmp := s.path + ".new"
	w, err := createState(tmp, state.Header{Sequence: s.seq, Created: start}, s.keys)
	if err == nil {
		var devices int
		devices, err = fill(w)
		if err != nil {
			w.Abort()
		} else if err = w.Commit(); err == nil {
			err = s.rotate(tmp)
		}
		if err == nil {
			s.taken.Inc()
			s.secs.UpdateDuration(start)
			s.lastOK.Set(float64(time.Now().Unix()))
			var size int64
			if fi, err := os.Stat(s.path); err == nil {
				size = fi.Size()
				s.bytes.Set(float64(size))
			}
			s.log.Info("snapshot saved", "why", why, "file", s.path, "sequence", s.seq, "devices", devices, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
	s.failed.Inc()
	s.log.Error("snapshot failed; the previous one is kept", "why", why, "err", err)
	return err
}

// rotate moves path to path.1 (and so on, keeping keep files) and the new
// snapshot tmp to path.
func (s *snapshots) rotate(tmp string) error {
	for i := s.keep - 1; i >= 1; i-- {
		from := s.path
		if i > 1 {
			from = s.path + "." + strconv.Itoa(i-1)
		}
		if err := os.Rename(from, s.path+"."+strconv.Itoa(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.Rename(tmp, s.path)
}

// rotated names the i-th kept snapshot: path, path.1, path.2, …
func rotated(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// loadNewest reads the newest good snapshot among path, path.1, …: a
// damaged one is reported and the one before it used. It returns nil
// without an error when there is none.
func loadNewest(path string, keep int, keys *state.Keys, log *slog.Logger) (*learnedState, error) {
	var errs []error
	for i := range max(keep, 1) {
		p := rotated(path, i)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		ls, err := loadState(p, keys)
		// The files rotate newest first: a snapshot not newer than the one
		// rotated after it was put in place of a newer one.
		if err == nil {
			if next, perr := state.PeekSequence(rotated(path, i+1)); perr == nil && next >= ls.header.Sequence {
				err = fmt.Errorf("%s: snapshot %d is not newer than snapshot %d in %s (an older snapshot put in its place?)", p, ls.header.Sequence, next, rotated(path, i+1))
			}
		}
		if err == nil {
			if len(errs) > 0 {
				log.Warn("using an older snapshot", "file", p)
			}
			return ls, nil
		}
		log.Error("snapshot refused", "file", p, "err", err)
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("no usable snapshot: %w", errors.Join(errs...))
	}
	return nil, nil
}
