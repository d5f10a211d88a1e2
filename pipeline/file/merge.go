package file

import (
	"context"
	"errors"
	"io"
	"math"

	"github.com/vigil-iot/vigil/pipeline"
)

// Merge replays several sources as one stream in event-time order, as if the
// devices that wrote them had shared one log. Each source keeps its own order:
// the merge never reorders frames of one source, it only interleaves sources.
//
// timeOf extracts a frame's event time (Unix ns) from its payload, reporting
// false when it cannot; such a frame takes the time of the previous frame of
// its source (or sorts first at the start), so it keeps its place. Frames with
// equal times come in the order of srcs. timeOf is called once per frame.
//
// Merge reads one batch ahead per source and keeps the sources' next frames in
// a heap, so it costs O(log len(srcs)) per frame plus one copy. The first error
// of any source ends the merge and is returned from then on (except ctx's
// errors, after which reading can go on). Merge ignores the sources' Ack: it is
// meant for replay sources, which do not set it. Close closes every source.
//
// With one source Merge returns it unchanged; with none, a source at its end.
func Merge(srcs []pipeline.Source, timeOf func(payload []byte) (int64, bool)) pipeline.Source {
	switch len(srcs) {
	case 0:
		return &merger{}
	case 1:
		return srcs[0]
	}
	if timeOf == nil {
		panic("BUG: file.Merge: nil timeOf")
	}
	m := &merger{timeOf: timeOf, all: make([]*mergeInput, len(srcs))}
	for i, src := range srcs {
		in := &mergeInput{src: src, idx: i, last: math.MinInt64}
		m.all[i] = in
		m.pending = append(m.pending, in)
	}
	return m
}

type merger struct {
	timeOf  func([]byte) (int64, bool)
	all     []*mergeInput
	heap    []*mergeInput // inputs with a frame to give, least (time, idx) first
	pending []*mergeInput // inputs whose batch is used up, to refill before the heap is valid
	err     error
	closed  bool
}

// mergeInput is one source with its read-ahead batch.
type mergeInput struct {
	src  pipeline.Source
	idx  int
	buf  pipeline.FrameBatch
	pos  int   // next frame in buf
	head int64 // event time of buf.Frames[pos]
	last int64 // event time of the last frame with one
	eof  bool
}

func (in *mergeInput) less(o *mergeInput) bool {
	return in.head < o.head || in.head == o.head && in.idx < o.idx
}

// advance computes head for the frame at pos.
func (in *mergeInput) advance(timeOf func([]byte) (int64, bool)) {
	if t, ok := timeOf(in.buf.Payload(&in.buf.Frames[in.pos])); ok {
		in.last = t
	}
	in.head = in.last
}

// ReadBatch implements pipeline.Source.
func (m *merger) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	switch {
	case m.closed:
		return ErrClosed
	case m.err != nil:
		return m.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for n := 0; ; {
		for len(m.pending) > 0 {
			if err := m.fill(ctx, m.pending[0], max); err != nil {
				return err
			}
			m.dropPending()
		}
		if len(m.heap) == 0 {
			return io.EOF
		}
		if n >= max && n > 0 {
			return nil
		}
		in := m.heap[0]
		b.AddFrame(&in.buf, &in.buf.Frames[in.pos])
		n++
		if in.pos++; in.pos < len(in.buf.Frames) {
			in.advance(m.timeOf)
			m.down(0)
			continue
		}
		m.pop()
		if !in.eof {
			m.pending = append(m.pending, in)
		}
	}
}

// fill reads the next batch of in and puts in on the heap if it has frames.
func (m *merger) fill(ctx context.Context, in *mergeInput, max int) error {
	in.buf.Reset()
	in.pos = 0
	var err error
	for len(in.buf.Frames) == 0 && !in.eof {
		err = in.src.ReadBatch(ctx, &in.buf, max)
		if err == io.EOF {
			in.eof, err = true, nil
		}
		if err != nil {
			break
		}
	}
	if len(in.buf.Frames) > 0 {
		in.advance(m.timeOf)
		m.push(in)
	}
	if err != nil {
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			m.err = err
		}
		if len(in.buf.Frames) > 0 {
			m.dropPending() // in is on the heap: do not refill it
		}
	}
	return err
}

// dropPending removes the first pending input, keeping the slice's array.
func (m *merger) dropPending() {
	m.pending = m.pending[:copy(m.pending, m.pending[1:])]
}

func (m *merger) push(in *mergeInput) {
	m.heap = append(m.heap, in)
	m.up(len(m.heap) - 1)
}

func (m *merger) pop() {
	last := len(m.heap) - 1
	m.heap[0] = m.heap[last]
	m.heap[last] = nil
	m.heap = m.heap[:last]
	if last > 0 {
		m.down(0)
	}
}

func (m *merger) up(i int) {
	h := m.heap
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (m *merger) down(i int) {
	h := m.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		j := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			j = r
		}
		if !h[j].less(h[i]) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

// Close implements pipeline.Source.
func (m *merger) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, in := range m.all {
		errs = append(errs, in.src.Close())
	}
	return errors.Join(errs...)
}
