package sim_test

import (
	"fmt"
	"testing"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

func BenchmarkNext(b *testing.B) {
	for _, devices := range []int{12, 10_000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			cfg := sim.DefaultConfig()
			cfg.Devices, cfg.Anomalous = devices, devices*2/3
			cfg.Duration = 0
			g, err := sim.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			var labels []sim.Label
			var n, size int
			b.ReportAllocs()
			for b.Loop() {
				m, _ := g.Next()
				size += len(m.Payload)
				if n++; n%4096 == 0 { // as a live publisher would
					labels = g.DrainLabels(labels[:0])
				}
			}
			b.SetBytes(int64(size / n))
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
