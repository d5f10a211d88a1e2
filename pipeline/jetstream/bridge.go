package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/pipeline"
)

// ArrivalHeader carries the time the bridge received a message (Unix
// nanoseconds, decimal): a reading without a timestamp takes it as its
// event time, on every worker and in every replay alike.
const ArrivalHeader = "Vigil-Arrival"

// BridgeConfig configures a Bridge. Zero fields take their defaults.
type BridgeConfig struct {
	// Partitions is the stream's partition count (required).
	Partitions int
	// MaxPending bounds the messages published and not yet acknowledged by
	// JetStream (default 4096).
	MaxPending int
	// BatchSize is the most MQTT messages read at once (default 512).
	BatchSize int
	// InFlight is how many batches may wait for their PubAcks while the
	// next is read (default 4).
	InFlight int
	// Tick publishes a tick to each partition that saw no message for that
	// long (default 1s; negative: none), so workers notice silence from the
	// stream, not from their own clocks.
	Tick time.Duration
	// Timeout bounds the wait for one PubAck before the message is
	// published again (default 5s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to store
	// messages JetStream refused (defaults 100ms and 5s).
	RetryMin, RetryMax time.Duration
	// DrainTimeout bounds, once the context is cancelled, the wait for the
	// PubAcks of batches already published (default 10s). Batches still
	// unacknowledged then are not acknowledged to MQTT: the broker
	// delivers them again.
	DrainTimeout time.Duration
	// Pack is the most MQTT messages of one partition packed into one
	// stream message (default DefaultPack; 1: one stream message per MQTT
	// message, on its device's subject, with its topic and arrival in
	// headers). The bridge packs only what one batch holds for a
	// partition, so packing adds no delay; a partition with one message in
	// a batch gets it unpacked. See PackToken.
	Pack int
	// Decoder reads the device ID from payloads: give it the workers'
	// decoder section, so that a device's rejected messages reach the
	// partition its readings are in.
	Decoder pipeline.DecoderConfig
	// Logger (default: discard) and Metrics (default: a private set).
	Logger  *slog.Logger
	Metrics *metrics.Set
}

// Defaults of BridgeConfig.
const (
	DefaultMaxPending = 4096
	DefaultBridgeTick = time.Second
	// DefaultPack is BridgeConfig.Pack's default.
	DefaultPack = 64
	// maxPack bounds BridgeConfig.Pack.
	maxPack = 4096
	// maxPackBytes bounds a packed message's body, well under nats-server's
	// default max_payload of 1 MiB; a larger message goes alone.
	maxPackBytes = 256 << 10
)

func (c BridgeConfig) withDefaults() BridgeConfig {
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.BatchSize == 0 {
		c.BatchSize = 512
	}
	if c.InFlight == 0 {
		c.InFlight = 4
	}
	if c.Pack == 0 {
		c.Pack = DefaultPack
	}
	if c.Tick == 0 {
		c.Tick = DefaultBridgeTick
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	return c
}

// Validate checks the configuration.
func (c *BridgeConfig) Validate() error {
	var errs []error
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		errs = append(errs, fmt.Errorf("partitions: %d: want 1 to %d", c.Partitions, maxPartitions))
	}
	if c.Pack < 0 || c.Pack > maxPack {
		errs = append(errs, fmt.Errorf("pack: %d: want 1 to %d (0: the default, %d)", c.Pack, maxPack, DefaultPack))
	}
	if c.MaxPending < 0 || c.BatchSize < 0 || c.InFlight < 0 || c.Timeout < 0 || c.RetryMin < 0 || c.RetryMax < 0 || c.DrainTimeout < 0 {
		errs = append(errs, errors.New("max_pending, batch size, in-flight batches, timeout, retry bounds and drain timeout must not be negative"))
	}
	if c.Tick > 0 && c.Tick < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("tick: %s: at least 100ms (or negative for none)", c.Tick))
	}
	return errors.Join(errs...)
}

