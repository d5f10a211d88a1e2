package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Report is what Check found in a journal directory.
type Report struct {
	Segments []Scan
	Cursors  []CursorInfo
	// Next is the offset after the last intact record.
	Next uint64
}

// CursorInfo is one output's cursor.
type CursorInfo struct {
	Output string
	Next   uint64 // the next offset the output will read
	Err    error  // the cursor file is unreadable
}

// Damaged reports whether any segment has damaged bytes or a torn tail, or
// a cursor is unreadable. (A gap in the offsets with no damaged bytes, as a
// repair leaves behind, is history: Lost counts it.)
func (r *Report) Damaged() bool {
	for _, s := range r.Segments {
		if s.TornBytes > 0 {
			return true
		}
		for _, g := range s.Corrupt {
			if g.Bytes > 0 {
				return true
			}
		}
	}
	for _, c := range r.Cursors {
		if c.Err != nil {
			return true
		}
	}
	return false
}

// Lost sums the alerts missing in corrupt stretches.
func (r *Report) Lost() uint64 {
	var n uint64
	for _, s := range r.Segments {
		for _, g := range s.Corrupt {
			n += g.Lost
		}
	}
	return n
}

// Check reads every segment and cursor of the journal in dir and reports
// what is intact and what is damaged. It changes nothing and may run while
// Vigil appends (the head then keeps growing).
func Check(dir string) (*Report, error) {
	bases, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	r := &Report{}
	for i, b := range bases {
		data, err := os.ReadFile(filepath.Join(dir, segName(b)))
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		sc := scanSegment(data, b, nil)
		if i+1 < len(bases) && sc.Records > 0 && sc.Next < bases[i+1] {
			// Records missing at the end of a sealed segment.
			sc.Corrupt = append(sc.Corrupt, Gap{Pos: len(data) - sc.TornBytes, Bytes: sc.TornBytes, Lost: bases[i+1] - sc.Next})
			sc.TornBytes = 0
		} else if i+1 < len(bases) && sc.TornBytes > 0 {
			// Only the head can have a torn tail; inside a sealed segment
			// it is damage.
			lost := bases[i+1] - b
			if sc.Records > 0 {
				lost = bases[i+1] - sc.Last - 1
			}
			sc.Corrupt = append(sc.Corrupt, Gap{Pos: len(data) - sc.TornBytes, Bytes: sc.TornBytes, Lost: lost})
			sc.TornBytes = 0
		}
		r.Segments = append(r.Segments, sc)
		if sc.Records > 0 || sc.Next > b {
			r.Next = sc.Next
		} else if i == len(bases)-1 {
			r.Next = max(r.Next, b)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, "cursors"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("journal: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".cursor")
		if !ok {
			continue
		}
		next, err := readCursor(filepath.Join(dir, "cursors", e.Name()))
		r.Cursors = append(r.Cursors, CursorInfo{Output: name, Next: next, Err: err})
	}
	slices.SortFunc(r.Cursors, func(a, b CursorInfo) int { return strings.Compare(a.Output, b.Output) })
	return r, nil
}

// Repair rewrites each damaged segment of the journal in dir with only its
// intact records (through a temporary file and a rename) and removes
// unreadable cursors (those outputs start again from the oldest alert
// kept: duplicates, not loss). Vigil must not be running on dir: Repair
// takes the journal's lock. It returns the report from before the repair.
func Repair(dir string) (*Report, error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := Check(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range r.Segments {
		damaged := s.TornBytes > 0
		for _, g := range s.Corrupt {
			damaged = damaged || g.Bytes > 0
		}
		if !damaged {
			continue
		}
		path := filepath.Join(dir, segName(s.Base))
		data, err := os.ReadFile(path)
		if err != nil {
			return r, fmt.Errorf("journal: %w", err)
		}
		var kept []byte
		scanSegment(data, s.Base, func(rec record) { kept = append(kept, data[rec.pos:rec.pos+rec.size]...) })
		if err := writeAtomic(path, kept, true); err != nil {
			return r, fmt.Errorf("journal: rewrite %s: %w", filepath.Base(path), err)
		}
	}
	for _, c := range r.Cursors {
		if c.Err != nil {
			if err := os.Remove(filepath.Join(dir, "cursors", c.Output+".cursor")); err != nil {
				return r, fmt.Errorf("journal: %w", err)
			}
		}
	}
	return r, nil
}

// Inspect calls fn for each intact record of the journal in dir from
// offset from on, in order, until fn returns false.
func Inspect(dir string, from uint64, fn func(Entry) bool) error {
	bases, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	for i, b := range bases {
		if i+1 < len(bases) && bases[i+1] <= from {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, segName(b)))
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		stop := false
		var derr error
		scanSegment(data, b, func(rec record) {
			if stop || rec.offset < from {
				return
			}
			e := Entry{Offset: rec.offset, Appended: rec.appended}
			if err := DecodeAlert(rec.alert, &e.Alert); err != nil {
				derr = fmt.Errorf("journal: record %d: %w", rec.offset, err)
				stop = true
				return
			}
			stop = !fn(e)
		})
		if derr != nil {
			return derr
		}
		if stop {
			return nil
		}
	}
	return nil
}

// CursorOf returns the cursor of output in dir.
func CursorOf(dir, output string) (uint64, error) {
	return readCursor(filepath.Join(dir, "cursors", output+".cursor"))
}
