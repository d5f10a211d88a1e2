package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
)

// BenchmarkReplay replays the generated fleet log end to end — read the file,
// decode, baselines, every detector, alerts written as JSON lines to
// io.Discard — with Workers = Decoders = 1 and 2. One op is one whole replay;
// msgs/s is the figure to compare with the target (1,000,000 msgs/s).
func BenchmarkReplay(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			benchReplay(b, fleetLog(b), replayOpts{workers: workers, detect: true})
		})
	}
}

// BenchmarkReplayOutputs is BenchmarkReplay with the live sink: every
// alert appended to the journal and delivered to two SIEM outputs (CEF and
// ECS files, fsynced), with the journal fsynced per batch (as "vigil run"
// does before acknowledging input) or every 100 ms. One op ends when both
// outputs have every alert.
func BenchmarkReplayOutputs(b *testing.B) {
	for _, p := range []struct {
		name string
		sync time.Duration
	}{{"fsync=batch", 0}, {"fsync=100ms", 100 * time.Millisecond}} {
		b.Run(p.name+"/workers=2", func(b *testing.B) {
			benchReplay(b, fleetLog(b), replayOpts{workers: 2, detect: true, outputs: &outputOpts{syncEvery: p.sync}})
		})
	}
}

// BenchmarkReplayFixture replays fixtures/plant.log (21,600 lines, 12
// devices), the fixture the detectors are scored on.
func BenchmarkReplayFixture(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			benchReplay(b, fixture(b), replayOpts{workers: workers, detect: true})
		})
	}
}

// BenchmarkScan reads the fleet log with a bare bufio.Scanner, counting lines:
// the in-process wc -l, the ceiling for any line-oriented replay in Go.
func BenchmarkScan(b *testing.B) {
	w := fleetLog(b)
	b.SetBytes(w.size)
	var lines int64
	for b.Loop() {
		n, _, err := scanLines(w.path)
		if err != nil {
			b.Fatal(err)
		}
		lines += n
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkWC runs the real wc -l on the fleet log (skipped without wc). It
// includes starting the process, which is noise at this file size.
func BenchmarkWC(b *testing.B) {
	wc, err := exec.LookPath("wc")
	if err != nil {
		b.Skip("wc not found")
	}
	w := fleetLog(b)
	b.SetBytes(w.size)
	var lines int64
	for b.Loop() {
		out, err := exec.Command(wc, "-l", w.path).Output()
		if err != nil {
			b.Fatal(err)
		}
		n, err := strconv.ParseInt(string(bytes.Fields(out)[0]), 10, 64)
		if err != nil || n != w.lines {
			b.Fatalf("wc -l = %q; want %d lines", out, w.lines)
		}
		lines += n
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkStages breaks a replay of the fleet log down by stage:
//
//	read           the file source alone, batches of 512 frames
//	serial/decode  read, then decode each frame, on one goroutine
//	serial/detect  read, decode and one detectors.Engine, on one goroutine
//	pipeline/decode/workers=N  the pipeline with a no-op Processor
//	pipeline/full/workers=N    the whole pipeline (as BenchmarkReplay)
//
// The serial variants are the single-core work without the pipeline's hand-offs;
// the pipeline variants show what the stages and the second core add.
func BenchmarkStages(b *testing.B) {
	b.Run("read", func(b *testing.B) { benchSerial(b, fleetLog(b), false, false) })
	b.Run("serial/decode", func(b *testing.B) { benchSerial(b, fleetLog(b), true, false) })
	b.Run("serial/detect", func(b *testing.B) { benchSerial(b, fleetLog(b), true, true) })
	for _, stage := range []string{"decode", "full"} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("pipeline/%s/workers=%d", stage, workers), func(b *testing.B) {
				benchReplay(b, fleetLog(b), replayOpts{workers: workers, detect: stage == "full"})
			})
		}
	}
}

// benchSerial reads w with the file source on the calling goroutine and, as
// asked, decodes each frame and runs it through one engine.
func benchSerial(b *testing.B, w workload, decode, detect bool) {
	set := defaultSet(b)
	ctx := context.Background()
	b.SetBytes(w.size)
	b.ReportAllocs()
	var msgs uint64
	debug.FreeOSMemory()
	cpu0 := cpuTime()
	for b.Loop() {
		src, err := file.Open(w.path, file.Options{})
		if err != nil {
			b.Fatal(err)
		}
		dec := pipeline.NewDecoder(pipeline.DefaultDecoderConfig())
		eng := set.NewEngine()
		var (
			fb     pipeline.FrameBatch
			r      pipeline.Reading
			alerts []pipeline.Alert
		)
		for {
			fb.Reset()
			err := src.ReadBatch(ctx, &fb, 512)
			if decode {
				for i := range fb.Frames {
					f := &fb.Frames[i]
					if err := dec.Decode(fb.Payload(f), f.Topic, f.Arrival, &r); err != nil {
						b.Fatal(err)
					}
					if detect {
						alerts = eng.Process(&r, alerts[:0])
					}
				}
			}
			msgs += uint64(fb.Len())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		src.Close()
	}
	if want := uint64(b.N) * uint64(w.lines); msgs != want {
		b.Fatalf("read %d frames; want %d", msgs, want)
	}
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(msgs), "cpu-ns/msg")
}
