package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/pipeline"
)

// PartitionSource reads one partition of the stream, in stream order,
// from a stream sequence on: a pipeline.Source for a worker that owns the
// partition. It reads with an ordered consumer (no acknowledgements, no
// redelivery out of order), so the same messages come in the same order
// whether the partition is read live or again after a failover from its
// checkpoint. Frames carry the bridge's topic and arrival time, and their
// stream sequence as Line (a packed message's frames share it); tick
// messages end a batch with its Clock; every batch's Mark is the stream
// sequence of its last message, ticks included, and a batch holds whole
// packed messages only.
type PartitionSource struct {
	p      int
	origin string
	log    *slog.Logger
	js     jetstream.JetStream
	cfg    PartitionSourceConfig
	msgs   chan item
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu   sync.Mutex
	cons jetstream.Consumer
	it   jetstream.MessagesContext

	fed      atomic.Uint64 // stream sequence of the last message fed
	lastFeed atomic.Int64  // when a message was last fed (Unix ns)

	pending   atomic.Uint64 // messages of the partition after the last one read
	last      atomic.Uint64 // stream sequence of the last message read
	badTick   atomic.Uint64
	badPack   atomic.Uint64
	misrouted atomic.Uint64

	// topics interns the topics of packed frames, idle times ReadBatch's
	// wait (both used by ReadBatch only).
	topics map[string]string
	idle   *time.Timer
}

// maxInterned bounds PartitionSource.topics; past it the map starts again.
const maxInterned = 4096

// PartitionSourceConfig configures a PartitionSource.
type PartitionSourceConfig struct {
	// Stream is the stream's name (default DefaultStream).
	Stream string
	// Partition is the partition read.
	Partition int
	// After is the stream sequence already judged (a checkpoint's mark):
	// reading starts with the partition's next message; 0 reads from the
	// stream's first message.
	After uint64
	// Buffer is the number of messages read ahead (default 1024).
	Buffer int
	// Stall is how long the source waits without any message before it
	// recreates its consumer after the last message it read (default
	// 5s). The bridge's ticks reach every partition each second, so a
	// longer silence means the consumer was lost with the server that
	// held it, which the client does not always notice by itself.
	Stall time.Duration
	// Idle is how long ReadBatch waits for a first message before it
	// returns an empty batch (default 1s), so that a pipeline reading an
	// idle partition still takes its snapshots (checkpoints) between
	// reads.
	Idle time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// DamagedPacks, when set, counts packed messages that could not be
	// read whole.
	DamagedPacks *metrics.Counter
	// Partitions, when set, is the stream's partition count: a message on
	// a device's subject whose device belongs to another partition (a
	// publisher that computed it wrongly) is counted in Misrouted and
	// logged, and judged all the same.
	Partitions int
	Misrouted  *metrics.Counter
}

// NewPartitionSource starts reading partition cfg.Partition of the stream.
func NewPartitionSource(ctx context.Context, js jetstream.JetStream, cfg PartitionSourceConfig) (*PartitionSource, error) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stall <= 0 {
		cfg.Stall = 5 * time.Second
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Second
	}
	s := &PartitionSource{
		p:      cfg.Partition,
		origin: "jetstream:" + cfg.Stream + "/" + strconv.Itoa(cfg.Partition),
		log:    cfg.Logger,
		js:     js,
		cfg:    cfg,
		msgs:   make(chan item, cfg.Buffer),
		done:   make(chan struct{}),
		topics: make(map[string]string),
		idle:   time.NewTimer(cfg.Idle),
	}
	s.last.Store(cfg.After)
	s.fed.Store(cfg.After)
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	s.lastFeed.Store(time.Now().UnixNano())
	s.wg.Go(s.feed)
	s.wg.Go(s.watch)
	return s, nil
}

// item is a message with its stream sequence and the partition's
// messages after it.
type item struct {
	m        jetstream.Msg
	seq, pen uint64
}

// open (re)creates the ordered consumer after the last message fed.
func (s *PartitionSource) open(ctx context.Context) error {
	oc := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{PartitionFilter(s.p)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if after := s.fed.Load(); after > 0 {
		oc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		oc.OptStartSeq = after + 1
	}
	cons, err := s.js.OrderedConsumer(ctx, s.cfg.Stream, oc)
	if err != nil {
		return fmt.Errorf("jetstream: partition %d: %w", s.p, err)
	}
	// A short heartbeat: the client notices most losses of the server
	// holding the consumer itself; watch covers the rest.
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.Buffer), jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: partition %d: %w", s.p, err)
	}
	s.mu.Lock()
	s.cons, s.it = cons, it
	s.mu.Unlock()
	return nil
}

// watch restarts the consumer when no message came for Stall.
func (s *PartitionSource) watch() {
	t := time.NewTicker(s.cfg.Stall / 4)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, s.lastFeed.Load())) < s.cfg.Stall {
			continue
		}
		s.lastFeed.Store(time.Now().UnixNano())
		s.mu.Lock()
		it := s.it
		s.mu.Unlock()
		it.Stop() // feed sees the iterator closed and reopens
	}
}

