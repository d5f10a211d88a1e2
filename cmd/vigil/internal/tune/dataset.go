package tune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/file"
)

// LoadStats counts what Load read.
type LoadStats struct {
	Frames   uint64            // frames read from the files
	Bytes    uint64            // payload bytes read
	Readings int               // frames decoded into readings
	Rejected map[string]uint64 // rejected frames by reason (pipeline.Reason names)
	// Examples holds the first rejections ("plant.log:12: malformed_json at
	// offset 0: …"), at most maxExamples.
	Examples []string
	Elapsed  time.Duration
}

// maxExamples bounds LoadStats.Examples.
const maxExamples = 5

// signal is one interned signal: name and kind.
type signal struct {
	name string
	kind pipeline.SignalKind
}

// Dataset is a decoded log held in memory, in stream order, for replaying
// through many detector settings. It is immutable once loaded and safe for
// concurrent use.
type Dataset struct {
	files []string
	stats LoadStats
	data  eval.DataInfo

	devices []string // interned device names
	topics  []string // interned topics; topics[0] is ""
	signals []signal // interned signals

	// Per reading.
	dev    []int32
	time   []int64
	status []int8
	label  []int8   // the message's label field (pipeline.NoLabel when none)
	size   []int32  // payload size, for the traffic checks
	hash   []uint64 // payload hash, for the traffic checks (duplicates)
	topic  []int32
	voff   []uint32 // values of reading i are voff[i]:voff[i+1]; len(voff) = readings+1

	// Per value.
	vsig []uint32 // index into signals
	vval []float64

	// Rejected frames, in stream order, so that a replay tells the
	// detectors of them as a replay of the log does: their frame index
	// (readings and rejections counted together), device ("" when the
	// decoder did not get that far) and reason.
	rejAt  []int64
	rejDev []string
	rejWhy []pipeline.Reason
}

// Load reads the log files at paths ("-" is stdin), merged in event-time
// order as `vigil replay` merges them, and decodes them with a decoder of dc.
// fopt.MaxLine defaults to the decoder's payload limit, as in a replay.
// Rejected frames are counted, not fatal; a read error is.
func Load(paths []string, fopt file.Options, dc pipeline.DecoderConfig) (*Dataset, error) {
	return LoadContext(context.Background(), paths, fopt, dc)
}

// LoadContext is Load with a context; when ctx is done it stops reading and
// returns ctx's error.
func LoadContext(ctx context.Context, paths []string, fopt file.Options, dc pipeline.DecoderConfig) (*Dataset, error) {
	if len(paths) == 0 {
		return nil, errors.New("tune: no input files")
	}
	start := time.Now()
	if fopt.MaxLine == 0 {
		fopt.MaxLine = dc.MaxPayload
		if fopt.MaxLine == 0 {
			fopt.MaxLine = pipeline.DefaultDecoderConfig().MaxPayload
		}
	}
	srcs := make([]pipeline.Source, 0, len(paths))
	for _, p := range paths {
		s, err := file.Open(p, fopt)
		if err != nil {
			for _, s := range srcs {
				s.Close()
			}
			return nil, fmt.Errorf("tune: %w", err)
		}
		srcs = append(srcs, s)
	}
	src := file.Merge(srcs, pipeline.NewDecoder(dc).PeekTime)

	var size int64
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && p != "-" {
			size += fi.Size()
		}
	}
	ds := newDataset(paths)
	err := ds.read(ctx, src, dc, size)
	if cerr := src.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tune: close: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	ds.stats.Elapsed = time.Since(start)
	return ds, nil
}

func newDataset(paths []string) *Dataset {
	return &Dataset{
		files:  append([]string(nil), paths...),
		stats:  LoadStats{Rejected: map[string]uint64{}},
		data:   eval.DataInfo{Times: map[string][]int64{}},
		topics: []string{""},
		voff:   []uint32{0},
	}
}

// loadBatch is the number of frames read at a time.
const loadBatch = 1024

// loader builds a Dataset from decoded readings.
type loader struct {
	ds       *Dataset
	devIdx   map[string]int32
	topIdx   map[string]int32
	sigIdx   map[signal]uint32
	devTopic []int32   // per device, the topic of its last reading
	times    [][]int64 // per device, its readings' times
	hint     int64     // the input's size in bytes, 0 when unknown
}

// loadJob is one batch of frames on its way through the decoders.
type loadJob struct {
	frames   pipeline.FrameBatch
	readings []pipeline.Reading
	errs     []error
	err      error         // the source's error with this batch (io.EOF at the end)
	done     chan struct{} // buffered: decoded
}

