package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Processor judges the readings of the devices routed to one shard and
// returns the alert transitions they cause, appended to out. Each shard has its
// own Processor, called from one goroutine only, so it owns its devices' state
// without locks. detectors.Engine implements it.
type Processor interface {
	Process(r *Reading, out []Alert) []Alert
	// Devices reports how many devices the processor tracks.
	Devices() int
}

// Ticker is implemented by processors that judge the passage of time itself,
// such as a device falling silent. Tick is called on the shard's goroutine
// after each batch with the stream clock (Unix ns): the latest arrival time
// seen, which is the receive time live and the latest event time in replay,
// so replay and live make the same decisions. Alerts it returns must be in a
// deterministic order; the pipeline gives them the Seq of the batch's last
// frame and orders them after that frame's own alerts by device.
type Ticker interface {
	// Tick judges time passing. start is the stream's start: the arrival
	// time of its first frame (the same for every shard).
	Tick(start, clock int64, out []Alert) []Alert
}

// Rejecter is implemented by processors that want to know about rejected
// frames whose device is known (the decoder had read its node_id), for
// example to notice a device sending more and more malformed payloads. Reject
// is called on the shard's goroutine in stream order with the readings; r has
// Device, Topic, Seq, Arrival and Size set, and nothing else is reliable.
type Rejecter interface {
	Reject(r *Reading, reason Reason, out []Alert) []Alert
}

// Newcomer is implemented by processors that count devices seen for the first
// time. The pipeline asks after every reading, and tells the fleet observer
// at which frames (and stream clocks) devices were new.
type Newcomer interface {
	// NewDevices returns the devices first seen since the last call.
	NewDevices() int
}

// FleetFunc judges the fleet as a whole, in stream order, on the merge
// stage: it is called at every frame that brought devices seen for the
// first time (from Newcomer processors), with the stream clock after that
// frame and their number, and once at the end of every batch with 0, so its
// decisions do not depend on batching or sharding. It appends alerts to
// out; they are ordered after the batch's other alerts.
type FleetFunc func(clock int64, newDevices int, out []Alert) []Alert

// Tap observes the readings of one shard without taking part in judging
// them (an evaluation collector, a report recorder). Observe is called on
// the shard's goroutine for each reading routed there, just before the
// shard's processor sees it; it must not keep r. A tap changes no alert,
// and unlike a wrapper around the processor it needs to forward none of
// the processor's other hooks.
type Tap interface {
	Observe(r *Reading)
}

// Evictor is implemented by processors that cap the devices they track.
type Evictor interface {
	// Evictions reports how many devices were forgotten because of the cap.
	Evictions() uint64
}

// Config configures a Pipeline. Zero fields take their defaults.
type Config struct {
	// Workers is the number of shard workers (default GOMAXPROCS). Devices are
	// routed to shards by a hash of their ID; the output does not depend on it.
	Workers int
	// Decoders is the number of parallel decode workers (default GOMAXPROCS).
	Decoders int
	// BatchSize is the most frames handed between stages at once (default 512).
	BatchSize int
	// InFlight is the number of batches in flight between source and sink
	// (default 4 per worker plus 4). It bounds memory; the source waits for a
	// free batch, which is how replay applies backpressure.
	InFlight int
	// Decoder configures decoding.
	Decoder DecoderConfig
	// Fleet, when set, judges the fleet as a whole after each batch.
	Fleet FleetFunc
	// NewProcessor makes the processor of shard i. Required.
	NewProcessor func(shard int) Processor
	// Taps, when set, makes the taps of shard i (see Tap), called once per
	// shard on that shard's goroutine.
	Taps func(shard int) []Tap
	// DeadLetter, when set, receives each rejected frame as a JSON line with
	// its reason.
	DeadLetter io.Writer
	// Tick, when positive, makes the pipeline advance the stream clock with
	// the wall clock when the source has nothing for that long, so that
	// silence is noticed live although no message arrives. Only for live
	// sources (their frames carry an arrival time); 0 for replay.
	Tick time.Duration
	// DrainTimeout bounds the drain after ctx is cancelled (default 10 s).
	DrainTimeout time.Duration
	// Resume continues a stream from where a snapshot left it: its start,
	// its clock and the number of its next frame (see Position).
	Resume Position
	// FleetSnapshot, when set, returns the fleet judge's state for a
	// snapshot (see Snapshot). It is called on the merge stage's goroutine,
	// the one that calls Fleet.
	FleetSnapshot func() []byte
	// Logger receives stage logs (default: discard).
	Logger *slog.Logger
	// Metrics receives the pipeline's metrics (default: a private set).
	Metrics *metrics.Set
}

