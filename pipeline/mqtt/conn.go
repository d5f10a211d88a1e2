package mqtt

import (
	"bufio"
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

// Read implements net.Conn.
func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

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
