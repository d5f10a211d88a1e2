package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// DefaultMaxLine is the default for Options.MaxLine. It matches the decoder's
// default payload limit.
const DefaultMaxLine = 64 << 10

const (
	// bufSize is the read buffer. Lines shorter than it are copied once, from the
	// buffer into the batch; longer ones are assembled in a second buffer.
	bufSize = 256 << 10
	// maxMaxLine keeps payload offsets within a batch in int32 range.
	maxMaxLine = 1 << 30
	// maxTopic is the longest MQTT topic (the protocol's string length limit).
	maxTopic = 65535
	// maxTopics bounds the topic intern table; it is cleared when full.
	maxTopics = 10000
	// ctxEvery is how many lines a source reads between checks of ctx.
	ctxEvery = 1024
)

// ErrClosed is returned by ReadBatch after Close.
var ErrClosed = errors.New("file: source closed")

// Format is the format of a log file.
type Format int

// Formats.
const (
	// Auto picks CSV for names ending in ".csv" or ".csv.gz" (any case) and
	// JSONLines otherwise.
	Auto Format = iota
	// JSONLines reads one message per line: a JSON payload, or a topic, a space
	// and a payload (mosquitto_sub -v), told apart per line.
	JSONLines
	// CSV reads a CSV file with a header row; see CSVMapping.
	CSV
)

var formatNames = [...]string{"auto", "jsonl", "csv"}