func (c *Config) setDefaults() {
	n := runtime.GOMAXPROCS(0)
	if c.Workers <= 0 {
		c.Workers = n
	}
	if c.Decoders <= 0 {
		c.Decoders = n
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 512
	}
	if c.InFlight <= 0 {
		c.InFlight = 4*max(c.Workers, c.Decoders) + 4
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
}

// batch is the unit of work that flows through the stages: frames, their
// decoded readings, per-shard routing and the alerts produced. Batches are
// recycled through a free list.
type batch struct {
	frames   FrameBatch
	readings []Reading
	errs     []error // per frame; nil when decoded
	route    [][]int32
	alerts   [][]Alert // per shard
	merged   []Alert
	decoded  chan struct{} // closed-once signal (buffered 1) that decoding is done
	shards   chan struct{} // one token per shard when done
	seq      uint64        // Seq of the first frame
	// clock is the stream clock at the end of the batch (Unix ns): the latest
	// arrival time seen so far. Ticking processors judge silence against it.
	clock int64
	// clock0 is the stream clock before the batch.
	clock0 int64
	// start is the stream's start: the arrival time of its first frame.
	start int64
	// newDevices lists, per shard, the frames at which devices were first
	// seen in the batch, with the stream clock there.
	newDevices [][]newcomers
	// good counts, per shard, the readings routed (route also holds
	// rejected frames of known devices, as -i-1).
	good []int
	// tick marks a batch with no frames that only advances the clock (live
	// sources, when nothing arrives).
	tick bool
	// mark is the source's FrameBatch.Mark at a barrier.
	mark uint64
	// barrier, when set, makes the batch (with no frames) a barrier for a
	// snapshot or a reconfiguration: it neither ticks nor judges the fleet.
	barrier *barrier
}

// Pipeline is the staged detection pipeline. A Pipeline runs once.
type Pipeline struct {
	cfg Config
	log *slog.Logger

	fleetNext []int // judgeFleet's cursors, reused (merge stage only)

	free    chan *batch
	decodeQ chan *batch
	orderQ  chan *batch
	shardQ  []chan *batch
	mergeQ  chan *batch

	framesIn  *metrics.Counter
	bytesIn   *metrics.Counter
	decoded   *metrics.Counter
	rejected  [numReasons]*metrics.Counter
	processed *metrics.Counter
	alertsOut *metrics.Counter
	latency   *metrics.Histogram
	devices   []atomic.Int64
	evicted   []atomic.Uint64

	alertMu       sync.Mutex
	alertCounts   map[alertKey]uint64
	alertCounters map[alertMetric]*metrics.Counter

	started, finished time.Time
	ran               atomic.Bool
	clock, start      int64         // the stream clock and start; the dispatcher's only
	next              atomic.Uint64 // the number of the next frame, once read has ended
	mark              atomic.Uint64 // the last batch's FrameBatch.Mark, once read has ended
	snapReq           chan *snapRequest
	readDone          chan struct{} // closed when the read stage ends
}

type alertKey struct {
	kind  string
	state AlertState
}

type alertMetric struct {
	kind     string
	severity Severity
	state    AlertState
}

// New builds a pipeline.
func New(cfg Config) (*Pipeline, error) {
	cfg.setDefaults()
	if cfg.NewProcessor == nil {
		return nil, errors.New("pipeline: Config.NewProcessor is required")
	}
	dc := cfg.Decoder
	if dc.MaxPayload == 0 {
		dc.MaxPayload = DefaultDecoderConfig().MaxPayload
	}
	if dc.MaxSignals == 0 {
		dc.MaxSignals = DefaultDecoderConfig().MaxSignals
	}
	if err := dc.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: decoder: %w", err)
	}
	ms := cfg.Metrics
	p := &Pipeline{
		cfg:         cfg,
		log:         cfg.Logger,
		free:        make(chan *batch, cfg.InFlight),
		decodeQ:     make(chan *batch, cfg.InFlight),
		orderQ:      make(chan *batch, cfg.InFlight),
		shardQ:      make([]chan *batch, cfg.Workers),
		mergeQ:      make(chan *batch, cfg.InFlight),
		framesIn:    ms.NewCounter(`vigil_frames_received_total`),
		bytesIn:     ms.NewCounter(`vigil_frames_received_bytes_total`),
		decoded:     ms.NewCounter(`vigil_frames_decoded_total`),
		processed:   ms.NewCounter(`vigil_readings_processed_total`),
		alertsOut:   ms.NewCounter(`vigil_alerts_emitted_total`),
		latency:     ms.NewHistogram(`vigil_processing_latency_seconds`),
		devices:     make([]atomic.Int64, cfg.Workers),
		evicted:     make([]atomic.Uint64, cfg.Workers),
		alertCounts: map[alertKey]uint64{},

		alertCounters: map[alertMetric]*metrics.Counter{},

		clock:    cfg.Resume.Clock,
		start:    cfg.Resume.Start,
		snapReq:  make(chan *snapRequest),
		readDone: make(chan struct{}),
	}
	for _, r := range Reasons() {
		p.rejected[r] = ms.NewCounter(fmt.Sprintf(`vigil_frames_rejected_total{reason=%q}`, r.String()))
	}
	for i := range p.shardQ {
		p.shardQ[i] = make(chan *batch, cfg.InFlight)
	}
	queue := func(stage string, ch chan *batch) {
		ms.NewGauge(fmt.Sprintf(`vigil_stage_queue_batches{stage=%q}`, stage), func() float64 { return float64(len(ch)) })
	}
	queue("decode", p.decodeQ)
	queue("dispatch", p.orderQ)
	queue("merge", p.mergeQ)
	for i, ch := range p.shardQ {
		queue(fmt.Sprintf("shard-%d", i), ch)
	}
	ms.NewGauge(`vigil_devices_tracked`, func() float64 { return float64(p.Devices()) })
	ms.NewGauge(`vigil_devices_evicted_total`, func() float64 { return float64(p.Evictions()) })
	for range cfg.InFlight {
		p.free <- &batch{
			route:      make([][]int32, cfg.Workers),
			good:       make([]int, cfg.Workers),
			newDevices: make([][]newcomers, cfg.Workers),
			alerts:     make([][]Alert, cfg.Workers),
			decoded:    make(chan struct{}, 1),
			shards:     make(chan struct{}, cfg.Workers),
		}
	}
	return p, nil
}

