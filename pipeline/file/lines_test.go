package file

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"

	"github.com/vigil-iot/vigil/pipeline"
)

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opt  Options
		want []rec // Origin is filled in as "t.log"
	}{
		{
			name: "json lines",
			in:   "{\"node_id\":\"p1\",\"data\":{\"p\":1}}\n{\"node_id\":\"p2\"}\n",
			want: []rec{
				{Payload: `{"node_id":"p1","data":{"p":1}}`, Line: 1},
				{Payload: `{"node_id":"p2"}`, Line: 2},
			},
		},
		{
			name: "topic payload lines",
			in:   "plant/a/p1 {\"x\":1}\nplant/a/p2 {\"x\":2}\nplant/a/p1 {\"x\":3}\n",
			want: []rec{
				{Topic: "plant/a/p1", Payload: `{"x":1}`, Line: 1},
				{Topic: "plant/a/p2", Payload: `{"x":2}`, Line: 2},
				{Topic: "plant/a/p1", Payload: `{"x":3}`, Line: 3},
			},
		},
		{
			name: "mixed, decided per line",
			in:   "{\"a\":1}\nt/1 {\"b\":2}\n[1,2]\nt/2 [3]\n  {\"c\":3}\n",
			want: []rec{
				{Payload: `{"a":1}`, Line: 1},
				{Topic: "t/1", Payload: `{"b":2}`, Line: 2},
				{Payload: `[1,2]`, Line: 3},
				{Topic: "t/2", Payload: `[3]`, Line: 4},
				{Payload: `  {"c":3}`, Line: 5},
			},
		},
		{
			name: "payload keeps its spaces",
			in:   "t {\"a\": 1, \"b\": \"x y\"} \n",
			want: []rec{{Topic: "t", Payload: `{"a": 1, "b": "x y"} `, Line: 1}},
		},
		{
			name: "topic without payload is still emitted",
			in:   "t/1\nt/2 \n\tt/3 {}\n",
			want: []rec{
				{Topic: "t/1", Line: 1},
				{Topic: "t/2", Line: 2},
				{Topic: "t/3", Payload: "{}", Line: 3},
			},
		},
		{
			name: "not json, passed on for the decoder to reject",
			in:   "hello world\n42\n",
			want: []rec{{Topic: "hello", Payload: "world", Line: 1}, {Topic: "42", Line: 2}},
		},
		{
			name: "crlf",
			in:   "{\"a\":1}\r\nt {\"b\":2}\r\nt\r\n\r\n",
			want: []rec{
				{Payload: `{"a":1}`, Line: 1},
				{Topic: "t", Payload: `{"b":2}`, Line: 2},
				{Topic: "t", Line: 3},
			},
		},
		{
			name: "only the last \\r is trimmed",
			in:   "{\"a\":1}\r\r\n",
			want: []rec{{Payload: "{\"a\":1}\r", Line: 1}},
		},
		{
			name: "blank lines are skipped but counted",
			in:   "\n\n{\"a\":1}\n   \n\t\n\r\n{\"b\":2}\n\n",
			want: []rec{{Payload: `{"a":1}`, Line: 3}, {Payload: `{"b":2}`, Line: 7}},
		},
		{
			name: "missing final newline",
			in:   "{\"a\":1}\n{\"b\":2}",
			want: []rec{{Payload: `{"a":1}`, Line: 1}, {Payload: `{"b":2}`, Line: 2}},
		},
		{
			name: "missing final newline after crlf lines",
			in:   "t {\"a\":1}\r\nt {\"b\":2}\r",
			want: []rec{{Topic: "t", Payload: `{"a":1}`, Line: 1}, {Topic: "t", Payload: `{"b":2}`, Line: 2}},
		},
		{
			name: "empty input",
			in:   "",
			want: nil,
		},
		{
			name: "blank input",
			in:   "\n \r\n",
			want: nil,
		},
		{
			name: "over-long line between good lines",
			in:   "{\"a\":1}\n{\"long\":\"0123456789abcdef\"}\n{\"b\":2}\n",
			opt:  Options{MaxLine: 10},
			want: []rec{
				{Payload: `{"a":1}`, Line: 1},
				{Payload: `{"long":"01`, Line: 2},
				{Payload: `{"b":2}`, Line: 3},
			},
		},
		{
			name: "MaxLine applies to the payload, not the topic",
			in:   "a/very/long/topic/name {\"x\":12}\nt {\"x\":1234}\n",
			opt:  Options{MaxLine: 8},
			want: []rec{
				{Topic: "a/very/long/topic/name", Payload: `{"x":12}`, Line: 1},
				{Topic: "t", Payload: `{"x":1234`, Line: 2},
			},
		},
		{
			name: "a payload of exactly MaxLine passes whole, with crlf",
			in:   "{\"x\":12}\r\n",
			opt:  Options{MaxLine: 8},
			want: []rec{{Payload: `{"x":12}`, Line: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.want {
				tc.want[i].Origin = "t.log"
			}
			// Whatever the batch size, the frames are the same.
			for _, max := range []int{1, 2, 1000} {
				src, err := NewReader(strings.NewReader(tc.in), "t.log", tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readAll(t, src, max)
				if err != nil {
					t.Fatalf("max %d: %v", max, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("max %d:\ngot  %v\nwant %v", max, got, tc.want)
				}
			}
		})
	}
}

// TestLongLines uses lines longer than the read buffer, so they take the path
// that assembles a line from several reads.
func TestLongLines(t *testing.T) {
	big := func(n int) string { return `{"x":"` + strings.Repeat("y", n-8) + `"}` }
	hugeJSON := big(3 * bufSize)
	fits := big(DefaultMaxLine)
	tests := []struct {
		name string
		in   string
		opt  Options
		want []rec
	}{
		{
			name: "huge json line",
			in:   "{\"a\":1}\n" + hugeJSON + "\n{\"b\":2}\n",
			want: []rec{
				{Payload: `{"a":1}`, Line: 1},
				{Payload: hugeJSON[:DefaultMaxLine+1], Line: 2},
				{Payload: `{"b":2}`, Line: 3},
			},
		},
		{
			name: "huge topic-payload line",
			in:   "t/1 {\"a\":1}\nt/2 " + hugeJSON + "\r\nt/3 {\"b\":2}\n",
			want: []rec{
				{Topic: "t/1", Payload: `{"a":1}`, Line: 1},
				{Topic: "t/2", Payload: hugeJSON[:DefaultMaxLine+1], Line: 2},
				{Topic: "t/3", Payload: `{"b":2}`, Line: 3},
			},
		},
		{
			name: "huge last line without newline",
			in:   "{\"a\":1}\n" + hugeJSON,
			want: []rec{
				{Payload: `{"a":1}`, Line: 1},
				{Payload: hugeJSON[:DefaultMaxLine+1], Line: 2},
			},
		},
		{
			name: "a payload of exactly MaxLine passes whole",
			in:   fits + "\r\n" + fits,
			want: []rec{{Payload: fits, Line: 1}, {Payload: fits, Line: 2}},
		},
		{
			name: "MaxLine above the buffer size: longer lines are assembled whole",
			in:   hugeJSON + "\nt " + hugeJSON + "\n",
			opt:  Options{MaxLine: len(hugeJSON)},
			want: []rec{{Payload: hugeJSON, Line: 1}, {Topic: "t", Payload: hugeJSON, Line: 2}},
		},
		{
			name: "MaxLine above the buffer size: cut",
			in:   hugeJSON + "\n{}\n",
			opt:  Options{MaxLine: len(hugeJSON) - 10},
			want: []rec{{Payload: hugeJSON[:len(hugeJSON)-9], Line: 1}, {Payload: "{}", Line: 2}},
		},
		{
			name: "a topic longer than MQTT allows",
			in:   strings.Repeat("t", maxTopic+1) + " {}\n{}\n",
			want: []rec{{Payload: (strings.Repeat("t", maxTopic+1) + " {}")[:DefaultMaxLine+1], Line: 1}, {Payload: "{}", Line: 2}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewReader(strings.NewReader(tc.in), "t.log", tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, src, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d frames; want %d", len(got), len(tc.want))
			}
			for i, g := range got {
				w := tc.want[i]
				w.Origin = "t.log"
				if g != w {
					t.Errorf("frame %d: got topic %q, %d-byte payload %.20q..., line %d; want topic %q, %d-byte payload %.20q..., line %d",
						i, g.Topic, len(g.Payload), g.Payload, g.Line, w.Topic, len(w.Payload), w.Payload, w.Line)
				}
			}
		})
	}
}

func TestBatching(t *testing.T) {
	in := strings.Repeat("{}\n", 10)
	src, err := NewReader(strings.NewReader(in), "t.log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var b pipeline.FrameBatch
	ctx := context.Background()
	for i, want := range []struct {
		max, n int
		err    error
	}{
		{4, 4, nil},
		{4, 4, nil},
		{4, 2, io.EOF},
		{4, 0, io.EOF},
		{0, 0, io.EOF},
	} {
		b.Reset()
		err := src.ReadBatch(ctx, &b, want.max)
		if b.Len() != want.n || err != want.err {
			t.Errorf("call %d: got %d frames, %v; want %d, %v", i, b.Len(), err, want.n, want.err)
		}
	}
}

// TestMaxBelowOne checks that ReadBatch hands over one frame even when asked
// for none, as the contract says at least one.
func TestMaxBelowOne(t *testing.T) {
	src, err := NewReader(strings.NewReader("{}\n{}\n"), "t.log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var b pipeline.FrameBatch
	if err := src.ReadBatch(context.Background(), &b, 0); err != nil || b.Len() != 1 {
		t.Errorf("got %d frames, %v; want 1, nil", b.Len(), err)
	}
}

func TestInternTopics(t *testing.T) {
	in := "plant/a {}\nplant/b {}\nplant/a {}\nplant/b {}\n"
	src, err := NewReader(strings.NewReader(in), "t.log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var b pipeline.FrameBatch
	if err := src.ReadBatch(context.Background(), &b, 10); err != io.EOF {
		t.Fatalf("got %v; want EOF", err)
	}
	f := b.Frames
	if unsafe.StringData(f[0].Topic) != unsafe.StringData(f[2].Topic) || unsafe.StringData(f[1].Topic) != unsafe.StringData(f[3].Topic) {
		t.Errorf("equal topics do not share storage: got %p %p %p %p",
			unsafe.StringData(f[0].Topic), unsafe.StringData(f[1].Topic), unsafe.StringData(f[2].Topic), unsafe.StringData(f[3].Topic))
	}

	// The table is bounded.
	var many bytes.Buffer
	for i := range 3 * maxTopics {
		many.WriteString("t/")
		many.WriteString(strings.Repeat("x", i%7))
		many.WriteString(string(rune('a' + i%26)))
		many.WriteString(string(rune('a' + i/26%26)))
		many.WriteString(string(rune('a' + i/676%26)))
		many.WriteString(" {}\n")
	}
	ls := newLineSource(newInput(&many, nil, "many"), Options{})
	for {
		b.Reset()
		if err := ls.ReadBatch(context.Background(), &b, 1000); err != nil {
			break
		}
	}
	if n := len(ls.topics); n > maxTopics {
		t.Errorf("got %d interned topics; want at most %d", n, maxTopics)
	}
}

// repeatReader yields data over and over, for steady-state measurements.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func TestReadLinesAllocs(t *testing.T) {
	var data bytes.Buffer
	for i := range 1000 {
		if i%2 == 0 {
			data.WriteString(`{"timestamp":"2026-11-21T10:00:00Z","node_id":"press-0001","data":{"p":4.2}}` + "\n")
		} else {
			data.WriteString("plant/hall" + string(rune('a'+i%5)) + `/press {"timestamp":1700000000,"node_id":"p","data":{"p":4.2}}` + "\r\n")
		}
	}
	src, err := NewReader(&repeatReader{data: data.Bytes()}, "bench", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var b pipeline.FrameBatch
	ctx := context.Background()
	read := func() {
		b.Reset()
		if err := src.ReadBatch(ctx, &b, 512); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 { // warm up: grow the batch, fill the intern table
		read()
	}
	if allocs := testing.AllocsPerRun(100, read); allocs != 0 {
		t.Errorf("got %v allocations per batch of 512 lines; want 0", allocs)
	}
}

// refLines is the line format in its plainest form, the oracle for FuzzLines.
func refLines(in string, maxLine int) []rec {
	lines := strings.Split(in, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var out []rec
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		rest := strings.TrimLeft(l, " \t")
		if rest == "" {
			continue
		}
		topic, payload := "", l
		if rest[0] != '{' && rest[0] != '[' {
			if t, p, _ := strings.Cut(rest, " "); len(t) <= maxTopic {
				topic, payload = t, p
			}
		}
		if len(payload) > maxLine {
			payload = payload[:maxLine+1]
		}
		out = append(out, rec{topic, payload, "f", int64(i + 1)})
	}
	return out
}

func FuzzLines(f *testing.F) {
	f.Add("{\"a\":1}\nt/1 {\"b\":2}\r\n\n t \r\n[1]", 8)
	f.Add("\r\r\n\t\n{\"long\":\"0123456789\"}", 4)
	f.Add("topic-only\nx y z\n", 1)
	f.Fuzz(func(t *testing.T, in string, maxLine int) {
		if strings.HasPrefix(in, "\x1f\x8b") {
			t.Skip("gzip magic: not a line format input")
		}
		maxLine = 1 + abs(maxLine)%64
		want := refLines(in, maxLine)
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
			src, err := NewReader(r, "f", Options{MaxLine: maxLine})
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, src, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("MaxLine %d, %T:\ngot  %v\nwant %v", maxLine, r, got, want)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
