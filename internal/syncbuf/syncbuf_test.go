package syncbuf

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentWriters: writes from many goroutines all arrive whole (run
// with -race to check the locking).
func TestConcurrentWriters(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "writer %d line %d\n", i, j)
			}
		})
	}
	for range 10 {
		_ = b.String()
		_ = b.Lines()
	}
	wg.Wait()
	if n := b.Lines(); n != 800 {
		t.Fatalf("%d lines; want 800", n)
	}
}
