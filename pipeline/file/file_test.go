package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// rec is a frame as tests compare it.
type rec struct {
	Topic   string
	Payload string
	Origin  string
	Line    int64
}

func (r rec) String() string {
	return fmt.Sprintf("{%q %q %s:%d}", r.Topic, r.Payload, r.Origin, r.Line)
}

func recs(b *pipeline.FrameBatch) []rec {
	var out []rec
	for i := range b.Frames {
		f := &b.Frames[i]
		if f.Arrival != 0 {
			panic(fmt.Sprintf("frame %d: Arrival %d; want 0 on replay", i, f.Arrival))
		}
		out = append(out, rec{f.Topic, string(b.Payload(f)), f.Origin, f.Line})
	}
	return out
}

// readAll reads src to its end in batches of at most max frames, checking the
// ReadBatch contract on the way, and closes it.
func readAll(t *testing.T, src pipeline.Source, max int) ([]rec, error) {
	t.Helper()
	defer func() {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var out []rec
	var b pipeline.FrameBatch
	for range 1_000_000 {
		b.Reset()
		err := src.ReadBatch(context.Background(), &b, max)
		if b.Len() > max {
			t.Errorf("ReadBatch appended %d frames; want at most %d", b.Len(), max)
		}
		out = append(out, recs(&b)...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if b.Len() == 0 {
			t.Fatalf("ReadBatch returned no frames and no error")
		}
	}
	t.Fatalf("ReadBatch never returned io.EOF")
	return nil, nil
}

func payloads(rs []rec) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Payload
	}
	return out
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func gzipped(t *testing.T, data string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOpenGzip(t *testing.T) {
	const text = "{\"a\":1}\nplant/p1 {\"b\":2}\r\n\n{\"c\":3}"
	tests := []struct {
		name string
		file string
		data []byte
		opt  Options
		want []rec
	}{
		{
			name: "gz extension",
			file: "x.log.gz",
			data: gzipped(t, text),
			want: []rec{
				{"", `{"a":1}`, "x.log.gz", 1},
				{"plant/p1", `{"b":2}`, "x.log.gz", 2},
				{"", `{"c":3}`, "x.log.gz", 4},
			},
		},
		{
			name: "detected by magic, not name",
			file: "x.log",
			data: gzipped(t, text),
			want: []rec{
				{"", `{"a":1}`, "x.log", 1},
				{"plant/p1", `{"b":2}`, "x.log", 2},
				{"", `{"c":3}`, "x.log", 4},
			},
		},
		{
			name: "plain file named .gz",
			file: "y.gz",
			data: []byte(text),
			want: []rec{
				{"", `{"a":1}`, "y.gz", 1},
				{"plant/p1", `{"b":2}`, "y.gz", 2},
				{"", `{"c":3}`, "y.gz", 4},
			},
		},
		{
			name: "concatenated gzip members",
			file: "z.gz",
			data: append(gzipped(t, "{\"a\":1}\n"), gzipped(t, "{\"b\":2}\n")...),
			want: []rec{{"", `{"a":1}`, "z.gz", 1}, {"", `{"b":2}`, "z.gz", 2}},
		},
		{
			name: "gzipped csv",
			file: "press-7.csv.gz",
			data: gzipped(t, "timestamp,p\n1700000000,4.5\n"),
			want: []rec{{"", `{"timestamp":1700000000,"node_id":"press-7","data":{"p":4.5}}`, "press-7.csv.gz", 2}},
		},
		{
			name: "empty gzip stream",
			file: "e.gz",
			data: gzipped(t, ""),
			want: nil,
		},
		{
			name: "empty file",
			file: "e.log",
			data: nil,
			want: nil,
		},
		{
			name: "one byte",
			file: "o.log",
			data: []byte("x"),
			want: []rec{{"x", "", "", 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file, tc.data)
			for i := range tc.want {
				tc.want[i].Origin = path
			}
			src, err := Open(path, tc.opt)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := readAll(t, src, 2)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v; want %v", got, tc.want)
			}
		})
	}
}

func TestGzipErrors(t *testing.T) {
	full := gzipped(t, strings.Repeat("{\"a\":1}\n", 1000))
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"truncated stream", full[:len(full)/2], io.ErrUnexpectedEOF},
		{"bad checksum", append(full[:len(full)-8:len(full)-8], 0, 0, 0, 0, 0, 0, 0, 0), gzip.ErrChecksum},
		{"bad header", []byte{0x1f, 0x8b, 0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "x.gz", tc.data)
			src, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer src.Close()
			var b pipeline.FrameBatch
			for err == nil {
				b.Reset()
				err = src.ReadBatch(context.Background(), &b, 100)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("got error %q; want it to name %q", err, path)
			}
			// The error sticks.
			if err2 := src.ReadBatch(context.Background(), &b, 1); err2 != err {
				t.Errorf("ReadBatch after an error: got %v; want %v", err2, err)
			}
		})
	}
}

func TestOpenMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such.log")
	src, err := Open(path, Options{})
	if err == nil {
		src.Close()
		t.Fatal("Open of a missing file: got no error")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v; want an error matching fs.ErrNotExist", err)
	}
	want := fmt.Sprintf("file: open %q: no such file or directory", path)
	if err.Error() != want {
		t.Errorf("got %q; want %q", err, want)
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	src, err := Open(dir, Options{})
	if err == nil {
		src.Close()
		t.Fatal("Open of a directory: got no error")
	}
	if !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("got %q; want it to say %q", err, "is a directory")
	}
}

func TestOpenInvalidOptions(t *testing.T) {
	for _, opt := range []Options{
		{MaxLine: -1},
		{MaxLine: maxMaxLine + 1},
		{Format: 7},
		{CSV: CSVMapping{Time: "t", Device: "T"}},
	} {
		if _, err := Open("-", opt); err == nil {
			t.Errorf("Open(%+v): got no error; want one", opt)
		}
		if _, err := NewReader(strings.NewReader(""), "x", opt); err == nil {
			t.Errorf("NewReader(%+v): got no error; want one", opt)
		}
	}
}

func TestOpenStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old; r.Close() })
	go func() {
		io.WriteString(w, "a/b {\"x\":1}\n{\"y\":2}")
		w.Close()
	}()
	src, err := Open("-", Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, src, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"a/b", `{"x":1}`, "stdin", 1}, {"", `{"y":2}`, "stdin", 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	// Close must not close stdin.
	if _, err := r.Stat(); err != nil {
		t.Errorf("stdin after Close: %v; want it open", err)
	}
}

