package pipeline

import (
	"hash/fnv"
	"testing"
)

func TestPartition(t *testing.T) {
	for _, dev := range []string{"", "sensor-node-01", "press-7", "ünïcode", "a.b.c"} {
		h := fnv.New32a()
		h.Write([]byte(dev))
		for _, n := range []int{2, 3, 8, 100} {
			if got, want := Partition(dev, n), int(h.Sum32()%uint32(n)); got != want {
				t.Errorf("Partition(%q, %d) = %d; want FNV-1a %% n = %d", dev, n, got, want)
			}
		}
	}
	if got := Partition("anything", 1); got != 0 {
		t.Errorf("one shard: got %d", got)
	}
	// Pinned: a change here moves devices between shards and partitions
	// of an existing deployment.
	if got := Partition("sensor-node-01", 8); got != 6 {
		t.Errorf("Partition(sensor-node-01, 8) = %d; want 6", got)
	}
}
