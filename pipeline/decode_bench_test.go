package pipeline

import "testing"

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"canonical", canonical},
		{"offset", `{"timestamp":"2026-11-21T10:00:00.123+01:00","node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7},"status":0}`},
		{"epoch", `{"timestamp":1763719200123,"node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7},"status":0}`},
		{"generic", `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7,"rpm":1500},"status":0}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDecoder(DecoderConfig{})
			var r Reading
			payload := []byte(bc.in)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if err := d.Decode(payload, testTopic, 0, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeParallel decodes with one Decoder and Reading per goroutine,
// as the decode workers do.
func BenchmarkDecodeParallel(b *testing.B) {
	payload := []byte(canonical)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.RunParallel(func(pb *testing.PB) {
		d := NewDecoder(DecoderConfig{})
		var r Reading
		for pb.Next() {
			if err := d.Decode(payload, testTopic, 0, &r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPayloadHash is the cost Decode pays for Reading.Hash.
func BenchmarkPayloadHash(b *testing.B) {
	payload := []byte(canonical)
	b.SetBytes(int64(len(payload)))
	var h uint64
	for b.Loop() {
		h += PayloadHash(payload)
	}
	_ = h
}
