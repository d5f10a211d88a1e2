package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
)

// SourceOptions configures a Source beyond the shared connection Config.
type SourceOptions struct {
	// ExcludeTopicPrefix drops (and acknowledges) messages whose topic starts
	// with it, so Vigil never consumes its own alerts (e.g. "vigil/").
	ExcludeTopicPrefix string `yaml:"exclude_topic_prefix"`
	// MaxQueuedQoS0 bounds the QoS 0 messages waiting for ReadBatch (default
	// 8192); QoS 0 messages beyond it are dropped and counted. QoS 1 and 2
	// messages are never dropped: the broker sends at most ReceiveMaximum of
	// them before Vigil acknowledges.
	MaxQueuedQoS0 int `yaml:"max_queued_qos0"`
	// MaxQueuedBytes bounds the payload bytes of the QoS 0 messages waiting
	// for ReadBatch (default 64 MiB); beyond it they are dropped and counted
	// as qos0_overflow. QoS 1 and 2 messages are bounded by ReceiveMaximum
	// times MaxPacketSize.
	MaxQueuedBytes int `yaml:"max_queued_bytes"`
	// MaxPacketSize, when positive, is announced to the broker as the
	// Maximum Packet Size (MQTT 5, 3.1.2.11.4): the broker then discards,
	// for this client, every message larger than it before sending it, so a
	// publisher cannot make Vigil allocate more. Set it from the decoder's
	// payload limit with PacketSizeFor. A larger message that arrives anyway
	// (a broker ignoring the property) is acknowledged, dropped and counted
	// as too_large.
	MaxPacketSize int `yaml:"-"`
	// Logger receives connection state changes (default: discard).
	Logger *slog.Logger `yaml:"-"`
	// Metrics receives the source's metrics (default: a private set).
	Metrics *metrics.Set `yaml:"-"`
}

// Source is a pipeline.Source reading the subscribed topics from an MQTT 5
// broker with at-least-once delivery.
//
// The session is persistent (CleanStart false, SessionExpiry): messages that
// arrive while Vigil is away are kept by the broker and delivered on the next
// connection. QoS 1 and 2 messages are acknowledged only when the pipeline
// calls the batch's Ack, after the alerts the batch produced were handed to
// the sink; paho sends the acknowledgements in the order the messages were
// received. Messages that were read but not acknowledged when a connection was
// lost, or when Vigil stopped or crashed, are delivered again: consumers must
// tolerate duplicates.
//
// ReadBatch is called from one goroutine; Close may be called from any.
type Source struct {
	link    *link
	subs    []paho.SubscribeOptions
	exclude string
	maxQoS0 int
	maxQ0B  int // MaxQueuedBytes
	maxPkt  int // MaxPacketSize, 0: none
	origin  string

	q       queue
	gen     atomic.Uint64 // connection generation, bumped when a connection is lost
	closing atomic.Bool
	closed  chan struct{}
	once    sync.Once
	scratch []message // ReadBatch's, reused

	received    *metrics.Counter
	droppedQoS0 *metrics.Counter
	droppedOwn  *metrics.Counter
	tooLarge    *metrics.Counter
	stale       *metrics.Counter
	acked       *metrics.Counter
	ackSkipped  *metrics.Counter
	queued      *metrics.Gauge
}

// message is one received PUBLISH waiting for ReadBatch.
type message struct {
	pub     *paho.Publish
	client  *paho.Client // the client (connection) that received it
	arrival int64        // Unix nanoseconds
	gen     uint64       // the connection generation it arrived in
}

// ackRef is what Ack needs of a message.
type ackRef struct {
	client *paho.Client
	pub    *paho.Publish
	gen    uint64
}

