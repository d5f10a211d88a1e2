package state

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// Version is the snapshot file format version this build writes.
const Version = 1

// Record kinds: the pipeline's snapshot sections.
const (
	KindPosition = pipeline.RecordPosition // the stream position (key "")
	KindFleet    = pipeline.RecordFleet    // the fleet judge (key "")
	KindEngine   = pipeline.RecordEngine   // a shard's engine-wide state
	KindDevice   = pipeline.RecordDevice   // one device (key: its name)
)

var (
	magic   = []byte("VIGILSNP")
	trailer = []byte("VIGILEND")
	table   = crc32.MakeTable(crc32.Castagnoli)
)

const (
	headerSize  = 8 + 2 + 2 + 8 + 8
	trailerSize = 8 + 8 + 4
	maxRecord   = 64 << 20
)

// Header describes a snapshot.
type Header struct {
	Version  uint16
	Sequence uint64    // increases with every snapshot of one deployment
	Created  time.Time // wall time of the snapshot
}

// Record is one section of a snapshot. Key and Value alias the reader's
// buffer: copy what is kept.
type Record struct {
	Kind  byte
	Key   string
	Value []byte
}

// Writer writes a snapshot: a file, atomically (Create), or to any
// io.Writer (NewWriter).
type Writer struct {
	path, tmp string
	f         *os.File       // nil when writing to an io.Writer
	enc       io.WriteCloser // the encrypting writer, or nil
	w         *bufio.Writer
	crc       uint32 // of everything written so far
	n         uint64
	buf       []byte
	err       error
}

// Create starts the snapshot file path (written to path + ".tmp" until
// Commit).
func Create(path string, h Header) (*Writer, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	w := newWriter(path, tmp, f, f, nil, h)
	return w, w.err
}

// NewWriter starts a snapshot written to dst (a buffer, an upload),
// encrypted for keys' first key unless keys is nil. Commit writes its
// trailer and flushes it; dst is neither synced nor closed.
func NewWriter(dst io.Writer, h Header, keys *Keys) (*Writer, error) {
	var enc io.WriteCloser
	if keys != nil {
		var err error
		if enc, err = encryptTo(dst, h, keys); err != nil {
			return nil, err
		}
	}
	w := newWriter("", "", nil, dst, enc, h)
	return w, w.err
}

// newWriter writes the plain snapshot to enc (encrypting into out) or out
// (f, when writing a file).
func newWriter(path, tmp string, f *os.File, out io.Writer, enc io.WriteCloser, h Header) *Writer {
	dst := out
	if enc != nil {
		dst = enc
	}
	w := &Writer{path: path, tmp: tmp, f: f, enc: enc, w: bufio.NewWriterSize(dst, 256<<10)}
	b := append([]byte(nil), magic...)
	b = binary.LittleEndian.AppendUint16(b, Version)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, h.Sequence)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Created.UnixNano()))
	w.write(b)
	return w
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc = crc32.Update(w.crc, table, b)
	_, w.err = w.w.Write(b)
}

// Add appends a record.
func (w *Writer) Add(kind byte, key string, value []byte) error {
	body := w.buf[:0]
	body = append(body, kind)
	body = binary.AppendUvarint(body, uint64(len(key)))
	body = append(body, key...)
	body = append(body, value...)
	if len(body) > maxRecord {
		return fmt.Errorf("state: record %q of %d bytes is too large", key, len(body))
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(body)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(body, table))
	w.write(h[:])
	w.write(body)
	w.buf = body
	w.n++
	return w.err
}

