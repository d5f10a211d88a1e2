package detectors_test

import (
	"testing"

	"github.com/vigil-iot/vigil/detectors"
)

// FuzzRestore: a device record from a snapshot, damaged in any way (the file
// checksums catch damage on disk; this is the decoder behind them), is
// refused with an error or restored into a device the engine can go on
// judging; it never panics.
func FuzzRestore(f *testing.F) {
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	eng := set.NewEngine()
	rs := stream(1500) // warm devices with open episodes and traffic state
	for i := range rs {
		eng.Process(&rs[i], nil)
	}
	if err := eng.Snapshot(func(_ string, state []byte) error {
		f.Add(append([]byte(nil), state...))
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	next := stream(1503)[1500:]
	f.Fuzz(func(t *testing.T, state []byte) {
		e := set.NewEngine()
		if err := e.Restore(state, nil); err != nil {
			return
		}
		for i := range next {
			r := next[i]
			e.Process(&r, nil)
		}
		e.Tick(0, next[len(next)-1].Time+3600e9, nil)
	})
}