func TestContextDone(t *testing.T) {
	tests := []struct {
		format Format
		want   int
	}{
		{JSONLines, 2},
		{CSV, 1},
	}
	for _, tc := range tests {
		t.Run(tc.format.String(), func(t *testing.T) {
			src, err := NewReader(strings.NewReader("timestamp\n1\n"), "x", Options{Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var b pipeline.FrameBatch
			if err := src.ReadBatch(ctx, &b, 10); err != context.Canceled {
				t.Errorf("got %v; want %v", err, context.Canceled)
			}
			if b.Len() != 0 {
				t.Errorf("got %d frames; want 0", b.Len())
			}
			// The source is not spoilt: a live ctx reads on.
			if err := src.ReadBatch(context.Background(), &b, 10); err != io.EOF || b.Len() != tc.want {
				t.Errorf("after cancel: got %d frames, %v; want %d, EOF", b.Len(), err, tc.want)
			}
		})
	}
}

// TestContextInterruptsRead checks that a read blocked on a pipe returns
// promptly when ctx is done, that the part of a line read so far is kept, and
// that a live source hands over what it has instead of waiting for a full batch.
func TestContextInterruptsRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	src, err := NewReader(r, "pipe", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	defer r.Close()

	// readBatch calls ReadBatch, failing the test rather than hanging when it
	// does not return: closing the writer ends a blocked read.
	var b pipeline.FrameBatch
	readBatch := func(ctx context.Context) error {
		t.Helper()
		b.Reset()
		done := make(chan error, 1)
		go func() { done <- src.ReadBatch(ctx, &b, 100) }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			w.Close()
			<-done
			t.Fatalf("ReadBatch still blocked after 5s")
			return nil
		}
	}

	if _, err := io.WriteString(w, "{\"a\":1}\n{\"b\":"); err != nil {
		t.Fatal(err)
	}
	// A live source returns the one whole line it has, without waiting for 100.
	if err := readBatch(context.Background()); err != nil {
		t.Fatalf("got %v; want nil", err)
	}
	if got, want := recs(&b), []rec{{"", `{"a":1}`, "pipe", 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}

	// No whole line to read: the call blocks until ctx is done.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := readBatch(ctx); err != context.DeadlineExceeded {
		t.Fatalf("got %v; want %v", err, context.DeadlineExceeded)
	}

	// The half line read before the interruption is completed by the next read.
	if _, err := io.WriteString(w, "2}\n"); err != nil {
		t.Fatal(err)
	}
	if err := readBatch(context.Background()); err != nil {
		t.Fatalf("got %v; want nil", err)
	}
	if got, want := recs(&b), []rec{{"", `{"b":2}`, "pipe", 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	w.Close()
	if err := readBatch(context.Background()); err != io.EOF || b.Len() != 0 {
		t.Errorf("at the end: got %d frames, %v; want 0, EOF", b.Len(), err)
	}
}

func TestClose(t *testing.T) {
	path := writeFile(t, "x.log", []byte("{}\n{}\n"))
	src, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b pipeline.FrameBatch
	if err := src.ReadBatch(context.Background(), &b, 1); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: got %v; want nil", err)
	}
	if err := src.ReadBatch(context.Background(), &b, 1); err != ErrClosed {
		t.Errorf("ReadBatch after Close: got %v; want %v", err, ErrClosed)
	}
}

func TestFormat(t *testing.T) {
	for _, f := range []Format{Auto, JSONLines, CSV} {
		text, err := f.MarshalText()
		if err != nil {
			t.Fatalf("%v.MarshalText: %v", f, err)
		}
		var got Format
		if err := got.UnmarshalText(text); err != nil || got != f {
			t.Errorf("UnmarshalText(%q): got %v, %v; want %v", text, got, err, f)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Errorf("ParseFormat(%q): got no error; want one", "xml")
	}
	if got, want := Format(9).String(), "Format(9)"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestFormatByName(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		want Format
	}{
		{"a.csv", Options{}, CSV},
		{"dir.csv/A.CSV.GZ", Options{}, CSV},
		{"a.log", Options{}, JSONLines},
		{"a.csv.bak", Options{}, JSONLines},
		{"-", Options{}, JSONLines},
		{"-", Options{Format: CSV}, CSV},
		{"a.csv", Options{Format: JSONLines}, JSONLines},
	}
	for _, tc := range tests {
		if got := tc.opt.format(tc.name); got != tc.want {
			t.Errorf("format(%q) with %v: got %v; want %v", tc.name, tc.opt.Format, got, tc.want)
		}
	}
}

func TestDeviceName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"art_flatline.csv", "art_flatline"},
		{"../data/art_flatline.csv", "art_flatline"},
		{"x.csv.gz", "x"},
		{"/a/b/X.CSV.GZ", "X"},
		{"plant.2024-01.csv", "plant.2024-01"},
		{"noext", "noext"},
		{".csv", ".csv"},
		{"-", "stdin"},
		{"stdin", "stdin"},
		{"", "stdin"},
	}
	for _, tc := range tests {
		if got := deviceName(tc.name); got != tc.want {
			t.Errorf("deviceName(%q): got %q; want %q", tc.name, got, tc.want)
		}
	}
}
