package detectors

import "sync/atomic"

// DeviceCap caps the devices tracked by several engines together: the
// shards of one pipeline share one, so the documented cap is the total, not
// a per-shard share that a skewed spread of device names would reach early.
// It is safe for concurrent use; engines count themselves in and out.
//
// When it is reached, the shard that meets
// a new device forgets its own least recently seen one: with devices spread
// across shards by hash, that is close to the least recently seen overall.
type DeviceCap struct {
	max atomic.Int64 // 0: no cap
	n   atomic.Int64
}

// NewDeviceCap returns a cap of max devices (0: no cap).
func NewDeviceCap(n int) *DeviceCap {
	c := &DeviceCap{}
	c.SetMax(n)
	return c
}

// SetMax changes the cap (0: no cap). Lowering it below the devices tracked
// makes each new device evict two until the total is under it again.
func (c *DeviceCap) SetMax(n int) { c.max.Store(int64(max(n, 0))) }

// Max reports the cap (0: no cap).
func (c *DeviceCap) Max() int { return int(c.max.Load()) }

// Len reports the devices tracked by the engines sharing the cap.
func (c *DeviceCap) Len() int { return int(c.n.Load()) }

// admit counts a new device in and reports how many devices the engine
// admitting it should forget: 0 within the cap (or without one), 1 above
// it, 2 further above it (a lowered cap, so the total shrinks).
func (c *DeviceCap) admit() int {
	n := c.n.Add(1)
	switch m := c.max.Load(); {
	case m == 0 || n <= m:
		return 0
	case n == m+1:
		return 1
	}
	return 2
}

func (c *DeviceCap) add(k int) { c.n.Add(int64(k)) }
