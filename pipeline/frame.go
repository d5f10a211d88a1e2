package pipeline

import (
	"context"
)

// Frame is one raw message as a source saw it: the payload bytes, the topic it
// arrived on (empty when unknown), and where it came from. A Frame does not own its
// payload; the FrameBatch that holds it does.
type Frame struct {
	// Topic is the MQTT topic or subject, or "" when the source does not know it
	// (payload-only logs).
	Topic string
	// Arrival is the receive time in Unix nanoseconds for live sources, 0 for
	// replay, where arrival is the frame's position in the stream.
	Arrival int64
	// Origin names the source (a file name, a broker URL); Line is the 1-based
	// line or record number within it, 0 when not applicable. Both are used in
	// error messages and dead letters.
	Origin string
	Line   int64

	start, end int32 // payload bounds within the batch buffer
}

// FrameBatch is a reusable batch of frames whose payloads are copied into one
// buffer owned by the batch. Sources append with Add; stages read with Payload.
// A batch is owned by exactly one stage at a time.
type FrameBatch struct {
	Frames []Frame
	buf    []byte

	// Ack, when set by the source, is called once after every frame of the batch
	// has been processed and the alerts it produced were handed to the sink. Live
	// sources use it to acknowledge messages only after processing (at-least-once).
	Ack func()

	// Clock, when set by a source that carries time in its stream (a tick
	// message of a JetStream partition), is the stream time (Unix ns) the
	// batch reaches after its frames, if later: the pipeline judges time
	// passing to it as it does for live ticks, so a stream replayed later
	// reproduces them. A batch may carry a Clock and no frame.
	Clock int64
	// Mark, when set, is the source's own position after this batch (a
	// stream sequence, counting tick messages too). The pipeline reports
	// the last batch's mark before a snapshot in Position.Mark, so a source
	// resumed from the snapshot continues right after it.
	Mark uint64
}

// Add appends a frame, copying payload into the batch buffer.
func (b *FrameBatch) Add(topic string, payload []byte, arrival int64, origin string, line int64) {
	start := len(b.buf)
	b.buf = append(b.buf, payload...)
	b.Frames = append(b.Frames, Frame{
		Topic:   topic,
		Arrival: arrival,
		Origin:  origin,
		Line:    line,
		start:   int32(start),
		end:     int32(len(b.buf)),
	})
}

// AddFrame appends a copy of f (taken from batch src) to b.
func (b *FrameBatch) AddFrame(src *FrameBatch, f *Frame) {
	b.Add(f.Topic, src.Payload(f), f.Arrival, f.Origin, f.Line)
}

// Payload returns the payload of f, which must belong to b. The slice is valid
// until the batch is reset.
func (b *FrameBatch) Payload(f *Frame) []byte {
	return b.buf[f.start:f.end:f.end]
}

// Len reports the number of frames in the batch.
func (b *FrameBatch) Len() int { return len(b.Frames) }

// Bytes reports the payload bytes held by the batch.
func (b *FrameBatch) Bytes() int { return len(b.buf) }

// maxRetainedBuf is the largest payload buffer a reset batch keeps. A burst
// of large payloads grows a batch's buffer; kept, every batch in the pool
// would end up that size for good.
const maxRetainedBuf = 8 << 20

// Reset empties the batch, keeping its capacity unless its payload buffer
// grew past maxRetainedBuf (a burst of large messages): that one goes back
// to the allocator.
func (b *FrameBatch) Reset() {
	b.Frames = b.Frames[:0]
	if cap(b.buf) > maxRetainedBuf {
		b.buf = nil
	} else {
		b.buf = b.buf[:0]
	}
	b.Ack = nil
	b.Clock, b.Mark = 0, 0
}

// A DecodedSource is a Source that holds its frames already decoded: a data
// set kept in memory and replayed many times, as `vigil tune` does. Its
// frames need no payload; the pipeline asks Decoded for each frame's reading
// instead of decoding it, and everything after decoding (routing, rejections,
// ticks, the fleet judge, merging) is the same, so a replay of a
// DecodedSource gives the alerts a replay of the original frames gives.
type DecodedSource interface {
	Source
	// Decoded fills r, reusing r.Values, with the reading of f (a frame
	// this source appended), and returns the error decoding it gave: a
	// *DecodeError for a rejected frame, with r.Device set when the decoder
	// knew the device. It is called from several goroutines at once.
	Decoded(f *Frame, r *Reading) error
}

// Source yields raw frames in batches.
//
// ReadBatch appends at least one frame to b, blocking until one is available, ctx is
// done, or the source is exhausted. It may append up to max frames but should not
// wait for more once it has some (live sources hand over what they have). At the end
// of the stream it returns io.EOF, possibly together with frames appended in the same
// call. Sources are used from one goroutine; Close releases their resources.
type Source interface {
	ReadBatch(ctx context.Context, b *FrameBatch, max int) error
	Close() error
}
