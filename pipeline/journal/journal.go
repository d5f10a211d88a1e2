package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/pipeline"
)

// What Append does when the journal is full.
const (
	Block      = "block"       // wait for the slowest output (default)
	DropOldest = "drop_oldest" // remove the oldest segment, counting what outputs lose
)

// Defaults.
const (
	DefaultSegmentSize = 16 << 20
	DefaultMaxSize     = 1 << 30
)

// Config configures a Journal. Zero fields take their defaults.
type Config struct {
	// Dir is the journal's directory (created if missing).
	Dir string
	// SegmentSize is the size at which the head segment is sealed and a new
	// one started (default 16 MiB).
	SegmentSize int64
	// MaxSize caps the journal's size on disk (default 1 GiB; at least two
	// segments).
	MaxSize int64
	// WhenFull is Block (default) or DropOldest.
	WhenFull string
	// SyncEvery, when positive, fsyncs appends in the background at this
	// interval instead of in every Append.
	SyncEvery time.Duration
	// Logger receives the journal's logs (default: discard).
	Logger *slog.Logger
	// Metrics receives the journal's metrics (default: a private set).
	Metrics *metrics.Set
}

// Validate checks the configuration; errors name the setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is required"))
	}
	if c.SegmentSize < 0 || c.MaxSize < 0 || c.SyncEvery < 0 {
		errs = append(errs, errors.New("segment_size, max_size and fsync must not be negative"))
	}
	seg, max := c.SegmentSize, c.MaxSize
	if seg == 0 {
		seg = DefaultSegmentSize
	}
	if max == 0 {
		max = DefaultMaxSize
	}
	if seg > 0 && max > 0 && max < 2*seg {
		errs = append(errs, fmt.Errorf("max_size (%d) must hold at least two segments of segment_size (%d)", max, seg))
	}
	if seg > 0 && seg < 64<<10 {
		errs = append(errs, fmt.Errorf("segment_size (%d) must be at least 64 KiB", seg))
	}
	switch c.WhenFull {
	case "", Block, DropOldest:
	default:
		errs = append(errs, fmt.Errorf("when_full: %q: want %s or %s", c.WhenFull, Block, DropOldest))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.WhenFull == "" {
		c.WhenFull = Block
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
}

// ErrClosed is returned by a closed Journal.
var ErrClosed = errors.New("journal: closed")

type segment struct {
	base uint64
	size int64 // bytes of intact records
}

type cursor struct {
	name    string
	next    uint64 // committed: the next offset the output has not delivered
	saved   uint64 // the value on disk
	savedAt time.Time
	dropped *metrics.Counter
}

// cursorEvery is how often a moving cursor is written to disk. A crash
// re-delivers at most what the outputs delivered in that time (duplicates,
// not loss); writing on every batch cost more than the delivery itself.
const cursorEvery = 100 * time.Millisecond

// Journal is a durable, append-only log of alerts with a cursor per output.
// Append is called by one goroutine (the pipeline's merge stage); each
// Reader by its own. All methods are safe for concurrent use.
type Journal struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	segs    []segment // ascending by base; the last is the head
	head    *os.File
	next    uint64 // offset of the next record
	size    int64  // bytes of all segments
	cursors map[string]*cursor
	// wake holds one channel (capacity 1) per waiter: each Reader, and the
	// appender waiting for room. signal posts to each without blocking, so
	// waking costs no allocation.
	wake    []chan struct{}
	room    chan struct{}
	dirty   bool // written since the last fsync
	full    bool
	closed  bool
	buf     []byte
	enc     []byte
	syncErr error

	stop   chan struct{}
	wg     sync.WaitGroup
	unlock func()

	appended, fsyncs, corrupt, torn, fullWaits *metrics.Counter
	appendSecs                                 *metrics.Histogram
}

