package broker

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// connackFirst makes the CONNACK the first packet a client receives.
// mochi registers a connection that resumes a session before it writes the
// CONNACK, and its write loop runs from the start, so a message published
// in between could reach the client first: paho then fails the connect
// ("received unexpected packet"). Until the CONNACK has been written,
// connackFirst holds what is written, and then writes the CONNACK ahead of
// it. mochi may write several packets in one Write, so it splits what it
// holds at packet boundaries.
//
// It also gives every write a deadline: a client that takes more than
// writeTimeout to accept one (it stopped reading) is disconnected, and
// stuck is called. mochi's keepalive deadline (SetDeadline) then applies
// to reads only: a client that keeps pinging but never reads would
// otherwise hold its connection, and the messages queued for it, forever.
type connackFirst struct {
	net.Conn
	writeTimeout time.Duration
	stuck        func()

	done atomic.Bool
	mu   sync.Mutex
	held []byte
}

func (c *connackFirst) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

func (c *connackFirst) Write(p []byte) (int, error) {
	if c.done.Load() {
		return c.write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done.Load() {
		return c.write(p)
	}
	c.held = append(c.held, p...)
	out, ok := connackAhead(c.held)
	if !ok {
		return len(p), nil
	}
	c.held = nil
	c.done.Store(true)
	if _, err := c.write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *connackFirst) write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.Conn.Close() // mochi's read loop ends, and with it the connection
		if c.stuck != nil {
			c.stuck()
		}
	}
	return n, err
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
