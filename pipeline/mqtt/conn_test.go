package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
