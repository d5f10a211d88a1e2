package mqtt

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// bufConn wraps a network connection for paho: reads go through a
// bufio.Reader (paho reads a packet in ~3 small reads: type, length, body),
// and writes are coalesced by a flusher goroutine, so a burst of packets
// (a batch of PUBACKs, concurrent publishes) costs one syscall and, over TLS,
// one record instead of one per fragment (paho writes each packet as 3-4
// separate buffers).
//
// bufConn implements sync.Locker: paho locks it around each packet, so the
// fragments of one packet stay together. Write never blocks on the network
// unless more than maxPending bytes are waiting; a write error is reported by
// later writes and closes the connection, so paho's reader sees it too.
type bufConn struct {
	net.Conn               // the underlying connection, for Read-side methods and deadlines
	r        *bufio.Reader // used by paho's single reader goroutine only

	// With in set (the Source's connections), Read takes QoS 0 and 1
	// PUBLISH packets out of the stream and hands them to in; paho reads
	// only the other packets, from pass. See newSourceConn.
	in      inbound
	lr      *lingerReader
	pass    []byte // packets for paho
	passOff int
	big     []byte  // a packet larger than the read buffer
	acks    ackRing // the QoS 1 PUBLISHes taken, in receive order
	ackBuf  []byte  // PUBACKs being written, under acks.mu

	packet sync.Mutex // held by paho across one packet (Lock/Unlock)

	mu       sync.Mutex
	cond     sync.Cond // signalled when buf drains (writers waiting on maxPending)
	buf      []byte    // pending bytes
	spare    []byte    // the flusher's previous buffer, reused
	err      error     // first write error
	closed   bool
	kick     chan struct{} // wakes the flusher; capacity 1
	done     chan struct{} // closed when the flusher has exited
	once     sync.Once
	closeErr error
}

const (
	readBufSize = 64 << 10
	maxPending  = 1 << 20 // writers wait while this much is unflushed
	closeFlush  = time.Second
)

func newBufConn(c net.Conn) *bufConn {
	bc := &bufConn{
		Conn: c,
		r:    bufio.NewReaderSize(c, readBufSize),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	bc.cond.L = &bc.mu
	go bc.flusher()
	return bc
}

// inbound receives the PUBLISH packets a source connection takes out of
// the stream. Both methods are called on the connection's reading
// goroutine (paho's), one connection at a time.
type inbound interface {
	// publish handles one QoS 0 or 1 PUBLISH: flags is the fixed header's
	// first byte, body the rest (valid during the call only). idx is the
	// message's place in the connection's acknowledgement order (QoS 1;
	// see bufConn.ack). An error ends the connection.
	publish(c *bufConn, flags byte, body []byte, idx uint64) error
	// flush is called whenever everything read so far has been handled,
	// before the connection waits for more: the moment to wake a consumer.
	flush()
}

// newSourceConn wraps c like newBufConn, and also takes QoS 0 and 1 PUBLISH
// packets out of the stream for in, without allocating: paho reads, parses,
// allocates and routes each message on two goroutines of its own, which made
// one connection's reading the live path's limit (issue 15). QoS 2 and every
// other packet still go to paho. When a read from the network returned less
// than the read buffer holds (the connection is not behind), the next read
// first waits linger, so that one system call and one wake-up of the
// consumer serve every message that arrived meanwhile; an idle connection
// costs nothing, and a message waits at most linger longer.
func newSourceConn(c net.Conn, in inbound, linger time.Duration) *bufConn {
	bc := newBufConn(c)
	bc.in = in
	bc.lr = &lingerReader{conn: c, linger: linger, before: in.flush}
	bc.r = bufio.NewReaderSize(bc.lr, readBufSize)
	return bc
}

// Read implements net.Conn.
func (c *bufConn) Read(p []byte) (int, error) {
	if c.in == nil {
		return c.r.Read(p)
	}
	for c.passOff == len(c.pass) {
		c.pass, c.passOff = c.pass[:0], 0
		if err := c.readPacket(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pass[c.passOff:])
	c.passOff += n
	return n, nil
}

var (
	errRemainingLength  = errors.New("mqtt: malformed remaining length")
	errMalformedPublish = errors.New("mqtt: malformed PUBLISH")
)

// readPacket reads one packet: a QoS 0 or 1 PUBLISH goes to c.in, any other
// to c.pass for paho.
func (c *bufConn) readPacket() error {
	flags, err := c.r.ReadByte()
	if err != nil {
		return err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return err
		}
		n += int(b&0x7F) * mul
		if b < 0x80 {
			break
		}
		if i == 3 {
			return errRemainingLength
		}
		mul <<= 7
	}
	var body []byte
	peeked := n <= c.r.Size()
	if peeked {
		if body, err = c.r.Peek(n); err != nil {
			return err
		}
	} else {
		if cap(c.big) < n {
			c.big = make([]byte, n)
		}
		body = c.big[:n]
		if _, err := io.ReadFull(c.r, body); err != nil {
			return err
		}
	}
	if qos := flags >> 1 & 3; flags>>4 == 3 && qos < 2 { // PUBLISH, QoS 0 or 1
		var idx uint64
		if qos == 1 {
			if len(body) < 2 || len(body) < 4+(int(body[0])<<8|int(body[1])) {
				return errMalformedPublish
			}
			tl := int(body[0])<<8 | int(body[1])
			idx = c.acks.add(uint16(body[2+tl])<<8 | uint16(body[3+tl]))
		}
		err = c.in.publish(c, flags, body, idx)
	} else {
		c.pass = append(c.pass, flags)
		for v := n; ; {
			b := byte(v & 0x7F)
			v >>= 7
			if v > 0 {
				b |= 0x80
			}
			c.pass = append(c.pass, b)
			if v == 0 {
				break
			}
		}
		c.pass = append(c.pass, body...)
	}
	if peeked {
		_, _ = c.r.Discard(n)
	} else if cap(c.big) > readBufSize {
		c.big = nil // do not keep a huge buffer for one large message
	}
	return err
}

// ack acknowledges the QoS 1 PUBLISH taken as idx. PUBACKs leave in receive
// order (MQTT 5, 4.6): one is sent once every earlier message was
// acknowledged too. A closed connection ignores it.
func (c *bufConn) ack(idx uint64) {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	c.ackBuf = c.acks.mark(idx, c.ackBuf[:0])
	c.writeAcks()
}

// ackRange acknowledges several messages of this connection, then sends
// the PUBACKs that became due in one write.
func (c *bufConn) ackRange(refs []ackRef) {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	buf := c.ackBuf[:0]
	for i := range refs {
		buf = c.acks.mark(refs[i].idx, buf)
	}
	c.ackBuf = buf
	c.writeAcks()
}

// writeAcks writes c.ackBuf as whole packets. Callers hold acks.mu, which
// keeps concurrent acknowledgements in order.
func (c *bufConn) writeAcks() {
	if len(c.ackBuf) == 0 {
		return
	}
	c.Lock()
	_, _ = c.Write(c.ackBuf) // fails only once the connection is gone: then the broker resends
	c.Unlock()
}

// ackRing holds the packet identifiers of the QoS 1 messages a connection
// took, in receive order, until they are acknowledged.
type ackRing struct {
	mu         sync.Mutex
	ids        []uint16
	done       []bool
	head, tail uint64 // messages [head, tail) await a PUBACK
}

// add records a received QoS 1 message and returns its index.
func (a *ackRing) add(id uint16) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tail-a.head == uint64(len(a.ids)) { // full (or empty): grow
		n := max(2*len(a.ids), 1024)
		ids, done := make([]uint16, n), make([]bool, n)
		for i := a.head; i < a.tail; i++ {
			ids[i%uint64(n)], done[i%uint64(n)] = a.ids[i%uint64(len(a.ids))], a.done[i%uint64(len(a.ids))]
		}
		a.ids, a.done = ids, done
	}
	k := a.tail % uint64(len(a.ids))
	a.ids[k], a.done[k] = id, false
	a.tail++
	return a.tail - 1
}