func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses the names printed by Format.String.
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if n == s {
			return Format(i), nil
		}
	}
	return Auto, fmt.Errorf("file: unknown format %q (want one of auto, jsonl, csv)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (f Format) MarshalText() ([]byte, error) {
	if f < 0 || int(f) >= len(formatNames) {
		return nil, fmt.Errorf("file: unknown format %d", int(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, so config files can say
// "format: csv".
func (f *Format) UnmarshalText(text []byte) error {
	v, err := ParseFormat(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Options configures a source. The zero value is ready to use.
type Options struct {
	// Format is the file's format (default Auto).
	Format Format
	// MaxLine is the longest payload passed on whole, in bytes (default
	// DefaultMaxLine). A longer one is cut to MaxLine+1 bytes, so that a decoder
	// with the same limit rejects it as too large, and the rest of its line is
	// skipped. For topic-payload lines the limit applies to the payload.
	MaxLine int
	// CSV maps CSV columns to payload fields.
	CSV CSVMapping
}

// Validate reports whether o is usable.
func (o Options) Validate() error {
	if o.Format < Auto || o.Format > CSV {
		return fmt.Errorf("format: unknown format %d", int(o.Format))
	}
	if o.MaxLine < 0 || o.MaxLine > maxMaxLine {
		return fmt.Errorf("max_line: %d is outside 0..%d", o.MaxLine, maxMaxLine)
	}
	return o.CSV.validate()
}

func (o Options) maxLine() int {
	if o.MaxLine == 0 {
		return DefaultMaxLine
	}
	return o.MaxLine
}

func (o Options) format(name string) Format {
	if o.Format != Auto {
		return o.Format
	}
	n := strings.ToLower(name)
	if strings.HasSuffix(n, ".csv") || strings.HasSuffix(n, ".csv.gz") {
		return CSV
	}
	return JSONLines
}

// Open opens the log file at path, or stdin when path is "-", and returns a
// source replaying it. Frames carry the path (or "stdin") as Origin. The file
// is read lazily: gzip detection and the CSV header wait for the first ReadBatch.
// Close closes the file, but never stdin.
func Open(path string, opt Options) (pipeline.Source, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("file: open %q: %w", path, err)
	}
	if path == "-" {
		return newSource(os.Stdin, nil, "stdin", opt), nil
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in our message already
		}
		return nil, fmt.Errorf("file: open %q: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("file: open %q: is a directory", path)
	}
	return newSource(f, f, path, opt), nil
}

// NewReader returns a source replaying r. name is the frames' Origin; it also
// selects the format when opt.Format is Auto, and names the device of a CSV
// file without a device column ("-" and "stdin" name it "stdin"). Close
// releases the source's own resources but does not close r.
//
// When r is an *os.File that is not a regular file (a pipe, a terminal), the
// source treats it as live: ReadBatch returns the frames it has rather than
// wait for more. When r also supports read deadlines (pipes from os.Pipe,
// FIFOs, net.Conn), a ReadBatch blocked on a read returns promptly when ctx is
// done; otherwise it returns at the next line or at the end of the input.
func NewReader(r io.Reader, name string, opt Options) (pipeline.Source, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("file: %q: %w", name, err)
	}
	return newSource(r, nil, name, opt), nil
}

func newSource(r io.Reader, closer io.Closer, name string, opt Options) pipeline.Source {
	in := newInput(r, closer, name)
	if opt.format(name) == CSV {
		return newCSVSource(in, name, opt)
	}
	return newLineSource(in, opt)
}

// deadliner is implemented by inputs whose blocked reads can be interrupted.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// input is the byte stream under a source: the read buffer, gzip detection,
// interruption by ctx, and closing.
type input struct {
	name   string // the frames' Origin
	br     *bufio.Reader
	zr     *gzip.Reader // non-nil when the input is gzip-compressed
	closer io.Closer    // the file, when the source owns it
	dl     deadliner    // non-nil when reads can be interrupted
	live   bool         // hand over frames rather than wait for more

	started bool
	eof     bool
	closed  bool
	err     error // sticky read error
}

func newInput(r io.Reader, closer io.Closer, name string) *input {
	in := &input{name: name, closer: closer, br: bufio.NewReaderSize(r, bufSize)}
	switch v := r.(type) {
	case *os.File:
		if fi, err := v.Stat(); err == nil && !fi.Mode().IsRegular() {
			in.live = true
		}
		if v.SetReadDeadline(time.Time{}) == nil {
			in.dl = v
		}
	case deadliner:
		if v.SetReadDeadline(time.Time{}) == nil {
			in.dl = v
			in.live = true
		}
	}
	return in
}

// begin reports why ReadBatch cannot read now, if it cannot.
func (in *input) begin(ctx context.Context) error {
	switch {
	case in.closed:
		return ErrClosed
	case in.err != nil:
		return in.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.eof {
		return io.EOF
	}
	return nil
}

// start detects gzip by its magic bytes and, if found, switches br to the
// decompressed stream.
func (in *input) start(ctx context.Context) error {
	magic, err := in.br.Peek(2)
	if err != nil && err != io.EOF {
		return in.fail(ctx, err, 0)
	}
	in.started = true
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return nil
	}
	zr, err := gzip.NewReader(in.br)
	if err != nil {
		in.err = fmt.Errorf("file: read %q: gzip: %w", in.name, err)
		return in.err
	}
	in.zr = zr
	in.br = bufio.NewReaderSize(zr, bufSize)
	return nil
}

// watch arranges for a read blocked in the input to fail when ctx is done. The
// returned function, if not nil, must be called before ReadBatch returns.
func (in *input) watch(ctx context.Context) (stop func()) {
	if in.dl == nil || ctx.Done() == nil {
		return nil
	}
	fired := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		in.dl.SetReadDeadline(time.Unix(1, 0)) // in the past: wake the reader now
		close(fired)
	})
	return func() {
		if !stopAfter() {
			<-fired
			in.dl.SetReadDeadline(time.Time{})
		}
	}
}

// fail turns a read error into ReadBatch's result: ctx's error when ctx cut
// the read short, otherwise a sticky error naming the input.
func (in *input) fail(ctx context.Context, err error, line int64) error {
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return cerr
	}
	if line > 0 {
		in.err = fmt.Errorf("file: read %q after line %d: %w", in.name, line, err)
	} else {
		in.err = fmt.Errorf("file: read %q: %w", in.name, err)
	}
	return in.err
}

// firstLines returns up to k first non-blank lines of the input (as the
// CSV reader skips blank lines) without consuming them, without their line
// ends; fewer at the end of the input, and the rest of the buffer as the
// last when a line is longer than it. It reads no further than the k-th
// line's end, so a live source is not waited on beyond it.
func (in *input) firstLines(k int) [][]byte {
	var lines [][]byte
	for n := 1; ; {
		buf, err := in.br.Peek(n)
		lines = lines[:0]
		start := 0
		for start < len(buf) && len(lines) < k {
			i := bytes.IndexByte(buf[start:], '\n')
			if i < 0 {
				break
			}
			if line := bytes.TrimRight(buf[start:start+i], "\r"); len(line) > 0 {
				lines = append(lines, line)
			}
			start += i + 1
		}
		if len(lines) == k {
			return lines
		}
		if err != nil || len(buf) >= in.br.Size() {
			if rest := bytes.TrimRight(buf[start:], "\r\n"); len(rest) > 0 {
				lines = append(lines, rest)
			}
			return lines
		}
		n = max(in.br.Buffered(), len(buf)) + 1
	}
}

// lineBuffered reports whether a whole line is buffered, so reading it cannot
// block. Live sources stop a batch when it is not.
func (in *input) lineBuffered() bool {
	buf, _ := in.br.Peek(in.br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

func (in *input) Close() error {
	if in.closed {
		return nil
	}
	in.closed = true
	if in.zr != nil {
		// gzip's Close only repeats a read error, which ReadBatch has returned.
		_ = in.zr.Close()
	}
	if in.closer != nil {
		if err := in.closer.Close(); err != nil {
			return fmt.Errorf("file: close %q: %w", in.name, err)
		}
	}
	return nil
}

// deviceName derives a device name from a file name: the base name without
// ".gz" and one more extension (x.csv.gz → x); stdin is "stdin".
func deviceName(name string) string {
	if name == "-" || name == "" {
		return "stdin"
	}
	base := filepath.Base(name)
	if len(base) > 3 && strings.EqualFold(base[len(base)-3:], ".gz") {
		base = base[:len(base)-3]
	}
	if stem := strings.TrimSuffix(base, filepath.Ext(base)); stem != "" {
		return stem
	}
	return base
}
