package relation

import "math"

// matrix is a k×k matrix (k ≤ MaxSignals) in a fixed array, so that the
// decomposition lives on the stack and allocates nothing.
type matrix [MaxSignals][MaxSignals]float64

// jacobi diagonalises the symmetric k×k matrix a by cyclic Jacobi rotations:
// on return a's diagonal holds the eigenvalues and v's columns the
// corresponding orthonormal eigenvectors (unsorted). For k ≤ 8 a few sweeps
// reach machine precision.
func jacobi(a, v *matrix, k int) {
	for i := range k {
		for j := range k {
			v[i][j] = 0
		}
		v[i][i] = 1
	}
	for range 60 {
		var off, diag float64
		for p := range k {
			diag += a[p][p] * a[p][p]
			for q := p + 1; q < k; q++ {
				off += a[p][q] * a[p][q]
			}
		}
		if off <= 1e-30*diag || off == 0 {
			return
		}
		for p := 0; p < k-1; p++ {
			for q := p + 1; q < k; q++ {
				apq := a[p][q]
				if apq == 0 {
					continue
				}
				theta := (a[q][q] - a[p][p]) / (2 * apq)
				var t float64
				if math.Abs(theta) > 1e100 {
					t = 1 / (2 * theta)
				} else {
					t = 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
					if theta < 0 {
						t = -t
					}
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for r := range k {
					arp, arq := a[r][p], a[r][q]
					a[r][p] = c*arp - s*arq
					a[r][q] = s*arp + c*arq
				}
				for r := range k {
					apr, aqr := a[p][r], a[q][r]
					a[p][r] = c*apr - s*aqr
					a[q][r] = s*apr + c*aqr
				}
				a[p][q], a[q][p] = 0, 0
				for r := range k {
					vrp, vrq := v[r][p], v[r][q]
					v[r][p] = c*vrp - s*vrq
					v[r][q] = s*vrp + c*vrq
				}
			}
		}
	}
}
