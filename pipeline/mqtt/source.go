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
	"unsafe"

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
	// Linger, when positive, is how long the connection waits before it
	// reads again after a read that found it idle, so that one read and
	// one wake-up of the pipeline serve every message that arrived
	// meanwhile (see DefaultLinger). It adds at most Linger to the time a
	// message waits, and nothing while messages arrive faster than they
	// are read. 0: read as soon as anything arrives.
	Linger time.Duration `yaml:"linger"`
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

	received    *metrics.Counter
	droppedQoS0 *metrics.Counter
	droppedOwn  *metrics.Counter
	tooLarge    *metrics.Counter
	stale       *metrics.Counter
	acked       *metrics.Counter
	ackSkipped  *metrics.Counter
	queued      *metrics.Gauge
}

// message is one received PUBLISH waiting for ReadBatch; its payload is
// the queue's buf[start:end].
type message struct {
	topic      string
	start, end int
	qos        byte
	arrival    int64 // Unix nanoseconds
	ack        ackRef
}

// ackRef is what Ack needs of a message: the connection that took it and
// its index there (QoS 1), or the paho client and packet (QoS 2, which paho
// handles).
type ackRef struct {
	conn   *bufConn
	idx    uint64
	client *paho.Client
	pub    *paho.Publish
	gen    uint64 // the connection generation it arrived in
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
		q:       queue{ready: make(chan struct{}, 1), topics: map[string]string{}},

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
		inbound:   (*sourceInbound)(s),
		linger:    max(opts.Linger, 0),
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

// onPublish is paho's callback, for the QoS 2 messages it handles (the
// connection takes QoS 0 and 1 ones itself: see sourceInbound); it must
// not block.
func (s *Source) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	ack := ackRef{client: pr.Client, pub: p, gen: s.gen.Load()}
	if !s.admit(p.Topic, len(p.Payload), p.QoS, ack) {
		return true, nil
	}
	if !s.q.push(unsafeBytes(p.Topic), p.Payload, p.QoS, time.Now().UnixNano(), ack, s.maxQoS0, s.maxQ0B, true) {
		s.droppedQoS0.Inc()
		return true, nil
	}
	s.received.Inc()
	return true, nil
}

// admit drops (acknowledging it) a message of an excluded topic or larger
// than MaxPacketSize, and reports whether to keep the others.
func (s *Source) admit(topic string, size int, qos byte, ack ackRef) bool {
	switch {
	case s.exclude != "" && strings.HasPrefix(topic, s.exclude):
		s.droppedOwn.Inc()
	case s.maxPkt > 0 && size > s.maxPkt:
		// The broker should not have sent it (Maximum Packet Size): do not
		// keep it. Acknowledged, so it is not redelivered.
		s.tooLarge.Inc()
	default:
		return true
	}
	if qos > 0 {
		s.ack([]ackRef{ack}) // sent in order, after the messages before it
	}
	return false
}

// sourceInbound is the Source seen by its connections: they hand it the
// QoS 0 and 1 PUBLISH packets they take out of the stream (see
// newSourceConn), on their reading goroutine.
type sourceInbound Source

func (si *sourceInbound) publish(c *bufConn, flags byte, body []byte, idx uint64) error {
	s := (*Source)(si)
	qos := flags >> 1 & 3
	if len(body) < 2 {
		return errMalformedPublish
	}
	tl := int(body[0])<<8 | int(body[1])
	rest := body[2:]
	if tl == 0 || tl > len(rest) {
		return errMalformedPublish // no topic alias: Vigil allows none
	}
	topic, rest := rest[:tl], rest[tl:]
	if qos > 0 {
		rest = rest[2:] // the packet identifier, checked by the connection
	}
	plen, k := uvarint(rest)
	if k <= 0 || plen > uint64(len(rest)-k) {
		return errMalformedPublish
	}
	payload := rest[k+int(plen):]
	ack := ackRef{conn: c, idx: idx, gen: s.gen.Load()}
	if s.exclude != "" || s.maxPkt > 0 {
		if !s.admit(unsafeString(topic), len(payload), qos, ack) {
			return nil
		}
	}
	if !s.q.push(topic, payload, qos, time.Now().UnixNano(), ack, s.maxQoS0, s.maxQ0B, false) {
		s.droppedQoS0.Inc()
		return nil
	}
	s.received.Inc()
	return nil
}

func (si *sourceInbound) flush() { si.q.flush() }

