package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

// fakeSource yields the payloads it is given, at most batch per ReadBatch.
type fakeSource struct {
	name     string
	payloads []string
	batch    int   // frames per ReadBatch at most; 0: as many as asked
	err      error // returned instead of io.EOF at the end
	closeErr error

	// onRead, when set, runs at the start of every ReadBatch with the number
	// of the call (from 1); a non-nil result is returned instead of reading.
	onRead func(call int) error

	pos    int
	calls  int
	closed bool
}

func (s *fakeSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	s.calls++
	if s.onRead != nil {
		if err := s.onRead(s.calls); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.batch > 0 {
		max = min(max, s.batch)
	}
	for n := 0; n < max && s.pos < len(s.payloads); n++ {
		b.Add("", []byte(s.payloads[s.pos]), 0, s.name, int64(s.pos+1))
		s.pos++
	}
	if s.pos == len(s.payloads) {
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	return nil
}

func (s *fakeSource) Close() error {
	s.closed = true
	return s.closeErr
}

// intTime reads a payload that is a decimal number as the time; anything else
// has no time.
func intTime(p []byte) (int64, bool) {
	t, err := strconv.ParseInt(string(p), 10, 64)
	return t, err == nil
}

// tagged renders frames as "origin:payload" for compact comparisons.
func tagged(rs []rec) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.Origin + ":" + r.Payload
	}
	return strings.Join(s, " ")
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name string
		srcs [][]string // the sources' payloads, named a, b, c...
		want string
	}{
		{
			name: "interleaved times",
			srcs: [][]string{{"1", "4", "7", "10"}, {"2", "5", "8"}, {"3", "6", "9"}},
			want: "a:1 b:2 c:3 a:4 b:5 c:6 a:7 b:8 c:9 a:10",
		},
		{
			name: "runs from one source",
			srcs: [][]string{{"1", "2", "3", "20", "21"}, {"10", "11", "12"}, {"4", "30"}},
			want: "a:1 a:2 a:3 c:4 b:10 b:11 b:12 a:20 a:21 c:30",
		},
		{
			name: "each source keeps its own order",
			srcs: [][]string{{"5", "1", "6"}, {"3", "4"}, {"2", "9", "0"}},
			want: "c:2 b:3 b:4 a:5 a:1 a:6 c:9 c:0",
		},
		{
			name: "ties go by source index",
			srcs: [][]string{{"1", "2", "2"}, {"1", "2"}, {"0", "1", "2"}},
			want: "c:0 a:1 b:1 c:1 a:2 a:2 b:2 c:2",
		},
		{
			name: "frames without time keep their place",
			srcs: [][]string{{"x", "2", "y", "5"}, {"1", "3", "4"}, {"z", "z"}},
			want: "a:x c:z c:z b:1 a:2 a:y b:3 b:4 a:5",
		},
		{
			name: "empty sources",
			srcs: [][]string{{}, {"1"}, {}},
			want: "b:1",
		},
		{
			name: "all empty",
			srcs: [][]string{{}, {}},
			want: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, srcBatch := range []int{0, 1, 2} {
				for _, max := range []int{1, 3, 100} {
					srcs := make([]pipeline.Source, len(tc.srcs))
					for i, p := range tc.srcs {
						srcs[i] = &fakeSource{name: string(rune('a' + i)), payloads: p, batch: srcBatch}
					}
					got, err := readAll(t, Merge(srcs, intTime), max)
					if err != nil {
						t.Fatalf("source batch %d, max %d: %v", srcBatch, max, err)
					}
					if g := tagged(got); g != tc.want {
						t.Errorf("source batch %d, max %d:\ngot  %s\nwant %s", srcBatch, max, g, tc.want)
					}
					for i, s := range srcs {
						if !s.(*fakeSource).closed {
							t.Errorf("source %d not closed", i)
						}
					}
				}
			}
		})
	}
}

