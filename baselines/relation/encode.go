package relation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// encodingVersion is the first byte of State's binary encoding.
const encodingVersion = 1

// headerLen is the encoded size of State's fixed fields.
const headerLen = 1 + 3 + 5*4 + 2*8 + 7*8

// ErrEncoding reports a State encoding that cannot be decoded.
var ErrEncoding = errors.New("relation: bad state encoding")

// BinarySize is the length of s's encoding.
func (s *State) BinarySize() int { return headerLen + 8*len(s.Data) }

// AppendBinary appends s's versioned, little-endian encoding to b
// (encoding.BinaryAppender).
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, encodingVersion, s.K, s.A, boolByte(s.Warm))
	for _, v := range [...]uint32{s.N, s.Gated, s.Since, s.Skipped, s.NM} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(s.First))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Last))
	for _, v := range [...]float64{s.T2Limit, s.SPELimit, s.Theta1, s.MT, s.VT, s.MQ, s.VQ} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for _, v := range s.Data {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b, nil
}

// MarshalBinary returns s's encoding (encoding.BinaryMarshaler).
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, s.BinarySize()))
}

// UnmarshalBinary restores s from an encoding made by AppendBinary,
// reusing s.Data when it is large enough.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) < headerLen {
		return fmt.Errorf("%w: %d bytes", ErrEncoding, len(b))
	}
	if b[0] != encodingVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrEncoding, b[0], encodingVersion)
	}
	k := int(b[1])
	if k < 2 || k > MaxSignals || int(b[2]) >= k || b[3] > 1 {
		return fmt.Errorf("%w: k=%d, a=%d", ErrEncoding, k, b[2])
	}
	if want := headerLen + 8*dataLen(k); len(b) != want {
		return fmt.Errorf("%w: %d bytes for k=%d, want %d", ErrEncoding, len(b), k, want)
	}
	s.K, s.A, s.Warm = b[1], b[2], b[3] == 1
	p := 4
	u32 := func() uint32 { v := binary.LittleEndian.Uint32(b[p:]); p += 4; return v }
	u64 := func() uint64 { v := binary.LittleEndian.Uint64(b[p:]); p += 8; return v }
	s.N, s.Gated, s.Since, s.Skipped, s.NM = u32(), u32(), u32(), u32(), u32()
	s.First, s.Last = int64(u64()), int64(u64())
	for _, f := range [...]*float64{&s.T2Limit, &s.SPELimit, &s.Theta1, &s.MT, &s.VT, &s.MQ, &s.VQ} {
		*f = math.Float64frombits(u64())
	}
	n := dataLen(k)
	if cap(s.Data) >= n {
		s.Data = s.Data[:n]
	} else {
		s.Data = make([]float64, n)
	}
	for i := range s.Data {
		s.Data[i] = math.Float64frombits(u64())
	}
	for _, v := range [...]float64{s.T2Limit, s.SPELimit, s.Theta1, s.MT, s.VT, s.MQ, s.VQ} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: non-finite limit or moment", ErrEncoding)
		}
	}
	for _, v := range s.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: non-finite estimate", ErrEncoding)
		}
	}
	return nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
