package relation_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/vigil-iot/vigil/baselines/relation"
)

// A pump's pressure (bar), temperature (°C) and vibration (mm/s) rise and
// fall together with its load. After learning that, a reading whose pressure
// is low for its temperature and vibration is flagged, though each value is
// within its usual range.
func Example() {
	m, err := relation.New(relation.DefaultConfig(), 3)
	if err != nil {
		panic(err)
	}
	s := m.NewState() // per device; snapshot it with s.AppendBinary
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float64, 3)
	var r relation.Result
	for i := range 3000 {
		load := rng.NormFloat64()
		x[0] = 4.3 + 0.2*(0.9*load+0.44*rng.NormFloat64())
		x[1] = 60 + 1.5*(0.9*load+0.44*rng.NormFloat64())
		x[2] = 2.5 + 0.3*(0.9*load+0.44*rng.NormFloat64())
		m.Judge(&s, x, &r)                // the verdict on the reading…
		m.Update(&s, x, int64(i)*1e9, &r) // …then learn it, unless it was anomalous
	}
	x = []float64{3.9, 62.4, 2.9}
	m.Judge(&s, x, &r)
	fmt.Println(r.Severity, r.Stat)
	fmt.Println(relation.Explain([]relation.Signal{{Name: "pressure", Unit: "bar"}, {Name: "temperature", Unit: "°C"}, {Name: "vibration", Unit: "mm/s"}}, x, &r))
	// Output:
	// warning t2
	// pressure 3.9 bar where 4.56 ± 0.104 bar is expected given temperature 62.4 °C and vibration 2.9 mm/s (relation between signals broken: T² 1.19× its limit distance).
}