// TestMergeFrames checks that merged frames keep their topic, origin and line.
func TestMergeFrames(t *testing.T) {
	a, err := NewReader(strings.NewReader("t/a 1\nt/a 3\n"), "a.log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewReader(strings.NewReader("\nt/b 2\n"), "b.log", Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, Merge([]pipeline.Source{a, b}, intTime), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"t/a", "1", "a.log", 1}, {"t/b", "2", "b.log", 2}, {"t/a", "3", "a.log", 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
}

func TestMergeOneAndNone(t *testing.T) {
	src := &fakeSource{payloads: []string{"1"}}
	if got := Merge([]pipeline.Source{src}, nil); got != pipeline.Source(src) {
		t.Errorf("Merge of one source: got %T %p; want the source itself", got, got)
	}
	got, err := readAll(t, Merge(nil, nil), 10)
	if err != nil || len(got) != 0 {
		t.Errorf("Merge of none: got %v, %v; want no frames", got, err)
	}
}

func TestMergeError(t *testing.T) {
	boom := errors.New("boom")
	a := &fakeSource{name: "a", payloads: []string{"1", "3", "5", "7"}, batch: 1}
	b := &fakeSource{name: "b", payloads: []string{"2", "4"}, batch: 1, err: boom}
	m := Merge([]pipeline.Source{a, b}, intTime)
	defer m.Close()
	var got []rec
	var batch pipeline.FrameBatch
	var err error
	for range 10 {
		batch.Reset()
		err = m.ReadBatch(context.Background(), &batch, 1)
		got = append(got, recs(&batch)...)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, boom) {
		t.Fatalf("got error %v; want %v", err, boom)
	}
	// The frames given out before the error are in order.
	if g := tagged(got); !strings.HasPrefix("a:1 b:2 a:3 b:4", g) {
		t.Errorf("frames before the error: got %s; want a prefix of a:1 b:2 a:3 b:4", g)
	}
	batch.Reset()
	if err2 := m.ReadBatch(context.Background(), &batch, 10); err2 != err || batch.Len() != 0 {
		t.Errorf("after the error: got %d frames, %v; want 0, %v", batch.Len(), err2, err)
	}
}

func TestMergeClose(t *testing.T) {
	e1, e3 := errors.New("e1"), errors.New("e3")
	srcs := []*fakeSource{{closeErr: e1}, {}, {closeErr: e3}}
	m := Merge([]pipeline.Source{srcs[0], srcs[1], srcs[2]}, intTime)
	err := m.Close()
	if !errors.Is(err, e1) || !errors.Is(err, e3) {
		t.Errorf("Close: got %v; want both %v and %v", err, e1, e3)
	}
	for i, s := range srcs {
		if !s.closed {
			t.Errorf("source %d: not closed", i)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: got %v; want nil", err)
	}
	var b pipeline.FrameBatch
	if err := m.ReadBatch(context.Background(), &b, 1); err != ErrClosed {
		t.Errorf("ReadBatch after Close: got %v; want %v", err, ErrClosed)
	}
}

// TestMergeInterrupted cancels ctx while Merge refills a source, then reads
// on with a new ctx: the stream must come out whole and in order.
func TestMergeInterrupted(t *testing.T) {
	for _, interruptAt := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("call ", interruptAt), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			a := &fakeSource{name: "a", payloads: []string{"1", "3", "5"}, batch: 1}
			b := &fakeSource{name: "b", payloads: []string{"2", "4", "6"}, batch: 1}
			b.onRead = func(call int) error {
				if call == interruptAt {
					cancel()
					return ctx.Err()
				}
				return nil
			}
			m := Merge([]pipeline.Source{a, b}, intTime)
			defer m.Close()
			var got []rec
			var batch pipeline.FrameBatch
			sawCancel := false
			for range 20 {
				batch.Reset()
				err := m.ReadBatch(ctx, &batch, 2)
				got = append(got, recs(&batch)...)
				if err == io.EOF {
					break
				}
				if errors.Is(err, context.Canceled) {
					sawCancel = true
					ctx = context.Background()
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !sawCancel {
				t.Errorf("got no context.Canceled; want one")
			}
			if g, want := tagged(got), "a:1 b:2 a:3 b:4 a:5 b:6"; g != want {
				t.Errorf("got %s; want %s", g, want)
			}
		})
	}
}

func TestMergeContextDone(t *testing.T) {
	a := &fakeSource{name: "a", payloads: []string{"1"}}
	b := &fakeSource{name: "b", payloads: []string{"2"}}
	m := Merge([]pipeline.Source{a, b}, intTime)
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var batch pipeline.FrameBatch
	if err := m.ReadBatch(ctx, &batch, 10); err != context.Canceled || batch.Len() != 0 {
		t.Errorf("got %d frames, %v; want 0, %v", batch.Len(), err, context.Canceled)
	}
}

func TestMergeNilTimeOf(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("Merge with nil timeOf: got no panic; want one")
		}
	}()
	Merge([]pipeline.Source{&fakeSource{}, &fakeSource{}}, nil)
}