// NewSource validates cfg and returns a Source. It does not connect: call
// Start to connect and fail fast on configuration errors, or let the first
// ReadBatch do it.
func NewSource(cfg Config, opts SourceOptions) (*Source, error) {
	if len(cfg.Subscriptions) == 0 {
		return nil, errors.New("mqtt: invalid config: subscriptions: at least one topic filter is required")
	}
	if opts.MaxQueuedQoS0 <= 0 {
		opts.MaxQueuedQoS0 = 8192
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if opts.MaxPacketSize < 0 {
		return nil, errors.New("mqtt: invalid source options: MaxPacketSize must not be negative")
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	s := &Source{
		exclude: opts.ExcludeTopicPrefix,
		maxQoS0: opts.MaxQueuedQoS0,
		maxQ0B:  opts.MaxQueuedBytes,
		maxPkt:  opts.MaxPacketSize,
		closed:  make(chan struct{}),
		q:       queue{ready: make(chan struct{}, 1)},

		received:    set.GetOrCreateCounter("vigil_mqtt_messages_received_total"),
		droppedQoS0: set.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="qos0_overflow"}`),
		droppedOwn:  set.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="excluded_topic"}`),
		tooLarge:    set.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="too_large"}`),
		stale:       set.GetOrCreateCounter(`vigil_mqtt_messages_dropped_total{reason="redelivered"}`),
		acked:       set.GetOrCreateCounter("vigil_mqtt_messages_acked_total"),
		ackSkipped:  set.GetOrCreateCounter("vigil_mqtt_acks_skipped_total"),
		queued:      set.GetOrCreateGauge("vigil_mqtt_messages_queued", nil),
	}
	for _, sub := range cfg.Subscriptions {
		s.subs = append(s.subs, paho.SubscribeOptions{
			Topic: sub.Filter,
			QoS:   sub.QoS,
			// Send retained messages only for a new subscription, not again
			// on every reconnect of the persistent session.
			RetainHandling: 1,
		})
	}
	l, err := newLink("source", cfg.ClientID, cfg, opts.Logger, set, linkHooks{
		onPublish: s.onPublish,
		prepare:   s.prepare,
		down:      s.down,
		manualAck: true,
		maxPacket: uint32(min(opts.MaxPacketSize, maxVarInt)),
	})
	if err != nil {
		return nil, err
	}
	s.link = l
	s.origin = l.b.origin
	for _, sub := range cfg.Subscriptions {
		if sub.QoS == 0 {
			l.log.Warn("subscription with QoS 0: its messages are not acknowledged and may be dropped", "filter", sub.Filter)
		}
	}
	return s, nil
}

// Start connects, subscribes and returns once the subscriptions are granted.
// It fails fast, with a *ConnectError naming what to check, when the broker
// refuses the credentials or client ID, the TLS handshake fails, or a
// subscription is refused; other failures (broker unreachable) are retried
// until ctx is done. After Start has succeeded once, every failure is retried
// forever with backoff. Start after success is a no-op.
func (s *Source) Start(ctx context.Context) error {
	return s.link.start(ctx)
}

// onPublish is paho's callback; it must not block.
func (s *Source) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if s.exclude != "" && strings.HasPrefix(p.Topic, s.exclude) {
		s.droppedOwn.Inc()
		if p.QoS > 0 {
			_ = pr.Client.Ack(p) // sent in order, after the messages before it
		}
		return true, nil
	}
	if s.maxPkt > 0 && len(p.Payload) > s.maxPkt {
		// The broker should not have sent it (Maximum Packet Size): do not
		// keep it. Acknowledged, so it is not redelivered.
		s.tooLarge.Inc()
		if p.QoS > 0 {
			_ = pr.Client.Ack(p)
		}
		return true, nil
	}
	m := message{pub: p, client: pr.Client, arrival: time.Now().UnixNano(), gen: s.gen.Load()}
	if !s.q.push(m, s.maxQoS0, s.maxQ0B) {
		s.droppedQoS0.Inc()
		return true, nil
	}
	s.received.Inc()
	return true, nil
}

// prepare runs after each connect: it discards stale copies that the broker
// will redeliver, then subscribes.
func (s *Source) prepare(ctx context.Context, cm *autopaho.ConnectionManager, ca *paho.Connack) error {
	if ca.SessionPresent {
		// The broker kept the session, so it resends every message we did
		// not acknowledge: copies still queued from the lost connection are
		// duplicates. Without the session they are the only copies: keep them.
		if n := s.q.purge(s.gen.Load()); n > 0 {
			s.stale.Add(n)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.link.cfg.ConnectTimeout)
	defer cancel()
	sa, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: s.subs})
	if sa != nil {
		for i, code := range sa.Reasons {
			if i >= len(s.subs) {
				break
			}
			if code >= 0x80 {
				return &ConnectError{
					Broker:    s.origin,
					Reason:    fmt.Sprintf("broker refused subscription to %q: %s", s.subs[i].Topic, subackReason(code)),
					Hint:      fmt.Sprintf("check the broker's ACL for username %q", s.link.cfg.Username),
					Code:      code,
					Permanent: code != 0x80 && code != 0x97, // unspecified, quota: may pass later
				}
			}
			if code < s.subs[i].QoS {
				s.link.log.Warn("broker granted a lower QoS", "filter", s.subs[i].Topic, "requested", s.subs[i].QoS, "granted", code)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	if len(sa.Reasons) != len(s.subs) {
		return fmt.Errorf("mqtt: subscribe: %d reason codes for %d subscriptions", len(sa.Reasons), len(s.subs))
	}
	return nil
}

// down runs when a connection is lost, after its client stopped delivering:
// messages of that connection can no longer be acknowledged.
func (s *Source) down() { s.gen.Add(1) }

// ReadBatch implements pipeline.Source. It blocks until a message is
// available, then appends it and whatever else is already received, up to
// max, copying topics and payloads into b. It sets b.Ack to acknowledge the
// QoS 1 and 2 messages of the batch. It connects on first use (see Start)
// and returns io.EOF once the source is closed.
func (s *Source) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if s.closing.Load() {
		return io.EOF
	}
	if err := s.link.start(ctx); err != nil {
		if errors.Is(err, ErrClosed) {
			return io.EOF
		}
		return err
	}
	max = atLeastOne(max)
	for {
		s.scratch = s.q.take(s.scratch, max, maxBatchBytes)
		if len(s.scratch) > 0 {
			break
		}
		select {
		case <-s.q.ready:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return io.EOF
		}
	}
	s.queued.Set(float64(s.q.len()))
	var refs []ackRef
	for i := range s.scratch {
		m := &s.scratch[i]
		b.Add(m.pub.Topic, m.pub.Payload, m.arrival, s.origin, 0)
		if m.pub.QoS > 0 {
			if refs == nil {
				refs = make([]ackRef, 0, len(s.scratch)-i)
			}
			refs = append(refs, ackRef{client: m.client, pub: m.pub, gen: m.gen})
		}
		*m = message{} // drop the references
	}
	if len(refs) > 0 {
		prev := b.Ack
		b.Ack = func() {
			if prev != nil {
				prev()
			}
			s.ack(refs)
		}
	}
	return nil
}

const (
	// DefaultMaxQueuedBytes is SourceOptions.MaxQueuedBytes's default.
	DefaultMaxQueuedBytes = 64 << 20
	// maxBatchBytes bounds the payload bytes ReadBatch copies into one
	// batch, so a burst of large messages does not grow the pipeline's
	// batch buffers (several in flight) to max × the largest payload.
	maxBatchBytes = 4 << 20
	// maxVarInt is the largest packet size MQTT can express.
	maxVarInt = 268435455
	// packetOverhead is what a PUBLISH needs beyond its payload: fixed
	// header, topic, packet identifier and properties. Topics and
	// properties past it make the broker drop the message, which only
	// pathological topics (kilobytes long) reach.
	packetOverhead = 8 << 10
)

// PacketSizeFor returns the Maximum Packet Size to announce for a decoder
// that accepts payloads up to maxPayload bytes: the payload plus room for
// the rest of a PUBLISH. Messages between the two arrive and are rejected
// by the decoder (counted as too_large); larger ones never leave the broker.
func PacketSizeFor(maxPayload int) int {
	if maxPayload <= 0 {
		return 0
	}
	return min(maxPayload+packetOverhead, maxVarInt)
}

func atLeastOne(max int) int {
	if max < 1 {
		return 1
	}
	return max
}

// ack acknowledges messages, in receive order, through the client that
// received them, if that connection is still the current one. After a
// reconnect the broker redelivers what was not acknowledged, so skipping is
// correct; acknowledging on a closed client would be meaningless.
func (s *Source) ack(refs []ackRef) {
	gen := s.gen.Load()
	var acked, skipped int
	for _, r := range refs {
		if r.gen != gen {
			skipped++
			continue
		}
		if err := r.client.Ack(r.pub); err != nil {
			skipped++ // the connection went down meanwhile
			continue
		}
		acked++
	}
	s.acked.Add(acked)
	s.ackSkipped.Add(skipped)
}

// Connected reports whether the connection to the broker is up.
func (s *Source) Connected() bool { return s.link.up.Load() }

// TLSConnectionState returns the state of the most recent TLS handshake
// (DidResume tells whether the session was resumed); ok is false before the
// first handshake and for plaintext connections.
func (s *Source) TLSConnectionState() (state tls.ConnectionState, ok bool) {
	return s.link.tlsConnectionState()
}

// Close makes ReadBatch return io.EOF, gives paho a moment to send the
// acknowledgements already made, disconnects cleanly (DISCONNECT; the broker
// keeps the session) and waits for the client's goroutines. Messages not yet
// acknowledged are redelivered on the next start.
func (s *Source) Close() error {
	var err error
	s.once.Do(func() {
		s.closing.Store(true)
		close(s.closed)
		if s.link.up.Load() {
			time.Sleep(2 * ackFlushInterval) // paho flushes marked acks on a ticker
		}
		err = s.link.close()
		s.gen.Add(1) // later Acks are skipped
		s.q.clear()
		s.queued.Set(0)
	})
	return err
}

// queue holds received messages until ReadBatch takes them. Pushing never
// blocks: QoS 1 and 2 messages are bounded by the broker's flow control
// (ReceiveMaximum unacknowledged), QoS 0 ones by maxQoS0.
type queue struct {
	mu    sync.Mutex
	items []message
	head  int
	qos0  int           // QoS 0 messages in items[head:]
	qos0B int           // their payload bytes
	ready chan struct{} // signalled when the queue becomes non-empty
}

// push appends m; it reports false (dropping m) for a QoS 0 message when
// maxQoS0 of them, or maxBytes of their payloads, are already queued.
func (q *queue) push(m message, maxQoS0, maxBytes int) bool {
	q.mu.Lock()
	if m.pub.QoS == 0 {
		n := len(m.pub.Payload)
		if q.qos0 >= maxQoS0 || q.qos0B+n > maxBytes {
			q.mu.Unlock()
			return false
		}
		q.qos0++
		q.qos0B += n
	}
	wasEmpty := q.head == len(q.items)
	q.items = append(q.items, m)
	q.mu.Unlock()
	if wasEmpty {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// take moves up to max messages, oldest first, into dst[:0], stopping
// before their payloads exceed maxBytes (one message is always taken).
func (q *queue) take(dst []message, max, maxBytes int) []message {
	q.mu.Lock()
	defer q.mu.Unlock()
	n, bytes := 0, 0
	for avail := len(q.items) - q.head; n < min(max, avail); n++ {
		size := len(q.items[q.head+n].pub.Payload)
		if n > 0 && bytes+size > maxBytes {
			break
		}
		bytes += size
	}
	dst = append(dst[:0], q.items[q.head:q.head+n]...)
	clear(q.items[q.head : q.head+n])
	q.head += n
	for i := range dst {
		if dst[i].pub.QoS == 0 {
			q.qos0--
			q.qos0B -= len(dst[i].pub.Payload)
		}
	}
	q.compact()
	return dst
}

// compact reclaims the consumed front of items. Callers hold mu.
func (q *queue) compact() {
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && q.head >= len(q.items)/2:
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

// purge removes the QoS 1 and 2 messages of connections before gen.
func (q *queue) purge(gen uint64) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.items[:q.head]
	for _, m := range q.items[q.head:] { // QoS 0 messages are kept: qos0B holds
		if m.pub.QoS == 0 || m.gen >= gen {
			kept = append(kept, m)
		}
	}
	n := len(q.items) - len(kept)
	clear(q.items[len(kept):])
	q.items = kept
	q.compact()
	return n
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

func (q *queue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.items)
	q.items, q.head, q.qos0, q.qos0B = q.items[:0], 0, 0, 0
}

// subackReason names a SUBACK reason code.
func subackReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x8F:
		return "topic filter invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x9E:
		return "shared subscriptions not supported"
	case 0xA1:
		return "subscription identifiers not supported"
	case 0xA2:
		return "wildcard subscriptions not supported"
	}
	return fmt.Sprintf("reason code 0x%02x", code)
}

// Interface check.
var _ pipeline.Source = (*Source)(nil)
