package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	headerSize = 8  // crc32c + length
	metaSize   = 16 // offset + appended
	// maxRecord bounds a record's length field, so a corrupt length is
	// recognised as such instead of read as a huge record.
	maxRecord = 16 << 20
	segSuffix = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends one record holding alert bytes enc.
func appendRecord(b []byte, offset uint64, appended int64, enc []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(metaSize+len(enc)))
	b = binary.LittleEndian.AppendUint64(b, offset)
	b = binary.LittleEndian.AppendUint64(b, uint64(appended))
	b = append(b, enc...)
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], castagnoli))
	return b
}

// record is one record found in a segment.
type record struct {
	pos      int    // byte position in the segment
	size     int    // bytes, header included
	offset   uint64 // journal offset
	appended int64  // wall time of the append, Unix ns
	alert    []byte // the encoded alert (aliases the segment's bytes)
}

// parseRecord parses the record at data[pos:]. ok is false when there is no
// complete, intact record there.
func parseRecord(data []byte, pos int) (r record, ok bool) {
	if len(data)-pos < headerSize+metaSize {
		return r, false
	}
	n := int(binary.LittleEndian.Uint32(data[pos+4:]))
	if n < metaSize || n > maxRecord || len(data)-pos-headerSize < n {
		return r, false
	}
	body := data[pos+4 : pos+headerSize+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[pos:]) {
		return r, false
	}
	return record{
		pos:      pos,
		size:     headerSize + n,
		offset:   binary.LittleEndian.Uint64(data[pos+headerSize:]),
		appended: int64(binary.LittleEndian.Uint64(data[pos+headerSize+8:])),
		alert:    data[pos+headerSize+metaSize : pos+headerSize+n],
	}, true
}

// resync finds the first intact record at or after pos whose offset is
// greater than after (a false match needs a 32-bit checksum collision and
// a plausible offset). It returns -1 when there is none.
func resync(data []byte, pos int, after uint64) int {
	for p := pos; p+headerSize+metaSize <= len(data); p++ {
		if r, ok := parseRecord(data, p); ok && r.offset > after {
			return p
		}
	}
	return -1
}

// Scan is what a full read of one segment found.
type Scan struct {
	Base      uint64 // offset of the segment's first record, from its name
	Records   int    // intact records
	First     uint64 // offset of the first intact record
	Last      uint64 // offset of the last intact record
	Corrupt   []Gap  // damaged stretches, and whole records failing their checksum
	TornBytes int    // bytes after the last intact record that form no whole record
	Size      int64
	// Next is the offset expected after the segment's records: Last+1, or
	// past a whole but damaged last record (or Base when there is none).
	Next uint64
}

// Gap is a damaged stretch of a segment.
type Gap struct {
	Pos, Bytes int    // where and how long
	Lost       uint64 // alerts missing there (by the offsets around it)
}

// scanSegment reads every record of data, calling fn (when not nil) for
// each intact one in order.
func scanSegment(data []byte, base uint64, fn func(record)) Scan {
	s := Scan{Base: base, Size: int64(len(data))}
	next := base // offset expected next
	pos := 0
	for pos < len(data) {
		r, ok := parseRecord(data, pos)
		if !ok || r.offset < next {
			var after uint64
			if next > 0 {
				after = next - 1
			}
			p := resync(data, pos+1, after)
			if p < 0 {
				if n := wholeLen(data, pos); n > 0 && !ok {
					// The record is all there but fails its checksum:
					// damage, not a write a crash cut short. It held one
					// alert, whose offset is not reused.
					s.Corrupt = append(s.Corrupt, Gap{Pos: pos, Bytes: n, Lost: 1})
					next++
					pos += n
					continue
				}
				s.TornBytes = len(data) - pos
				break
			}
			r, _ = parseRecord(data, p)
			s.Corrupt = append(s.Corrupt, Gap{Pos: pos, Bytes: p - pos, Lost: r.offset - next})
			pos = p
		} else if r.offset > next && s.Records > 0 {
			s.Corrupt = append(s.Corrupt, Gap{Pos: pos, Lost: r.offset - next})
		}
		if s.Records == 0 {
			s.First = r.offset
		}
		s.Records++
		s.Last = r.offset
		next = r.offset + 1
		if fn != nil {
			fn(r)
		}
		pos += r.size
	}
	s.Next = next
	return s
}

// wholeLen is the size of the record at data[pos:] when its length field is
// plausible and its bytes are all there, or 0: a record a crash cut short
// claims more bytes than the segment has.
func wholeLen(data []byte, pos int) int {
	if len(data)-pos < headerSize+metaSize {
		return 0
	}
	n := int(binary.LittleEndian.Uint32(data[pos+4:]))
	if n < metaSize || n > maxRecord || len(data)-pos-headerSize < n {
		return 0
	}
	return headerSize + n
}

// segName is the file name of the segment starting at base.
func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

// listSegments returns the bases of the segments in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		b, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue // not ours
		}
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases, nil
}

// syncDir fsyncs a directory, so a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomic writes data to path through a temporary file and a rename;
// with sync, the file and the directory are fsynced too.
func writeAtomic(path string, data []byte, sync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if sync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}