// Run moves every frame of src through the stages and writes the alerts to
// sink, in stream order, until src is exhausted or ctx is cancelled. After ctx
// is cancelled the source stops and the frames already read are drained for
// up to DrainTimeout. Run closes neither src nor sink. It returns the first
// source or sink error; an exhausted source is not an error.
func (p *Pipeline) Run(ctx context.Context, src Source, sink Sink) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("pipeline: Run called twice")
	}
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.cfg.DrainTimeout, cancelHard)
		context.AfterFunc(hard, func() { t.Stop() })
	})
	defer stop()

	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancelHard()
	}

	p.started = time.Now()
	var wg sync.WaitGroup
	pre, _ := src.(DecodedSource)
	wg.Go(func() {
		if err := p.read(ctx, hard, src, pre); err != nil {
			fail(err)
		}
	})
	var decoders sync.WaitGroup
	for range p.cfg.Decoders {
		decoders.Go(func() { p.decode(pre) })
	}
	wg.Go(func() {
		if err := p.dispatch(hard); err != nil {
			fail(err)
		}
	})
	for i := range p.cfg.Workers {
		wg.Go(func() { p.work(hard, i, p.cfg.NewProcessor(i)) })
	}
	wg.Go(func() {
		if err := p.merge(hard, sink); err != nil {
			fail(err)
		}
	})
	wg.Wait()
	decoders.Wait()
	p.finished = time.Now()
	if firstErr == nil && hard.Err() != nil && ctx.Err() != nil {
		p.log.Warn("drain deadline passed; in-flight frames were dropped", "timeout", p.cfg.DrainTimeout)
	}
	return firstErr
}

