package file_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
)

func ExampleNewReader() {
	log := `{"timestamp":1700000000,"node_id":"p1","data":{"p":4.2}}
plant/hall-1/p2 {"timestamp":1700000001,"node_id":"p2","data":{"p":3.9}}

plant/hall-1/p3
`
	src, err := file.NewReader(strings.NewReader(log), "plant.log", file.Options{})
	if err != nil {
		panic(err)
	}
	defer src.Close()
	var b pipeline.FrameBatch
	for {
		err := src.ReadBatch(context.Background(), &b, 100)
		for i := range b.Frames {
			f := &b.Frames[i]
			fmt.Printf("%s:%d topic=%q %s\n", f.Origin, f.Line, f.Topic, b.Payload(f))
		}
		b.Reset()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
	}
	// Output:
	// plant.log:1 topic="" {"timestamp":1700000000,"node_id":"p1","data":{"p":4.2}}
	// plant.log:2 topic="plant/hall-1/p2" {"timestamp":1700000001,"node_id":"p2","data":{"p":3.9}}
	// plant.log:4 topic="plant/hall-1/p3"
}

func ExampleNewReader_csv() {
	export := "timestamp,value,label\n2014-04-01 00:00:00,45.0,0\n2014-04-01 00:05:00,,1\n"
	src, err := file.NewReader(strings.NewReader(export), "nab/art_flatline.csv", file.Options{})
	if err != nil {
		panic(err)
	}
	defer src.Close()
	var b pipeline.FrameBatch
	if err := src.ReadBatch(context.Background(), &b, 100); err != io.EOF {
		panic(err)
	}
	for i := range b.Frames {
		fmt.Printf("%d: %s\n", b.Frames[i].Line, b.Payload(&b.Frames[i]))
	}
	// Output:
	// 2: {"timestamp":"2014-04-01 00:00:00","node_id":"art_flatline","data":{"value":45.0},"label":0}
	// 3: {"timestamp":"2014-04-01 00:05:00","node_id":"art_flatline","data":{},"label":1}
}

func ExampleMerge() {
	a, _ := file.NewReader(strings.NewReader("{\"t\":1}\n{\"t\":4}\n{\"t\":5}\n"), "a.log", file.Options{})
	b, _ := file.NewReader(strings.NewReader("{\"t\":2}\n{\"t\":3}\n{\"t\":6}\n"), "b.log", file.Options{})
	// A toy timeOf for payloads {"t":N}; real callers use the decoder's PeekTime.
	timeOf := func(p []byte) (int64, bool) {
		var v struct{ T *int64 }
		if json.Unmarshal(p, &v) != nil || v.T == nil {
			return 0, false
		}
		return *v.T, true
	}
	src := file.Merge([]pipeline.Source{a, b}, timeOf)
	defer src.Close()
	var batch pipeline.FrameBatch
	for {
		err := src.ReadBatch(context.Background(), &batch, 100)
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
	}
	for i := range batch.Frames {
		f := &batch.Frames[i]
		fmt.Printf("%s:%d %s\n", f.Origin, f.Line, batch.Payload(f))
	}
	// Output:
	// a.log:1 {"t":1}
	// b.log:1 {"t":2}
	// b.log:2 {"t":3}
	// a.log:2 {"t":4}
	// a.log:3 {"t":5}
	// b.log:3 {"t":6}
}
