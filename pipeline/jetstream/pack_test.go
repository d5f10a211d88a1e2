package jetstream

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// TestPackRoundTrip: frames appended to a pack read back in order, with
// their topics, arrivals (zero and negative included) and payloads; every
// truncation of the body is reported as malformed after the whole frames
// before it, never read as a shorter pack.
func TestPackRoundTrip(t *testing.T) {
	frames := []PackFrame{
		{Topic: "plant/a", Arrival: 1_780_000_000_123_456_789, Payload: []byte(`{"node_id":"a"}`)},
		{Topic: "", Arrival: 0, Payload: nil},
		{Topic: "plant/b", Arrival: -5, Payload: bytes.Repeat([]byte("x"), 300)},
	}
	body := AppendPackHeader(nil)
	var ends []int
	for _, f := range frames {
		body = AppendPack(body, f.Topic, f.Arrival, f.Payload)
		ends = append(ends, len(body))
	}
	var got []PackFrame
	err := EachPacked(body, func(topic []byte, arrival int64, payload []byte) error {
		got = append(got, PackFrame{Topic: string(topic), Arrival: arrival, Payload: bytes.Clone(payload)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(frames) {
		t.Fatalf("read %d frames; want %d", len(got), len(frames))
	}
	for i := range frames {
		if got[i].Topic != frames[i].Topic || got[i].Arrival != frames[i].Arrival || !bytes.Equal(got[i].Payload, frames[i].Payload) {
			t.Errorf("frame %d: %+v; want %+v", i, got[i], frames[i])
		}
	}
	for cut := 0; cut < len(body); cut++ {
		whole := 0
		for _, e := range ends {
			if e <= cut {
				whole++
			}
		}
		n := 0
		err := EachPacked(body[:cut], func([]byte, int64, []byte) error { n++; return nil })
		if cut == 1 { // the header alone: an empty pack
			if err != nil || n != 0 {
				t.Errorf("header only: %d frames, %v; want none and no error", n, err)
			}
			continue
		}
		if !slices.Contains(ends, cut) && !errors.Is(err, errPack) {
			t.Errorf("cut at %d: %v; want a malformed pack", cut, err)
		}
		if n != whole {
			t.Errorf("cut at %d: %d frames read; want the %d whole ones", cut, n, whole)
		}
	}
	if err := EachPacked([]byte{9, 0, 0}, func([]byte, int64, []byte) error { return nil }); !errors.Is(err, errPack) {
		t.Errorf("unknown version: %v; want a malformed pack", err)
	}
	stop := errors.New("stop")
	if err := EachPacked(body, func([]byte, int64, []byte) error { return stop }); err != stop {
		t.Errorf("fn's error: got %v", err)
	}
}

// FuzzEachPacked: no input makes the reader panic or hand out bytes beyond
// the body.
func FuzzEachPacked(f *testing.F) {
	f.Add(AppendPack(AppendPackHeader(nil), "t", 1, []byte("p")))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{1, 2, 0xfe, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, body []byte) {
		total := 0
		_ = EachPacked(body, func(topic []byte, _ int64, payload []byte) error {
			total += len(topic) + len(payload)
			return nil
		})
		if total > len(body) {
			t.Fatalf("read %d bytes of frames from a %d-byte body", total, len(body))
		}
	})
}