// inlineDecode is the largest batch the source stage decodes itself
// instead of handing it to a decoder: live batches at ordinary rates are a
// few frames, and a hand-off (a goroutine woken, then the dispatcher woken by
// it) costs more than decoding them (~0.5 µs a frame).
const inlineDecode = 64

// read is the source stage: it fills batches from src and hands each to the
// decoders (or decodes a small one itself) and, in order, to the dispatcher.
func (p *Pipeline) read(ctx, hard context.Context, src Source, pre DecodedSource) error {
	defer close(p.decodeQ)
	defer close(p.orderQ)
	seq, mark := p.cfg.Resume.Seq, p.cfg.Resume.Mark
	defer close(p.readDone)
	defer func() { p.next.Store(seq); p.mark.Store(mark) }()
	var tick tickWait
	defer tick.stop()
	dec := NewDecoder(p.cfg.Decoder)
	for {
		var b *batch
		select {
		case b = <-p.free:
		case <-hard.Done():
			return nil
		}
		b.frames.Reset()
		b.tick, b.clock = false, 0
		select {
		case req := <-p.snapReq:
			b.seq, b.mark = seq, mark
			b.barrier = &barrier{req: req, parts: make([]memRecords, p.cfg.Workers), errs: make([]error, p.cfg.Workers)}
			if !p.handOff(hard, b, nil, nil) {
				req.done <- snapResult{err: ErrNotRunning}
				return nil
			}
			continue
		default:
		}
		err := p.readBatch(ctx, src, b, &tick)
		if b.frames.Mark != 0 {
			mark = b.frames.Mark
		}
		if b.tick {
			b.seq, b.clock = seq, time.Now().UnixNano()
			if !p.handOff(hard, b, dec, pre) {
				return nil
			}
			continue
		}
		if n := b.frames.Len(); n > 0 || b.frames.Clock != 0 {
			b.seq = seq
			seq += uint64(n)
			p.framesIn.AddInt64(int64(n))
			p.bytesIn.AddInt64(int64(b.frames.Bytes()))
			if !p.handOff(hard, b, dec, pre) {
				return nil
			}
		} else {
			p.free <- b // cannot block: we took it from there
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case ctx.Err() != nil:
			return nil // soft stop: drain what was read
		default:
			return fmt.Errorf("pipeline: source: %w", err)
		}
	}
}

// handOff gives a read batch to the decoders and, in order, to the
// dispatcher; with dec set, a batch of at most inlineDecode frames is
// decoded here instead. It reports false when hard was cancelled first.
func (p *Pipeline) handOff(hard context.Context, b *batch, dec *Decoder, pre DecodedSource) bool {
	if dec != nil && len(b.frames.Frames) <= inlineDecode {
		p.decodeBatch(dec, pre, b)
	} else {
		select {
		case p.decodeQ <- b:
		case <-hard.Done():
			return false
		}
	}
	select {
	case p.orderQ <- b:
	case <-hard.Done():
		return false
	}
	return true
}

// readBatch reads one batch from src. With a tick configured, a read that
// waits until the tick's deadline returns a tick batch instead (b.tick).
func (p *Pipeline) readBatch(ctx context.Context, src Source, b *batch, tick *tickWait) error {
	if p.cfg.Tick <= 0 {
		return src.ReadBatch(ctx, &b.frames, p.cfg.BatchSize)
	}
	err := src.ReadBatch(tick.context(ctx, p.cfg.Tick), &b.frames, p.cfg.BatchSize)
	if b.frames.Len() == 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		b.tick = true
		tick.stop()
		return nil
	}
	return err
}

