package tune

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// Load keeps every good reading as the decoder returned it, in stream order,
// and counts the rejected frames by reason.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Duration, cfg.Topics = 3, 1, time.Minute, true
	path, _ := writeSim(t, dir, cfg)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte("plant/x {\"node_id\":\"a\"\n" + // malformed
		`{"timestamp":"2026-11-21T10:00:30Z","data":{"p":1}}` + "\n" + // no node_id
		`{"timestamp":"2026-11-21T10:00:30Z","node_id":"b","data":{"p":"x"}}` + "\n" + // invalid value
		`{"timestamp":"2026-11-21T10:00:30Z","node_id":"extra","data":{"p":1,"rpm":1500},"status":1}` + "\n")
	if err := os.WriteFile(path, append(good, bad...), 0o644); err != nil {
		t.Fatal(err)
	}

	ds, err := Load([]string{path}, file.Options{}, pipeline.DefaultDecoderConfig())
	if err != nil {
		t.Fatal(err)
	}
	st := ds.Stats()
	lines := bytes.Count(good, []byte("\n"))
	if st.Frames != uint64(lines+4) || st.Readings != lines+1 || ds.Len() != lines+1 {
		t.Errorf("got %d frames, %d readings; want %d and %d", st.Frames, st.Readings, lines+4, lines+1)
	}
	wantRejected := map[string]uint64{"malformed_json": 1, "missing_node_id": 1, "invalid_value": 1}
	if !reflect.DeepEqual(st.Rejected, wantRejected) || len(st.Examples) != 3 {
		t.Errorf("got rejected %v, examples %q; want %v and one example each", st.Rejected, st.Examples, wantRejected)
	}
	if ds.Devices() != 4 {
		t.Errorf("got %d devices; want 4", ds.Devices())
	}

	// Reading i is what the decoder made of the i-th good line.
	dec := pipeline.NewDecoder(pipeline.DefaultDecoderConfig())
	sc := bufio.NewScanner(bytes.NewReader(append(good, bad...)))
	var want, got pipeline.Reading
	i := 0
	for sc.Scan() {
		line := sc.Bytes()
		topic := ""
		if line[0] != '{' {
			sp := bytes.IndexByte(line, ' ')
			topic, line = string(line[:sp]), line[sp+1:]
		}
		if dec.Decode(line, topic, 0, &want) != nil {
			continue
		}
		want.Seq = uint64(i)
		ds.Reading(i, &got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("reading %d: got %+v; want %+v", i, got, want)
		}
		i++
	}
	if i != ds.Len() {
		t.Errorf("compared %d readings; want %d", i, ds.Len())
	}
	for dev, ts := range ds.Data().Times {
		if !slices.IsSorted(ts) {
			t.Errorf("times of %s not sorted", dev)
		}
	}
}