// read decodes every frame of src into ds: one goroutine reads batches,
// GOMAXPROCS decoders decode them in parallel, and this goroutine appends
// the readings in stream order. hint is the input's size in bytes (0 when
// unknown), used to size the columns once.
func (ds *Dataset) read(ctx context.Context, src pipeline.Source, dc pipeline.DecoderConfig, hint int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	decoders := runtime.GOMAXPROCS(0)
	jobs := 2*decoders + 2
	var (
		wg    sync.WaitGroup
		free  = make(chan *loadJob, jobs)
		work  = make(chan *loadJob, jobs) // buffered for every job: sends never block
		order = make(chan *loadJob, jobs)
	)
	for range jobs {
		free <- &loadJob{done: make(chan struct{}, 1)}
	}
	wg.Go(func() {
		defer close(order)
		defer close(work)
		for {
			var j *loadJob
			select {
			case j = <-free:
			case <-ctx.Done():
				return
			}
			j.frames.Reset()
			j.err = src.ReadBatch(ctx, &j.frames, loadBatch)
			work <- j
			order <- j
			if j.err != nil {
				return
			}
		}
	})
	for range decoders {
		wg.Go(func() {
			dec := pipeline.NewDecoder(dc)
			for j := range work {
				n := j.frames.Len()
				if len(j.readings) < n {
					j.readings = make([]pipeline.Reading, n)
					j.errs = make([]error, n)
				}
				for i := range n {
					f := &j.frames.Frames[i]
					j.errs[i] = dec.Decode(j.frames.Payload(f), f.Topic, f.Arrival, &j.readings[i])
				}
				j.done <- struct{}{}
			}
		})
	}
	err := ds.collect(ctx, order, free, hint)
	cancel()
	wg.Wait()
	return err
}

// collect appends the decoded batches in stream order.
func (ds *Dataset) collect(ctx context.Context, order <-chan *loadJob, free chan<- *loadJob, hint int64) error {
	l := &loader{
		ds:     ds,
		devIdx: map[string]int32{},
		topIdx: map[string]int32{"": 0},
		sigIdx: map[signal]uint32{},
		hint:   hint,
	}
	for j := range order {
		<-j.done
		bytes := 0
		for i := range j.frames.Frames {
			f := &j.frames.Frames[i]
			bytes += len(j.frames.Payload(f))
			if j.errs[i] != nil {
				ds.reject(int64(ds.stats.Frames)+int64(i), f, j.errs[i], j.readings[i].Device)
				continue
			}
			if err := l.add(&j.readings[i]); err != nil {
				return err
			}
		}
		ds.stats.Frames += uint64(j.frames.Len())
		ds.stats.Bytes += uint64(bytes)
		if l.hint > 0 && j.frames.Len() > 0 {
			l.reserve(j.frames.Len(), bytes)
		}
		err := j.err
		free <- j // buffered for every job: never blocks
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			l.finish()
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return fmt.Errorf("tune: %w", err)
		}
	}
	return ctx.Err() // the reader stopped: ctx is done
}

// reserve sizes the columns for the whole input, estimated from the first
// batch, so that they are not copied as they grow. It runs once.
func (l *loader) reserve(frames, bytes int) {
	ds := l.ds
	perFrame := float64(bytes+frames) / float64(frames) // a newline a frame
	n := int(float64(l.hint)/perFrame*1.02) + loadBatch
	vals := n * max(len(ds.vval), 1) / max(len(ds.dev), 1)
	l.hint = 0
	if n <= cap(ds.dev) || n > 1<<31 {
		return
	}
	ds.dev = slices.Grow(ds.dev, n-len(ds.dev))
	ds.time = slices.Grow(ds.time, n-len(ds.time))
	ds.status = slices.Grow(ds.status, n-len(ds.status))
	ds.label = slices.Grow(ds.label, n-len(ds.label))
	ds.size = slices.Grow(ds.size, n-len(ds.size))
	ds.hash = slices.Grow(ds.hash, n-len(ds.hash))
	ds.topic = slices.Grow(ds.topic, n-len(ds.topic))
	ds.voff = slices.Grow(ds.voff, n+1-len(ds.voff))
	ds.vsig = slices.Grow(ds.vsig, vals-len(ds.vsig))
	ds.vval = slices.Grow(ds.vval, vals-len(ds.vval))
}

