package mqtttest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// RawClient is a minimal MQTT 5 client over plain TCP, for benchmarks: a
// load generator that costs little CPU (packets are encoded into a buffered
// writer and sent in one write per Flush), and the reference subscriber
// that shows what the broker can deliver to one connection (it parses only
// the fixed header, the topic and the packet identifier). It is not a
// general client: no reconnects, no keep-alive pings (the keep-alive is
// off), no QoS 2.
//
// Publish and Flush are called from one goroutine; Receive from another.
type RawClient struct {
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	nextID uint16
	window chan struct{} // QoS 1 publishes awaiting PUBACK
	acked  atomic.Int64
}

// DialRaw connects to addr (host:port, plaintext) with a clean session,
// the given client ID and credentials, and waits for the CONNACK.
// inflight bounds the QoS 1 messages published without a PUBACK yet.
func DialRaw(addr, clientID, user, password string, inflight int) (*RawClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &RawClient{
		conn:   conn,
		r:      bufio.NewReaderSize(conn, 256<<10),
		w:      bufio.NewWriterSize(conn, 256<<10),
		window: make(chan struct{}, max(inflight, 1)),
	}
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 5, 0x80|0x40|0x02, 0, 0) // v5; username, password, clean start; no keep-alive
	body = append(body, 3, 0x21, 0xFF, 0xFF)     // properties: Receive Maximum 65535
	body = appendString(body, clientID)
	body = appendString(body, user)
	body = appendString(body, password)
	c.writePacket(0x10, body)
	if err := c.w.Flush(); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, pkt, err := c.readPacket()
	_ = conn.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		conn.Close()
		return nil, fmt.Errorf("mqtttest: connect: %w", err)
	case typ != 0x20 || len(pkt) < 2:
		conn.Close()
		return nil, fmt.Errorf("mqtttest: connect: got packet type %#x; want CONNACK", typ)
	case pkt[1] >= 0x80:
		conn.Close()
		return nil, fmt.Errorf("mqtttest: connect refused: reason %#x", pkt[1])
	}
	return c, nil
}

// NewRawConn wraps an established connection, with no handshake: a test
// that plays the broker uses it to write PUBLISH packets (Publish, Flush)
// and read the client's packets (ReadPacket).
func NewRawConn(conn net.Conn) *RawClient {
	return &RawClient{
		conn:   conn,
		r:      bufio.NewReaderSize(conn, 64<<10),
		w:      bufio.NewWriterSize(conn, 256<<10),
		window: make(chan struct{}, 1),
	}
}

// ReadPacket reads one packet: its first byte and the rest, valid until the
// next read.
func (c *RawClient) ReadPacket() (flags byte, body []byte, err error) { return c.readPacket() }

// Subscribe subscribes to filter and waits for the SUBACK. Call it before
// Receive.
func (c *RawClient) Subscribe(filter string, qos byte) error {
	body := []byte{0, 1, 0} // packet ID 1, no properties
	body = appendString(body, filter)
	body = append(body, qos)
	c.writePacket(0x82, body)
	if err := c.w.Flush(); err != nil {
		return err
	}
	typ, pkt, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("mqtttest: subscribe: %w", err)
	}
	if typ != 0x90 || len(pkt) < 4 {
		return fmt.Errorf("mqtttest: subscribe: got packet type %#x; want SUBACK", typ)
	}
	if code := pkt[len(pkt)-1]; code >= 0x80 {
		return fmt.Errorf("mqtttest: subscribe %q refused: reason %#x", filter, code)
	}
	return nil
}

// Publish appends a PUBLISH of payload to topic to the write buffer (it is
// sent when the buffer fills or on Flush). At QoS 1 it first waits for room
// in the in-flight window; run Receive (with a nil function) on another
// goroutine to read the PUBACKs.
func (c *RawClient) Publish(topic string, payload []byte, qos byte) error {
	n := 2 + len(topic) + 1 + len(payload)
	hdr := byte(0x30)
	if qos > 0 {
		n += 2
		hdr |= qos << 1
		select {
		case c.window <- struct{}{}:
		default:
			if err := c.w.Flush(); err != nil { // let the broker see what waits
				return err
			}
			c.window <- struct{}{}
		}
	}
	_ = c.w.WriteByte(hdr)
	c.writeLen(n)
	_ = c.w.WriteByte(byte(len(topic) >> 8))
	_ = c.w.WriteByte(byte(len(topic)))
	_, _ = c.w.WriteString(topic)
	if qos > 0 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		_ = c.w.WriteByte(byte(c.nextID >> 8))
		_ = c.w.WriteByte(byte(c.nextID))
	}
	_ = c.w.WriteByte(0) // no properties
	_, err := c.w.Write(payload)
	return err
}

// Flush sends what is buffered.
func (c *RawClient) Flush() error { return c.w.Flush() }

// Acked returns the number of PUBACKs received.
func (c *RawClient) Acked() int64 { return c.acked.Load() }

// Receive reads packets until the connection fails or is closed: each
// PUBLISH's topic and payload go to fn (if not nil; valid only during the
// call), QoS 1 ones are acknowledged (the PUBACKs are flushed whenever no
// more input is buffered), and PUBACKs free the publishing window. Do not
// publish on a client that receives messages.
func (c *RawClient) Receive(fn func(topic, payload []byte)) error {
	wrote := false // only flush what this goroutine wrote: a publisher may be writing
	for {
		typ, pkt, err := c.readPacket()
		if err != nil {
			return err
		}
		switch typ >> 4 {
		case 3: // PUBLISH
			qos := (typ >> 1) & 3
			if len(pkt) < 2 {
				return errors.New("mqtttest: short PUBLISH")
			}
			tl := int(binary.BigEndian.Uint16(pkt))
			topic := pkt[2 : 2+tl]
			rest := pkt[2+tl:]
			var id []byte
			if qos > 0 {
				id, rest = rest[:2], rest[2:]
			}
			pl, k := binary.Uvarint(rest) // properties length: a varint like MQTT's
			if k <= 0 {
				return errors.New("mqtttest: bad PUBLISH properties")
			}
			if fn != nil {
				fn(topic, rest[k+int(pl):])
			}
			if qos > 0 {
				_, _ = c.w.Write([]byte{0x40, 2, id[0], id[1]})
				wrote = true
			}
		case 4: // PUBACK
			select {
			case <-c.window:
			default:
			}
			c.acked.Add(1)
		}
		if wrote && c.r.Buffered() == 0 {
			if err := c.w.Flush(); err != nil {
				return err
			}
			wrote = false
		}
	}
}

// Close closes the connection (no DISCONNECT: the session is clean).
func (c *RawClient) Close() error { return c.conn.Close() }

// readPacket reads one packet; the body is valid until the next read.
func (c *RawClient) readPacket() (typ byte, body []byte, err error) {
	typ, err = c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7F) * mul
		if b < 0x80 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("mqtttest: bad remaining length")
		}
		mul <<= 7
	}
	if n <= c.r.Size() {
		body, err = c.r.Peek(n)
		if err == nil {
			_, _ = c.r.Discard(n)
		}
		return typ, body, err
	}
	body = make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return typ, body, err
}

func (c *RawClient) writePacket(typ byte, body []byte) {
	_ = c.w.WriteByte(typ)
	c.writeLen(len(body))
	_, _ = c.w.Write(body)
}

func (c *RawClient) writeLen(n int) {
	for {
		b := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		_ = c.w.WriteByte(b)
		if n == 0 {
			return
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}
