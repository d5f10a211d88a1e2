package mqtt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
)

// push queues a message whose payload is its topic, or size zero bytes.
func push(q *queue, qos byte, gen uint64, topic string, size, maxQoS0, maxBytes int) bool {
	payload := []byte(topic)
	if size > 0 {
		payload = make([]byte, size)
	}
	return q.push([]byte(topic), payload, qos, 1, ackRef{gen: gen}, maxQoS0, maxBytes, true)
}

// take takes up to max messages and returns them with their references.
func take(q *queue, max, maxBytes int) (*pipeline.FrameBatch, []ackRef) {
	var b pipeline.FrameBatch
	_, _, refs := q.takeInto(&b, max, maxBytes, "o")
	return &b, refs
}

func newQueue() queue { return queue{ready: make(chan struct{}, 1), topics: map[string]string{}} }

func TestQueue(t *testing.T) {
	q := newQueue()
	// QoS 0 is bounded, QoS 1 is not.
	for i := range 5 {
		if !push(&q, 0, 0, "q0", 0, 3, 1<<20) && i < 3 {
			t.Fatalf("QoS 0 message %d dropped below the limit", i)
		}
	}
	for range 10 {
		if !push(&q, 1, 0, "q1", 0, 3, 1<<20) {
			t.Fatal("QoS 1 message dropped")
		}
	}
	if n := q.len(); n != 13 {
		t.Fatalf("queued %d; want 13 (3 QoS 0 + 10 QoS 1)", n)
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready signal after the first push")
	}
	got, refs := take(&q, 4, 1<<20)
	if got.Len() != 4 || got.Frames[0].Topic != "q0" || got.Frames[3].Topic != "q1" || len(refs) != 1 {
		t.Fatalf("take(4) = %d messages, %d refs; want the 3 QoS 0 then a QoS 1 one, in order", got.Len(), len(refs))
	}
	if !push(&q, 0, 0, "q0", 0, 3, 1<<20) {
		t.Fatal("QoS 0 message dropped after the queue drained")
	}

	// Messages of an old connection: QoS 1 ones go, QoS 0 ones stay.
	push(&q, 1, 1, "new", 0, 3, 1<<20)
	if n := q.purge(1); n != 9 {
		t.Fatalf("purged %d; want the 9 QoS 1 messages of generation 0", n)
	}
	got, _ = take(&q, 100, 1<<20)
	var topics []string
	for i, f := range got.Frames {
		topics = append(topics, f.Topic)
		if p := string(got.Payload(&got.Frames[i])); p != f.Topic {
			t.Errorf("payload %q; want %q", p, f.Topic)
		}
	}
	if strings.Join(topics, ",") != "q0,new" {
		t.Fatalf("after purge got %v; want [q0 new]", topics)
	}
	if q.len() != 0 || q.qos0 != 0 {
		t.Fatalf("len %d, qos0 %d after draining; want 0, 0", q.len(), q.qos0)
	}
}

func TestQueueCompacts(t *testing.T) {
	q := newQueue()
	for range 100 {
		push(&q, 1, 0, "x", 0, 0, 1<<20)
	}
	var b pipeline.FrameBatch
	for i := range 100000 { // a consumer that keeps lagging by 100 messages
		push(&q, 1, 0, strconv.Itoa(i%1000), 0, 0, 1<<20)
		b.Reset()
		q.takeInto(&b, 1, 1<<20, "o")
		if i >= 100 && string(b.Payload(&b.Frames[0])) != b.Frames[0].Topic {
			t.Fatalf("message %d: payload %q under topic %q", i, b.Payload(&b.Frames[0]), b.Frames[0].Topic)
		}
	}
	if q.len() != 100 || cap(q.items) > 4096 || cap(q.buf) > 64<<10 {
		t.Fatalf("len %d, capacity %d, %d buffer bytes: the consumed front is not reclaimed", q.len(), cap(q.items), cap(q.buf))
	}
	if allocs := testing.AllocsPerRun(1000, func() {
		push(&q, 1, 0, "7", 0, 0, 1<<20)
		b.Reset()
		q.takeInto(&b, 1, 1<<20, "o")
	}); allocs > 1 { // the batch's ack references
		t.Errorf("%.1f allocations per message; want at most 1", allocs)
	}
}

