package broker

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// clientConn is the connection mochi gets for each client.
//
// It makes the CONNACK the first packet a client receives. mochi
// registers a connection that resumes a session before it writes the
// CONNACK, and its write loop runs from the start, so a message published
// in between could reach the client first: paho then fails the connect
// ("received unexpected packet"). Until the CONNACK has been written,
// clientConn holds what is written, and then writes the CONNACK ahead of
// it. mochi may write several packets in one Write, so it splits what it
// holds at packet boundaries.
//
// It never lets a write wait for the client. mochi writes while it holds
// the client's lock, and publishers take that lock to give a delivery to
// the client a packet id: a client that stopped reading held up everyone
// who published to it. Writes go to a backlog instead, which a goroutine
// of its own writes out. A client whose socket takes no bytes for
// writeTimeout, or whose backlog passes maxBacklog, is disconnected as
// stuck (stuck is called). mochi's keepalive deadline (SetDeadline) then
// applies to reads only: a client that keeps pinging but never reads
// would otherwise keep its connection, and what is queued for it.
type clientConn struct {
	net.Conn
	writeTimeout time.Duration
	maxBacklog   int
	stuck        func()
	state        conn // hearth's state of the connection (hook.go)

	mu        sync.Mutex
	wake      *sync.Cond // on mu: the writer has work, or is to stop
	connacked bool
	held      []byte // written before the CONNACK
	backlog   []byte // written by mochi, not yet to the socket
	err       error  // why writes fail now
	closing   bool
	done      chan struct{} // the writer has stopped and closed the socket
}

// writeChunk is how much goes to the socket at once: the write timeout
// counts from the last progress, so a slow client is not taken for a
// stuck one.
const writeChunk = 64 << 10

// closeGrace is how long a closed connection may take to write out its
// backlog (a DISCONNECT, say) before its socket is closed.
const closeGrace = time.Second

var errStuck = errors.New("client stopped reading: disconnected")

// newClientConn wraps c. maxBacklog bounds what waits for the socket;
// one write is taken into an empty backlog whatever its size.
func newClientConn(c net.Conn, writeTimeout time.Duration, maxBacklog int, stuck func()) *clientConn {
	cc := &clientConn{Conn: c, writeTimeout: writeTimeout, maxBacklog: maxBacklog, stuck: stuck, done: make(chan struct{})}
	cc.wake = sync.NewCond(&cc.mu)
	go cc.writer()
	return cc
}

func (c *clientConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

func (c *clientConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, net.ErrClosed
	}
	n := len(p)
	if !c.connacked {
		c.held = append(c.held, p...)
		out, ok := connackAhead(c.held)
		if !ok {
			return n, nil
		}
		c.connacked, c.held, p = true, nil, out
	}
	if len(c.backlog) > 0 && len(c.backlog)+len(p) > c.maxBacklog {
		c.fail(errStuck)
		return 0, c.err
	}
	c.backlog = append(c.backlog, p...)
	c.wake.Broadcast()
	return n, nil
}

// fail makes every later write fail with err, stops the writer and ends
// the connection (mochi's read loop sees its socket closed); mu is held.
func (c *clientConn) fail(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if errors.Is(err, errStuck) && c.stuck != nil {
		c.stuck()
	}
	c.backlog = nil
	c.wake.Broadcast()
	_ = c.Conn.SetReadDeadline(time.Now()) // mochi's read loop ends at once
}

// writer writes the backlog out until the connection fails or closes,
// then closes the socket.
func (c *clientConn) writer() {
	defer close(c.done)
	defer c.Conn.Close()
	for {
		c.mu.Lock()
		for len(c.backlog) == 0 && !c.closing && c.err == nil {
			c.wake.Wait()
		}
		if c.err != nil || len(c.backlog) == 0 {
			c.mu.Unlock()
			return
		}
		out := c.backlog
		c.backlog = nil
		c.mu.Unlock()

		for len(out) > 0 {
			n := min(len(out), writeChunk)
			c.setWriteDeadline()
			if _, err := c.Conn.Write(out[:n]); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = errStuck
				}
				c.mu.Lock()
				c.fail(err)
				c.mu.Unlock()
				return
			}
			out = out[n:]
		}
	}
}

// setWriteDeadline gives the next write writeTimeout, or closeGrace once
// the connection is closing. It holds mu, so that Close, which shortens
// the deadline of a write in progress, is not undone by it.
func (c *clientConn) setWriteDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.writeTimeout
	if c.closing {
		d = closeGrace
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(d))
}

// Close ends the connection: reads end at once, and the backlog has
// closeGrace to be written before the socket closes.
func (c *clientConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	c.closing = true
	c.wake.Broadcast()
	_ = c.Conn.SetReadDeadline(time.Now())
	// A write in progress gets the grace too. A WebSocket's own deadline
	// may only be set by its writer: set its network connection's.
	raw := c.Conn
	if u, ok := raw.(interface{ NetConn() net.Conn }); ok {
		raw = u.NetConn()
	}
	_ = raw.SetWriteDeadline(time.Now().Add(closeGrace))
	return nil
}

// wait waits until the backlog is written out (or closeGrace has passed
// since Close) and the socket is closed.
func (c *clientConn) wait() {
	select {
	case <-c.done:
	case <-time.After(2 * closeGrace):
	}
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