// Open opens (or creates) the journal in cfg.Dir for the named outputs. An
// output without a cursor starts at the end: it receives the alerts
// appended from now on. Cursors of outputs not named are removed, so a
// destination dropped from the configuration does not pin segments forever.
// A torn record at the tail (a crash mid-append) is cut off and logged.
func Open(cfg Config, outputs []string) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	cfg.setDefaults()
	for _, name := range outputs {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			return nil, fmt.Errorf("journal: output name %q cannot name a cursor file", name)
		}
	}
	j := &Journal{
		cfg: cfg, log: cfg.Logger.With("component", "journal", "dir", cfg.Dir),
		cursors: map[string]*cursor{}, room: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	ms := cfg.Metrics
	j.appended = ms.GetOrCreateCounter(`vigil_journal_appended_total`)
	j.fsyncs = ms.GetOrCreateCounter(`vigil_journal_fsyncs_total`)
	j.corrupt = ms.GetOrCreateCounter(`vigil_journal_corrupt_records_total`)
	j.torn = ms.GetOrCreateCounter(`vigil_journal_torn_bytes_total`)
	j.fullWaits = ms.GetOrCreateCounter(`vigil_journal_full_waits_total`)
	j.appendSecs = ms.GetOrCreateHistogram(`vigil_journal_append_seconds`)
	ms.GetOrCreateGauge(`vigil_journal_bytes`, func() float64 { j.mu.Lock(); defer j.mu.Unlock(); return float64(j.size) })
	ms.GetOrCreateGauge(`vigil_journal_segments`, func() float64 { j.mu.Lock(); defer j.mu.Unlock(); return float64(len(j.segs)) })
	ms.GetOrCreateGauge(`vigil_journal_full`, func() float64 {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.full {
			return 1
		}
		return 0
	})

	if err := os.MkdirAll(filepath.Join(cfg.Dir, "cursors"), 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	unlock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	j.unlock = unlock
	fail := func(err error) (*Journal, error) {
		if j.head != nil {
			j.head.Close()
		}
		unlock()
		return nil, err
	}
	if err := j.recover(); err != nil {
		return fail(err)
	}
	if err := j.loadCursors(outputs); err != nil {
		return fail(err)
	}
	j.mu.Lock()
	err = j.collect()
	j.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	j.wg.Go(j.syncLoop)
	return j, nil
}

// recover finds the segments, cuts a torn tail off the head and opens it.
func (j *Journal) recover() error {
	bases, err := listSegments(j.cfg.Dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	for _, b := range bases[:max(len(bases)-1, 0)] {
		fi, err := os.Stat(j.segPath(b))
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.segs = append(j.segs, segment{base: b, size: fi.Size()})
		j.size += fi.Size()
	}
	if len(bases) == 0 {
		return j.startSegment(0)
	}
	base := bases[len(bases)-1]
	path := j.segPath(base)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("journal: read the head segment: %w", err)
	}
	sc := scanSegment(data, base, nil)
	j.next = sc.Next // past a damaged last record too: its offset is not reused
	for _, g := range sc.Corrupt {
		j.log.Error("corrupt records in the head segment; the outputs will skip them", "segment", filepath.Base(path), "at", g.Pos, "bytes", g.Bytes, "alerts_lost", g.Lost)
	}
	size := int64(len(data))
	if sc.TornBytes > 0 {
		size -= int64(sc.TornBytes)
		if err := os.Truncate(path, size); err != nil {
			return fmt.Errorf("journal: cut the torn tail off %s: %w", path, err)
		}
		j.torn.Add(sc.TornBytes)
		if j.cfg.SyncEvery > 0 {
			j.log.Warn("cut a torn write off the journal's tail (a crash mid-append; with fsync every interval, input acknowledged in the last interval before the crash may be among it)",
				"segment", filepath.Base(path), "bytes", sc.TornBytes, "fsync_every", j.cfg.SyncEvery)
		} else {
			j.log.Warn("cut a torn write off the journal's tail (a crash mid-append; those alerts' input was not acknowledged)",
				"segment", filepath.Base(path), "bytes", sc.TornBytes)
		}
	}
	if len(j.segs) > 0 && j.next < base {
		return fmt.Errorf("journal: segment %s starts at %d, before the previous one ends", filepath.Base(path), base)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.head = f
	j.segs = append(j.segs, segment{base: base, size: size})
	j.size += size
	return nil
}

func (j *Journal) segPath(base uint64) string { return filepath.Join(j.cfg.Dir, segName(base)) }

func (j *Journal) cursorPath(name string) string {
	return filepath.Join(j.cfg.Dir, "cursors", name+".cursor")
}

// startSegment seals the head (if any) and starts a new one at base.
func (j *Journal) startSegment(base uint64) error {
	if j.head != nil {
		if err := j.head.Sync(); err != nil {
			return fmt.Errorf("journal: seal segment: %w", err)
		}
		j.fsyncs.Inc()
		if err := j.head.Close(); err != nil {
			return fmt.Errorf("journal: seal segment: %w", err)
		}
		j.head = nil
	}
	f, err := os.OpenFile(j.segPath(base), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("journal: new segment: %w", err)
	}
	if err := syncDir(j.cfg.Dir); err != nil {
		f.Close()
		return fmt.Errorf("journal: new segment: %w", err)
	}
	j.head = f
	j.next = base
	j.segs = append(j.segs, segment{base: base})
	return nil
}

// waiter registers a wake-up channel. Call with mu held.
func (j *Journal) waiter() chan struct{} {
	w := make(chan struct{}, 1)
	j.wake = append(j.wake, w)
	return w
}

// loadCursors reads the cursors of outputs and removes the others.
func (j *Journal) loadCursors(outputs []string) error {
	want := map[string]bool{}
	for _, o := range outputs {
		want[o] = true
	}
	ents, err := os.ReadDir(filepath.Join(j.cfg.Dir, "cursors"))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".cursor")
		if !ok || want[name] {
			continue
		}
		if err := os.Remove(filepath.Join(j.cfg.Dir, "cursors", e.Name())); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.log.Info("removed the cursor of an output that is no longer configured", "output", name)
	}
	oldest := j.segs[0].base
	for _, name := range outputs {
		c := &cursor{name: name, dropped: j.cfg.Metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_journal_dropped_alerts_total{output=%q}`, name))}
		j.cursors[name] = c
		next, err := readCursor(j.cursorPath(name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			c.next = j.next
			if err := j.persist(c); err != nil {
				return err
			}
			continue
		case err != nil:
			c.next = oldest
			j.log.Error("unreadable cursor: the output starts again from the oldest alert kept (duplicates, not loss)", "output", name, "err", err)
			if err := j.persist(c); err != nil {
				return err
			}
			continue
		}
		c.next, c.saved = next, next
		if next < oldest {
			j.log.Warn("output's cursor is before the oldest alert kept; those alerts are gone", "output", name, "alerts", oldest-next)
			c.dropped.Add(int(oldest - next))
			c.next = oldest
		}
		if next > j.next {
			j.log.Warn("output's cursor is past the journal's end (the journal lost its tail?); it resumes at the end", "output", name, "cursor", next, "end", j.next)
			c.next = j.next
		}
	}
	return nil
}

func readCursor(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("journal: cursor %s is corrupt", filepath.Base(path))
	}
	return binary.LittleEndian.Uint64(b), nil
}

// persist writes c's cursor atomically (fsynced with the per-append policy).
// Call with mu held.
func (j *Journal) persist(c *cursor) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], c.next)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if err := writeAtomic(j.cursorPath(c.name), b[:], j.cfg.SyncEvery == 0); err != nil {
		return fmt.Errorf("journal: save cursor of %s: %w", c.name, err)
	}
	c.saved, c.savedAt = c.next, time.Now()
	return nil
}

// flushCursors writes the cursors that moved since they were saved and
// removes the segments they have passed. Call with mu held.
func (j *Journal) flushCursors() error {
	var errs []error
	for _, c := range j.cursors {
		if c.next != c.saved {
			errs = append(errs, j.persist(c))
		}
	}
	errs = append(errs, j.collect())
	return errors.Join(errs...)
}

// signal wakes everyone waiting for a change. Call with mu held.
func (j *Journal) signal() {
	select {
	case j.room <- struct{}{}:
	default:
	}
	for _, w := range j.wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Append writes batch to the journal. It returns when the alerts are
// written and, unless SyncEvery is set, fsynced. When the journal is full
// it waits (Block) until ctx is done or removes the oldest segment
// (DropOldest). On an error (a full disk, say) nothing of the batch is
// kept, so the caller can retry the whole batch.
func (j *Journal) Append(ctx context.Context, batch []pipeline.Alert) error {
	if len(batch) == 0 {
		return nil
	}
	start := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	now := start.UnixNano()
	buf := j.buf[:0]
	for i := range batch {
		j.enc = AppendAlert(j.enc[:0], &batch[i])
		buf = appendRecord(buf, j.next+uint64(i), now, j.enc)
	}
	j.buf = buf
	need := int64(len(buf))
	if err := j.makeRoom(ctx, need); err != nil {
		return err
	}
	if j.closed {
		return ErrClosed
	}
	h := &j.segs[len(j.segs)-1]
	if h.size > 0 && h.size+need > j.cfg.SegmentSize {
		if err := j.startSegment(j.next); err != nil {
			return err
		}
		h = &j.segs[len(j.segs)-1]
	}
	if _, err := j.head.Write(buf); err != nil {
		// Keep the segment free of a partial batch: the caller retries it.
		if terr := j.head.Truncate(h.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("undo the partial write: %w", terr))
		}
		return fmt.Errorf("journal: append %d alerts: %w", len(batch), err)
	}
	if j.cfg.SyncEvery == 0 {
		if err := j.head.Sync(); err != nil {
			j.head.Truncate(h.size)
			return fmt.Errorf("journal: fsync %d alerts: %w", len(batch), err)
		}
		j.fsyncs.Inc()
	} else {
		j.dirty = true
	}
	h.size += need
	j.size += need
	j.next += uint64(len(batch))
	j.appended.Add(len(batch))
	j.signal()
	j.appendSecs.UpdateDuration(start)
	return nil
}

// makeRoom applies the size cap before need bytes are appended. Called and
// returns with mu held.
func (j *Journal) makeRoom(ctx context.Context, need int64) error {
	for j.size+need > j.cfg.MaxSize && len(j.segs) > 1 && !j.closed {
		if j.cfg.WhenFull == DropOldest {
			if err := j.dropOldest(); err != nil {
				return err
			}
			continue
		}
		if !j.full {
			j.full = true
			j.fullWaits.Inc()
			j.log.Warn("journal full: holding the input until the slowest output catches up", "bytes", j.size, "max_size", j.cfg.MaxSize, "slowest", j.slowest())
		}
		j.mu.Unlock()
		select {
		case <-j.room:
		case <-ctx.Done():
			j.mu.Lock()
			return fmt.Errorf("journal: full (%d bytes) while waiting for the outputs: %w", j.size, ctx.Err())
		}
		j.mu.Lock()
	}
	if j.full {
		j.full = false
		j.log.Info("journal has room again", "bytes", j.size)
	}
	return nil
}

// slowest names the output furthest behind. Call with mu held.
func (j *Journal) slowest() string {
	var name string
	var min uint64
	for n, c := range j.cursors {
		if name == "" || c.next < min || (c.next == min && n < name) {
			name, min = n, c.next
		}
	}
	return name
}

// dropOldest removes the oldest segment, moving the cursors in it past it.
// Call with mu held.
func (j *Journal) dropOldest() error {
	end := j.segs[1].base
	for _, c := range j.cursors {
		if c.next >= end {
			continue
		}
		lost := end - c.next
		c.next = end
		c.dropped.Add(int(lost))
		j.log.Error("journal full: dropped the oldest alerts an output had not delivered", "output", c.name, "alerts", lost)
		if err := j.persist(c); err != nil {
			return err
		}
	}
	return j.removeOldest()
}

func (j *Journal) removeOldest() error {
	s := j.segs[0]
	if err := os.Remove(j.segPath(s.base)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: remove segment: %w", err)
	}
	j.segs = j.segs[1:]
	j.size -= s.size
	j.signal()
	return nil
}

// collect removes the sealed segments every cursor has passed. Call with
// mu held; the cursors are on disk already.
func (j *Journal) collect() error {
	min := j.next
	for _, c := range j.cursors {
		min = minU(min, c.saved)
	}
	removed := false
	for len(j.segs) > 1 && j.segs[1].base <= min {
		if err := j.removeOldest(); err != nil {
			return err
		}
		removed = true
	}
	if removed {
		return syncDir(j.cfg.Dir)
	}
	return nil
}

func minU(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// syncLoop fsyncs appends (with SyncEvery) and saves moved cursors.
func (j *Journal) syncLoop() {
	every := cursorEvery
	if j.cfg.SyncEvery > 0 {
		every = min(every, j.cfg.SyncEvery)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastSync := time.Now()
	for {
		select {
		case <-j.stop:
			return
		case now := <-t.C:
			j.mu.Lock()
			if err := j.flushCursors(); err != nil {
				j.log.Error("saving output cursors", "err", err)
			}
			if j.dirty && j.head != nil && now.Sub(lastSync) >= j.cfg.SyncEvery {
				lastSync = now
				if err := j.head.Sync(); err != nil {
					if j.syncErr == nil {
						j.log.Error("journal fsync failed", "err", err)
					}
					j.syncErr = err
				} else {
					j.fsyncs.Inc()
					j.dirty, j.syncErr = false, nil
				}
			}
			j.mu.Unlock()
		}
	}
}

// Position reports the offset of the next record and the oldest kept.
func (j *Journal) Position() (oldest, next uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.segs[0].base, j.next
}

// Close fsyncs and closes the journal. Readers waiting in Next return
// ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	close(j.stop)
	j.signal()
	err := j.flushCursors()
	if j.head != nil {
		err = errors.Join(err, j.head.Sync(), j.head.Close())
		j.head = nil
	}
	j.mu.Unlock()
	j.wg.Wait()
	j.unlock()
	if err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	return nil
}