// TestQueueBytes: QoS 0 messages are bounded by their bytes too, and a
// take stops before the batch's bytes pass the limit (taking at least one).
func TestQueueBytes(t *testing.T) {
	q := newQueue()
	if !push(&q, 0, 0, "t", 600, 100, 1000) || push(&q, 0, 0, "t", 600, 100, 1000) {
		t.Fatal("QoS 0: want the first 600-byte message kept and the second dropped at a 1000-byte bound")
	}
	if !push(&q, 0, 0, "t", 400, 100, 1000) {
		t.Fatal("QoS 0: a message that fits the byte bound was dropped")
	}
	if !push(&q, 1, 0, "t", 5000, 100, 1000) {
		t.Fatal("QoS 1 messages are bounded by the broker's flow control, never dropped")
	}
	got, _ := take(&q, 10, 900)
	if got.Len() != 1 {
		t.Fatalf("take with a 900-byte bound took %d messages (600, 400, …); want 1", got.Len())
	}
	if !push(&q, 0, 0, "t", 600, 100, 1000) {
		t.Fatal("QoS 0: the bytes taken were not released")
	}
	got, _ = take(&q, 10, 100)
	if got.Len() != 1 || len(got.Payload(&got.Frames[0])) != 400 {
		t.Fatalf("a message larger than the bound: took %d; want it alone", got.Len())
	}
	got, _ = take(&q, 10, 1<<20)
	if got.Len() != 2 || q.qos0 != 0 || q.qos0B != 0 {
		t.Fatalf("took %d, left qos0 %d, %d bytes; want 2 and nothing left", got.Len(), q.qos0, q.qos0B)
	}
}

// TestSourceOnPublish drives the paho callback directly: excluded topics and
// QoS 0 overflow are dropped and counted, the rest reach ReadBatch in order.
func TestSourceOnPublish(t *testing.T) {
	set := metrics.NewSet()
	cfg := validConfig()
	cfg.PasswordFile = ""
	cfg.Username = ""
	src, err := NewSource(cfg, SourceOptions{ExcludeTopicPrefix: "vigil/", MaxQueuedQoS0: 2, MaxPacketSize: 64, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"plant/a", "vigil/alerts/x", "plant/b", "plant/big", "plant/c"} {
		payload := []byte(topic)
		if topic == "plant/big" {
			payload = make([]byte, 65) // over MaxPacketSize: the broker should not have sent it
		}
		src.onPublish(paho.PublishReceived{Packet: &paho.Publish{QoS: 0, Topic: topic, Payload: payload}})
	}
	var out bytes.Buffer
	set.WritePrometheus(&out)
	for _, want := range []string{
		"vigil_mqtt_messages_received_total 2",
		`vigil_mqtt_messages_dropped_total{reason="excluded_topic"} 1`,
		`vigil_mqtt_messages_dropped_total{reason="qos0_overflow"} 1`,
		`vigil_mqtt_messages_dropped_total{reason="too_large"} 1`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	src.link.ready.Store(true) // pretend connected: ReadBatch only takes from the queue
	var b pipeline.FrameBatch
	if err := src.ReadBatch(t.Context(), &b, 10); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 2 || b.Frames[0].Topic != "plant/a" || string(b.Payload(&b.Frames[1])) != "plant/b" {
		t.Fatalf("got %d frames %+v; want plant/a, plant/b", b.Len(), b.Frames)
	}
	if b.Frames[0].Origin != "mqtts://broker.example:8883" || b.Frames[0].Arrival == 0 {
		t.Errorf("frame origin %q arrival %d", b.Frames[0].Origin, b.Frames[0].Arrival)
	}
	if b.Ack != nil {
		t.Error("Ack set for a batch of QoS 0 messages")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := src.ReadBatch(ctx, &b, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty queue: got %v; want the context's error", err)
	}
	src.link.ready.Store(false)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.ReadBatch(t.Context(), &b, 10); !errors.Is(err, io.EOF) {
		t.Fatalf("after Close: got %v; want io.EOF", err)
	}
}