// Several files are merged in event-time order, as a replay merges them.
func TestLoadMerge(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	b := filepath.Join(dir, "b.log")
	os.WriteFile(a, []byte(`{"timestamp":1000,"node_id":"a","data":{"p":1}}
{"timestamp":3000,"node_id":"a","data":{"p":3}}
`), 0o644)
	os.WriteFile(b, []byte(`{"timestamp":2000,"node_id":"b","data":{"p":2}}
{"timestamp":4000,"node_id":"b","data":{"p":4}}
`), 0o644)
	ds, err := Load([]string{a, b}, file.Options{}, pipeline.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var r pipeline.Reading
	var got []float64
	for i := range ds.Len() {
		ds.Reading(i, &r)
		got = append(got, r.Values[0].V)
	}
	if !slices.Equal(got, []float64{1, 2, 3, 4}) {
		t.Errorf("got values %v; want 1 2 3 4 (time order across files)", got)
	}
	if h := ds.Hours(); h != 2*2000/3600.0 {
		t.Errorf("got %v device-hours; want 2 × 2000 s", h)
	}

	if _, err := Load([]string{filepath.Join(dir, "missing.log")}, file.Options{}, pipeline.DecoderConfig{}); err == nil {
		t.Error("missing file: got no error")
	}
	if _, err := Load(nil, file.Options{}, pipeline.DecoderConfig{}); err == nil {
		t.Error("no files: got no error")
	}
}

// A trial's alerts are a replay's: the dataset run through the pipeline
// gives exactly the alerts the pipeline gives over the log files, rejected
// lines (traffic.schema), ticks (silence) and the fleet judge (spraying)
// included.
func TestReplayMatchesPipeline(t *testing.T) {
	paths := []string{"../../../../fixtures/plant.log", "../../../../fixtures/malformed.log"}
	dc := pipeline.DefaultDecoderConfig()
	ds, err := Load(paths, file.Options{}, dc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.rejAt) == 0 {
		t.Fatal("the input has no rejected line: the test proves less than it says")
	}
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	judge := func() pipeline.FleetFunc {
		if f := set.NewFleet(); f != nil {
			return f.Judge
		}
		return nil
	}
	got, err := ds.Replay(context.Background(), set.NewEngine(), judge(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	var srcs []pipeline.Source
	for _, p := range paths {
		s, err := file.Open(p, file.Options{MaxLine: dc.MaxPayload})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	src := file.Merge(srcs, pipeline.NewDecoder(dc).PeekTime)
	defer src.Close()
	var want collector
	// One engine per shard, as vigil replay runs it.
	engines := []*detectors.Engine{set.NewEngine(), set.NewEngine(), set.NewEngine()}
	pl, err := pipeline.New(pipeline.Config{Workers: 3, Decoder: dc, NewProcessor: func(i int) pipeline.Processor { return engines[i] },
		Fleet: judge(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Run(context.Background(), src, &want); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, a := range want.out {
		kinds[a.Kind]++
	}
	if len(got) == 0 || !reflect.DeepEqual(got, want.out) {
		t.Errorf("the dataset's replay gave %d alerts; the pipeline over the files %d (kinds %v)", len(got), len(want.out), kinds)
		for i := range min(len(got), len(want.out)) {
			if !reflect.DeepEqual(got[i], want.out[i]) {
				t.Errorf("first difference at %d:\n got %+v\nwant %+v", i, got[i], want.out[i])
				break
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ds.Replay(ctx, set.NewEngine(), nil, 0, nil); err == nil {
		t.Error("cancelled replay: got no error")
	}
}

func TestDatasetMemory(t *testing.T) {
	ds, _ := loadSmall(t)
	per := float64(ds.Bytes()) / float64(ds.Len())
	t.Logf("%d readings, %d bytes, %.1f B/reading", ds.Len(), ds.Bytes(), per)
	if per > 100 {
		t.Errorf("%.1f bytes per reading of three signals; want at most 100", per)
	}
}

func TestLabelsFromReadings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	os.WriteFile(path, []byte(`{"timestamp":1000,"node_id":"a","data":{"p":1},"status":0,"label":0}
{"timestamp":2000,"node_id":"a","data":{"p":1},"status":2,"label":1}
{"timestamp":3000,"node_id":"a","data":{"p":1},"status":1,"label":1}
{"timestamp":4000,"node_id":"a","data":{"p":1},"label":0}
{"timestamp":5000,"node_id":"a","data":{"p":1},"status":0}
`), 0o644)
	ds, err := Load([]string{path}, file.Options{}, pipeline.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sec := func(s int64) int64 { return s * 1e9 }
	want := []eval.Window{{Device: "a", Start: sec(2000), End: sec(3000)}}
	if got := ds.LabelsFromStatus().Windows(); !reflect.DeepEqual(got, want) {
		t.Errorf("from status: got %+v; want %+v", got, want)
	}
	if got := ds.LabelsFromColumn().Windows(); !reflect.DeepEqual(got, want) {
		t.Errorf("from the label column: got %+v; want %+v", got, want)
	}
}

// tickRecorder is a processor that records what a replay gives it.
type tickRecorder struct {
	arrivals []int64
	ticks    [][2]int64
}

func (p *tickRecorder) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	p.arrivals = append(p.arrivals, r.Arrival)
	return out
}

func (p *tickRecorder) Devices() int { return 0 }

func (p *tickRecorder) Tick(start, clock int64, out []pipeline.Alert) []pipeline.Alert {
	p.ticks = append(p.ticks, [2]int64{start, clock})
	return out
}

// A replay gives readings the stream clock as arrival time and ticks
// processors that judge time, as the pipeline does.
func TestReplayClockAndTicks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	var b bytes.Buffer
	for i := range 512 + 10 {
		ts := 1000 + i
		if i == 5 {
			ts = 900 // late: arrives at the clock, not before it
		}
		fmt.Fprintf(&b, `{"timestamp":%d,"node_id":"a","data":{"p":1}}`+"\n", ts)
	}
	os.WriteFile(path, b.Bytes(), 0o644)
	ds, err := Load([]string{path}, file.Options{}, pipeline.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var p tickRecorder
	if _, err := ds.Replay(context.Background(), &p, nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	sec := int64(1e9)
	if p.arrivals[4] != 1004*sec || p.arrivals[5] != 1004*sec || p.arrivals[6] != 1006*sec {
		t.Errorf("arrivals %v; want the stream clock (1004, 1004, 1006 s)", p.arrivals[4:7])
	}
	// Time is judged at every frame that moves the clock (not the late
	// one), whatever the batches: 1000…1004 s, then 1006…1521 s.
	var want [][2]int64
	for c := int64(1000); c <= 1000+512+9; c++ {
		if c != 1005 {
			want = append(want, [2]int64{1000 * sec, c * sec})
		}
	}
	if !reflect.DeepEqual(p.ticks, want) {
		t.Errorf("%d ticks, from %v to %v; want %d, one per frame that moves the clock (1000…1004 s, 1006…1521 s)",
			len(p.ticks), p.ticks[0], p.ticks[len(p.ticks)-1], len(want))
	}
}
