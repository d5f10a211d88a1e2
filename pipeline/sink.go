package pipeline

import (
	"bufio"
	"context"
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
