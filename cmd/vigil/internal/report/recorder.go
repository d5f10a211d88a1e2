package report

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// Defaults of Options.
const (
	DefaultColumns    = 1024
	DefaultMaxDevices = 50
)

// minWidth is the width of a new series' buckets: the finest time resolution
// a chart can show.
const minWidth = int64(time.Millisecond)

// Options configure what a Recorder keeps. The zero value takes the defaults.
type Options struct {
	// Columns is the most buckets kept per (device, signal): about the
	// horizontal resolution of a chart (default DefaultColumns, at least 16).
	// Memory per series is 80 bytes per column.
	Columns int
	// MaxDevices is how many devices are recorded: the first by name of those
	// matching Devices (default DefaultMaxDevices; negative: all of them).
	MaxDevices int
	// Devices, when not empty, restricts recording to the devices whose name
	// matches one of these path.Match patterns ("press-*").
	Devices []string
}

func (o *Options) setDefaults() {
	if o.Columns == 0 {
		o.Columns = DefaultColumns
	}
	if o.MaxDevices == 0 {
		o.MaxDevices = DefaultMaxDevices
	}
}

// Validate checks the options; errors name the offending field.
func (o *Options) Validate() error {
	var errs []error
	if o.Columns != 0 && o.Columns < 16 {
		errs = append(errs, fmt.Errorf("report: columns must be at least 16, got %d", o.Columns))
	}
	for _, p := range o.Devices {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("report: bad device pattern %q: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Bucket summarises the readings of one series in one time interval.
type Bucket struct {
	// N counts the readings; an empty bucket (N == 0) has no values.
	N uint64
	// First and Last are the values of the earliest and latest readings (in
	// stream order), Min and Max the extremes.
	First, Min, Max, Last float64
	// Band is the learned band after the bucket's last reading; Band.Warm is
	// false when the baseline was still warming up or there was none.
	Band detectors.Band
}

// Series is the downsampled history of one signal of one device. Bucket i
// covers the event times [Start + i·Width, Start + (i+1)·Width).
type Series struct {
	Signal string
	Kind   pipeline.SignalKind
	// Start is the event time of the first reading (Unix ns), Width the
	// bucket width in ns.
	Start, Width int64
	// From and To are the earliest and latest event times seen.
	From, To int64
	// Count is the number of readings.
	Count   uint64
	Buckets []Bucket
}

// BucketTime returns the event time at the middle of bucket i.
func (s *Series) BucketTime(i int) int64 {
	return s.Start + int64(i)*s.Width + s.Width/2
}

// DeviceSeries holds the series of one device, in the order its signals
// first appeared.
type DeviceSeries struct {
	Device  string
	Signals []Series
}

// Recording is what the Recorders of a run kept, merged.
type Recording struct {
	// Devices are the recorded devices, sorted by name.
	Devices []DeviceSeries
	// Seen counts every device the recorders saw, recorded or not.
	Seen int
	// Options are the recorders' options (with defaults applied).
	Options Options
}

// series is a Series being recorded.
type series struct {
	Series
	cur int // index of the newest bucket
}

type device struct {
	name    string
	signals []series
}

// BandFunc returns the learned band of a device's signal, and false when
// there is none. detectors.Engine.Band is one.
type BandFunc func(device, signal string) (detectors.Band, bool)

// Recorder records the downsampled series of one shard's devices. It is
// called from the shard's goroutine only and is not safe for concurrent use;
// Merge the Recorders of all shards once processing has finished.
type Recorder struct {
	opts     Options
	band     BandFunc
	devices  map[string]*device
	declined map[string]struct{} // devices that will never be recorded
	largest  string              // the largest recorded name
}

// NewRecorder returns a Recorder that asks band for the learned bands (band
// may be nil: no bands). The band of a bucket is taken when the next bucket
// starts, before the reading that starts it is processed, and for the last
// bucket by Merge; so band must report the state of the processor that Wrap
// wraps, and stay usable until Merge. Invalid options panic: validate them
// first.
func NewRecorder(opts Options, band BandFunc) *Recorder {
	if err := opts.Validate(); err != nil {
		panic("BUG: " + err.Error())
	}
	opts.setDefaults()
	return &Recorder{
		opts:     opts,
		band:     band,
		devices:  map[string]*device{},
		declined: map[string]struct{}{},
	}
}

// Observe implements pipeline.Tap: it records the reading before the
// shard's processor (whose band the Recorder reads) sees it.
func (rc *Recorder) Observe(r *pipeline.Reading) { rc.Record(r) }

// Record adds a reading to its device's series. Call it before the processor
// that band reports on sees the reading. Non-finite values are ignored. It
// does not allocate once the device's series exist and have grown to their
// full number of buckets.
func (rc *Recorder) Record(r *pipeline.Reading) {
	d := rc.devices[r.Device]
	if d == nil {
		if d = rc.admit(r.Device); d == nil {
			return
		}
	}
	for i := range r.Values {
		v := &r.Values[i]
		if math.IsNaN(v.V) || math.IsInf(v.V, 0) {
			continue
		}
		s := d.signal(v)
		rc.add(d.name, s, r.Time, v.V)
	}
}

// admit decides whether a new device is recorded and returns its state, or
// nil. It keeps the MaxDevices smallest names: once it is full, a smaller
// name evicts the largest, which can never come back (the largest recorded
// name only decreases).
func (rc *Recorder) admit(name string) *device {
	if _, ok := rc.declined[name]; ok {
		return nil
	}
	if !rc.matches(name) {
		rc.declined[name] = struct{}{}
		return nil
	}
	if n := rc.opts.MaxDevices; n > 0 && len(rc.devices) >= n {
		if name > rc.largest {
			rc.declined[name] = struct{}{}
			return nil
		}
		delete(rc.devices, rc.largest)
		rc.declined[rc.largest] = struct{}{}
		rc.largest = name
		for k := range rc.devices {
			rc.largest = max(rc.largest, k)
		}
	}
	d := &device{name: name, signals: make([]series, 0, 4)}
	rc.devices[name] = d
	rc.largest = max(rc.largest, name)
	return d
}

func (rc *Recorder) matches(name string) bool {
	if len(rc.opts.Devices) == 0 {
		return true
	}
	for _, p := range rc.opts.Devices {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// signal returns the series of a reading's value, adding it on first sight.
func (d *device) signal(v *pipeline.Value) *series {
	for i := range d.signals {
		if d.signals[i].Signal == v.Name {
			return &d.signals[i]
		}
	}
	d.signals = append(d.signals, series{Series: Series{Signal: v.Name, Kind: v.Kind}})
	return &d.signals[len(d.signals)-1]
}

// add records value x at event time t.
func (rc *Recorder) add(dev string, s *series, t int64, x float64) {
	if s.Count == 0 {
		if s.Buckets == nil {
			s.Buckets = make([]Bucket, 0, min(16, rc.opts.Columns))
		}
		s.Start, s.Width, s.From, s.To = t, minWidth, t, t
		s.Buckets = append(s.Buckets[:0], Bucket{N: 1, First: x, Min: x, Max: x, Last: x})
		s.cur, s.Count = 0, 1
		return
	}
	s.Count++
	s.From, s.To = min(s.From, t), max(s.To, t)
	k := int64(0) // out-of-order readings before Start go to bucket 0
	if t > s.Start {
		k = (t - s.Start) / s.Width
	}
	if k > int64(s.cur) {
		// The newest bucket is complete: its band is the one learned so far.
		rc.closeBucket(dev, s)
		for k >= int64(rc.opts.Columns) {
			s.halve()
			k >>= 1 // ⌊⌊Δ/w⌋/2⌋ = ⌊Δ/2w⌋
		}
		s.extend(int(k)+1, rc.opts.Columns)
		s.cur = int(k)
	}
	b := &s.Buckets[k]
	switch {
	case b.N == 0:
		b.First, b.Min, b.Max, b.Last = x, x, x, x
	case x < b.Min:
		b.Min = x
	case x > b.Max:
		b.Max = x
	}
	if int(k) == s.cur {
		b.Last = x
	}
	b.N++
}

// closeBucket stores the current band in the newest bucket.
func (rc *Recorder) closeBucket(dev string, s *series) {
	if rc.band == nil {
		return
	}
	if band, ok := rc.band(dev, s.Signal); ok {
		s.Buckets[s.cur].Band = band
	}
}

// extend grows the buckets to n (at most columns), keeping the invariant
// that the slots between length and capacity are zero.
func (s *series) extend(n, columns int) {
	if n <= len(s.Buckets) {
		return
	}
	if n > cap(s.Buckets) {
		grown := make([]Bucket, len(s.Buckets), min(columns, max(2*cap(s.Buckets), n)))
		copy(grown, s.Buckets)
		s.Buckets = grown
	}
	s.Buckets = s.Buckets[:n]
}

// halve merges adjacent pairs of buckets and doubles the width.
func (s *series) halve() {
	b := s.Buckets
	n := len(b)
	m := (n + 1) / 2
	for i := range m {
		x := b[2*i]
		if 2*i+1 < n {
			x = mergeBuckets(x, b[2*i+1])
		}
		b[i] = x
	}
	clear(b[m:n])
	s.Buckets = b[:m]
	s.Width *= 2
	s.cur >>= 1
}

// mergeBuckets returns the bucket covering a and, after it, b.
func mergeBuckets(a, b Bucket) Bucket {
	switch {
	case a.N == 0:
		return b
	case b.N == 0:
		return a
	}
	return Bucket{
		N:     a.N + b.N,
		First: a.First,
		Min:   min(a.Min, b.Min),
		Max:   max(a.Max, b.Max),
		Last:  b.Last,
		Band:  b.Band,
	}
}

// finish stores the final band of every series' newest bucket.
func (rc *Recorder) finish() {
	for _, d := range rc.devices {
		for i := range d.signals {
			if s := &d.signals[i]; s.Count > 0 {
				rc.closeBucket(d.name, s)
			}
		}
	}
}

// Merge joins the Recorders of a run's shards (whose devices are disjoint)
// into one Recording. Call it once the processors are done: it takes the
// final bands, and the Recording shares the Recorders' memory. Nil Recorders
// are skipped.
func Merge(recs ...*Recorder) *Recording {
	out := &Recording{}
	for _, rc := range recs {
		if rc == nil {
			continue
		}
		out.Options = rc.opts
		rc.finish()
		out.Seen += len(rc.devices) + len(rc.declined)
		for _, d := range rc.devices {
			ds := DeviceSeries{Device: d.name, Signals: make([]Series, len(d.signals))}
			for i := range d.signals {
				ds.Signals[i] = d.signals[i].Series
			}
			out.Devices = append(out.Devices, ds)
		}
	}
	slices.SortFunc(out.Devices, func(a, b DeviceSeries) int { return strings.Compare(a.Device, b.Device) })
	if n := out.Options.MaxDevices; n > 0 && len(out.Devices) > n {
		clear(out.Devices[n:])
		out.Devices = out.Devices[:n]
	}
	return out
}
