package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// sliceSource yields the given payloads, at most max per batch, then io.EOF.
// When ack is set, every batch gets an Ack that records its call.
type sliceSource struct {
	payloads [][]byte
	next     int
	err      error // returned instead of io.EOF at the end, if set
	acks     *ackLog
}

type ackLog struct {
	mu      sync.Mutex
	calls   []int // frames in each acknowledged batch, in ack order
	written func() int
	seen    []int // alerts written when each ack happened
}

func (s *sliceSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for n := 0; n < max && s.next < len(s.payloads); n++ {
		b.Add("", s.payloads[s.next], 0, "test", int64(s.next+1))
		s.next++
	}
	if s.acks != nil {
		n := b.Len()
		b.Ack = func() {
			s.acks.mu.Lock()
			defer s.acks.mu.Unlock()
			s.acks.calls = append(s.acks.calls, n)
			s.acks.seen = append(s.acks.seen, s.acks.written())
		}
	}
	if s.next >= len(s.payloads) {
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	return nil
}

func (s *sliceSource) Close() error { return nil }

// echo is a Processor that emits one alert per reading, whose Signal records
// the device and whose Value counts that device's readings, and checks that
// each device's readings arrive in stream order.
type echo struct {
	t       *testing.T
	lastSeq map[string]uint64
	seen    map[string]int
}

func newEcho(t *testing.T) *echo {
	return &echo{t: t, lastSeq: map[string]uint64{}, seen: map[string]int{}}
}

func (e *echo) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	if last, ok := e.lastSeq[r.Device]; ok && r.Seq <= last {
		e.t.Errorf("device %s: reading %d after %d: per-device order broken", r.Device, r.Seq, last)
	}
	e.lastSeq[r.Device] = r.Seq
	e.seen[r.Device]++
	return append(out, pipeline.Alert{Seq: r.Seq, Time: r.Time, Device: r.Device, Kind: "echo", State: pipeline.Firing, Value: float64(e.seen[r.Device])})
}

func (e *echo) Devices() int { return len(e.lastSeq) }

// collect is a Sink that keeps what it is given.
type collect struct {
	mu     sync.Mutex
	alerts []pipeline.Alert
	delay  time.Duration
	err    error
}

func (c *collect) Write(ctx context.Context, batch []pipeline.Alert) error {
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.alerts = append(c.alerts, batch...)
	return nil
}

func (c *collect) Close() error { return nil }

func (c *collect) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.alerts)
}

func payload(i, devices int) []byte {
	return fmt.Appendf(nil, `{"timestamp":%d,"node_id":"dev-%d","data":{"p":%d.5}}`, 1763719200000+int64(i), i%devices, i%10)
}

func payloads(n, devices int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = payload(i, devices)
	}
	return ps
}