// tickWait is the context live reads wait under: it expires one tick after
// it was made, and a new one is made only then, so that reading costs no
// context, allocation and timer per batch (at ordinary rates a batch is a
// few messages). A read may therefore end in a tick batch less than a tick
// after it began, at most once per tick; a tick batch only advances the
// stream clock, which the detectors judge silence by.
type tickWait struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (t *tickWait) context(parent context.Context, d time.Duration) context.Context {
	if t.ctx == nil {
		t.ctx, t.cancel = context.WithTimeout(parent, d)
	}
	return t.ctx
}

func (t *tickWait) stop() {
	if t.cancel != nil {
		t.cancel()
	}
	t.ctx, t.cancel = nil, nil
}

// decode is a decode worker: it decodes a batch's frames (or takes them from
// pre, already decoded) and routes each reading to its shard.
func (p *Pipeline) decode(pre DecodedSource) {
	dec := NewDecoder(p.cfg.Decoder)
	for b := range p.decodeQ {
		p.decodeBatch(dec, pre, b)
	}
}

// decodeBatch decodes a batch's frames (or takes them from pre) and routes
// each reading to its shard, then marks the batch decoded.
func (p *Pipeline) decodeBatch(dec *Decoder, pre DecodedSource, b *batch) {
	n := uint64(p.cfg.Workers)
	frames := b.frames.Frames
	// Grow each slice on its own: slices.Grow may round capacities
	// differently, and live batches vary in size.
	if cap(b.readings) < len(frames) {
		// Every slot up to the capacity has been set up before; new
		// slots get room for four signals each from one array, so they
		// do not grow by appends one at a time on first use.
		all := b.readings[:cap(b.readings)]
		old := len(all)
		all = slices.Grow(all, len(frames)-old)
		all = all[:cap(all)]
		vals := make([]Value, 4*(len(all)-old))
		for i := old; i < len(all); i++ {
			j := 4 * (i - old)
			all[i].Values = vals[j : j : j+4]
		}
		b.readings = all
	}
	if cap(b.errs) < len(frames) {
		b.errs = slices.Grow(b.errs[:0], len(frames))
	}
	b.readings = b.readings[:len(frames)]
	b.errs = b.errs[:len(frames)]
	for i := range b.route {
		b.route[i] = b.route[i][:0]
		b.good[i] = 0
	}
	for i := range frames {
		f := &frames[i]
		r := &b.readings[i]
		var err error
		if pre != nil {
			err = pre.Decoded(f, r)
		} else {
			err = dec.Decode(b.frames.Payload(f), f.Topic, f.Arrival, r)
		}
		b.errs[i] = err
		r.Seq = b.seq + uint64(i)
		if err != nil && r.Device == "" {
			continue
		}
		shard := uint64(Partition(r.Device, int(n)))
		r.Shard = int32(shard)
		if err != nil {
			// Rejected, but the device is known: its shard hears of it.
			b.route[shard] = append(b.route[shard], int32(-i-1))
			continue
		}
		b.route[shard] = append(b.route[shard], int32(i))
		b.good[shard]++
	}
	b.decoded <- struct{}{} // buffered: never blocks
}

// dispatch takes batches in stream order once decoded, accounts rejections,
// and hands each batch to every shard and to the merger. It returns the
// dead-letter writer's error, which ends the run: a closed pipe or a full
// disk must not drop what the user asked to keep.
func (p *Pipeline) dispatch(hard context.Context) (err error) {
	defer func() {
		for _, q := range p.shardQ {
			close(q)
		}
		close(p.mergeQ)
	}()
	dl := newDeadLetters(p.cfg.DeadLetter, p.log)
	defer func() {
		if ferr := dl.flush(); err == nil {
			err = ferr
		}
	}()
	for b := range p.orderQ {
		select {
		case <-b.decoded:
		case <-hard.Done():
			return nil
		}
		if dl.err != nil {
			return dl.err
		}
		// The stream clock, in stream order: a replayed frame arrives when
		// the stream has reached the latest event time seen so far.
		clock := max(p.clock, b.clock)
		b.clock0 = p.clock
		good := 0
		for i, err := range b.errs {
			r := &b.readings[i]
			if err != nil {
				if r.Arrival == 0 {
					r.Arrival = clock // when the stream got to it
				}
			} else if r.Arrival == 0 {
				clock = max(clock, r.Time)
				r.Arrival = clock
			} else {
				clock = max(clock, r.Arrival)
			}
			if p.start == 0 && clock != 0 {
				p.start = clock
			}
			if err == nil {
				good++
				continue
			}
			reason := rejectReason(err)
			p.rejected[reason].Inc()
			f := &b.frames.Frames[i]
			dl.add(f, b.frames.Payload(f), reason, err)
		}
		// A source's own clock (a tick message) comes after its frames.
		clock = max(clock, b.frames.Clock)
		p.clock, b.clock = clock, clock
		if p.start == 0 {
			p.start = clock
		}
		b.start = p.start
		p.decoded.AddInt64(int64(good))
		for _, q := range p.shardQ {
			select {
			case q <- b:
			case <-hard.Done():
				return nil
			}
		}
		select {
		case p.mergeQ <- b:
		case <-hard.Done():
			return nil
		}
	}
	return nil
}

