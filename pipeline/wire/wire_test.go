package wire

import (
	"errors"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var w Writer
	w.Byte(7)
	w.Bool(true)
	w.Uvarint(1 << 40)
	w.Varint(-5)
	w.U32(0xdeadbeef)
	w.F32(1.5)
	w.F64(math.Inf(-1), 2.25)
	w.Str("pump \xff")
	r := Reader{B: w.B}
	var a, b float64
	c, ok, u, v, x, f := r.Byte(), r.Bool(), r.Uvarint(), r.Varint(), r.U32(), r.F32()
	r.F64(&a, &b)
	s := r.Str()
	if r.Err != nil || c != 7 || !ok || u != 1<<40 || v != -5 || x != 0xdeadbeef || f != 1.5 || !math.IsInf(a, -1) || b != 2.25 || s != "pump \xff" || len(r.B) != 0 {
		t.Errorf("got %v %v %v %v %x %v %v %v %q, err %v, %d left", c, ok, u, v, x, f, a, b, s, r.Err, len(r.B))
	}
	for n := range len(w.B) {
		r := Reader{B: w.B[:n]}
		r.Byte()
		r.Bool()
		r.Uvarint()
		r.Varint()
		r.U32()
		r.F32()
		r.F64(&a, &b)
		_ = r.Str()
		if !errors.Is(r.Err, ErrShort) {
			t.Fatalf("cut to %d of %d bytes: got %v; want ErrShort", n, len(w.B), r.Err)
		}
	}
}