// TestRunOrderAndBackpressure pushes many frames through tiny batches and
// queues and a slow sink: nothing is dropped, each device's readings reach its
// shard in order, and the sink sees alerts in stream order.
func TestRunOrderAndBackpressure(t *testing.T) {
	const n, devices = 20000, 97
	for _, tc := range []struct{ workers, decoders, batch, inflight int }{
		{1, 1, 512, 0}, {3, 2, 7, 3}, {4, 4, 1, 2}, {2, 3, 64, 1},
	} {
		t.Run(fmt.Sprintf("w%d-d%d-b%d-q%d", tc.workers, tc.decoders, tc.batch, tc.inflight), func(t *testing.T) {
			sink := &collect{}
			p, err := pipeline.New(pipeline.Config{
				Workers: tc.workers, Decoders: tc.decoders, BatchSize: tc.batch, InFlight: tc.inflight,
				NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background(), &sliceSource{payloads: payloads(n, devices)}, sink); err != nil {
				t.Fatal(err)
			}
			if got := sink.len(); got != n {
				t.Fatalf("sink got %d alerts; want %d (one per frame)", got, n)
			}
			for i, a := range sink.alerts {
				if a.Seq != uint64(i) {
					t.Fatalf("alert %d has Seq %d; want %d: stream order broken", i, a.Seq, i)
				}
			}
			st := p.Stats()
			if st.Frames != n || st.Decoded != n || st.Processed != n || st.Devices != devices {
				t.Fatalf("stats frames=%d decoded=%d processed=%d devices=%d; want %d, %d, %d, %d",
					st.Frames, st.Decoded, st.Processed, st.Devices, n, n, n, devices)
			}
			if st.Alerts["echo/firing"] != n {
				t.Fatalf("alert counts %v; want echo/firing=%d", st.Alerts, n)
			}
		})
	}
}

// TestRunRejections: bad frames are counted by reason and dead-lettered with
// their reason and line; the good frames around them are all processed.
func TestRunRejections(t *testing.T) {
	ps := [][]byte{
		payload(0, 3),
		[]byte(`{"node_id":"x","data":{"p":1}}`), // missing_timestamp
		[]byte(`not json`),                       // malformed_json
		payload(1, 3),
		[]byte(`{"timestamp":1,"node_id":"x","data":{"p":NaN}}`), // invalid_value
		[]byte(`{"timestamp":1,"data":{"p":1}}`),                 // missing_node_id
		payload(2, 3),
	}
	var dead bytes.Buffer
	sink := &collect{}
	p, err := pipeline.New(pipeline.Config{
		Workers: 2, Decoders: 2, BatchSize: 2,
		NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
		DeadLetter:   &dead,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), &sliceSource{payloads: ps}, sink); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	want := map[string]uint64{"missing_timestamp": 1, "malformed_json": 1, "invalid_value": 1, "missing_node_id": 1}
	if fmt.Sprint(st.Rejected) != fmt.Sprint(want) {
		t.Errorf("rejected %v; want %v", st.Rejected, want)
	}
	if st.Decoded != 3 || sink.len() != 3 {
		t.Errorf("decoded %d, alerts %d; want 3 and 3", st.Decoded, sink.len())
	}
	lines := strings.Split(strings.TrimSpace(dead.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("dead letters:\n%s\nwant 4 lines", dead.String())
	}
	wantLines := []int64{2, 3, 5, 6}
	wantReasons := []string{"missing_timestamp", "malformed_json", "invalid_value", "missing_node_id"}
	for i, l := range lines {
		var d struct {
			Reason, Error, Payload string
			Line                   int64
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		if d.Reason != wantReasons[i] || d.Line != wantLines[i] || d.Payload != string(ps[wantLines[i]-1]) || d.Error == "" {
			t.Errorf("dead letter %d = %+v; want reason %s, line %d and the payload", i, d, wantReasons[i], wantLines[i])
		}
	}
}

// TestRunAckAfterSink: each batch is acknowledged exactly once, in order,
// and only after the alerts of its frames reached the sink.
func TestRunAckAfterSink(t *testing.T) {
	const n = 1000
	sink := &collect{}
	acks := &ackLog{written: sink.len}
	p, err := pipeline.New(pipeline.Config{
		Workers: 2, Decoders: 2, BatchSize: 64,
		NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), &sliceSource{payloads: payloads(n, 5), acks: acks}, sink); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, c := range acks.calls {
		total += c
		if acks.seen[i] < total {
			t.Fatalf("ack %d came when %d alerts were written; want at least %d", i, acks.seen[i], total)
		}
	}
	if total != n {
		t.Fatalf("acks cover %d frames; want %d", total, n)
	}
}

// endless yields frames until ctx is cancelled.
type endless struct{ i int }

func (s *endless) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for range max {
		b.Add("", payload(s.i, 10), 0, "endless", int64(s.i))
		s.i++
	}
	time.Sleep(time.Millisecond) // a live source's pace (fake time in synctest)
	return nil
}

func (s *endless) Close() error { return nil }

// TestRunCancelDrains: cancelling ctx stops the source; every frame already
// read is processed and written; Run returns nil with no goroutine left
// (synctest fails the test on a leak).
func TestRunCancelDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sink := &collect{}
		p, err := pipeline.New(pipeline.Config{
			Workers: 2, Decoders: 2, BatchSize: 16,
			NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx, &endless{}, sink) }()
		time.Sleep(50 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run after cancel = %v; want nil", err)
		}
		st := p.Stats()
		if st.Frames == 0 || uint64(sink.len()) != st.Frames || st.Processed != st.Frames {
			t.Fatalf("read %d frames, processed %d, wrote %d alerts; want all equal and > 0", st.Frames, st.Processed, sink.len())
		}
	})
}