// rejectReason is the reason of a decode error.
func rejectReason(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ReasonMalformed
}

// work is a shard worker: it runs its processor over the readings routed to
// it. It alone touches its devices' state.
func (p *Pipeline) work(hard context.Context, shard int, proc Processor) {
	var taps []Tap
	if p.cfg.Taps != nil {
		taps = p.cfg.Taps(shard)
	}
	for b := range p.shardQ[shard] {
		if b.barrier != nil {
			out := b.barrier.atShard(shard, b.clock, proc, b.alerts[shard][:0])
			last := b.seq - min(b.seq, 1) // the frame before the barrier
			for j := range out {
				out[j].Seq, out[j].tick = last, true
			}
			b.alerts[shard] = out
			b.newDevices[shard] = b.newDevices[shard][:0]
			b.shards <- struct{}{}
			continue
		}
		b.alerts[shard] = p.judge(b, shard, proc, taps, b.alerts[shard][:0])
		p.processed.AddInt64(int64(b.good[shard]))
		p.devices[shard].Store(int64(proc.Devices()))
		if ev, ok := proc.(Evictor); ok {
			p.evicted[shard].Store(ev.Evictions())
		}
		b.shards <- struct{}{} // buffered for every shard: never blocks
		if hard.Err() != nil {
			return
		}
	}
}

// judge runs one shard's processor over a batch: the readings routed to
// the shard in stream order and, for a Ticker, the passage of time. Time is
// judged at every frame that advances the stream clock (any shard's frame),
// right after that frame's own reading, so what a Ticker decides does not
// depend on how the stream was cut into batches or on the number of shards:
// a live stream read one frame at a time, a replay read 512 at a time and a
// worker resuming mid-stream make the same decisions at the same times.
func (p *Pipeline) judge(b *batch, shard int, proc Processor, taps []Tap, out []Alert) []Alert {
	rej, _ := proc.(Rejecter)
	tk, _ := proc.(Ticker)
	nc, _ := proc.(Newcomer)
	b.newDevices[shard] = b.newDevices[shard][:0]
	route := b.route[shard]
	clock := b.clock0
	ticked := false
	tick := func(at int64, seq uint64) {
		ticked = true
		n := len(out)
		out = tk.Tick(b.start, at, out)
		for j := n; j < len(out); j++ {
			out[j].Seq, out[j].tick = seq, true
		}
	}
	for fi := range b.readings {
		for len(route) > 0 {
			i := route[0]
			if i >= 0 && int(i) == fi {
				for _, t := range taps {
					t.Observe(&b.readings[i])
				}
				out = proc.Process(&b.readings[i], out)
				if nc != nil {
					if n := nc.NewDevices(); n > 0 {
						b.newDevices[shard] = append(b.newDevices[shard], newcomers{
							seq: b.seq + uint64(fi), clock: max(clock, b.readings[fi].Arrival), n: n})
					}
				}
			} else if i < 0 && int(-i-1) == fi {
				if rej != nil { // a rejected frame of a known device
					out = rej.Reject(&b.readings[fi], rejectReason(b.errs[fi]), out)
				}
			} else {
				break
			}
			route = route[1:]
		}
		if a := b.readings[fi].Arrival; a > clock {
			clock = a
			if tk != nil {
				tick(clock, b.seq+uint64(fi))
			}
		}
	}
	// A tick batch (time passed with no frame), or a batch that did not
	// move the clock: Tick once at its end. At an unchanged clock it decides
	// nothing new, but a Ticker always learns the stream's start.
	if tk != nil && b.clock != 0 && (b.clock > clock || !ticked) {
		tick(b.clock, b.seq+uint64(max(len(b.frames.Frames), 1))-1)
	}
	return out
}

