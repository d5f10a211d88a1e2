package pipeline

// Partition returns the shard, of n, that owns device: FNV-1a (32 bits) of
// the device ID modulo n. It is the same in every process and release (a
// snapshot's devices are routed by it at restore, whatever the number of
// workers), and it equals NATS's subject mapping partition(n, i) when token
// i is the device ID, so a JetStream partition and a local shard can agree.
func Partition(device string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(device); i++ {
		h ^= uint32(device[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
