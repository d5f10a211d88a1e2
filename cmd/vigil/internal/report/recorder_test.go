package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano()

func reading(dev string, t int64, vals ...float64) *pipeline.Reading {
	r := &pipeline.Reading{Device: dev, Time: t, Status: pipeline.NoStatus}
	for i, v := range vals {
		r.Values = append(r.Values, pipeline.Value{Name: fmt.Sprintf("s%d", i), Kind: pipeline.Generic, V: v})
	}
	return r
}

// only returns the single series of a one-device, one-signal recording.
func only(tb testing.TB, rec *Recording) *Series {
	tb.Helper()
	if len(rec.Devices) != 1 || len(rec.Devices[0].Signals) != 1 {
		tb.Fatalf("got %d devices; want 1 with 1 signal", len(rec.Devices))
	}
	return &rec.Devices[0].Signals[0]
}

func TestSpikeSurvivesDownsampling(t *testing.T) {
	const (
		n     = 1_000_000
		spike = 654_321
		dip   = 123_457
	)
	rc := NewRecorder(Options{}, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	r := reading("press-01", 0, 0)
	for i := range n {
		r.Time = t0 + int64(i)*int64(100*time.Millisecond)
		r.Values[0].V = 5 + 0.1*math.Sin(float64(i)/500) + 0.01*rng.NormFloat64()
		switch i {
		case spike:
			r.Values[0].V = 50
		case dip:
			r.Values[0].V = -40
		}
		rc.Record(r)
	}
	s := only(t, Merge(rc))
	if len(s.Buckets) > DefaultColumns || cap(s.Buckets) > DefaultColumns {
		t.Fatalf("got %d buckets (capacity %d); want at most %d", len(s.Buckets), cap(s.Buckets), DefaultColumns)
	}
	if len(s.Buckets) < DefaultColumns/2 {
		t.Errorf("got %d buckets; want at least %d (half the budget)", len(s.Buckets), DefaultColumns/2)
	}
	if s.Count != n {
		t.Errorf("got Count %d; want %d", s.Count, n)
	}
	at := func(i int) int { return int((t0 + int64(i)*int64(100*time.Millisecond) - s.Start) / s.Width) }
	var total uint64
	for i, b := range s.Buckets {
		total += b.N
		switch i {
		case at(spike):
			if b.Max != 50 {
				t.Errorf("bucket %d holding the spike: got max %v; want 50", i, b.Max)
			}
		case at(dip):
			if b.Min != -40 {
				t.Errorf("bucket %d holding the dip: got min %v; want -40", i, b.Min)
			}
		default:
			if b.Max > 6 || b.Min < 4 {
				t.Errorf("bucket %d: got [%v, %v]; want within [4, 6]", i, b.Min, b.Max)
			}
		}
	}
	if total != n {
		t.Errorf("got %d readings over the buckets; want %d", total, n)
	}
	t.Logf("%d buckets of %v", len(s.Buckets), time.Duration(s.Width))
}

// TestBucketsMatchBruteForce records random series and checks every bucket
// against one computed from the raw samples with the final start and width:
// whatever merges happened on the way, a bucket must be exactly the summary
// of the readings in its interval.
func TestBucketsMatchBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		columns int
		n       int
		step    func(r *rand.Rand) time.Duration
	}{
		{"regular", 16, 1000, func(*rand.Rand) time.Duration { return time.Second }},
		{"jitter", 64, 5000, func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(3000)) * time.Millisecond }},
		{"bursts and outages", 100, 3000, func(r *rand.Rand) time.Duration {
			if r.IntN(100) == 0 {
				return time.Duration(r.IntN(3600)) * time.Second
			}
			return time.Duration(r.IntN(5)) * time.Microsecond
		}},
		{"sub-millisecond", 32, 2000, func(*rand.Rand) time.Duration { return 100 * time.Microsecond }},
		{"few", 1024, 7, func(*rand.Rand) time.Duration { return time.Minute }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.n)))
			rc := NewRecorder(Options{Columns: tc.columns}, nil)
			type sample struct {
				t int64
				v float64
			}
			var raw []sample
			tm := t0
			r := reading("d", 0, 0)
			for range tc.n {
				tm += int64(tc.step(rng))
				r.Time, r.Values[0].V = tm, rng.NormFloat64()
				raw = append(raw, sample{tm, r.Values[0].V})
				rc.Record(r)
			}
			s := only(t, Merge(rc))
			if len(s.Buckets) > tc.columns || cap(s.Buckets) > tc.columns {
				t.Fatalf("got %d buckets (capacity %d); want at most %d", len(s.Buckets), cap(s.Buckets), tc.columns)
			}
			if s.Start != raw[0].t || s.From != raw[0].t || s.To != raw[len(raw)-1].t {
				t.Errorf("got start %d, from %d, to %d; want %d, %d, %d", s.Start, s.From, s.To, raw[0].t, raw[0].t, raw[len(raw)-1].t)
			}
			want := make([]Bucket, len(s.Buckets))
			for _, x := range raw {
				k := (x.t - s.Start) / s.Width
				if k >= int64(len(want)) {
					t.Fatalf("sample at %d falls in bucket %d of %d", x.t, k, len(want))
				}
				b := &want[k]
				if b.N == 0 {
					b.First, b.Min, b.Max = x.v, x.v, x.v
				}
				b.Min, b.Max, b.Last = min(b.Min, x.v), max(b.Max, x.v), x.v
				b.N++
			}
			for i := range want {
				if s.Buckets[i] != want[i] {
					t.Errorf("bucket %d: got %+v; want %+v", i, s.Buckets[i], want[i])
				}
			}
		})
	}
}

