package broker

import (
	"net"
	"sync"
	"sync/atomic"
)

// connackFirst makes the CONNACK the first packet a client receives.
// mochi registers a connection that resumes a session before it writes the
// CONNACK, and its write loop runs from the start, so a message published
// in between could reach the client first: paho then fails the connect
// ("received unexpected packet"). Until the CONNACK has been written,
// connackFirst holds what is written, and then writes the CONNACK ahead of
// it. mochi may write several packets in one Write, so it splits what it
// holds at packet boundaries.
type connackFirst struct {
	net.Conn
	done atomic.Bool
	mu   sync.Mutex
	held []byte
}

func (c *connackFirst) Write(p []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done.Load() {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	out, ok := connackAhead(c.held)
	if !ok {
		return len(p), nil
	}
	c.held = nil
	c.done.Store(true)
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// connackAhead finds a whole CONNACK among the packets in b and returns b
// with it moved to the front; ok is false while b holds none.
func connackAhead(b []byte) ([]byte, bool) {
	for i := 0; i < len(b); {
		n, ok := packetLen(b[i:])
		if !ok {
			return nil, false
		}
		if b[i]>>4 == 2 { // CONNACK
			out := make([]byte, 0, len(b))
			out = append(out, b[i:i+n]...)
			out = append(out, b[:i]...)
			return append(out, b[i+n:]...), true
		}
		i += n
	}
	return nil, false
}

// packetLen is the length of the MQTT packet at the start of b, from its
// fixed header; ok is false if b does not hold all of it yet.
func packetLen(b []byte) (int, bool) {
	rem, mul := 0, 1
	for i := 1; i < len(b) && i <= 4; i++ {
		rem += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			n := 1 + i + rem
			return n, n <= len(b)
		}
		mul *= 128
	}
	return 0, false
}
