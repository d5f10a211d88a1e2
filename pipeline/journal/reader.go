package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// Entry is one alert read from the journal.
type Entry struct {
	Offset   uint64
	Appended int64 // wall time of the append, Unix ns
	Alert    pipeline.Alert
}

// Reader reads the journal for one output, from its cursor on. It is used
// by one goroutine.
type Reader struct {
	j    *Journal
	c    *cursor
	wake chan struct{}
	pos  uint64 // next offset to read (ahead of the cursor by what is in flight)
	f    *os.File
	base uint64 // segment f holds
	fpos int64  // byte position in f of the record at pos (or before it)
	buf  []byte
	// beforeOpen, when set (by tests), runs between choosing a segment and
	// opening its file, where a concurrent DropOldest can remove it.
	beforeOpen func()
}

// Reader returns the reader of output name, which must have been named in
// Open. Reading starts at the output's cursor.
func (j *Journal) Reader(name string) (*Reader, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := j.cursors[name]
	if c == nil {
		return nil, fmt.Errorf("journal: no output %q", name)
	}
	return &Reader{j: j, c: c, pos: c.next, wake: j.waiter()}, nil
}

// Next returns up to count alerts (and about maxBytes of them, at least one)
// appended after those returned before, appending them to dst. It waits
// until there is at least one, then, with linger > 0, up to linger for max
// to be available (count alerts; at least one). Alerts that cannot be read (a corrupt record, or a
// segment removed by DropOldest) are counted and logged and skipped.
func (r *Reader) Next(ctx context.Context, dst []Entry, count, maxBytes int, linger time.Duration) ([]Entry, error) {
	j := r.j
	count = max(count, 1)
	var deadline <-chan time.Time
	for {
		j.mu.Lock()
		if j.closed {
			j.mu.Unlock()
			return dst, ErrClosed
		}
		avail := j.next - min(r.pos, j.next)
		j.mu.Unlock()
		if avail >= uint64(count) || (avail > 0 && linger <= 0) {
			break
		}
		if avail > 0 && deadline == nil {
			t := time.NewTimer(linger)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-r.wake:
			continue
		case <-deadline:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
		break
	}
	return r.read(dst, count, maxBytes)
}

// read reads what is available, up to max alerts and about maxBytes. On an
// error after some alerts were read, it returns those and no error: the
// error recurs on the next call, and no alert read is lost to the caller.
func (r *Reader) read(dst []Entry, count, maxBytes int) ([]Entry, error) {
	got := 0
	dst, err := r.readSome(dst, count, maxBytes, &got)
	if err != nil && got > 0 {
		return dst, nil
	}
	return dst, err
}

func (r *Reader) readSome(dst []Entry, count, maxBytes int, got *int) ([]Entry, error) {
	j := r.j
	bytes := 0
	for *got < count && (maxBytes <= 0 || bytes < maxBytes || *got == 0) {
		j.mu.Lock()
		if r.pos < j.segs[0].base {
			// DropOldest removed what this output had read ahead of its
			// cursor; the loss was counted there.
			r.pos = j.segs[0].base
		}
		if r.pos >= j.next {
			j.mu.Unlock()
			break
		}
		i := len(j.segs) - 1
		for i > 0 && j.segs[i].base > r.pos {
			i--
		}
		seg := j.segs[i]
		end := j.next // offset after this segment's records
		last := i+1 >= len(j.segs)
		if !last {
			end = j.segs[i+1].base
		}
		j.mu.Unlock() // j.segs may change from here (collect, drop_oldest)

		if r.f == nil || r.base != seg.base {
			if r.f != nil {
				r.f.Close()
				r.f = nil
			}
			if r.beforeOpen != nil {
				r.beforeOpen()
			}
			f, err := os.Open(j.segPath(seg.base))
			if errors.Is(err, fs.ErrNotExist) {
				r.segmentGone(seg.base, end)
				continue
			}
			if err != nil {
				return dst, fmt.Errorf("journal: open segment: %w", err)
			}
			r.f, r.base, r.fpos = f, seg.base, 0
		}
		n, b, err := r.readSegment(&dst, seg.size, end, count-*got, maxBytes-bytes)
		*got += n
		bytes += b
		if err != nil {
			return dst, err
		}
		if n == 0 && r.pos < end && r.fpos >= seg.size {
			// The rest of the segment is unreadable or missing.
			r.lose(r.pos, end-r.pos, "records missing at the end of a segment")
			r.pos = end
		}
		if r.pos >= end && last {
			break
		}
	}
	return dst, nil
}

// segmentGone handles the file of segment base, holding offsets up to end,
// found missing when the reader came to open it. DropOldest removes a
// segment (under the lock) after moving every cursor in it past it and
// counting the alerts each output loses, so when the segment is no longer
// listed, the loop's next turn moves pos to the oldest segment kept and
// nothing is counted again. A segment still listed whose file is gone was
// removed by something else: its alerts are counted as unreadable and the
// reader goes on with the next segment.
func (r *Reader) segmentGone(base, end uint64) {
	j := r.j
	j.mu.Lock()
	listed := slices.ContainsFunc(j.segs, func(s segment) bool { return s.base == base })
	j.mu.Unlock()
	if !listed {
		return
	}
	if r.pos < end {
		r.lose(r.pos, end-r.pos, "segment file missing")
		r.pos = end
	}
}

// readSegment reads records of the open segment from fpos up to size bytes
// until offset end, up to max alerts and about maxBytes.
func (r *Reader) readSegment(dst *[]Entry, size int64, end uint64, count, maxBytes int) (n, bytes int, err error) {
	for r.fpos < size && r.pos < end && n < count && (maxBytes <= 0 || bytes < maxBytes || n == 0) {
		want := int(min(size-r.fpos, int64(max(256<<10, len(r.buf)))))
		if cap(r.buf) < want {
			r.buf = make([]byte, want)
		}
		buf := r.buf[:want]
		m, err := r.f.ReadAt(buf, r.fpos)
		if err != nil && err != io.EOF {
			return n, bytes, fmt.Errorf("journal: read segment: %w", err)
		}
		buf = buf[:m]
		p := 0
		for p < len(buf) && r.pos < end && n < count && (maxBytes <= 0 || bytes < maxBytes || n == 0) {
			rec, ok := parseRecord(buf, p)
			if !ok {
				if p > 0 {
					break // the record continues past buf: read again from here
				}
				if l := recordLen(buf); l > len(buf) && int64(l) <= size-r.fpos && l <= maxRecord+headerSize {
					r.buf = make([]byte, l) // one big record: read it whole
					break
				}
				if err := r.resync(size); err != nil {
					return n, bytes, err
				}
				p = -1
				break
			}
			p += rec.size
			if rec.offset < r.pos {
				continue // before the cursor (a restart inside the segment)
			}
			if rec.offset > r.pos {
				r.lose(r.pos, rec.offset-r.pos, "corrupt records skipped")
			}
			e := Entry{Offset: rec.offset, Appended: rec.appended}
			if err := DecodeAlert(rec.alert, &e.Alert); err != nil {
				r.lose(rec.offset, 1, err.Error())
			} else {
				*dst = append(*dst, e)
				n++
				bytes += rec.size
			}
			r.pos = rec.offset + 1
		}
		if p > 0 {
			r.fpos += int64(p)
		}
	}
	return n, bytes, nil
}

// recordLen is the full length of the record starting buf, or 0.
func recordLen(buf []byte) int {
	if len(buf) < headerSize {
		return 0
	}
	return headerSize + int(uint32(buf[4])|uint32(buf[5])<<8|uint32(buf[6])<<16|uint32(buf[7])<<24)
}

// resync moves fpos past a damaged stretch to the next intact record after
// pos, or to the segment's end.
func (r *Reader) resync(size int64) error {
	rest := make([]byte, size-r.fpos)
	m, err := r.f.ReadAt(rest, r.fpos)
	if err != nil && err != io.EOF {
		return fmt.Errorf("journal: read segment: %w", err)
	}
	var after uint64
	if r.pos > 0 {
		after = r.pos - 1
	}
	p := resync(rest[:m], 1, after)
	if p < 0 {
		r.fpos = size
		return nil
	}
	r.fpos += int64(p)
	return nil
}

// lose counts and logs alerts this output will not receive.
func (r *Reader) lose(from, n uint64, why string) {
	r.j.corrupt.Add(int(n))
	r.j.log.Error("journal: alerts could not be read and are skipped", "output", r.c.name, "from_offset", from, "alerts", n, "why", why)
}

// Commit records that the output has delivered every alert before offset
// next. The cursor is written to disk at most every 100 ms (and at Close),
// so a crash re-delivers at most that much; segments every saved cursor has
// passed are removed.
func (r *Reader) Commit(next uint64) error {
	j := r.j
	j.mu.Lock()
	defer j.mu.Unlock()
	if next <= r.c.next {
		return nil
	}
	r.c.next = next
	if time.Since(r.c.savedAt) < cursorEvery {
		return nil
	}
	if err := j.persist(r.c); err != nil {
		return err
	}
	return j.collect()
}

// Lag reports how many alerts the output has not yet delivered.
func (r *Reader) Lag() uint64 {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	return r.j.next - min(r.c.next, r.j.next)
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}
