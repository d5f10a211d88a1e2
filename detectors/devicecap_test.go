package detectors_test

import (
	"fmt"
	"testing"

	"github.com/vigil-iot/vigil/detectors"
)

// TestDeviceCapShared: engines sharing a cap evict only when the devices of
// all of them reach it, however unevenly the devices spread (a per-shard
// share would evict on the fuller shard long before); at the cap a new
// device evicts its own shard's least recently seen one; restore and
// reconfiguration keep the count; a lowered cap shrinks the total.
func TestDeviceCapShared(t *testing.T) {
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := detectors.NewDeviceCap(10)
	a, b := set.NewEngine(), set.NewEngine()
	a.ShareCap(c)
	b.ShareCap(c)
	sec := 0
	feed := func(e *detectors.Engine, names ...string) {
		for _, n := range names {
			e.Process(reading(n, sec), nil)
			sec++
		}
	}
	for i := range 9 { // skewed: 9 on one shard, 1 on the other
		feed(a, fmt.Sprintf("a%d", i))
	}
	feed(b, "b0")
	if a.Evictions()+b.Evictions() != 0 || c.Len() != 10 {
		t.Fatalf("10 devices under a cap of 10: evicted %d+%d, counted %d; want none evicted, 10 counted", a.Evictions(), b.Evictions(), c.Len())
	}
	feed(b, "b1") // the 11th: b forgets its own oldest (b0)
	if b.Evictions() != 1 || a.Evictions() != 0 || b.Device("b0") != nil || b.Device("b1") == nil || c.Len() != 10 {
		t.Errorf("11th device on b: evictions a %d b %d, b0 kept %v, counted %d; want b0 forgotten and 10 counted",
			a.Evictions(), b.Evictions(), b.Device("b0") != nil, c.Len())
	}

	// A restore of b's devices into a fresh engine counts them once.
	fresh := set.NewEngine()
	fresh.ShareCap(c)
	if err := b.Snapshot(func(_ string, state []byte) error { return fresh.Restore(state, nil) }); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 11 {
		t.Errorf("after restoring b's one device into another engine: counted %d; want 11", c.Len())
	}
	if _, _, err := a.Reconfigure(set, int64(sec)*1e9, nil); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 11 || a.Devices() != 9 {
		t.Errorf("after reconfiguring a: counted %d, a tracks %d; want 11 and 9", c.Len(), a.Devices())
	}

	c.SetMax(5) // lowered: each new device evicts two until under the cap
	for i := range 4 {
		feed(a, fmt.Sprintf("n%d", i))
	}
	if c.Len() > 7 {
		t.Errorf("4 new devices after lowering the cap from 10 to 5: %d tracked; want the total to shrink (≤ 7)", c.Len())
	}
	if got := a.Devices() + b.Devices() + fresh.Devices(); got != c.Len() {
		t.Errorf("engines track %d devices, the cap counts %d", got, c.Len())
	}
}
