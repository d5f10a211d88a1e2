package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// PackToken is the token of a packed message: several MQTT messages of one
// partition, in their order, in one stream message (see AppendPack). A
// stream message costs a reader a few microseconds whatever its size, so
// packing what arrives together makes reading the stream cheap per
// reading; the bridge packs only what one of its batches holds for a
// partition, so packing adds no delay.
const PackToken = "_pack"

// packVersion is the first byte of a packed message's body.
const packVersion = 1

// PackFrame is one MQTT message inside a packed message.
type PackFrame struct {
	Topic   string
	Arrival int64 // Unix ns, 0 when unknown
	Payload []byte
}

// packOverhead bounds the bytes a frame adds to a pack beside its topic and
// payload: three varints.
const packOverhead = 3 * binary.MaxVarintLen64

// AppendPackHeader starts a packed message's body in dst.
func AppendPackHeader(dst []byte) []byte { return append(dst, packVersion) }

// AppendPack appends one frame to a packed message's body started with
// AppendPackHeader: its arrival (varint), its topic and its payload (each
// a uvarint length and the bytes).
func AppendPack(dst []byte, topic string, arrival int64, payload []byte) []byte {
	dst = binary.AppendVarint(dst, arrival)
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// errPack is wrapped by every error of a malformed packed message.
var errPack = errors.New("malformed packed message")

// EachPacked calls fn for every frame of a packed message's body, in
// order; the topic and payload alias body. It stops at fn's first error,
// and reports a malformed body after the frames before the damage.
func EachPacked(body []byte, fn func(topic []byte, arrival int64, payload []byte) error) error {
	if len(body) == 0 || body[0] != packVersion {
		if len(body) == 0 {
			return fmt.Errorf("%w: empty", errPack)
		}
		return fmt.Errorf("%w: version %d, want %d", errPack, body[0], packVersion)
	}
	rest := body[1:]
	for i := 0; len(rest) > 0; i++ {
		arrival, n := binary.Varint(rest)
		if n <= 0 {
			return fmt.Errorf("%w: frame %d: bad arrival", errPack, i)
		}
		rest = rest[n:]
		topic, r, ok := packBytes(rest)
		if !ok {
			return fmt.Errorf("%w: frame %d: bad topic", errPack, i)
		}
		payload, r, ok := packBytes(r)
		if !ok {
			return fmt.Errorf("%w: frame %d: bad payload", errPack, i)
		}
		rest = r
		if err := fn(topic, arrival, payload); err != nil {
			return err
		}
	}
	return nil
}

// packBytes reads a uvarint length and that many bytes.
func packBytes(b []byte) (v, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, false
	}
	b = b[n:]
	return b[:l:l], b[l:], true
}
