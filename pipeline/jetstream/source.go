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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/pipeline"
)

// PartitionSource reads one partition of the stream, in stream order,
// from a stream sequence on: a pipeline.Source for a worker that owns the
// partition. It reads with an ordered consumer (no acknowledgements, no
// redelivery out of order), so the same messages come in the same order
// whether the partition is read live or again after a failover from its
// checkpoint. Frames carry the bridge's topic and arrival time, and their
// stream sequence as Line; tick messages end a batch with its Clock; every
// batch's Mark is the stream sequence of its last message, ticks included.
type PartitionSource struct {
	p      int
	origin string
	log    *slog.Logger
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	msgs   chan jetstream.Msg
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	pending atomic.Uint64 // messages of the partition after the last one read
	last    atomic.Uint64 // stream sequence of the last message read
	badTick atomic.Uint64
}

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
	// Logger (default: discard).
	Logger *slog.Logger
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
	oc := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{PartitionFilter(cfg.Partition)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if cfg.After > 0 {
		oc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		oc.OptStartSeq = cfg.After + 1
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Stream, oc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: partition %d: %w", cfg.Partition, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(cfg.Buffer))
	if err != nil {
		return nil, fmt.Errorf("jetstream: partition %d: %w", cfg.Partition, err)
	}
	s := &PartitionSource{
		p:      cfg.Partition,
		origin: "jetstream:" + cfg.Stream + "/" + strconv.Itoa(cfg.Partition),
		log:    cfg.Logger,
		cons:   cons,
		it:     it,
		msgs:   make(chan jetstream.Msg, cfg.Buffer),
		done:   make(chan struct{}),
	}
	s.last.Store(cfg.After)
	s.wg.Go(s.feed)
	return s, nil
}

// feed moves messages from the iterator to the channel ReadBatch drains,
// so that a batch takes what has arrived without waiting for more.
func (s *PartitionSource) feed() {
	defer close(s.msgs)
	failing := false
	for {
		m, err := s.it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
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
		select {
		case s.msgs <- m:
		case <-s.done:
			return
		}
	}
}

// ReadBatch implements pipeline.Source: it waits for one message, then
// takes what has arrived, up to max frames; a tick message ends the batch.
func (s *PartitionSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	var m jetstream.Msg
	select {
	case m = <-s.msgs:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		if m == nil {
			return fmt.Errorf("jetstream: partition %d: reader closed", s.p)
		}
		if s.add(b, m) || b.Len() >= max {
			return nil
		}
		select {
		case m = <-s.msgs:
		default:
			return nil
		}
	}
}

// add appends m to b and reports whether it ended the batch (a tick).
func (s *PartitionSource) add(b *pipeline.FrameBatch, m jetstream.Msg) bool {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
		s.pending.Store(md.NumPending)
	}
	if seq != 0 {
		b.Mark = seq
		s.last.Store(seq)
	}
	_, token, err := ParseSubject(m.Subject())
	if err == nil && token == TickToken {
		ns, err := strconv.ParseInt(string(m.Data()), 10, 64)
		if err != nil || ns <= 0 {
			s.badTick.Add(1)
			return false
		}
		b.Clock = ns
		return true
	}
	h := m.Headers()
	var arrival int64
	if v := h.Get(ArrivalHeader); v != "" {
		arrival, _ = strconv.ParseInt(v, 10, 64)
	}
	b.Add(h.Get(TopicHeader), m.Data(), arrival, s.origin, int64(seq))
	return false
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
		s.it.Stop()
	})
	s.wg.Wait()
	return nil
}
