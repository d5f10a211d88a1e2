package cluster

import (
	"fmt"
	"slices"
	"testing"
)

// TestAssign: every partition has exactly one owner among the members, the
// result does not depend on the members' order, a leaving member's
// partitions are (nearly) the only ones that move, and a joining one takes
// about its share.
func TestAssign(t *testing.T) {
	const P = 12
	three := []string{"w1", "w2", "w3"}
	owners := map[string][]int{}
	as, re := Assignment(three, P), Assignment([]string{"w3", "w1", "w2", "w1"}, P)
	if !slices.Equal(as, re) {
		t.Fatalf("assignment %v; %v with the members reordered and repeated", as, re)
	}
	for p, a := range as {
		owners[a] = append(owners[a], p)
	}
	total := 0
	for _, m := range three {
		got := Owned(three, m, P)
		if !slices.Equal(got, owners[m]) {
			t.Errorf("Owned(%s) = %v; Assign says %v", m, got, owners[m])
		}
		total += len(got)
		t.Logf("%s owns %v", m, got)
	}
	if total != P {
		t.Fatalf("%d partitions owned; want %d", total, P)
	}
	for _, leaver := range three {
		rest := slices.DeleteFunc(slices.Clone(three), func(m string) bool { return m == leaver })
		after, others := Assignment(rest, P), 0
		for p := range P {
			if as[p] != leaver && as[p] != after[p] {
				others++
			}
		}
		if others > 2 {
			t.Errorf("%s left: %d partitions of the others moved too; want at most 2", leaver, others)
		}
	}
	after, moved := Assignment(append(slices.Clone(three), "w4"), P), 0
	for p := range P {
		if as[p] != after[p] {
			moved++
		}
	}
	if moved < 3 || moved > 6 {
		t.Errorf("w4 joining moved %d partitions of %d; want about its share, 3", moved, P)
	}
	if Assignment(nil, P) != nil || Owned(three, "w9", P) != nil {
		t.Error("no members, or a non-member, must own nothing")
	}
}

// TestAssignBalance: whatever the workers are called, no worker owns more
// than its share rounded up, for 1 to 7 workers over 12 partitions.
func TestAssignBalance(t *testing.T) {
	const P = 12
	for n := 1; n <= 7; n++ {
		for f := range 50 {
			var ms []string
			for i := range n {
				ms = append(ms, fmt.Sprintf("vigil-%d-%d", f, i))
			}
			limit, total := (P+n-1)/n, 0
			for _, m := range ms {
				k := len(Owned(ms, m, P))
				total += k
				if k > limit {
					t.Fatalf("%d workers: %s owns %d partitions; want at most %d", n, m, k, limit)
				}
			}
			if total != P {
				t.Fatalf("%d workers own %d partitions; want %d", n, total, P)
			}
		}
	}
}
