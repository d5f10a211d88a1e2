package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

const benchBatch = 1024

// benchLines returns n distinct device messages of one length (~117 bytes,
// the size the performance notes measure), each optionally after a topic.
func benchLines(n int, topics bool) []byte {
	var buf bytes.Buffer
	for i := range n {
		if topics {
			fmt.Fprintf(&buf, "plant/hall-%d/press-%04d ", i%4, i%1000)
		}
		fmt.Fprintf(&buf, `{"timestamp":"2026-11-21T10:%02d:%02dZ","node_id":"press-%04d","status":0,"data":{"p":4.%03d,"t":61.%03d,"v":0.5}}`+"\n",
			i/60%60, i%60, i%1000, i%1000, (i*7)%1000)
	}
	return buf.Bytes()
}

// benchRead reads batches of benchBatch frames from src over and over; data is
// what src repeats, holding lines of equal length.
func benchRead(b *testing.B, src pipeline.Source, bytesPerLine int) {
	b.Helper()
	defer src.Close()
	var fb pipeline.FrameBatch
	ctx := context.Background()
	b.SetBytes(int64(benchBatch * bytesPerLine))
	b.ReportAllocs()
	iters := 0
	for b.Loop() {
		fb.Reset()
		if err := src.ReadBatch(ctx, &fb, benchBatch); err != nil {
			b.Fatal(err)
		}
		if fb.Len() != benchBatch {
			b.Fatalf("got %d frames; want %d", fb.Len(), benchBatch)
		}
		iters++
	}
	b.ReportMetric(float64(iters*benchBatch)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkReadJSONLines(b *testing.B) {
	data := benchLines(10000, false)
	src, err := NewReader(&repeatReader{data: data}, "bench.log", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, src, len(data)/10000)
}

func BenchmarkReadTopicLines(b *testing.B) {
	data := benchLines(10000, true)
	src, err := NewReader(&repeatReader{data: data}, "bench.log", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, src, len(data)/10000)
}

func BenchmarkReadGzipJSONLines(b *testing.B) {
	data := benchLines(10000, false)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	// Repeated gzip members are one valid multi-member stream.
	src, err := NewReader(&repeatReader{data: z.Bytes()}, "bench.log.gz", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, src, len(data)/10000)
}

func BenchmarkReadCSV(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("timestamp,value\n")
	for i := range 10000 {
		fmt.Fprintf(&buf, "2014-04-01 %02d:%02d:00,%02d.%03d\n", i/60%24, i%60, i%100, i%1000)
	}
	header := len("timestamp,value\n")
	data := buf.Bytes()
	// After the first pass the repeated header is one more record; near enough.
	src, err := NewReader(&repeatReader{data: data}, "bench.csv", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, src, (len(data)-header)/10000)
}

// BenchmarkMerge merges four sources of JSON lines; timeOf reads the seconds
// of the timestamp, so the sources interleave.
func BenchmarkMerge(b *testing.B) {
	data := benchLines(10000, false)
	var srcs []pipeline.Source
	for i := range 4 {
		src, err := NewReader(&repeatReader{data: data}, fmt.Sprint("bench-", i, ".log"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	timeOf := func(p []byte) (int64, bool) {
		const at = len(`{"timestamp":"2026-11-21T10:`)
		if len(p) < at+5 {
			return 0, false
		}
		return int64(p[at]-'0')*600 + int64(p[at+1]-'0')*60 + int64(p[at+3]-'0')*10 + int64(p[at+4]-'0'), true
	}
	benchRead(b, Merge(srcs, timeOf), len(data)/10000)
}
