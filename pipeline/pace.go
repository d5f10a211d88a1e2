package pipeline

import (
	"context"
	"time"
)

// Paced wraps src so that frames are handed on no faster than their event
// times allow at speed times real time (2 = twice as fast as recorded). It is
// for demos and for testing live behaviour with recorded logs; detection
// never depends on it, because the pipeline uses event time. timeOf extracts
// a payload's event time; frames without one are not delayed.
func Paced(src Source, speed float64, timeOf func([]byte) (int64, bool)) Source {
	return &paced{src: src, speed: speed, timeOf: timeOf}
}

type paced struct {
	src    Source
	speed  float64
	timeOf func([]byte) (int64, bool)

	buf    FrameBatch
	next   int
	srcErr error

	t0    int64 // event time of the first frame
	wall0 time.Time
}

func (p *paced) ReadBatch(ctx context.Context, b *FrameBatch, max int) error {
	if p.next >= p.buf.Len() {
		if p.srcErr != nil {
			return p.srcErr
		}
		p.buf.Reset()
		p.next = 0
		p.srcErr = p.src.ReadBatch(ctx, &p.buf, max)
		if p.buf.Len() == 0 {
			return p.srcErr
		}
	}
	for n := 0; p.next < p.buf.Len() && n < max; n++ {
		f := &p.buf.Frames[p.next]
		if t, ok := p.timeOf(p.buf.Payload(f)); ok {
			if p.wall0.IsZero() {
				p.t0, p.wall0 = t, time.Now()
			}
			due := p.wall0.Add(time.Duration(float64(t-p.t0) / p.speed))
			if wait := time.Until(due); wait > 0 {
				if n > 0 {
					return nil // hand over what is due now
				}
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
					return ctx.Err()
				}
			}
		}
		b.AddFrame(&p.buf, f)
		p.next++
	}
	if p.next >= p.buf.Len() && p.srcErr != nil {
		return p.srcErr
	}
	return nil
}

func (p *paced) Close() error { return p.src.Close() }