// Bridge moves messages from an MQTT source into the partitioned stream:
// every message of a batch is published asynchronously to its partition's
// subject (several of a partition packed into one stream message, see
// BridgeConfig.Pack), and the batch's Ack (which acknowledges it to the broker) runs
// only once JetStream has stored every one of them. A message JetStream
// refuses (stream full, no quorum, timeout) is published again with
// backoff, and its batch waits: nothing acknowledged to the broker is
// missing from the stream. The bridge sets no Nats-Msg-Id (MQTT packet IDs
// are reused, and identical payloads can be distinct readings), so a crash
// before the broker got the acknowledgement stores those messages again
// when the broker redelivers them.
type Bridge struct {
	js  jetstream.JetStream
	cfg BridgeConfig
	log *slog.Logger

	// last[p] is when partition p was last published to (Unix ns), for ticks.
	last []atomic.Int64

	published *metrics.Counter
	streamMsg *metrics.Counter
	retried   *metrics.Counter
	acked     *metrics.Counter
	abandoned *metrics.Counter
	unknown   *metrics.Counter
	ticks     *metrics.Counter
	tickFails *metrics.Counter
	batches   *metrics.Counter
	pubAck    *metrics.Histogram
	pending   atomic.Int64
}

// NewBridge returns a bridge publishing through nc, which it does not own.
func NewBridge(nc *natsclient.Conn, cfg BridgeConfig) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jetstream: invalid bridge config: %w", err)
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ms := cfg.Metrics
	b := &Bridge{
		js: js, cfg: cfg, log: cfg.Logger.With("component", "bridge"),
		last:      make([]atomic.Int64, cfg.Partitions),
		published: ms.NewCounter(`vigil_bridge_published_total`),
		streamMsg: ms.NewCounter(`vigil_bridge_stream_messages_total`),
		retried:   ms.NewCounter(`vigil_bridge_publish_retries_total`),
		acked:     ms.NewCounter(`vigil_bridge_acked_total`),
		abandoned: ms.NewCounter(`vigil_bridge_abandoned_total`),
		unknown:   ms.NewCounter(`vigil_bridge_unknown_device_total`),
		ticks:     ms.NewCounter(`vigil_bridge_ticks_total`),
		tickFails: ms.NewCounter(`vigil_bridge_tick_failures_total`),
		batches:   ms.NewCounter(`vigil_bridge_batches_total`),
		pubAck:    ms.NewHistogram(`vigil_bridge_puback_seconds`),
	}
	ms.NewGauge(`vigil_bridge_pending`, func() float64 { return float64(b.pending.Load()) })
	return b, nil
}

// flight is a batch on its way: read, published, waiting for PubAcks.
type flight struct {
	fb   pipeline.FrameBatch
	msgs []*natsclient.Msg
	futs []jetstream.PubAckFuture // nil: to publish (again)
	// stored marks the messages JetStream acknowledged: a future's Ok
	// channel yields its PubAck once, so a retry must not wait on it
	// again.
	stored []bool
	start  time.Time

	// Routing and packing, reused from batch to batch.
	routes []route
	order  []int
	arena  []byte
}

// route is where a frame goes.
type route struct {
	p     int
	token string
}

// Run reads src until ctx is cancelled or src is exhausted (io.EOF), and
// bridges every batch. Cancelling ctx stops reading; Run then waits up to
// DrainTimeout for the PubAcks of the batches already published,
// acknowledges those that got them, and returns. It returns src's error if
// reading failed otherwise, and never closes src.
func (b *Bridge) Run(ctx context.Context, src pipeline.Source) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	var wg sync.WaitGroup
	defer wg.Wait()

	free := make(chan *flight, b.cfg.InFlight)
	for range b.cfg.InFlight {
		free <- &flight{}
	}
	sent := make(chan *flight, b.cfg.InFlight)
	tickCtx, stopTicks := context.WithCancel(ctx)
	defer stopTicks()
	if b.cfg.Tick > 0 {
		wg.Go(func() { b.tickLoop(tickCtx) })
	}
	var readErr error
	wg.Go(func() {
		defer stopTicks()
		readErr = b.read(ctx, hard, src, free, sent)
		// Reading is over: the batches published get DrainTimeout to
		// be stored.
		drain := time.AfterFunc(b.cfg.DrainTimeout, cancelHard)
		context.AfterFunc(hard, func() { drain.Stop() })
	})
	b.ackLoop(hard, sent, free)
	wg.Wait()
	return readErr
}

