package pipeline

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync"
)

// JSONLines is a Sink that writes each alert as one JSON object per line.
type JSONLines struct {
	mu  sync.Mutex
	w   *bufio.Writer
	c   io.Closer
	buf []byte
}

// NewJSONLines returns a sink writing to w. If w is an io.Closer, Close closes it.
func NewJSONLines(w io.Writer) *JSONLines {
	s := &JSONLines{w: bufio.NewWriterSize(w, 64<<10)}
	if c, ok := w.(io.Closer); ok {
		s.c = c
	}
	return s
}

// Write implements Sink.
func (s *JSONLines) Write(_ context.Context, batch []Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf[:0]
	for i := range batch {
		b = batch[i].AppendJSON(b)
		b = append(b, '\n')
	}
	s.buf = b
	_, err := s.w.Write(b)
	return err
}

// Flush writes buffered alerts to the underlying writer.
func (s *JSONLines) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}

// Close flushes and closes the underlying writer if it is a Closer.
func (s *JSONLines) Close() error {
	err := s.Flush()
	if s.c != nil {
		if cerr := s.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Tee is a Sink that writes every batch to each of its sinks in turn. A
// failing sink does not keep the batch from the others; the errors are
// joined. (Per-sink spools, so that one slow destination cannot hold up the
// rest, come with the SIEM sinks.)
type Tee []Sink

// Write implements Sink.
func (t Tee) Write(ctx context.Context, batch []Alert) error {
	var errs []error
	for _, s := range t {
		if err := s.Write(ctx, batch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every sink and joins their errors.
func (t Tee) Close() error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
