package format_test

import (
	"testing"

	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
)

func benchmarkFormatter(b *testing.B, f output.Formatter) {
	a := exampleAlert()
	buf := f.Append(nil, a)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0], a)
	}
}

func BenchmarkJSON(b *testing.B) { benchmarkFormatter(b, format.JSON{}) }

func BenchmarkCEF(b *testing.B) { benchmarkFormatter(b, format.NewCEF(exampleMeta)) }

func BenchmarkLEEF(b *testing.B) {
	f, err := format.NewLEEF(exampleMeta, 0)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkFormatter(b, f)
}

func BenchmarkECS(b *testing.B) { benchmarkFormatter(b, format.NewECS(exampleMeta)) }

func BenchmarkOCSF(b *testing.B) { benchmarkFormatter(b, format.NewOCSF(exampleMeta)) }