// Commit writes the trailer, fsyncs, renames the file into place and
// fsyncs the directory. On an error the temporary file is removed and the
// previous snapshot at path (if any) is untouched.
func (w *Writer) Commit() error {
	t := append([]byte(nil), trailer...)
	t = binary.LittleEndian.AppendUint64(t, w.n)
	t = binary.LittleEndian.AppendUint32(t, w.crc)
	if w.err == nil {
		_, w.err = w.w.Write(t)
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err == nil && w.enc != nil {
		w.err = w.enc.Close()
	}
	if w.f == nil {
		if w.err != nil {
			return fmt.Errorf("state: write: %w", w.err)
		}
		return nil
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	if w.err == nil {
		w.err = os.Rename(w.tmp, w.path)
	}
	if w.err == nil {
		w.err = syncDir(filepath.Dir(w.path))
	}
	if w.err != nil {
		os.Remove(w.tmp)
		return fmt.Errorf("state: write %s: %w", w.path, w.err)
	}
	return nil
}

// Abort discards the snapshot being written.
func (w *Writer) Abort() {
	if w.f == nil {
		return
	}
	w.f.Close()
	os.Remove(w.tmp)
}

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

// ErrCorrupt is wrapped by the errors of a snapshot that fails a check.
var ErrCorrupt = errors.New("state: snapshot is corrupt")

// Read reads and verifies the snapshot file path whole, then returns its
// header and records. A file that is truncated, damaged, of another format
// or of a newer version is refused with an error that says which and where;
// an encrypted one needs ReadWith.
func Read(path string) (Header, []Record, error) { return ReadWith(path, nil) }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func parse(data []byte) (Header, []Record, error) {
	var h Header
	if len(data) < headerSize+trailerSize {
		return h, nil, corrupt("%d bytes is shorter than a header and a trailer (truncated?)", len(data))
	}
	if !bytes.Equal(data[:8], magic) {
		return h, nil, fmt.Errorf("not a Vigil snapshot (no VIGILSNP header)")
	}
	h.Version = binary.LittleEndian.Uint16(data[8:])
	if h.Version == 0 || h.Version > Version {
		return h, nil, fmt.Errorf("snapshot format version %d is not supported (this build reads 1 to %d)", h.Version, Version)
	}
	h.Sequence = binary.LittleEndian.Uint64(data[12:])
	h.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(data[20:])))
	end := len(data) - trailerSize
	t := data[end:]
	if !bytes.Equal(t[:8], trailer) {
		return h, nil, corrupt("no trailer at the end (truncated?)")
	}
	if crc := crc32.Checksum(data[:end], table); crc != binary.LittleEndian.Uint32(t[16:]) {
		return h, nil, corrupt("file checksum mismatch")
	}
	want := binary.LittleEndian.Uint64(t[8:])
	var recs []Record
	for pos := headerSize; pos < end; {
		if end-pos < 8 {
			return h, nil, corrupt("record header cut at byte %d", pos)
		}
		n := int(binary.LittleEndian.Uint32(data[pos:]))
		if n < 1 || n > maxRecord || end-pos-8 < n {
			return h, nil, corrupt("record at byte %d has a bad length %d", pos, n)
		}
		body := data[pos+8 : pos+8+n]
		if crc32.Checksum(body, table) != binary.LittleEndian.Uint32(data[pos+4:]) {
			return h, nil, corrupt("record at byte %d: checksum mismatch", pos)
		}
		kl, k := binary.Uvarint(body[1:])
		if k <= 0 || uint64(len(body)-1-k) < kl {
			return h, nil, corrupt("record at byte %d: bad key", pos)
		}
		recs = append(recs, Record{Kind: body[0], Key: string(body[1+k : 1+k+int(kl)]), Value: body[1+k+int(kl):]})
		pos += 8 + n
	}
	if uint64(len(recs)) != want {
		return h, nil, corrupt("%d records; the trailer says %d", len(recs), want)
	}
	return h, recs, nil
}

// ReadFrom is ReadWith from an io.Reader (for tests and pipes).
func ReadFrom(r io.Reader, keys *Keys) (Header, []Record, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Header{}, nil, fmt.Errorf("state: %w", err)
	}
	return parseWith(data, keys)
}
