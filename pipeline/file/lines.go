package file

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"github.com/vigil-iot/vigil/pipeline"
)

// lineSource reads JSON lines and topic-payload lines.
type lineSource struct {
	in      *input
	maxLine int
	keep    int   // bytes of an over-long line kept: enough for a topic and MaxLine+1 payload bytes
	line    int64 // number of the last line read
	tick    int   // lines since ctx was last checked

	// long assembles a line that does not fit the read buffer or was cut short
	// by an interrupted read; partial says one is in progress.
	long    []byte
	partial bool

	topics    map[string]string
	lastTopic string
}

func newLineSource(in *input, opt Options) *lineSource {
	ml := opt.maxLine()
	return &lineSource{
		in:      in,
		maxLine: ml,
		keep:    maxTopic + 1 + ml + 2, // +1 so a stray trailing '\r' cannot bring a cut payload under the limit
		topics:  make(map[string]string),
	}
}

// ReadBatch implements pipeline.Source.
func (s *lineSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if err := s.in.begin(ctx); err != nil {
		return err
	}
	if stop := s.in.watch(ctx); stop != nil {
		defer stop()
	}
	if !s.in.started {
		if err := s.in.start(ctx); err != nil {
			return err
		}
	}
	br := s.in.br
	for n := 0; n < max || n == 0; {
		if n > 0 && s.in.live && !s.in.lineBuffered() {
			return nil
		}
		if s.tick++; s.tick >= ctxEvery {
			s.tick = 0
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		chunk, err := br.ReadSlice('\n')
		if err == nil && !s.partial { // the common case: a whole line in the buffer
			s.line++
			if s.emit(b, chunk) {
				n++
			}
			continue
		}
		if err == nil || err == io.EOF { // the end of a line assembled in long, or of the input
			line := chunk
			if s.partial {
				s.long = appendKeep(s.long, chunk, s.keep)
				line = s.long
				s.partial = false
			}
			if len(line) > 0 {
				s.line++
				if s.emit(b, line) {
					n++
				}
			}
			s.long = s.long[:0]
			if err == io.EOF {
				s.in.eof = true
				return io.EOF
			}
			continue
		}
		// The line goes on: the buffer is full, or the read failed part-way. Keep
		// what we have; a failed read can be resumed after an interruption.
		if len(chunk) > 0 {
			s.long = appendKeep(s.long, chunk, s.keep)
			s.partial = true
		}
		if err != bufio.ErrBufferFull {
			return s.in.fail(ctx, err, s.line)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// appendKeep appends as much of b to dst as keeps len(dst) <= keep.
func appendKeep(dst, b []byte, keep int) []byte {
	if room := keep - len(dst); len(b) > room {
		b = b[:max(room, 0)]
	}
	return append(dst, b...)
}

// emit adds the message on line to b, reporting false for a blank line.
func (s *lineSource) emit(b *pipeline.FrameBatch, line []byte) bool {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	if i == len(line) {
		return false
	}
	topic, payload := "", line
	if c := line[i]; c != '{' && c != '[' {
		rest := line[i:]
		j := bytes.IndexByte(rest, ' ')
		switch {
		case j < 0 && len(rest) <= maxTopic: // a topic without a payload
			topic, payload = s.intern(rest), nil
		case j >= 0 && j <= maxTopic:
			topic, payload = s.intern(rest[:j]), rest[j+1:]
		}
		// Otherwise the "topic" is longer than MQTT allows: pass the line on
		// whole, as a payload the decoder will reject.
	}
	if len(payload) > s.maxLine {
		payload = payload[:s.maxLine+1]
	}
	b.Add(topic, payload, 0, s.in.name, s.line)
	return true
}

// intern returns topic as a string without allocating for topics seen before.
func (s *lineSource) intern(topic []byte) string {
	if string(topic) == s.lastTopic {
		return s.lastTopic
	}
	t, ok := s.topics[string(topic)]
	if !ok {
		if len(s.topics) >= maxTopics {
			clear(s.topics)
		}
		t = string(topic)
		s.topics[t] = t
	}
	s.lastTopic = t
	return t
}

// Close implements pipeline.Source.
func (s *lineSource) Close() error { return s.in.Close() }
