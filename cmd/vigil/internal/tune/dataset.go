package tune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/vigil-iot/vigil/detectors"
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
	topic  []int32
	voff   []uint32 // values of reading i are voff[i]:voff[i+1]; len(voff) = readings+1

	// Per value.
	vsig []uint32 // index into signals
	vval []float64
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
	closeAll := func() error {
		var errs []error
		for _, s := range srcs {
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	for _, p := range paths {
		s, err := file.Open(p, fopt)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("tune: %w", err)
		}
		srcs = append(srcs, s)
	}
	src := file.Merge(srcs, pipeline.NewDecoder(dc).PeekTime)

	ds := newDataset(paths)
	err := ds.read(ctx, src, pipeline.NewDecoder(dc))
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

// read decodes every frame of src into ds.
func (ds *Dataset) read(ctx context.Context, src pipeline.Source, dec *pipeline.Decoder) error {
	var (
		b       pipeline.FrameBatch
		r       pipeline.Reading
		devIdx  = map[string]int32{}
		topIdx  = map[string]int32{"": 0}
		sigIdx  = map[signal]uint32{}
		lastDev = int32(-1)
		lastStr string
	)
	for {
		b.Reset()
		err := src.ReadBatch(ctx, &b, loadBatch)
		for i := range b.Frames {
			f := &b.Frames[i]
			ds.stats.Frames++
			ds.stats.Bytes += uint64(len(b.Payload(f)))
			if derr := dec.Decode(b.Payload(f), f.Topic, f.Arrival, &r); derr != nil {
				ds.reject(f, derr)
				continue
			}
			// Device: consecutive readings often share it; else the map.
			d := lastDev
			if lastDev < 0 || r.Device != lastStr {
				var ok bool
				if d, ok = devIdx[r.Device]; !ok {
					d = int32(len(ds.devices))
					ds.devices = append(ds.devices, r.Device)
					devIdx[r.Device] = d
				}
				lastDev, lastStr = d, ds.devices[d]
			}
			top, ok := topIdx[r.Topic]
			if !ok {
				top = int32(len(ds.topics))
				ds.topics = append(ds.topics, r.Topic)
				topIdx[r.Topic] = top
			}
			if len(ds.vval)+len(r.Values) > math.MaxUint32 {
				return errors.New("tune: too many signal values for one dataset (more than 4 billion)")
			}
			for _, v := range r.Values {
				k := signal{v.Name, v.Kind}
				s, ok := sigIdx[k]
				if !ok {
					s = uint32(len(ds.signals))
					ds.signals = append(ds.signals, k)
					sigIdx[k] = s
				}
				ds.vsig = append(ds.vsig, s)
				ds.vval = append(ds.vval, v.V)
			}
			ds.dev = append(ds.dev, d)
			ds.time = append(ds.time, r.Time)
			ds.status = append(ds.status, r.Status)
			ds.topic = append(ds.topic, top)
			ds.voff = append(ds.voff, uint32(len(ds.vval)))
			name := ds.devices[d]
			ds.data.Times[name] = append(ds.data.Times[name], r.Time)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			ds.stats.Readings = len(ds.dev)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return fmt.Errorf("tune: %w", err)
		}
	}
}

func (ds *Dataset) reject(f *pipeline.Frame, err error) {
	reason := pipeline.ReasonMalformed
	var de *pipeline.DecodeError
	if errors.As(err, &de) {
		reason = de.Reason
	}
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
	for _, ts := range ds.data.Times {
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
	n := cap(ds.dev)*4 + cap(ds.time)*8 + cap(ds.status) + cap(ds.topic)*4 + cap(ds.voff)*4 +
		cap(ds.vsig)*4 + cap(ds.vval)*8
	for _, ts := range ds.data.Times {
		n += cap(ts) * 8
	}
	return n
}

// Reading fills r with reading i (0 ≤ i < Len), reusing r.Values. Seq is i.
// Device, topic and signal names are shared strings.
func (ds *Dataset) Reading(i int, r *pipeline.Reading) {
	vals := r.Values[:0]
	*r = pipeline.Reading{
		Seq:    uint64(i),
		Time:   ds.time[i],
		Device: ds.devices[ds.dev[i]],
		Topic:  ds.topics[ds.topic[i]],
		Status: ds.status[i],
	}
	for j := ds.voff[i]; j < ds.voff[i+1]; j++ {
		s := &ds.signals[ds.vsig[j]]
		vals = append(vals, pipeline.Value{Name: s.name, Kind: s.kind, V: ds.vval[j]})
	}
	r.Values = vals
}

// checkEvery is how many readings a replay processes between looks at ctx.
const checkEvery = 1 << 15

// Replay runs one engine of set over every reading in stream order and
// appends the alerts to out. It stops early with ctx's error when ctx is done.
func (ds *Dataset) Replay(ctx context.Context, set *detectors.Set, out []pipeline.Alert) ([]pipeline.Alert, error) {
	eng := set.NewEngine()
	r := pipeline.Reading{Values: make([]pipeline.Value, 0, 8)}
	for i := range ds.dev {
		if i%checkEvery == 0 && ctx.Err() != nil {
			return out, ctx.Err()
		}
		ds.Reading(i, &r)
		out = eng.Process(&r, out)
	}
	return out, nil
}