// newcomers is a frame at which a shard saw devices for the first time.
type newcomers struct {
	seq   uint64 // the frame's Seq
	clock int64  // the stream clock after the frame
	n     int
}

// judgeFleet calls the fleet judge at every frame of b that brought new
// devices (any shard's, in stream order, at the stream clock there), then
// at the batch's end: like ticks, its decisions do not depend on how the
// stream was cut into batches.
func (p *Pipeline) judgeFleet(b *batch, out []Alert) []Alert {
	call := func(clock int64, n int, seq uint64) {
		before := len(out)
		out = p.cfg.Fleet(clock, n, out)
		for j := before; j < len(out); j++ {
			out[j].Seq = seq
		}
	}
	next := p.fleetNext[:0] // per shard, the next event to take
	for range b.newDevices {
		next = append(next, 0)
	}
	p.fleetNext = next
	for {
		best := -1
		for sh, evs := range b.newDevices {
			if next[sh] < len(evs) && (best < 0 || evs[next[sh]].seq < b.newDevices[best][next[best]].seq) {
				best = sh
			}
		}
		if best < 0 {
			break
		}
		ev := b.newDevices[best][next[best]]
		next[best]++
		call(ev.clock, ev.n, ev.seq)
	}
	call(b.clock, 0, b.seq+uint64(max(len(b.frames.Frames), 1))-1)
	return out
}

// merge waits for every shard to finish each batch, in stream order, merges
// their alerts by stream position and writes them to the sink. Then the batch
// is acknowledged and recycled.
func (p *Pipeline) merge(hard context.Context, sink Sink) error {
	for b := range p.mergeQ {
		for range p.cfg.Workers {
			select {
			case <-b.shards:
			case <-hard.Done():
				return nil
			}
		}
		var br *barrier
		if b.barrier != nil {
			br = b.barrier
			if br.req.apply == nil { // a snapshot: no alerts
				p.finish(b)
				p.free <- b
				continue
			}
		}
		out := b.merged[:0]
		for _, a := range b.alerts {
			out = append(out, a...)
		}
		if len(b.alerts) > 1 {
			// Each shard's alerts are in stream order and a reading belongs to
			// one shard, so a stable sort by Seq gives one deterministic order.
			// Tick alerts (silence) share the batch's last Seq: they come after
			// that frame's own alerts, ordered by device, whatever the shard.
			slices.SortStableFunc(out, func(x, y Alert) int {
				switch {
				case x.Seq != y.Seq:
					return cmp.Compare(x.Seq, y.Seq)
				case x.tick != y.tick:
					if x.tick {
						return 1
					}
					return -1
				case x.tick:
					return strings.Compare(x.Device, y.Device)
				}
				return 0
			})
		}
		if p.cfg.Fleet != nil && b.clock != 0 && br == nil {
			out = p.judgeFleet(b, out)
		}
		b.merged = out
		p.observeLatency(&b.frames)
		if len(out) > 0 {
			if err := sink.Write(hard, out); err != nil {
				return fmt.Errorf("pipeline: sink: %w", err)
			}
			p.alertsOut.AddInt64(int64(len(out)))
			p.countAlerts(out)
		}
		if b.frames.Ack != nil {
			b.frames.Ack()
		}
		if br != nil {
			p.finish(b)
		}
		clear(b.merged) // drop references to strings
		p.free <- b
	}
	return nil
}

// observeLatency records, for live frames (those with an arrival time), the
// time from receipt to the detection decision. It is a metric only: detection
// never reads the clock.
func (p *Pipeline) observeLatency(fb *FrameBatch) {
	if len(fb.Frames) == 0 || fb.Frames[0].Arrival == 0 {
		return
	}
	now := time.Now().UnixNano()
	for i := range fb.Frames {
		if a := fb.Frames[i].Arrival; a != 0 {
			p.latency.Update(float64(now-a) / 1e9)
		}
	}
}