// read is the reading stage: it fills free flights from src, publishes
// them and passes them on in order. It closes sent when it ends.
func (b *Bridge) read(ctx, hard context.Context, src pipeline.Source, free <-chan *flight, sent chan<- *flight) error {
	defer close(sent)
	dec := pipeline.NewDecoder(b.cfg.Decoder)
	var r pipeline.Reading
	for {
		var f *flight
		select {
		case f = <-free:
		case <-ctx.Done():
			return nil
		}
		if ctx.Err() != nil {
			return nil // a source may hand over what it holds even then
		}
		f.fb.Reset()
		err := src.ReadBatch(ctx, &f.fb, b.cfg.BatchSize)
		if f.fb.Len() > 0 {
			b.publish(f, dec, &r)
			select {
			case sent <- f:
			case <-hard.Done():
				return nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case ctx.Err() != nil:
			return nil // stopping
		default:
			return err
		}
	}
}

// publish builds the messages of f's frames and publishes them.
func (b *Bridge) publish(f *flight, dec *pipeline.Decoder, r *pipeline.Reading) {
	n := f.fb.Len()
	f.msgs, f.futs, f.stored = f.msgs[:0], f.futs[:0], f.stored[:0]
	f.routes, f.order = f.routes[:0], f.order[:0]
	f.start = time.Now()
	now := f.start.UnixNano()
	for i := range f.fb.Frames {
		fr := &f.fb.Frames[i]
		// The decoder's verdict is the workers' business; the bridge
		// needs the device, which a rejected payload may still name.
		_ = dec.Decode(f.fb.Payload(fr), fr.Topic, fr.Arrival, r)
		rt := route{token: UnknownToken}
		if r.Device != "" {
			rt.token = Escape(r.Device)
			rt.p = pipeline.Partition(rt.token, b.cfg.Partitions)
		} else {
			// No device to route by: spread by topic, so that a flood
			// of garbage does not land on one partition.
			b.unknown.Inc()
			rt.p = pipeline.Partition(fr.Topic, b.cfg.Partitions)
		}
		b.last[rt.p].Store(now)
		f.routes = append(f.routes, rt)
		f.order = append(f.order, i)
	}
	if b.cfg.Pack <= 1 {
		for i := range f.fb.Frames {
			b.add(f, b.plain(f, i))
		}
	} else {
		b.pack(f)
	}
	b.pending.Add(int64(n))
	b.send(f)
}

// add appends m to f's messages.
func (b *Bridge) add(f *flight, m *natsclient.Msg) {
	f.msgs = append(f.msgs, m)
	f.futs = append(f.futs, nil)
	f.stored = append(f.stored, false)
}

// plain returns the stream message of frame i alone: on its device's
// subject, its topic and arrival in headers.
func (b *Bridge) plain(f *flight, i int) *natsclient.Msg {
	fr := &f.fb.Frames[i]
	rt := f.routes[i]
	m := &natsclient.Msg{Subject: PartitionSubject(rt.p, rt.token), Data: f.fb.Payload(fr), Header: natsclient.Header{}}
	if fr.Topic != "" {
		m.Header[TopicHeader] = []string{fr.Topic}
	}
	if fr.Arrival != 0 {
		m.Header[ArrivalHeader] = []string{strconv.FormatInt(fr.Arrival, 10)}
	}
	return m
}

// pack groups f's frames by partition, keeping their order within each,
// and makes packed messages of up to Pack frames (and maxPackBytes) of a
// partition; a frame with nothing to share a message with goes plain.
func (b *Bridge) pack(f *flight) {
	slices.SortStableFunc(f.order, func(i, j int) int { return f.routes[i].p - f.routes[j].p })
	// Size the arena once, so that the bodies built in it stay put.
	need := len(f.order)
	for i := range f.fb.Frames {
		need += len(f.fb.Frames[i].Topic) + packOverhead
	}
	need += f.fb.Bytes()
	if cap(f.arena) < need {
		f.arena = make([]byte, 0, need)
	}
	f.arena = f.arena[:0]
	for lo := 0; lo < len(f.order); {
		p := f.routes[f.order[lo]].p
		hi, size := lo, 1
		for hi < len(f.order) && hi-lo < b.cfg.Pack && f.routes[f.order[hi]].p == p {
			fr := &f.fb.Frames[f.order[hi]]
			size += len(fr.Topic) + packOverhead + len(f.fb.Payload(fr))
			if hi > lo && size > maxPackBytes {
				break
			}
			hi++
		}
		if hi-lo == 1 {
			b.add(f, b.plain(f, f.order[lo]))
			lo = hi
			continue
		}
		start := len(f.arena)
		f.arena = AppendPackHeader(f.arena)
		for _, i := range f.order[lo:hi] {
			fr := &f.fb.Frames[i]
			f.arena = AppendPack(f.arena, fr.Topic, fr.Arrival, f.fb.Payload(fr))
		}
		body := f.arena[start:len(f.arena):len(f.arena)]
		b.add(f, &natsclient.Msg{Subject: PartitionSubject(p, PackToken), Data: body})
		lo = hi
	}
}

// send publishes the messages of f that have no future yet. A message the
// client refuses at once (too many pending, disconnected) keeps none and
// is tried again by the ack stage.
func (b *Bridge) send(f *flight) {
	for i, m := range f.msgs {
		if f.futs[i] != nil {
			continue
		}
		fut, err := b.js.PublishMsgAsync(m)
		if err != nil {
			continue
		}
		f.futs[i] = fut
	}
}

// ackLoop is the acknowledging stage: in order, it waits until every
// message of a flight is stored, publishing refused ones again with
// backoff, then acknowledges the batch to MQTT and frees the flight. Once
// hard is done it stops waiting: what is left is not acknowledged.
func (b *Bridge) ackLoop(hard context.Context, sent <-chan *flight, free chan<- *flight) {
	for f := range sent {
		n := len(f.msgs)
		if !b.await(hard, f) {
			b.abandoned.Add(f.fb.Len())
			b.pending.Add(-int64(f.fb.Len()))
			continue
		}
		b.pubAck.UpdateDuration(f.start)
		frames := f.fb.Len()
		b.published.Add(frames)
		b.streamMsg.Add(n)
		b.pending.Add(-int64(frames))
		if f.fb.Ack != nil {
			f.fb.Ack()
		}
		b.acked.Add(frames)
		b.batches.Inc()
		clear(f.msgs) // drop references to the payloads
		free <- f     // never blocks: there are InFlight flights
	}
}

// await returns true once JetStream has stored every message of f, false
// if hard ends first.
func (b *Bridge) await(hard context.Context, f *flight) bool {
	backoff := b.cfg.RetryMin
	for attempt := 0; ; attempt++ {
		failed := 0
		var first error
		for i, fut := range f.futs {
			if f.stored[i] {
				continue
			}
			if fut == nil {
				failed++
				continue
			}
			select {
			case <-fut.Ok():
				f.stored[i] = true
			case err := <-fut.Err():
				f.futs[i] = nil
				failed++
				if first == nil {
					first = err
				}
			case <-hard.Done():
				return false
			}
		}
		if failed == 0 {
			return true
		}
		b.retried.Add(failed)
		if attempt == 0 || attempt%10 == 9 {
			b.log.Warn("JetStream did not store messages; retrying, the MQTT batch waits", "messages", failed, "batch", len(f.msgs), "attempt", attempt+1, "err", first)
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		backoff = min(2*backoff, b.cfg.RetryMax)
		select {
		case <-time.After(wait):
		case <-hard.Done():
			return false
		}
		b.send(f)
	}
}

// tickLoop publishes a tick to every partition that saw nothing for Tick,
// until ctx ends. Ticks are not waited for: a lost tick is made up by the
// next one.
func (b *Bridge) tickLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.Tick / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ns := now.UnixNano()
			for p := range b.last {
				if ns-b.last[p].Load() < int64(b.cfg.Tick) {
					continue
				}
				b.last[p].Store(ns)
				m := natsclient.NewMsg(PartitionSubject(p, TickToken))
				m.Data = strconv.AppendInt(nil, ns, 10)
				if _, err := b.js.PublishMsgAsync(m); err != nil {
					b.tickFails.Inc()
					continue
				}
				b.ticks.Inc()
			}
		}
	}
}
