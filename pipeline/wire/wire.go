// Package wire holds the binary fields Vigil's on-disk formats are made
// of (the alert journal, learned-state snapshots): varints, little-endian
// fixed-width numbers, IEEE 754 bits and length-prefixed strings, written by
// appending to a slice and read back with an error that sticks, so a
// decoder reads every field and checks once at the end.
package wire

import (
	"encoding/binary"
	"errors"
	"math"
)

// ErrShort is the error of a Reader that ran out of bytes.
var ErrShort = errors.New("wire: record too short")

// Writer appends fields to B.
type Writer struct{ B []byte }

// Byte appends c.
func (w *Writer) Byte(c byte) { w.B = append(w.B, c) }

// Bool appends v as one byte.
func (w *Writer) Bool(v bool) {
	if v {
		w.Byte(1)
	} else {
		w.Byte(0)
	}
}

// Uvarint appends v as an unsigned varint.
func (w *Writer) Uvarint(v uint64) { w.B = binary.AppendUvarint(w.B, v) }

// Varint appends v as a zig-zag varint.
func (w *Writer) Varint(v int64) { w.B = binary.AppendVarint(w.B, v) }

// U32 appends v in 4 bytes.
func (w *Writer) U32(v uint32) { w.B = binary.LittleEndian.AppendUint32(w.B, v) }

// F32 appends the bits of f in 4 bytes.
func (w *Writer) F32(f float32) { w.U32(math.Float32bits(f)) }

// F64 appends the bits of each f in 8 bytes.
func (w *Writer) F64(fs ...float64) {
	for _, f := range fs {
		w.B = binary.LittleEndian.AppendUint64(w.B, math.Float64bits(f))
	}
}

// Str appends s with its length.
func (w *Writer) Str(s string) {
	w.Uvarint(uint64(len(s)))
	w.B = append(w.B, s...)
}

// Reader reads fields from B; after the first error every read returns
// the zero value and Err keeps that error.
type Reader struct {
	B   []byte
	Err error
}

func (r *Reader) fail() {
	if r.Err == nil {
		r.Err = ErrShort
	}
	r.B = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.B) < 1 {
		r.fail()
		return 0
	}
	c := r.B[0]
	r.B = r.B[1:]
	return c
}

// Bool reads one byte as a bool.
func (r *Reader) Bool() bool { return r.Byte() != 0 }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Varint reads a zig-zag varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.B)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.B = r.B[n:]
	return v
}

// U32 reads 4 bytes.
func (r *Reader) U32() uint32 {
	if len(r.B) < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.B)
	r.B = r.B[4:]
	return v
}

// F32 reads a float32's bits.
func (r *Reader) F32() float32 { return math.Float32frombits(r.U32()) }

// F64 reads a float64's bits into each p.
func (r *Reader) F64(ps ...*float64) {
	for _, p := range ps {
		if len(r.B) < 8 {
			r.fail()
			return
		}
		*p = math.Float64frombits(binary.LittleEndian.Uint64(r.B))
		r.B = r.B[8:]
	}
}

// Str reads a length-prefixed string.
func (r *Reader) Str() string {
	n := r.Uvarint()
	if r.Err != nil {
		return ""
	}
	if n > uint64(len(r.B)) {
		r.fail()
		return ""
	}
	s := string(r.B[:n])
	r.B = r.B[n:]
	return s
}