// TestRunHardDeadline: a sink that never finishes cannot hold shutdown
// hostage: after the drain timeout Run returns.
func TestRunHardDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sink := &collect{delay: time.Hour}
		p, err := pipeline.New(pipeline.Config{
			Workers: 1, Decoders: 1, BatchSize: 4, DrainTimeout: 5 * time.Second,
			NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- p.Run(ctx, &endless{}, sink) }()
		time.Sleep(10 * time.Millisecond)
		cancel()
		err = <-done
		if d := time.Since(start); d < 5*time.Second || d > 6*time.Second {
			t.Fatalf("Run returned after %v; want about the 5 s drain timeout", d)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v; want the sink's cancellation error", err)
		}
	})
}

func TestRunSourceError(t *testing.T) {
	boom := errors.New("disk on fire")
	p, err := pipeline.New(pipeline.Config{NewProcessor: func(int) pipeline.Processor { return newEcho(t) }})
	if err != nil {
		t.Fatal(err)
	}
	sink := &collect{}
	err = p.Run(context.Background(), &sliceSource{payloads: payloads(100, 3), err: boom}, sink)
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v; want it to wrap %v", err, boom)
	}
}

// failingWriter fails every write once it has taken n bytes.
type failingWriter struct {
	n   int
	err error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

// TestRunDeadLetterError: dead letters were asked for, so a failed write (a
// closed pipe, a full disk) ends the run with that error instead of dropping
// them, and the run ends although the source has more.
func TestRunDeadLetterError(t *testing.T) {
	boom := errors.New("broken pipe")
	p, err := pipeline.New(pipeline.Config{
		BatchSize:    8,
		NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
		DeadLetter:   &failingWriter{n: 100 << 10, err: boom},
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := make([][]byte, 100000) // about 2 MB of dead letters
	for i := range bad {
		bad[i] = []byte(`not json`)
	}
	src := &sliceSource{payloads: bad}
	err = p.Run(context.Background(), src, &collect{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "dead letters") {
		t.Fatalf("Run = %v; want it to wrap %v and name the dead letters", err, boom)
	}
	if st := p.Stats(); st.Frames >= uint64(len(bad)) {
		t.Errorf("read all %d frames after the dead-letter writer failed; want the run to stop", st.Frames)
	}
}

func TestRunSinkError(t *testing.T) {
	boom := errors.New("collector down")
	p, err := pipeline.New(pipeline.Config{BatchSize: 8, NewProcessor: func(int) pipeline.Processor { return newEcho(t) }})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background(), &sliceSource{payloads: payloads(10000, 3)}, &collect{err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v; want it to wrap %v", err, boom)
	}
}

func TestRunOnce(t *testing.T) {
	p, err := pipeline.New(pipeline.Config{NewProcessor: func(int) pipeline.Processor { return newEcho(t) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), &sliceSource{}, &collect{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), &sliceSource{}, &collect{}); err == nil {
		t.Fatal("second Run succeeded; want an error")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := pipeline.New(pipeline.Config{}); err == nil {
		t.Error("New without NewProcessor succeeded")
	}
	_, err := pipeline.New(pipeline.Config{
		NewProcessor: func(int) pipeline.Processor { return nil },
		Decoder:      pipeline.DecoderConfig{MaxPayload: -1},
	})
	if err == nil || !strings.Contains(err.Error(), "max_payload") {
		t.Errorf("New with a negative max payload = %v; want an error naming max_payload", err)
	}
}

// TestPaced: pacing at 100× real time spreads 10 s of event time over about
// 100 ms, and hands every frame on.
func TestPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ps [][]byte
		for i := range 11 {
			ps = append(ps, fmt.Appendf(nil, `{"timestamp":%d,"node_id":"d","data":{"p":1}}`, 1763719200+i))
		}
		dec := pipeline.NewDecoder(pipeline.DecoderConfig{})
		src := pipeline.Paced(&sliceSource{payloads: ps}, 100, dec.PeekTime)
		start := time.Now()
		var b pipeline.FrameBatch
		var got atomic.Int64
		for {
			err := src.ReadBatch(context.Background(), &b, 4)
			got.Store(int64(b.Len()))
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("paced replay took %v; want 100ms", d)
		}
		if got.Load() != 11 {
			t.Errorf("got %d frames; want 11", got.Load())
		}
	})
}

// varied yields batches of varying sizes, as a live source does.
type varied struct {
	sizes []int
	i, n  int
}

func (s *varied) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if s.i >= len(s.sizes) {
		return io.EOF
	}
	for range min(s.sizes[s.i], max) {
		b.Add("", payload(s.n, 7), 0, "varied", int64(s.n))
		s.n++
	}
	s.i++
	return nil
}

func (s *varied) Close() error { return nil }

// TestRunVaryingBatchSizes: batches that grow and shrink (live sources hand
// over what they have) are all processed; a reused batch must grow every
// per-frame slice it needs.
func TestRunVaryingBatchSizes(t *testing.T) {
	// One batch in flight, so the same batch is reused, and sizes growing
	// one at a time, which walks through every capacity rounding step.
	var sizes []int
	for n := 1; n <= 64; n++ {
		sizes = append(sizes, n)
	}
	for i := range 200 {
		sizes = append(sizes, 1+(i*37)%64)
	}
	sink := &collect{}
	p, err := pipeline.New(pipeline.Config{
		Workers: 2, Decoders: 2, BatchSize: 64, InFlight: 1,
		NewProcessor: func(int) pipeline.Processor { return newEcho(t) },
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &varied{sizes: sizes}
	if err := p.Run(context.Background(), src, sink); err != nil {
		t.Fatal(err)
	}
	if sink.len() != src.n {
		t.Fatalf("%d alerts for %d frames; want one each", sink.len(), src.n)
	}
}

// quietAfter is a live source: it delivers n frames (one per device d0..d2 in
// turn, every 100 ms, stamped with their arrival time), then nothing until ctx
// is done.
type quietAfter struct {
	n, i int
}

func (s *quietAfter) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if s.i >= s.n {
		<-ctx.Done()
		return ctx.Err()
	}
	time.Sleep(100 * time.Millisecond)
	now := time.Now()
	b.Add("", fmt.Appendf(nil, `{"timestamp":%d,"node_id":"d%d","data":{"p":1}}`, now.UnixMilli(), s.i%3), now.UnixNano(), "live", 0)
	s.i++
	return nil
}

func (s *quietAfter) Close() error { return nil }

// silence is a Ticker: it raises one alert per device that has not been seen
// for 2 s of stream clock.
type silence struct {
	last  map[string]int64
	fired map[string]bool
}

func (s *silence) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	s.last[r.Device] = r.Arrival
	return out
}

func (s *silence) Devices() int { return len(s.last) }

func (s *silence) Tick(_, clock int64, out []pipeline.Alert) []pipeline.Alert {
	var devs []string
	for d, t := range s.last {
		if clock-t >= 2e9 && !s.fired[d] {
			devs = append(devs, d)
		}
	}
	slices.Sort(devs)
	for _, d := range devs {
		s.fired[d] = true
		out = append(out, pipeline.Alert{Device: d, Kind: "traffic.silence", State: pipeline.Firing, Time: clock})
	}
	return out
}

// TestTickLiveSilence: with Tick set, silence is noticed on the wall clock
// although no message arrives; alerts of several shards come out ordered by
// device.
func TestTickLiveSilence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sink := &collect{}
		p, err := pipeline.New(pipeline.Config{
			Workers: 3, Decoders: 2, Tick: 250 * time.Millisecond,
			NewProcessor: func(int) pipeline.Processor { return &silence{last: map[string]int64{}, fired: map[string]bool{}} },
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx, &quietAfter{n: 9}, sink) }()
		time.Sleep(2 * time.Second) // 0.9 s of messages, then quiet
		if n := sink.len(); n != 0 {
			t.Fatalf("%d alerts after 1.1 s of quiet; want none yet", n)
		}
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if sink.len() != 3 {
			t.Fatalf("got %d alerts; want one silence alert per device (3): %+v", sink.len(), sink.alerts)
		}
		for i, a := range sink.alerts {
			if want := fmt.Sprintf("d%d", i); a.Device != want {
				t.Errorf("alert %d for %s; want %s (ordered by device)", i, a.Device, want)
			}
			// Device d(i) was last seen at 0.1·(7+i) s; silence is noticed at
			// the first tick 2 s after that.
			last := start.Add(time.Duration(7+i) * 100 * time.Millisecond)
			if at := time.Unix(0, a.Time); at.Before(last.Add(2*time.Second)) || at.After(last.Add(2500*time.Millisecond)) {
				t.Errorf("%s silence at %v after start; want within a tick of %v", a.Device, at.Sub(start), last.Add(2*time.Second).Sub(start))
			}
		}
	})
}

