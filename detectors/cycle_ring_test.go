package detectors

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRingValues checks the ring's decoding against its definition, Ref +
// q·2^Exp, across rescales, sharpening and the wrap of the ring.
func TestRingValues(t *testing.T) {
	var g CycleRing
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, cycleBins)
	for n := range 3 * cycleBins {
		switch {
		case n%17 == 0:
			g.push(math.NaN())
		case n%101 == 0:
			g.push(1e6 * rng.NormFloat64()) // forces a rescale
		default:
			g.push(20 + rng.NormFloat64())
		}
		if n%64 == 0 {
			g.sharpen()
		}
		skip := int(g.Filled) / 3
		have := g.values(x[:int(g.Filled)-skip], skip)
		start := 0
		if g.Filled == cycleBins {
			start = int(g.Head)
		}
		want := 0
		for i := range int(g.Filled) - skip {
			q := g.Bins[(start+skip+i)%cycleBins]
			if q == cycleEmpty {
				if !math.IsNaN(x[i]) {
					t.Fatalf("push %d, bin %d: got %v; want NaN", n, i, x[i])
				}
				continue
			}
			want++
			if v := g.Ref + math.Ldexp(float64(q), int(g.Exp)); x[i] != v {
				t.Fatalf("push %d, bin %d: got %v; want %v", n, i, x[i], v)
			}
		}
		if have != want {
			t.Fatalf("push %d: %d bins not empty; want %d", n, have, want)
		}
	}
}
