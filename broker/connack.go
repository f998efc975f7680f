package broker

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
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
// who published to it. A write that the socket takes at once (a plain TCP
// socket with room in its send buffer) is made in the caller, without
// waiting; the rest goes to a backlog, which a goroutine started for it
// writes out, several packets at a time, and which ends when the backlog
// is empty, so an idle connection holds neither a goroutine nor a buffer
// for writing.
//
// Writes are gathered while a read loop works through what it has read:
// the connection's own (its PUBACKs, and what its PUBACKs release), and
// what a publisher's read loop delivers to it. Such a read loop holds the
// connection (hold); the writes wait in the backlog until every holder
// has let go (flush), which each does as it goes back to its socket for
// more, before it waits for the archive, and when it ends. A burst thus
// goes out several packets to a syscall, and a lone message at once.
//
// A client whose socket takes no bytes for writeTimeout, or
// whose backlog passes maxBacklog, is disconnected as stuck (stuck is
// called). mochi's keepalive deadline (SetDeadline) then applies to reads
// only: a client that keeps pinging but never reads would otherwise keep
// its connection, and what is queued for it.
type clientConn struct {
	net.Conn
	raw          syscall.RawConn // for writes that must not wait; nil unless plain TCP
	writeTimeout time.Duration
	maxBacklog   int
	stuck        func()
	state        conn // hearth's state of the connection (hook.go)

	mu        sync.Mutex
	connacked bool
	held      []byte // written before the CONNACK
	backlog   []byte // written by mochi, not yet to the socket
	writing   bool   // the backlog's writer runs
	holds     int    // read loops that gather writes to it (hold)
	err       error  // why writes fail now
	closing   bool
	closed    bool          // the socket is closed
	done      chan struct{} // closed with the socket

	holdMu  sync.Mutex
	holding map[*clientConn]struct{} // the connections its read loop holds, itself included
}

// writeChunk is how much goes to the socket at once: the write timeout
// counts from the last progress, so a slow client is not taken for a
// stuck one.
const writeChunk = 64 << 10

// closeGrace is how long a closed connection may take to write out its
// backlog (a DISCONNECT, say) before its socket is closed.
const closeGrace = time.Second

var errStuck = errors.New("client stopped reading: disconnected")

// backlogs are spare backlog buffers: a connection holds one only while
// it has something to write.
var backlogs = sync.Pool{New: func() any { return new([]byte) }}

// newClientConn wraps c. maxBacklog bounds what waits for the socket;
// one write is taken into an empty backlog whatever its size.
func newClientConn(c net.Conn, writeTimeout time.Duration, maxBacklog int, stuck func()) *clientConn {
	cc := &clientConn{Conn: c, writeTimeout: writeTimeout, maxBacklog: maxBacklog, stuck: stuck, done: make(chan struct{})}
	if tc, ok := c.(*net.TCPConn); ok {
		cc.raw, _ = tc.SyscallConn()
	}
	return cc
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil // reads have ended for good
	}
	return c.Conn.SetReadDeadline(t)
}

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
	if !c.writing && c.holds == 0 && c.raw != nil {
		p = p[c.writeNow(p):]
		if len(p) == 0 {
			return n, nil
		}
	}
	if c.backlog == nil {
		c.backlog = (*backlogs.Get().(*[]byte))[:0]
	}
	c.backlog = append(c.backlog, p...)
	if c.holds == 0 || len(c.backlog) >= writeChunk {
		// A connection held by one publisher after another still gets its
		// writes out once they fill a chunk.
		c.startWriting()
	}
	return n, nil
}

// startWriting has the backlog written out: what the socket takes at
// once, then the rest by a writer; mu is held.
func (c *clientConn) startWriting() {
	if c.writing || len(c.backlog) == 0 || c.err != nil {
		return
	}
	if c.raw != nil {
		n := c.writeNow(c.backlog)
		if n == len(c.backlog) {
			c.release()
			return
		}
		c.backlog = append(c.backlog[:0], c.backlog[n:]...)
	}
	c.writing = true
	go c.writer()
}

// Read reads for mochi's read loop. Before it waits for the socket, the
// read loop lets go of what it held; once bytes come, it holds its own
// connection while mochi works through them.
func (c *clientConn) Read(p []byte) (int, error) {
	c.flush()
	n, err := c.Conn.Read(p)
	if n > 0 && err == nil {
		c.hold(c)
	}
	return n, err
}

