package relation

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"

	"gonum.org/v1/gonum/mat"
)

// BenchmarkUpdateJudge is the per-reading cost: Judge then Observe on a warm
// state, including the refresh every Config.Refresh readings.
func BenchmarkUpdateJudge(b *testing.B) {
	for _, k := range []int{3, 8} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			m := newModel(b, DefaultConfig(), k)
			s := m.NewState()
			rng := rand.New(rand.NewPCG(1, 2))
			xs := make([][]float64, 1024)
			for i := range xs {
				xs[i] = make([]float64, k)
				base := rng.NormFloat64()
				for j := range k {
					xs[i][j] = float64(j) + base + 0.3*rng.NormFloat64()
				}
			}
			var r Result
			for i := range 2000 {
				step(m, &s, xs[i%len(xs)], int64(i), &r)
			}
			b.ReportAllocs()
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				step(m, &s, xs[i%len(xs)], int64(i), &r)
				i++
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(unsafe.Sizeof(s))+float64(8*len(s.Data)), "state-B")
			b.ReportMetric(float64(s.BinarySize()), "encoded-B")
		})
	}
}

// BenchmarkEigen compares the decomposition used at refresh (Jacobi on stack
// arrays) with gonum's mat.EigenSym on the same 8×8 correlation matrix.
func BenchmarkEigen(b *testing.B) {
	const k = 8
	rng := rand.New(rand.NewPCG(3, 4))
	d := mat.NewDense(3*k, k, nil)
	for i := range 3 * k {
		for j := range k {
			d.Set(i, j, rng.NormFloat64())
		}
	}
	var c mat.SymDense
	c.SymOuterK(1, d.T())
	b.Run("jacobi", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		defer func() { b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op") }()
		for b.Loop() {
			var a, v matrix
			for i := range k {
				for j := range k {
					a[i][j] = c.At(i, j)
				}
			}
			jacobi(&a, &v, k)
		}
	})
	b.Run("EigenSym", func(b *testing.B) {
		b.ReportAllocs()
		var es mat.EigenSym
		cpu := cpuTime()
		defer func() { b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op") }()
		for b.Loop() {
			es.Factorize(&c, true)
		}
	})
}

// BenchmarkRefresh is the full refresh: decomposition and quantiles.
func BenchmarkRefresh(b *testing.B) {
	for _, k := range []int{3, 8} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			m := newModel(b, DefaultConfig(), k)
			s := m.NewState()
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float64, k)
			var r Result
			for i := range 1000 {
				base := rng.NormFloat64()
				for j := range k {
					x[j] = base + 0.3*rng.NormFloat64()
				}
				step(m, &s, x, int64(i), &r)
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				m.Refresh(&s)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
