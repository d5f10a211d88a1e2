package journal

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppend measures Append per alert for batches of 1 and 64 alerts,
// with an fsync per batch (the default: the input is acknowledged after it)
// and with the background fsync every 100 ms.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []time.Duration{0, 100 * time.Millisecond} {
		for _, n := range []int{1, 64} {
			name := fmt.Sprintf("fsync=batch/batch=%d", n)
			if sync > 0 {
				name = fmt.Sprintf("fsync=%v/batch=%d", sync, n)
			}
			b.Run(name, func(b *testing.B) {
				j, err := Open(Config{Dir: b.TempDir(), SyncEvery: sync, MaxSize: 64 << 30}, []string{"a"})
				if err != nil {
					b.Fatal(err)
				}
				defer j.Close()
				batch := alerts(0, n)
				enc := AppendAlert(nil, &batch[0])
				b.SetBytes(int64(n * (len(enc) + headerSize + metaSize)))
				b.ReportAllocs()
				for b.Loop() {
					if err := j.Append(context.Background(), batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/alert")
			})
		}
	}
}

// BenchmarkRead measures reading alerts back (decode included).
func BenchmarkRead(b *testing.B) {
	j, err := Open(Config{Dir: b.TempDir(), SyncEvery: time.Second, MaxSize: 64 << 30}, []string{"a"})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	for i := range 1000 {
		j.Append(context.Background(), alerts(i*100, 100))
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		r, _ := j.Reader("a")
		r.pos = 0
		var es []Entry
		for {
			es, _ = r.read(es[:0], 1000, 0)
			if len(es) == 0 {
				break
			}
			n += len(es)
		}
		r.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/alert")
}