func TestMergeBuckets(t *testing.T) {
	band := func(m float64) detectors.Band { return detectors.Band{Median: m, Warm: true} }
	a := Bucket{N: 3, First: 2, Min: 1, Max: 5, Last: 4, Band: band(1)}
	b := Bucket{N: 2, First: 0, Min: -1, Max: 3, Last: 3, Band: band(2)}
	for _, tc := range []struct {
		name string
		a, b Bucket
		want Bucket
	}{
		{"both", a, b, Bucket{N: 5, First: 2, Min: -1, Max: 5, Last: 3, Band: band(2)}},
		{"first empty", Bucket{}, b, b},
		{"second empty", a, Bucket{}, a},
		{"both empty", Bucket{}, Bucket{}, Bucket{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mergeBuckets(tc.a, tc.b); got != tc.want {
				t.Errorf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}

// counter is a Processor that counts readings; its band's median is the
// count, so a bucket's band tells after which reading it was taken.
type counter struct{ n int }

func (c *counter) Process(_ *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	c.n++
	return out
}
func (c *counter) Devices() int { return 1 }
func (c *counter) band(string, string) (detectors.Band, bool) {
	return detectors.Band{Median: float64(c.n), Warm: true}, true
}

func TestBandIsTakenAfterEachBucketsLastReading(t *testing.T) {
	c := &counter{}
	rc := NewRecorder(Options{Columns: 16}, c.band)
	p := tapped(rc, c)
	rng := rand.New(rand.NewPCG(3, 4))
	tm := t0
	for range 2000 {
		tm += int64(rng.IntN(2000)) * int64(time.Millisecond)
		p.Process(reading("d", tm, 1), nil)
	}
	s := only(t, Merge(rc))
	seen := uint64(0)
	for i, b := range s.Buckets {
		seen += b.N
		if b.N == 0 {
			continue
		}
		if !b.Band.Warm || b.Band.Median != float64(seen) {
			t.Errorf("bucket %d: got band after reading %v; want after %d", i, b.Band.Median, seen)
		}
	}
	if p.Devices() != 1 {
		t.Errorf("Devices: got %d; want the wrapped processor's 1", p.Devices())
	}
}

func TestOutOfOrderReading(t *testing.T) {
	rc := NewRecorder(Options{Columns: 16}, nil)
	for i := range 10 {
		rc.Record(reading("d", t0+int64(i)*int64(time.Second), float64(i)))
	}
	rc.Record(reading("d", t0+int64(2*time.Second), 100)) // late
	rc.Record(reading("d", t0-int64(time.Hour), -100))    // before the first
	s := only(t, Merge(rc))
	last := s.Buckets[len(s.Buckets)-1]
	if last.Last != 9 {
		t.Errorf("newest bucket: got last %v; want 9 (late readings do not change it)", last.Last)
	}
	k := (int64(2*time.Second) / s.Width)
	if s.Buckets[k].Max != 100 {
		t.Errorf("bucket %d: got max %v; want 100", k, s.Buckets[k].Max)
	}
	if s.Buckets[0].Min != -100 {
		t.Errorf("bucket 0: got min %v; want -100", s.Buckets[0].Min)
	}
	if s.From != t0-int64(time.Hour) || s.Count != 12 {
		t.Errorf("got from %d, count %d; want %d, 12", s.From, s.Count, t0-int64(time.Hour))
	}
}

func TestNonFiniteValuesIgnored(t *testing.T) {
	rc := NewRecorder(Options{}, nil)
	rc.Record(reading("d", t0, 1))
	rc.Record(reading("d", t0+1e9, math.NaN()))
	rc.Record(reading("d", t0+2e9, math.Inf(1)))
	s := only(t, Merge(rc))
	if s.Count != 1 {
		t.Errorf("got Count %d; want 1", s.Count)
	}
}

func TestMaxDevicesKeepsSmallestNames(t *testing.T) {
	const n, keep = 200, 7
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%03d", i)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	rng.Shuffle(n, func(i, j int) { names[i], names[j] = names[j], names[i] })
	recs := []*Recorder{NewRecorder(Options{MaxDevices: keep}, nil), NewRecorder(Options{MaxDevices: keep}, nil)}
	for round := range 3 {
		for i, name := range names {
			recs[i%2].Record(reading(name, t0+int64(round), 1))
		}
	}
	for _, rc := range recs {
		if len(rc.devices) > keep {
			t.Fatalf("a recorder holds %d devices; want at most %d", len(rc.devices), keep)
		}
	}
	rec := Merge(recs...)
	var got []string
	for _, d := range rec.Devices {
		got = append(got, d.Device)
	}
	want := []string{"dev-000", "dev-001", "dev-002", "dev-003", "dev-004", "dev-005", "dev-006"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	if rec.Seen != n {
		t.Errorf("got Seen %d; want %d", rec.Seen, n)
	}
	for _, d := range rec.Devices {
		// A device among the smallest is never evicted, so none of its
		// readings is lost.
		if c := d.Signals[0].Count; c != 3 {
			t.Errorf("%s: got %d readings; want 3", d.Device, c)
		}
	}
}

func TestDevicePatterns(t *testing.T) {
	opts := Options{Devices: []string{"press-*", "pump-0[12]"}, MaxDevices: -1}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	rc := NewRecorder(opts, nil)
	for _, d := range []string{"press-a", "pump-01", "pump-03", "oven", "press-b", "pump-02"} {
		rc.Record(reading(d, t0, 1))
	}
	rec := Merge(rc)
	var got []string
	for _, d := range rec.Devices {
		got = append(got, d.Device)
	}
	if want := []string{"press-a", "press-b", "pump-01", "pump-02"}; !slices.Equal(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	if rec.Seen != 6 {
		t.Errorf("got Seen %d; want 6", rec.Seen)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"columns", Options{Columns: 8}, false},
		{"pattern", Options{Devices: []string{"[a-"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("got %v; want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	e := engine(t)
	rc := NewRecorder(Options{}, e.Band)
	p := tapped(rc, e)
	r := &pipeline.Reading{Device: "press-01", Status: pipeline.NoStatus, Values: []pipeline.Value{
		{Name: "pressure", Kind: pipeline.Pressure}, {Name: "temperature", Kind: pipeline.Temperature},
	}}
	tm := t0
	next := func() {
		tm += int64(time.Second)
		r.Time = tm
		r.Values[0].V = 4 + 0.01*math.Sin(float64(tm)/1e10)
		r.Values[1].V = 60 + 0.1*math.Cos(float64(tm)/1e10)
	}
	for range 10_000 { // warm the baselines and grow the buckets to the budget
		next()
		p.Process(r, nil)
	}
	if n := testing.AllocsPerRun(10_000, func() { next(); rc.Record(r) }); n != 0 {
		t.Errorf("Record: got %v allocations per reading; want 0", n)
	}
	// A device that is not recorded costs no allocation either.
	rc2 := NewRecorder(Options{Devices: []string{"other"}}, nil)
	rc2.Record(r)
	if n := testing.AllocsPerRun(1000, func() { rc2.Record(r) }); n != 0 {
		t.Errorf("Record of a declined device: got %v allocations; want 0", n)
	}
}

func engine(tb testing.TB) *detectors.Engine {
	tb.Helper()
	set, err := detectors.New(detectors.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return set.NewEngine()
}