// mark records that message idx is acknowledged and appends the PUBACKs
// that became due to buf. Callers hold mu.
func (a *ackRing) mark(idx uint64, buf []byte) []byte {
	if idx < a.head || idx >= a.tail {
		return buf
	}
	n := uint64(len(a.ids))
	a.done[idx%n] = true
	for a.head < a.tail && a.done[a.head%n] {
		id := a.ids[a.head%n]
		buf = append(buf, 0x40, 2, byte(id>>8), byte(id))
		a.head++
	}
	return buf
}

// lingerReader reads from a connection; after a read that did not fill
// the caller's buffer it waits linger before the next one (see
// newSourceConn). before runs ahead of every read.
type lingerReader struct {
	conn   net.Conn
	linger time.Duration
	before func()
	short  bool
}

func (l *lingerReader) Read(p []byte) (int, error) {
	l.before()
	if l.short && l.linger > 0 {
		time.Sleep(l.linger)
	}
	n, err := l.conn.Read(p)
	l.short = n < len(p)
	return n, err
}

// Lock and Unlock implement sync.Locker; paho holds the lock while it writes
// the fragments of one packet.
func (c *bufConn) Lock() { c.packet.Lock() }

// Unlock ends a packet.
func (c *bufConn) Unlock() { c.packet.Unlock() }

// Write appends p to the pending bytes and wakes the flusher.
func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for len(c.buf) >= maxPending && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	if c.err != nil || c.closed {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	c.buf = append(c.buf, p...)
	select { // under mu, so Close cannot close kick in between
	case c.kick <- struct{}{}:
	default: // the flusher is already due to run
	}
	c.mu.Unlock()
	return len(p), nil
}

// flusher writes pending bytes until the connection is closed or fails.
// While it is in a write, new packets accumulate and go out in the next one.
func (c *bufConn) flusher() {
	defer close(c.done)
	for range c.kick {
		if !c.flush() {
			return
		}
	}
}

// flush writes everything pending; it reports false once the connection has
// failed or is closed and nothing is left to write.
func (c *bufConn) flush() bool {
	for {
		c.mu.Lock()
		if c.err != nil || len(c.buf) == 0 {
			ok := c.err == nil && !c.closed
			c.cond.Broadcast()
			c.mu.Unlock()
			return ok
		}
		out := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()

		_, err := c.Conn.Write(out)

		c.mu.Lock()
		c.spare = out[:0]
		if err != nil && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			_ = c.Conn.Close() // wake paho's reader
			return false
		}
	}
}

// Close flushes what is pending (a DISCONNECT written just before), waiting
// at most a second, then closes the connection. It is safe to call more than
// once and concurrently.
func (c *bufConn) Close() error {
	c.once.Do(func() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
		c.mu.Lock()
		c.closed = true
		close(c.kick) // the flusher drains what is pending, then exits
		c.cond.Broadcast()
		c.mu.Unlock()
		select {
		case <-c.done:
		case <-time.After(closeFlush + 100*time.Millisecond):
		}
		c.closeErr = c.Conn.Close()
		<-c.done
	})
	return c.closeErr
}