// add appends one reading.
func (l *loader) add(r *pipeline.Reading) error {
	ds := l.ds
	d, ok := l.devIdx[r.Device]
	if !ok {
		d = int32(len(ds.devices))
		ds.devices = append(ds.devices, r.Device)
		l.devIdx[r.Device] = d
		l.devTopic = append(l.devTopic, 0)
		l.times = append(l.times, nil)
	}
	// A device's topic rarely changes: compare with its last one first.
	top := l.devTopic[d]
	if ds.topics[top] != r.Topic {
		if top, ok = l.topIdx[r.Topic]; !ok {
			top = int32(len(ds.topics))
			ds.topics = append(ds.topics, r.Topic)
			l.topIdx[r.Topic] = top
		}
		l.devTopic[d] = top
	}
	if len(ds.vval)+len(r.Values) > math.MaxUint32 {
		return errors.New("tune: too many signal values for one dataset (more than 4 billion)")
	}
	for i := range r.Values {
		v := &r.Values[i]
		ds.vsig = append(ds.vsig, l.signal(v))
		ds.vval = append(ds.vval, v.V)
	}
	ds.dev = append(ds.dev, d)
	ds.time = append(ds.time, r.Time)
	ds.status = append(ds.status, r.Status)
	ds.label = append(ds.label, r.Label)
	ds.size = append(ds.size, r.Size)
	ds.hash = append(ds.hash, r.Hash)
	ds.topic = append(ds.topic, top)
	ds.voff = append(ds.voff, uint32(len(ds.vval)))
	l.times[d] = append(l.times[d], r.Time)
	return nil
}

// signal returns the index of v's signal. The first few signals, which are
// most of them, are found by comparing names (the decoder interns them, so
// the comparison is usually of equal pointers); the rest by the map.
func (l *loader) signal(v *pipeline.Value) uint32 {
	sigs := l.ds.signals
	for i := range min(len(sigs), 8) {
		if sigs[i].kind == v.Kind && sigs[i].name == v.Name {
			return uint32(i)
		}
	}
	k := signal{v.Name, v.Kind}
	s, ok := l.sigIdx[k]
	if !ok {
		s = uint32(len(sigs))
		l.ds.signals = append(sigs, k)
		l.sigIdx[k] = s
	}
	return s
}

// finish completes the dataset once every frame is read.
func (l *loader) finish() {
	ds := l.ds
	ds.stats.Readings = len(ds.dev)
	for d, ts := range l.times {
		ds.data.Times[ds.devices[d]] = ts
	}
}

// reject records the rejected frame number k (counting from 0).
func (ds *Dataset) reject(k int64, f *pipeline.Frame, err error, device string) {
	reason := pipeline.ReasonMalformed
	var de *pipeline.DecodeError
	if errors.As(err, &de) {
		reason = de.Reason
	}
	ds.rejAt = append(ds.rejAt, k)
	ds.rejDev = append(ds.rejDev, device)
	ds.rejWhy = append(ds.rejWhy, reason)
	ds.stats.Rejected[reason.String()]++
	if len(ds.stats.Examples) < maxExamples {
		ds.stats.Examples = append(ds.stats.Examples, fmt.Sprintf("%s:%d: %v", f.Origin, f.Line, err))
	}
}

// Files returns the paths the dataset was loaded from.
func (ds *Dataset) Files() []string { return ds.files }

// Stats returns what Load read.
func (ds *Dataset) Stats() LoadStats { return ds.stats }

// Len returns the number of readings.
func (ds *Dataset) Len() int { return len(ds.dev) }

// Devices returns the number of devices.
func (ds *Dataset) Devices() int { return len(ds.devices) }

// Data returns the evaluation's view of the data: per device, the event time
// of every reading. It is shared: do not modify it.
func (ds *Dataset) Data() eval.DataInfo { return ds.data }

// Hours returns the data span summed over the devices, in hours: what false
// alarms per device-hour divide by.
func (ds *Dataset) Hours() float64 {
	h := 0.0
	for _, dev := range ds.devices { // in a fixed order: the sum is the same every time
		ts := ds.data.Times[dev]
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for _, t := range ts {
			lo, hi = min(lo, t), max(hi, t)
		}
		if len(ts) > 0 {
			h += float64(hi-lo) / float64(time.Hour)
		}
	}
	return h
}

// Span returns the earliest and latest event time, in Unix nanoseconds (0, 0
// when empty).
func (ds *Dataset) Span() (first, last int64) {
	if len(ds.time) == 0 {
		return 0, 0
	}
	first, last = math.MaxInt64, math.MinInt64
	for _, t := range ds.time {
		first, last = min(first, t), max(last, t)
	}
	return first, last
}

// Bytes estimates the memory the dataset holds, in bytes.
func (ds *Dataset) Bytes() int {
	n := cap(ds.dev)*4 + cap(ds.time)*8 + cap(ds.status) + cap(ds.label) + cap(ds.size)*4 + cap(ds.hash)*8 + cap(ds.topic)*4 + cap(ds.voff)*4 +
		cap(ds.vsig)*4 + cap(ds.vval)*8
	for _, ts := range ds.data.Times {
		n += cap(ts) * 8
	}
	return n
}

