package relation

import (
	"math"
	"testing"
)

// FuzzDecode: any bytes either fail to decode or give a state that Judge,
// Update and Refresh survive (a snapshot restored from disk is untrusted).
func FuzzDecode(f *testing.F) {
	m, s, _ := warmPlant(f, DefaultConfig(), 400, 13)
	b, _ := s.MarshalBinary()
	f.Add(b)
	empty := m.NewState()
	b, _ = empty.MarshalBinary()
	f.Add(b)
	m8 := newModel(f, DefaultConfig(), 8)
	s8 := m8.NewState()
	b, _ = s8.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		var r Result
		for _, x := range [][]float64{{4.3, 60, 2.5}, {math.NaN(), 60, 2.5}, {1e300, -1e300, 0}} {
			m.Judge(&st, x, &r)
			m.Update(&st, x, 1, &r)
		}
		m.Refresh(&st)
	})
}
