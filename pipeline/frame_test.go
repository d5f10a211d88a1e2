package pipeline

import "testing"

// TestFrameBatchReleasesBurstBuffers: a batch keeps an ordinary buffer across
// resets (no allocation per batch), but not one a burst of large payloads
// grew, so the pool of batches does not stay at the burst's size.
func TestFrameBatchReleasesBurstBuffers(t *testing.T) {
	var b FrameBatch
	small := make([]byte, 1<<10)
	for range 100 {
		b.Add("t", small, 0, "", 0)
	}
	kept := cap(b.buf)
	b.Reset()
	if cap(b.buf) != kept || b.Len() != 0 {
		t.Fatalf("after Reset: capacity %d, %d frames; want the %d-byte buffer kept and no frames", cap(b.buf), b.Len(), kept)
	}
	big := make([]byte, 1<<20)
	for range 10 {
		b.Add("t", big, 0, "", 0)
	}
	if cap(b.buf) <= maxRetainedBuf {
		t.Fatalf("10 MiB of payloads in a %d-byte buffer: the test needs more", cap(b.buf))
	}
	if got := b.Payload(&b.Frames[9]); len(got) != len(big) {
		t.Fatalf("payload %d bytes; want %d", len(got), len(big))
	}
	b.Reset()
	if cap(b.buf) != 0 {
		t.Errorf("after a burst, Reset kept a %d-byte buffer; want it released (limit %d)", cap(b.buf), maxRetainedBuf)
	}
	b.Add("t", small, 0, "", 0)
	if got := b.Payload(&b.Frames[0]); len(got) != len(small) {
		t.Errorf("payload after release: %d bytes; want %d", len(got), len(small))
	}
}
