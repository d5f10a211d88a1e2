package pipeline

import (
	"hash/fnv"
	"hash/maphash"
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

// BenchmarkPartition compares the stable FNV-1a routing with hash/maphash,
// the per-process hash it replaced, on a typical device ID.
func BenchmarkPartition(b *testing.B) {
	const dev = "sensor-node-0042"
	b.Run("fnv1a", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n += Partition(dev, 8)
		}
		sinkInt = n
	})
	b.Run("maphash", func(b *testing.B) {
		seed := maphash.MakeSeed()
		n := uint64(0)
		for b.Loop() {
			n += maphash.String(seed, dev) % 8
		}
		sinkInt = int(n)
	})
}

var sinkInt int