// TestReplayArrivalIsStreamClock: in replay a reading arrives when the stream
// reaches it: the latest event time seen so far, in stream order.
func TestReplayArrivalIsStreamClock(t *testing.T) {
	times := []int64{100, 300, 200, 400, 350}
	var ps [][]byte
	for i, ts := range times {
		ps = append(ps, fmt.Appendf(nil, `{"timestamp":%d,"node_id":"d%d","data":{"p":1}}`, 1763719200000+ts, i))
	}
	got := map[string]int64{}
	var mu sync.Mutex
	p, err := pipeline.New(pipeline.Config{Workers: 2, BatchSize: 2, NewProcessor: func(int) pipeline.Processor {
		return procFunc(func(r *pipeline.Reading) {
			mu.Lock()
			got[r.Device] = (r.Arrival - 1763719200000*1e6) / 1e6
			mu.Unlock()
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), &sliceSource{payloads: ps}, &collect{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"d0": 100, "d1": 300, "d2": 300, "d3": 400, "d4": 400}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("arrival (ms) %v; want %v", got, want)
	}
}

type procFunc func(r *pipeline.Reading)

func (f procFunc) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	f(r)
	return out
}

func (f procFunc) Devices() int { return 0 }

// rejLog records readings and rejections of known devices, in order.
type rejLog struct{ events *[]string }

func (l rejLog) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	*l.events = append(*l.events, fmt.Sprintf("%s:ok@%d", r.Device, r.Seq))
	return out
}
func (l rejLog) Devices() int { return 0 }
func (l rejLog) Reject(r *pipeline.Reading, reason pipeline.Reason, out []pipeline.Alert) []pipeline.Alert {
	*l.events = append(*l.events, fmt.Sprintf("%s:%s@%d", r.Device, reason, r.Seq))
	return out
}

// TestRejectedFramesOfKnownDevices: a rejected frame whose node_id was read
// reaches that device's shard, in stream order with its readings; frames
// without a device do not.
func TestRejectedFramesOfKnownDevices(t *testing.T) {
	ps := [][]byte{
		[]byte(`{"timestamp":1763719200,"node_id":"a","data":{"p":1}}`),
		[]byte(`{"timestamp":1763719201,"node_id":"a","data":{"p":NaN}}`),
		[]byte(`{"node_id":"a","data":{"p":1}}`),
		[]byte(`not json`),
		[]byte(`{"timestamp":1763719203,"node_id":"a","data":{"p":2}}`),
	}
	var events []string
	p, err := pipeline.New(pipeline.Config{Workers: 1, BatchSize: 2, NewProcessor: func(int) pipeline.Processor { return rejLog{&events} }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), &sliceSource{payloads: ps}, &collect{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"a:ok@0", "a:invalid_value@1", "a:missing_timestamp@2", "a:ok@4"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events %v; want %v", events, want)
	}
	if st := p.Stats(); st.Processed != 2 {
		t.Errorf("processed %d; want 2 (rejections are not readings)", st.Processed)
	}
}

// newcomers counts first sightings per shard.
type newcomers struct {
	seen map[string]bool
	n    int
}

func (c *newcomers) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	if !c.seen[r.Device] {
		c.seen[r.Device] = true
		c.n++
	}
	return out
}
func (c *newcomers) Devices() int { return len(c.seen) }
func (c *newcomers) NewDevices() int {
	n := c.n
	c.n = 0
	return n
}

// TestFleetSeesNewDevicesWhateverTheSharding: the fleet observer is
// called at every frame that brought new devices, at the stream clock
// there, and the calls are the same for any number of workers and any
// batch size; every batch also ends with a call at its clock.
func TestFleetSeesNewDevicesWhateverTheSharding(t *testing.T) {
	var want []string
	for _, c := range []struct{ workers, batch int }{{1, 100}, {2, 100}, {5, 100}, {1, 7}, {3, 512}} {
		var got []string
		ends := 0
		p, err := pipeline.New(pipeline.Config{
			Workers: c.workers, BatchSize: c.batch,
			NewProcessor: func(int) pipeline.Processor { return &newcomers{seen: map[string]bool{}} },
			Fleet: func(clock int64, n int, out []pipeline.Alert) []pipeline.Alert {
				if n > 0 {
					got = append(got, fmt.Sprintf("%d@%d", n, clock))
				} else {
					ends++
				}
				return out
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(context.Background(), &sliceSource{payloads: payloads(1000, 137)}, &collect{}); err != nil {
			t.Fatal(err)
		}
		if batches := (1000 + c.batch - 1) / c.batch; ends < batches {
			t.Errorf("%+v: %d calls at a batch's end; want one per batch (%d)", c, ends, batches)
		}
		if want == nil {
			want = got
			if len(want) != 137 || !strings.HasPrefix(want[0], "1@") {
				t.Fatalf("%+v: calls with new devices %v; want 137 of one each", c, want)
			}
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%+v: %v; want %v", c, got, want)
		}
	}
}

func TestStatsAlertsByKind(t *testing.T) {
	st := pipeline.Stats{Alerts: map[string]uint64{"thermal/firing": 3, "thermal/resolved": 2, "overpressure/resolved": 1, "traffic.flood/firing": 4}}
	kinds, firing, resolved := st.AlertsByKind()
	if fmt.Sprint(kinds) != "[overpressure thermal traffic.flood]" {
		t.Errorf("kinds %v; want them sorted, each once", kinds)
	}
	if firing["thermal"] != 3 || resolved["thermal"] != 2 || firing["overpressure"] != 0 || resolved["overpressure"] != 1 || firing["traffic.flood"] != 4 {
		t.Errorf("firing %v, resolved %v", firing, resolved)
	}
}

// arrivals is a Processor and Ticker recording what the pipeline tells it.
type arrivals struct {
	mu             sync.Mutex
	seqs, arrivals []int64
	starts         []int64
}

func (a *arrivals) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seqs = append(a.seqs, int64(r.Seq))
	a.arrivals = append(a.arrivals, r.Arrival)
	return out
}

func (a *arrivals) Devices() int { return 0 }

func (a *arrivals) Tick(start, clock int64, out []pipeline.Alert) []pipeline.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starts = append(a.starts, start)
	return out
}

// TestResume: a run continued from a Position numbers frames on, keeps the
// stream's start and never moves its clock back; Position reports where
// the run ended, ready for the next.
func TestResume(t *testing.T) {
	first := payload(0, 1) // event time 1763719200000 ms
	firstT := int64(1763719200000) * 1e6
	resume := pipeline.Position{Start: firstT - 3600e9, Clock: firstT + 60e9, Seq: 1000}
	rec := &arrivals{}
	pl, err := pipeline.New(pipeline.Config{Workers: 1, Decoders: 1, Resume: resume,
		NewProcessor: func(int) pipeline.Processor { return rec }})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Run(context.Background(), &sliceSource{payloads: [][]byte{first, payload(1, 1)}}, &collect{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.seqs, []int64{1000, 1001}) {
		t.Errorf("frame numbers: got %v; want 1000, 1001 (continuing the stream)", rec.seqs)
	}
	if !slices.Equal(rec.arrivals, []int64{resume.Clock, resume.Clock}) {
		t.Errorf("arrivals: got %v; want the restored clock %d (the stream was already past these times)", rec.arrivals, resume.Clock)
	}
	if len(rec.starts) == 0 || rec.starts[0] != resume.Start {
		t.Errorf("ticked with start %v; want the restored start %d", rec.starts, resume.Start)
	}
	if got := pl.Position(); got != (pipeline.Position{Start: resume.Start, Clock: resume.Clock, Seq: 1002}) {
		t.Errorf("Position: got %+v; want start and clock kept, next frame 1002", got)
	}
}

// silencer is a Processor and Ticker that flags a device silent for more
// than gap at the stream clock, the way detectors.Engine's traffic.silence
// does: the alert's time is the clock at which the Tick noticed it.
type silencer struct {
	gap    int64
	last   map[string]int64
	silent map[string]bool
}

func (s *silencer) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	if s.silent[r.Device] {
		delete(s.silent, r.Device)
		out = append(out, pipeline.Alert{Device: r.Device, Kind: "silence", State: pipeline.Resolved, Time: r.Arrival, Seq: r.Seq})
	}
	s.last[r.Device] = r.Arrival
	return out
}

func (s *silencer) Devices() int { return len(s.last) }

func (s *silencer) Tick(start, clock int64, out []pipeline.Alert) []pipeline.Alert {
	n := len(out)
	for d, t := range s.last {
		if !s.silent[d] && clock-t > s.gap {
			s.silent[d] = true
			out = append(out, pipeline.Alert{Device: d, Kind: "silence", State: pipeline.Firing, Time: clock})
		}
	}
	slices.SortFunc(out[n:], func(x, y pipeline.Alert) int { return strings.Compare(x.Device, y.Device) })
	return out
}

// TestTicksDoNotDependOnBatching: a Ticker's decisions and their times are
// the same whether the stream is read one frame at a time (live, a quiet
// broker), in batches of any size (replay) or over any number of shards.
// Time is judged at every frame that moves the clock; judged once per
// batch, the silences below would be noticed at each batch's last frame.
func TestTicksDoNotDependOnBatching(t *testing.T) {
	const t0 = int64(1763719200000)
	var ps [][]byte
	for i := range 600 { // 6 devices every 100 ms for 60 s; gaps in three of them
		ms := t0 + int64(i)*100
		for d := range 6 {
			sec := (ms - t0) / 1000
			if (d == 1 && sec >= 10 && sec < 17) || (d == 4 && sec >= 30 && sec < 33) || (d == 5 && sec >= 40) {
				continue
			}
			ps = append(ps, fmt.Appendf(nil, `{"timestamp":%d,"node_id":"dev-%d","data":{"p":1}}`, ms+int64(d), d))
		}
	}
	run := func(workers, batch int) []pipeline.Alert {
		sink := &collect{}
		p, err := pipeline.New(pipeline.Config{Workers: workers, Decoders: 2, BatchSize: batch,
			NewProcessor: func(int) pipeline.Processor {
				return &silencer{gap: 2e9, last: map[string]int64{}, silent: map[string]bool{}}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(context.Background(), &sliceSource{payloads: ps}, sink); err != nil {
			t.Fatal(err)
		}
		return sink.alerts
	}
	want := run(1, 1)
	if len(want) != 5 { // three silences fire, two resolve (dev-5 stays silent)
		t.Fatalf("one frame per batch: %d alerts %+v; want 3 firing and 2 resolved", len(want), want)
	}
	// Noticed at the first frame past each deadline (frames are 1 ms
	// apart there): dev-1 last spoke at 9.901 s, dev-4 at 29.904 s, dev-5
	// at 39.905 s.
	for i, at := range []int64{11902, 31905, 42000} {
		if got := want[[]int{0, 2, 4}[i]]; got.State != pipeline.Firing || got.Time != (t0+at)*1e6 {
			t.Errorf("silence %d: %s %s at %d ms; want firing at %d ms", i, got.Device, got.State, got.Time/1e6-t0, at)
		}
	}
	for _, tc := range []struct{ workers, batch int }{{1, 7}, {3, 1}, {3, 64}, {2, 512}} {
		got := run(tc.workers, tc.batch)
		if !slices.EqualFunc(got, want, func(x, y pipeline.Alert) bool {
			return x.Device == y.Device && x.State == y.State && x.Time == y.Time && x.Seq == y.Seq
		}) {
			t.Errorf("workers=%d batch=%d: alerts\n%+v\nwant (one frame per batch)\n%+v", tc.workers, tc.batch, got, want)
		}
	}
}

// clockSource yields its payloads in one batch marked 10, then a batch with
// no frame that moves the stream clock to clock (a tick message) marked 11.
type clockSource struct {
	payloads [][]byte
	clock    int64
	step     int
}

func (s *clockSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	s.step++
	switch s.step {
	case 1:
		for i, p := range s.payloads {
			b.Add("", p, 0, "test", int64(i+1))
		}
		b.Mark = 10
		return nil
	case 2:
		b.Clock, b.Mark = s.clock, 11
		return nil
	}
	return io.EOF
}

func (s *clockSource) Close() error { return nil }

// TestSourceClockAndMark: a source's own clock (a tick message in the
// stream) makes Tickers judge the time passed although no frame came, and
// the source's mark of the last batch read is the run's Position.Mark.
func TestSourceClockAndMark(t *testing.T) {
	const t0 = int64(1763719200000)
	src := &clockSource{payloads: [][]byte{
		fmt.Appendf(nil, `{"timestamp":%d,"node_id":"a","data":{"p":1}}`, t0),
		fmt.Appendf(nil, `{"timestamp":%d,"node_id":"b","data":{"p":1}}`, t0+500),
	}, clock: (t0 + 10_000) * 1e6}
	sink := &collect{}
	p, err := pipeline.New(pipeline.Config{Workers: 2, NewProcessor: func(int) pipeline.Processor {
		return &silencer{gap: 2e9, last: map[string]int64{}, silent: map[string]bool{}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), src, sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.alerts) != 2 || sink.alerts[0].Device != "a" || sink.alerts[1].Device != "b" {
		t.Fatalf("alerts %+v; want a and b silent at the source's clock", sink.alerts)
	}
	for _, a := range sink.alerts {
		if a.Time != src.clock || a.State != pipeline.Firing {
			t.Errorf("%s: %s at %d; want firing at the source's clock %d", a.Device, a.State, a.Time, src.clock)
		}
	}
	if pos := p.Position(); pos.Mark != 11 || pos.Clock != src.clock || pos.Seq != 2 {
		t.Errorf("Position %+v; want mark 11, clock %d, next frame 2", pos, src.clock)
	}
	for _, pos := range []pipeline.Position{{Start: 1, Clock: 2, Seq: 3}, {Start: 1, Clock: 2, Seq: 3, Mark: 1 << 40}} {
		got, err := pipeline.DecodePosition(pipeline.AppendPosition(nil, pos))
		if err != nil || got != pos {
			t.Errorf("position %+v round trip: %+v, %v", pos, got, err)
		}
	}
}