// feed moves messages from the iterator to the channel ReadBatch drains,
// so that a batch takes what has arrived without waiting for more. When
// the iterator closes (watch found it stalled) it opens a new consumer
// after the last message fed.
func (s *PartitionSource) feed() {
	defer close(s.msgs)
	failing := false
	for {
		s.mu.Lock()
		it := s.it
		s.mu.Unlock()
		m, err := it.Next()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				s.log.Debug("reopening the partition's consumer", "partition", s.p, "after", s.fed.Load())
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = s.open(ctx)
				cancel()
				if err == nil {
					select {
					case <-s.done: // closed meanwhile: stop what was opened
						s.mu.Lock()
						s.it.Stop()
						s.mu.Unlock()
						return
					default:
					}
					continue
				}
			}
			if !failing {
				s.log.Warn("reading the partition failed; retrying", "partition", s.p, "err", err)
				failing = true
			}
			select {
			case <-s.done:
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		if failing {
			s.log.Info("reading the partition again", "partition", s.p)
			failing = false
		}
		x := item{m: m}
		if md, err := m.Metadata(); err == nil {
			x.seq, x.pen = md.Sequence.Stream, md.NumPending
		}
		if x.seq != 0 && x.seq <= s.fed.Load() {
			continue // already fed (a consumer reopened at a race)
		}
		if x.seq != 0 {
			s.fed.Store(x.seq)
		}
		s.lastFeed.Store(time.Now().UnixNano())
		select {
		case s.msgs <- x:
		case <-s.done:
			return
		}
	}
}

// ReadBatch implements pipeline.Source: it waits for one message, then
// takes what has arrived, up to max frames; a tick message ends the batch.
// After Idle without a message it returns an empty batch.
func (s *PartitionSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	var x item
	var ok bool
	s.idle.Reset(s.cfg.Idle)
	select {
	case x, ok = <-s.msgs:
	case <-s.idle.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		if !ok {
			return fmt.Errorf("jetstream: partition %d: reader closed", s.p)
		}
		if s.add(b, x) || b.Len() >= max {
			return nil
		}
		select {
		case x, ok = <-s.msgs:
		default:
			return nil
		}
	}
}

// add appends m to b and reports whether it ended the batch (a tick).
func (s *PartitionSource) add(b *pipeline.FrameBatch, x item) bool {
	m, seq := x.m, x.seq
	s.pending.Store(x.pen)
	if seq != 0 {
		b.Mark = seq
		s.last.Store(seq)
	}
	_, token, err := ParseSubject(m.Subject())
	if err == nil && token == PackToken {
		err := EachPacked(m.Data(), func(topic []byte, arrival int64, payload []byte) error {
			b.Add(s.intern(topic), payload, arrival, s.origin, int64(seq))
			return nil
		})
		if err != nil {
			if s.cfg.DamagedPacks != nil {
				s.cfg.DamagedPacks.Inc()
			}
			if s.badPack.Add(1) == 1 {
				s.log.Error("a packed message is damaged: the frames after the damage are lost (counted in vigil_partition_damaged_packs_total)", "partition", s.p, "seq", seq, "err", err)
			}
		}
		return false
	}
	if err == nil && token == TickToken {
		ns, err := strconv.ParseInt(string(m.Data()), 10, 64)
		if err != nil || ns <= 0 {
			s.badTick.Add(1)
			return false
		}
		b.Clock = ns
		return true
	}
	if err == nil && s.cfg.Partitions > 0 && token != UnknownToken && pipeline.Partition(token, s.cfg.Partitions) != s.p {
		if s.cfg.Misrouted != nil {
			s.cfg.Misrouted.Inc()
		}
		if s.misrouted.Add(1) == 1 {
			s.log.Warn("a message on a subject of this partition names a device of another (a publisher computing partitions wrongly?); judged here all the same, its state split (counted in vigil_partition_misrouted_total)",
				"partition", s.p, "subject", m.Subject(), "device_partition", pipeline.Partition(token, s.cfg.Partitions))
		}
	}
	h := m.Headers()
	var arrival int64
	if v := h.Get(ArrivalHeader); v != "" {
		arrival, _ = strconv.ParseInt(v, 10, 64)
	}
	b.Add(h.Get(TopicHeader), m.Data(), arrival, s.origin, int64(seq))
	return false
}

// intern returns topic as a string, allocating only for topics not seen
// lately.
func (s *PartitionSource) intern(topic []byte) string {
	if t, ok := s.topics[string(topic)]; ok {
		return t
	}
	if len(s.topics) >= maxInterned {
		clear(s.topics)
	}
	t := string(topic)
	s.topics[t] = t
	return t
}

// Pending reports how many messages of the partition the stream held
// after the last one read (its lag), as of that message.
func (s *PartitionSource) Pending() uint64 { return s.pending.Load() }

// Last reports the stream sequence of the last message read.
func (s *PartitionSource) Last() uint64 { return s.last.Load() }

// Close stops reading.
func (s *PartitionSource) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		it := s.it
		s.mu.Unlock()
		it.Stop()
	})
	s.wg.Wait()
	return nil
}