// Reading fills r with reading i (0 ≤ i < Len) as the decoder made it,
// reusing r.Values, except that Seq is i and Arrival is 0 (Replay sets the
// stream clock). Device, topic and signal names are shared strings.
func (ds *Dataset) Reading(i int, r *pipeline.Reading) {
	vals := r.Values[:0]
	*r = pipeline.Reading{
		Seq:    uint64(i),
		Time:   ds.time[i],
		Device: ds.devices[ds.dev[i]],
		Topic:  ds.topics[ds.topic[i]],
		Status: ds.status[i],
		Label:  ds.label[i],
		Size:   ds.size[i],
		Hash:   ds.hash[i],
	}
	for j := ds.voff[i]; j < ds.voff[i+1]; j++ {
		s := &ds.signals[ds.vsig[j]]
		vals = append(vals, pipeline.Value{Name: s.name, Kind: s.kind, V: ds.vval[j]})
	}
	r.Values = vals
}

// Source returns a pipeline source replaying the dataset: its frames in
// stream order, rejected ones included, already decoded. Each call returns a
// new source; the dataset is shared.
func (ds *Dataset) Source() pipeline.DecodedSource {
	return &replaySource{ds: ds, n: int64(len(ds.dev) + len(ds.rejAt))}
}

// replaySource is a DecodedSource over a Dataset. A frame's Line is its
// index in the stream plus one.
type replaySource struct {
	ds      *Dataset
	next, n int64
}

func (s *replaySource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for range max {
		if s.next == s.n {
			return io.EOF
		}
		s.next++
		b.Add("", nil, 0, "", s.next)
	}
	if s.next == s.n {
		return io.EOF
	}
	return nil
}

func (s *replaySource) Close() error { return nil }

// Decoded returns frame f's reading, or its rejection.
func (s *replaySource) Decoded(f *pipeline.Frame, r *pipeline.Reading) error {
	ds := s.ds
	k := f.Line - 1
	j, _ := slices.BinarySearch(ds.rejAt, k) // rejections before frame k
	if j < len(ds.rejAt) && ds.rejAt[j] == k {
		vals := r.Values[:0]
		*r = pipeline.Reading{Device: ds.rejDev[j], Status: pipeline.NoStatus, Label: pipeline.NoLabel, Values: vals}
		return &pipeline.DecodeError{Reason: ds.rejWhy[j], Err: errRejected}
	}
	ds.Reading(int(k)-j, r)
	return nil
}

// errRejected stands for the decoder's error, which the dataset does not keep.
var errRejected = errors.New("rejected when the dataset was loaded")

// Replay runs the dataset through a pipeline, as `vigil replay` runs the
// log: proc (a detectors.Engine) judges every reading and hears of the
// rejected frames of known devices, it is ticked with the stream clock after
// every batch of batchSize frames (0: the pipeline's default), and fleet
// (when not nil) judges the fleet as a whole. It appends the alerts to out,
// in stream order, and stops early with ctx's error when ctx is done.
func (ds *Dataset) Replay(ctx context.Context, proc pipeline.Processor, fleet pipeline.FleetFunc, batchSize int, out []pipeline.Alert) ([]pipeline.Alert, error) {
	pl, err := pipeline.New(pipeline.Config{
		Workers:      1, // one engine: trials run in parallel instead
		Decoders:     1,
		BatchSize:    batchSize,
		NewProcessor: func(int) pipeline.Processor { return proc },
		Fleet:        fleet,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return out, err
	}
	sink := &collector{out: out}
	err = pl.Run(ctx, ds.Source(), sink)
	if err == nil {
		err = ctx.Err()
	}
	return sink.out, err
}

// collector is a sink appending the alerts to out.
type collector struct{ out []pipeline.Alert }

func (c *collector) Write(_ context.Context, batch []pipeline.Alert) error {
	c.out = append(c.out, batch...)
	return nil
}

func (c *collector) Close() error { return nil }

// LabelsFromStatus returns point labels from the devices' status field, as
// `vigil replay --labels status` takes them: a reading with status 1 or 2 is
// anomalous, one with status 0 is not, one without status is not a label.
func (ds *Dataset) LabelsFromStatus() *eval.Labels {
	return ds.points(func(i int) (bool, bool) {
		return ds.status[i] >= 1, ds.status[i] != pipeline.NoStatus
	})
}

// LabelsFromColumn returns point labels from the messages' label field (a
// CSV label column), as `vigil replay --labels column` takes them.
func (ds *Dataset) LabelsFromColumn() *eval.Labels {
	return ds.points(func(i int) (bool, bool) {
		return ds.label[i] == 1, ds.label[i] != pipeline.NoLabel
	})
}

func (ds *Dataset) points(at func(i int) (anomalous, ok bool)) *eval.Labels {
	l := eval.NewLabels()
	for i := range ds.dev {
		if a, ok := at(i); ok {
			l.AddPoint(ds.devices[ds.dev[i]], ds.time[i], a)
		}
	}
	return l
}
