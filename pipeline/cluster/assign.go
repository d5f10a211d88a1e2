package cluster

import (
	"hash/fnv"
	"slices"
	"strconv"
)

// Assignment returns the owner (a member, i.e. a worker ID) of each of
// partitions partitions: rendezvous hashing with bounded loads. Every
// (partition, member) pair gets a weight, the FNV-1a 64 hash of
// "member/p", mixed; pairs are taken by decreasing weight, and a
// partition goes to the member of its pair unless it is already assigned
// or the member already holds ceil(partitions/members). So no member owns
// more than its share rounded up (a pure rendezvous hash gives one of 3
// workers 7 or more of 12 partitions in about one fleet in five), the
// result depends only on the set of members, and a membership change
// moves mostly the partitions of the member that left, or those the new
// member takes. It returns nil when members is empty.
func Assignment(members []string, partitions int) []string {
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	if len(ms) == 0 || partitions <= 0 {
		return nil
	}
	type pair struct {
		w    uint64
		p, m int
	}
	pairs := make([]pair, 0, len(ms)*partitions)
	for p := range partitions {
		for i, m := range ms {
			pairs = append(pairs, pair{weight(m, p), p, i})
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int {
		switch {
		case x.w != y.w:
			if x.w > y.w {
				return -1
			}
			return 1
		case x.p != y.p:
			return x.p - y.p
		}
		return x.m - y.m
	})
	limit := (partitions + len(ms) - 1) / len(ms)
	owner := make([]string, partitions)
	load := make([]int, len(ms))
	left := partitions
	for _, x := range pairs {
		if owner[x.p] != "" || load[x.m] >= limit {
			continue
		}
		owner[x.p] = ms[x.m]
		load[x.m]++
		if left--; left == 0 {
			break
		}
	}
	return owner
}

// weight is the rendezvous weight of member for partition p.
func weight(member string, p int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{'/'})
	h.Write(strconv.AppendInt(nil, int64(p), 10))
	// FNV's low bits mix poorly for short, similar keys (w1, w2, w3):
	// finish with a 64-bit mixer (splitmix64's) so that the weights of
	// one partition are independent across members.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owned returns the partitions of [0, partitions) that Assignment gives
// to me among members, in increasing order.
func Owned(members []string, me string, partitions int) []int {
	var ps []int
	for p, m := range Assignment(members, partitions) {
		if m == me {
			ps = append(ps, p)
		}
	}
	return ps
}