func (p *Pipeline) countAlerts(as []Alert) {
	p.alertMu.Lock()
	defer p.alertMu.Unlock()
	for i := range as {
		a := &as[i]
		p.alertCounts[alertKey{kind: a.Kind, state: a.State}]++
		k := alertMetric{kind: a.Kind, severity: a.Severity, state: a.State}
		c := p.alertCounters[k]
		if c == nil {
			c = p.cfg.Metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_alerts_total{kind=%q,severity=%q,state=%q}`,
				a.Kind, a.Severity, a.State))
			p.alertCounters[k] = c
		}
		c.Inc()
	}
}

// Position is where a stream is: its start and clock (Unix ns; see Ticker)
// and the number of its next frame. A snapshot saves it, and Config.Resume
// continues from it.
type Position struct {
	Start, Clock int64
	Seq          uint64
	// Mark is the source's own position after the last batch read before
	// the snapshot (FrameBatch.Mark: a stream sequence), 0 when the source
	// sets none. A source resumed from it continues after it.
	Mark uint64
}

// Position reports where the stream is. Call it after Run has returned.
func (p *Pipeline) Position() Position {
	return Position{Start: p.start, Clock: p.clock, Seq: p.next.Load(), Mark: p.mark.Load()}
}

// Workers reports the number of shard workers.
func (p *Pipeline) Workers() int { return p.cfg.Workers }

// Devices reports the devices tracked by all shards.
func (p *Pipeline) Devices() int {
	n := int64(0)
	for i := range p.devices {
		n += p.devices[i].Load()
	}
	return int(n)
}

// Evictions reports the devices forgotten by all shards because of a cap.
func (p *Pipeline) Evictions() uint64 {
	var n uint64
	for i := range p.evicted {
		n += p.evicted[i].Load()
	}
	return n
}

// Stats summarises a run.
type Stats struct {
	Frames    uint64            // frames read from the source
	Bytes     uint64            // payload bytes read
	Decoded   uint64            // frames decoded into readings
	Rejected  map[string]uint64 // rejected frames by reason
	Processed uint64            // readings judged by the shards
	Alerts    map[string]uint64 // alerts by "kind/state"
	Devices   int
	Evicted   uint64 // devices forgotten because of the device cap
	Elapsed   time.Duration
}

// AlertsByKind splits Alerts into firing and resolved counts per kind, with
// the kinds sorted by name.
func (s Stats) AlertsByKind() (kinds []string, firing, resolved map[string]uint64) {
	firing, resolved = map[string]uint64{}, map[string]uint64{}
	seen := map[string]bool{}
	for k, n := range s.Alerts {
		kind, state, _ := strings.Cut(k, "/")
		if state == Resolved.String() {
			resolved[kind] += n
		} else {
			firing[kind] += n
		}
		if !seen[kind] {
			seen[kind] = true
			kinds = append(kinds, kind)
		}
	}
	slices.Sort(kinds)
	return kinds, firing, resolved
}

// Stats returns the counters so far; after Run returns they are final.
func (p *Pipeline) Stats() Stats {
	s := Stats{
		Frames:    p.framesIn.Get(),
		Bytes:     p.bytesIn.Get(),
		Decoded:   p.decoded.Get(),
		Processed: p.processed.Get(),
		Rejected:  map[string]uint64{},
		Alerts:    map[string]uint64{},
		Devices:   p.Devices(),
		Evicted:   p.Evictions(),
	}
	for _, r := range Reasons() {
		if n := p.rejected[r].Get(); n > 0 {
			s.Rejected[r.String()] = n
		}
	}
	p.alertMu.Lock()
	for k, n := range p.alertCounts {
		s.Alerts[k.kind+"/"+k.state.String()] = n
	}
	p.alertMu.Unlock()
	if !p.started.IsZero() {
		end := p.finished
		if end.IsZero() {
			end = time.Now()
		}
		s.Elapsed = end.Sub(p.started)
	}
	return s
}
