package pipeline

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// deadLetters writes rejected frames to an optional writer, one JSON object per
// line, and logs rejections without flooding the log: the first few in full,
// then one summary line at most every logEvery.
type deadLetters struct {
	w   *bufio.Writer
	log *slog.Logger
	buf []byte

	logged     int
	suppressed int
	lastLog    time.Time

	// err is the first write error: dead letters were asked for, so a
	// failed write ends the run rather than dropping them.
	err error
}

const (
	logFirst = 10
	logEvery = 10 * time.Second
)

func newDeadLetters(w io.Writer, log *slog.Logger) *deadLetters {
	d := &deadLetters{log: log.With("component", "decode")}
	if w != nil {
		d.w = bufio.NewWriterSize(w, 64<<10)
	}
	return d
}

func (d *deadLetters) add(f *Frame, payload []byte, reason Reason, err error) {
	if d.logged < logFirst {
		d.logged++
		d.log.Warn("rejected frame", "origin", f.Origin, "line", f.Line, "reason", reason.String(), "err", err)
		d.lastLog = time.Now()
	} else {
		d.suppressed++
		if now := time.Now(); now.Sub(d.lastLog) >= logEvery {
			d.log.Warn("rejected frames (details suppressed)", "count", d.suppressed, "last_reason", reason.String(), "last_origin", f.Origin, "last_line", f.Line)
			d.suppressed, d.lastLog = 0, now
		}
	}
	if d.w == nil || d.err != nil {
		return
	}
	b := append(d.buf[:0], `{"reason":"`...)
	b = append(b, reason.String()...)
	b = append(b, `","error":`...)
	b = appendString(b, err.Error())
	if f.Origin != "" {
		b = append(b, `,"origin":`...)
		b = appendString(b, f.Origin)
	}
	if f.Line > 0 {
		b = append(b, `,"line":`...)
		b = strconv.AppendInt(b, f.Line, 10)
	}
	if f.Topic != "" {
		b = append(b, `,"topic":`...)
		b = appendString(b, f.Topic)
	}
	b = append(b, `,"payload":`...)
	b = appendString(b, string(payload))
	b = append(b, "}\n"...)
	d.buf = b
	if _, werr := d.w.Write(b); werr != nil {
		d.err = fmt.Errorf("pipeline: dead letters: %w", werr)
	}
}

// flush writes what is buffered; it returns the first write error.
func (d *deadLetters) flush() error {
	if d.suppressed > 0 {
		d.log.Warn("rejected frames (details suppressed)", "count", d.suppressed)
	}
	if d.w != nil && d.err == nil {
		if err := d.w.Flush(); err != nil {
			d.err = fmt.Errorf("pipeline: dead letters: %w", err)
		}
	}
	return d.err
}