// uvarint decodes an MQTT variable byte integer (the same encoding as
// encoding/binary's, at most 4 bytes).
func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 4; i++ {
		v |= uint64(b[i]&0x7F) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
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
	var refs []ackRef
	for {
		n, left := 0, 0
		n, left, refs = s.q.takeInto(b, max, maxBatchBytes, s.origin)
		if n > 0 {
			s.queued.Set(float64(left))
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
	// DefaultLinger is the linger "vigil run" configures (SourceOptions.Linger):
	// at 15,000 messages/s one read then serves ~15 messages, and it adds at
	// most 1 ms to the publish → decision time.
	DefaultLinger = time.Millisecond
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

// ack acknowledges messages, in receive order, through the connection that
// received them, if that connection is still the current one. After a
// reconnect the broker redelivers what was not acknowledged, so skipping is
// correct; acknowledging on a closed connection would be meaningless. The
// PUBACKs of one call leave in one write.
func (s *Source) ack(refs []ackRef) {
	gen := s.gen.Load()
	var acked, skipped int
	for i := 0; i < len(refs); {
		r := refs[i]
		if r.gen != gen {
			skipped++
			i++
			continue
		}
		if r.conn == nil { // QoS 2, through paho
			if err := r.client.Ack(r.pub); err != nil {
				skipped++ // the connection went down meanwhile
			} else {
				acked++
			}
			i++
			continue
		}
		j := i + 1
		for j < len(refs) && refs[j].conn == r.conn && refs[j].gen == gen {
			j++
		}
		r.conn.ackRange(refs[i:j])
		acked += j - i
		i = j
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

// queue holds received messages until ReadBatch takes them, their payloads
// in one buffer, so that neither side allocates once the buffers have grown.
// Pushing never blocks: QoS 1 and 2 messages are bounded by the broker's
// flow control (ReceiveMaximum unacknowledged), QoS 0 ones by maxQoS0.
type queue struct {
	mu     sync.Mutex
	items  []message
	head   int
	buf    []byte            // payloads of items[head:] (and of taken ones before a reset)
	qos0   int               // QoS 0 messages in items[head:]
	qos0B  int               // their payload bytes
	held   bool              // items were pushed without waking the consumer
	topics map[string]string // interned topics
	ready  chan struct{}     // signalled when the queue becomes non-empty
}

const (
	// maxTopics bounds the interned topics; past it the table starts over.
	maxTopics = 1 << 16
	// wakeAt is the queue length at which a burst wakes the consumer
	// before it ends, so that reading and processing overlap.
	wakeAt = 512
	// maxRetainedQueue is the largest payload buffer an empty queue keeps.
	maxRetainedQueue = 8 << 20
)

// push appends a message, copying topic and payload; it reports false
// (dropping it) for a QoS 0 message when maxQoS0 of them, or maxBytes of
// their payloads, are already queued. With wake false the consumer is
// woken only by flush (or once wakeAt messages wait).
func (q *queue) push(topic, payload []byte, qos byte, arrival int64, ack ackRef, maxQoS0, maxBytes int, wake bool) bool {
	q.mu.Lock()
	if qos == 0 {
		n := len(payload)
		if q.qos0 >= maxQoS0 || q.qos0B+n > maxBytes {
			q.mu.Unlock()
			return false
		}
		q.qos0++
		q.qos0B += n
	}
	t, ok := q.topics[string(topic)]
	if !ok {
		if len(q.topics) >= maxTopics {
			clear(q.topics)
		}
		t = string(topic)
		q.topics[t] = t
	}
	start := len(q.buf)
	q.buf = append(q.buf, payload...)
	q.items = append(q.items, message{topic: t, start: start, end: len(q.buf), qos: qos, arrival: arrival, ack: ack})
	n := len(q.items) - q.head
	if !wake && n < wakeAt {
		q.held = true
		q.mu.Unlock()
		return true
	}
	q.held = false
	q.mu.Unlock()
	if wake || n == wakeAt {
		q.wake()
	}
	return true
}

// flush wakes the consumer if messages were pushed without waking it.
func (q *queue) flush() {
	q.mu.Lock()
	held := q.held
	q.held = false
	q.mu.Unlock()
	if held {
		q.wake()
	}
}

func (q *queue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// takeInto moves up to max messages, oldest first, into b, stopping before
// their payloads exceed maxBytes (one message is always taken). It returns
// how many it took, how many are left and the acknowledgement references of
// the QoS 1 and 2 ones.
func (q *queue) takeInto(b *pipeline.FrameBatch, max, maxBytes int, origin string) (n, left int, refs []ackRef) {
	q.mu.Lock()
	defer q.mu.Unlock()
	bytes := 0
	for avail := len(q.items) - q.head; n < min(max, avail); n++ {
		m := &q.items[q.head+n]
		size := m.end - m.start
		if n > 0 && bytes+size > maxBytes {
			break
		}
		bytes += size
		b.Add(m.topic, q.buf[m.start:m.end], m.arrival, origin, 0)
		if m.qos == 0 {
			q.qos0--
			q.qos0B -= size
		} else {
			if refs == nil {
				refs = make([]ackRef, 0, n+1)
			}
			refs = append(refs, m.ack)
		}
	}
	clear(q.items[q.head : q.head+n])
	q.head += n
	q.compact()
	return n, len(q.items) - q.head, refs
}

// compact reclaims the consumed front of items and buf. Callers hold mu.
func (q *queue) compact() {
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
		if cap(q.buf) > maxRetainedQueue {
			q.buf = nil
		} else {
			q.buf = q.buf[:0]
		}
	case q.head >= 1024 && q.head >= len(q.items)/2:
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
		shift := q.items[0].start
		q.buf = q.buf[:copy(q.buf, q.buf[shift:])]
		for i := range q.items {
			q.items[i].start -= shift
			q.items[i].end -= shift
		}
	}
}

// purge removes the QoS 1 and 2 messages of connections before gen.
func (q *queue) purge(gen uint64) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.items[:q.head]
	for _, m := range q.items[q.head:] { // QoS 0 messages are kept: qos0B holds
		if m.qos == 0 || m.ack.gen >= gen {
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
	q.items, q.head, q.qos0, q.qos0B, q.buf = q.items[:0], 0, 0, 0, q.buf[:0]
}

// unsafeString views b as a string for a lookup or comparison that does
// not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// unsafeBytes views s as bytes that are only read.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

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