// hold gathers t's writes until c's read loop flushes.
func (c *clientConn) hold(t *clientConn) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	if _, ok := c.holding[t]; ok {
		return
	}
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return // c's read loop may end without another flush
	}
	if c.holding == nil {
		c.holding = map[*clientConn]struct{}{}
	}
	c.holding[t] = struct{}{}
	t.mu.Lock()
	t.holds++
	t.mu.Unlock()
}

// flush lets go of every connection c's read loop holds, and has what
// they gathered written: the subscribers' deliveries first, then c's own
// answers.
func (c *clientConn) flush() {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	release := func(t *clientConn) {
		t.mu.Lock()
		t.holds--
		if t.holds == 0 {
			t.startWriting()
		}
		t.mu.Unlock()
	}
	_, self := c.holding[c]
	for t := range c.holding {
		if t != c {
			release(t)
		}
	}
	if self {
		release(c)
	}
	if len(c.holding) > 64 {
		c.holding = nil // a fan-out to many: do not keep its map
	} else {
		clear(c.holding)
	}
}

// writeNow writes what the socket takes of p without waiting, and returns
// how much that was; mu is held, and no writer runs. An error is left to
// the writer, which meets it again.
func (c *clientConn) writeNow(p []byte) int {
	done := 0
	_ = c.raw.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, err := syscall.Write(int(fd), p[done:])
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 || err != nil {
				break
			}
			done += n
		}
		return true // never wait
	})
	return done
}

// fail makes every later write fail with err, drops the backlog and ends
// the connection (mochi's read loop sees its socket closed); mu is held.
func (c *clientConn) fail(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if errors.Is(err, errStuck) && c.stuck != nil {
		c.stuck()
	}
	c.release()
	_ = c.Conn.SetReadDeadline(time.Now()) // mochi's read loop ends at once
	if !c.writing {
		c.closeSocket() // else the writer does, as it stops
	}
}

// release gives the backlog's buffer back; mu is held.
func (c *clientConn) release() {
	if c.backlog != nil && cap(c.backlog) <= writeChunk {
		b := c.backlog[:0]
		backlogs.Put(&b)
	}
	c.backlog = nil
}

// writer writes the backlog out until it is empty, the connection fails,
// or it closes; the socket of a failed or closing connection is closed
// when the writer stops.
func (c *clientConn) writer() {
	var out []byte
	for {
		c.mu.Lock()
		if out != nil && c.backlog == nil && c.err == nil {
			c.backlog = out[:0] // keep the buffer while writes come
		} else if out != nil && cap(out) <= writeChunk {
			b := out[:0]
			backlogs.Put(&b)
		}
		if c.err != nil || len(c.backlog) == 0 {
			c.writing = false
			c.release()
			if c.closing || c.err != nil {
				c.closeSocket()
			}
			c.mu.Unlock()
			return
		}
		out = c.backlog
		c.backlog = nil
		c.mu.Unlock()

		for rest := out; len(rest) > 0; {
			n := min(len(rest), writeChunk)
			c.setWriteDeadline()
			if _, err := c.Conn.Write(rest[:n]); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = errStuck
				}
				c.mu.Lock()
				c.fail(err)
				c.mu.Unlock()
				break
			}
			rest = rest[n:]
		}
	}
}

// closeSocket closes the socket once; mu is held.
//
// A TCP socket closed while the client's bytes wait unread in it sends
// the client a reset, which can discard the DISCONNECT just written before
// the client reads it (a flooding client would never see its 0x96). So the
// write side is shut first (the client reads the DISCONNECT, then the end
// of the stream), reads end at once, and the socket closes lingerFor
// later.
func (c *clientConn) closeSocket() {
	if c.closed {
		return
	}
	c.closed = true
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok || tc.CloseWrite() != nil {
		_ = c.Conn.Close()
		close(c.done)
		return
	}
	_ = tc.SetReadDeadline(time.Now())
	time.AfterFunc(lingerFor, func() {
		_ = tc.Close()
		close(c.done)
	})
}

// lingerFor is how long a closing TCP connection waits, its write side
// shut, before it closes.
const lingerFor = 100 * time.Millisecond

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
	// Close comes from the end of the read loop; a write gathered and not
	// yet out is written first.
	c.mu.Unlock()
	c.flush()
	c.mu.Lock()
	// Holds by other read loops no longer count: what is gathered (a
	// DISCONNECT, say) goes out now.
	c.startWriting()
	if !c.writing {
		c.closeSocket()
		return nil
	}
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
