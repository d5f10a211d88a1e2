package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// countingConn counts the writes that reach the network.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestBufConnPackets writes "packets" of several fragments from concurrent
// goroutines under the packet lock, as paho does, and checks that each
// arrives whole and that the writes were coalesced.
func TestBufConnPackets(t *testing.T) {
	raw, peer := tcpPair(t)
	cc := &countingConn{Conn: raw}
	c := newBufConn(cc)

	const writers, packets = 8, 500
	var got bytes.Buffer
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(&got, peer)
		readDone <- err
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range packets {
				c.Lock()
				for _, frag := range []string{"<", fmt.Sprintf("%d", w), ":", fmt.Sprintf("%05d", i), ">"} {
					if _, err := c.Write([]byte(frag)); err != nil {
						t.Error(err)
					}
				}
				c.Unlock()
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	// Every packet whole, and each writer's packets in order.
	next := make([]int, writers)
	s := got.String()
	for s != "" {
		var w, i int
		if _, err := fmt.Sscanf(s, "<%d:%05d>", &w, &i); err != nil {
			t.Fatalf("torn packet at %q: %v", s[:min(len(s), 20)], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got packet %d; want %d", w, i, next[w])
		}
		next[w]++
		s = s[len(fmt.Sprintf("<%d:%05d>", w, i)):]
	}
	for w, n := range next {
		if n != packets {
			t.Errorf("writer %d: got %d packets; want %d", w, n, packets)
		}
	}
	fragments := int64(writers * packets * 5)
	t.Logf("%d fragments in %d network writes", fragments, cc.writes.Load())
	if cc.writes.Load() >= fragments/5 {
		t.Errorf("got %d network writes for %d packets; want them coalesced", cc.writes.Load(), writers*packets)
	}
}

// TestBufConnClose checks that Close flushes what was written just before
// (a DISCONNECT) and that writing afterwards fails.
func TestBufConnClose(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newBufConn(raw)
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close() // twice is fine
	b, err := io.ReadAll(peer)
	if err != nil || string(b) != "bye" {
		t.Fatalf("got %q, %v; want %q", b, err, "bye")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: got %v; want net.ErrClosed", err)
	}
}

// TestBufConnWriteError checks that a network error reaches later writes and
// closes the connection for the reader.
func TestBufConnWriteError(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newBufConn(raw)
	peer.Close()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write(make([]byte, 64<<10))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
	if _, rerr := c.Read(make([]byte, 1)); rerr == nil {
		t.Error("read succeeded after a write error")
	}
	c.Close()
}

// publishPacket encodes an MQTT 5 PUBLISH.
func publishPacket(qos byte, id uint16, topic string, props, payload []byte) []byte {
	var body []byte
	body = append(body, byte(len(topic)>>8), byte(len(topic)))
	body = append(body, topic...)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	body = append(body, byte(len(props)))
	body = append(body, props...)
	body = append(body, payload...)
	out := []byte{0x30 | qos<<1}
	for n := len(body); ; {
		b := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// TestSourceConnTakesPublishes: a source connection hands QoS 0 and 1
// PUBLISH packets (properties skipped, one larger than the read buffer) to
// the Source, and everything else, QoS 2 included, to paho byte for byte;
// the batch's Ack sends the PUBACKs in receive order, an excluded message's
// after the earlier messages'.
func TestSourceConnTakesPublishes(t *testing.T) {
	cfg := validConfig()
	cfg.PasswordFile, cfg.Username = "", ""
	src, err := NewSource(cfg, SourceOptions{ExcludeTopicPrefix: "vigil/"})
	if err != nil {
		t.Fatal(err)
	}
	client, server := tcpPair(t)
	bc := newSourceConn(client, (*sourceInbound)(src), time.Millisecond)
	defer bc.Close()

	big := bytes.Repeat([]byte("z"), 70000)
	ping := []byte{0xD0, 0}
	qos2 := publishPacket(2, 9, "plant/c", nil, []byte("p2"))
	var stream []byte
	for _, p := range [][]byte{
		publishPacket(0, 0, "plant/a", nil, []byte("p0")),
		ping,
		publishPacket(1, 7, "plant/b", []byte{0x01, 0x01}, []byte("p1")), // payload format indicator
		publishPacket(1, 5, "vigil/x", nil, []byte("own")),
		qos2,
		publishPacket(1, 8, "plant/d", nil, big),
	} {
		stream = append(stream, p...)
	}
	go func() { _, _ = server.Write(stream) }()

	// paho's side: only the PINGRESP and the QoS 2 PUBLISH.
	want := append(append([]byte{}, ping...), qos2...)
	got := make([]byte, 0, len(want))
	pahoDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 3) // paho reads in small pieces
		for len(got) < len(want) {
			n, err := bc.Read(buf)
			if err != nil {
				pahoDone <- err
				return
			}
			got = append(got, buf[:n]...)
		}
		pahoDone <- nil
		_, _ = bc.Read(buf) // paho keeps reading: the queue is flushed before the next network read
	}()

	src.link.ready.Store(true) // pretend connected: ReadBatch only takes from the queue
	defer src.link.ready.Store(false)
	var b pipeline.FrameBatch
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for b.Len() < 3 {
		if err := src.ReadBatch(ctx, &b, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-pahoDone; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("paho read %x; want %x", got, want)
	}
	var topics []string
	for i := range b.Frames {
		topics = append(topics, fmt.Sprintf("%s=%d", b.Frames[i].Topic, len(b.Payload(&b.Frames[i]))))
	}
	if g, w := fmt.Sprint(topics), "[plant/a=2 plant/b=2 plant/d=70000]"; g != w {
		t.Fatalf("frames %s; want %s", g, w)
	}
	if !bytes.Equal(b.Payload(&b.Frames[2]), big) || string(b.Payload(&b.Frames[1])) != "p1" {
		t.Fatal("payloads differ from what was published")
	}

	// The excluded message (5) was acknowledged at once, but its PUBACK
	// waits for 7's.
	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := server.Read(make([]byte, 16)); n != 0 {
		t.Fatalf("%d bytes sent before the batch was acknowledged; want none", n)
	}
	b.Ack()
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	acks := make([]byte, 12)
	if _, err := io.ReadFull(server, acks); err != nil {
		t.Fatal(err)
	}
	if w := []byte{0x40, 2, 0, 7, 0x40, 2, 0, 5, 0x40, 2, 0, 8}; !bytes.Equal(acks, w) {
		t.Errorf("PUBACKs %x; want %x (7, 5, 8: receive order)", acks, w)
	}
}

// TestAckRingOrder: PUBACKs leave in receive order whatever order the
// acknowledgements come in, and the ring grows past its first size.
func TestAckRingOrder(t *testing.T) {
	var a ackRing
	var idx []uint64
	for i := range 3000 {
		idx = append(idx, a.add(uint16(i+1)))
	}
	if out := a.mark(idx[1], nil); len(out) != 0 {
		t.Fatalf("acknowledging the second message sent %x; want nothing before the first", out)
	}
	out := a.mark(idx[0], nil)
	if w := []byte{0x40, 2, 0, 1, 0x40, 2, 0, 2}; !bytes.Equal(out, w) {
		t.Fatalf("got %x; want %x", out, w)
	}
	out = out[:0]
	for i := len(idx) - 1; i >= 2; i-- {
		out = a.mark(idx[i], out)
	}
	if len(out) != 4*2998 || out[3] != 3 || out[len(out)-1] != byte(3000&0xFF) {
		t.Fatalf("%d bytes; want the 2998 remaining PUBACKs in order", len(out))
	}
	if out = a.mark(idx[0], out[:0]); len(out) != 0 {
		t.Fatal("a second acknowledgement sent a PUBACK again")
	}
	if allocs := testing.AllocsPerRun(100, func() {
		out = a.mark(a.add(1), out[:0])
	}); allocs != 0 {
		t.Errorf("%.0f allocations per message; want 0", allocs)
	}
}
