package bridge

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"
)

// bufferedConn is the bridge's TCP connection to the broker. paho reads
// each packet a few bytes at a time and writes each one with its own
// syscall, the bridge's PUBACKs included. bufferedConn reads through a
// buffer, and hands writes to a goroutine that writes what has gathered
// at once, so a burst of acknowledgements costs a few syscalls. A writer
// that gets maxPending ahead of the socket waits, as it would for the
// socket itself.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	packet sync.Mutex // Lock and Unlock

	mu      sync.Mutex
	cond    *sync.Cond // on mu: the writer has work, or room was made
	pending []byte
	spare   []byte
	err     error
	closed  bool
	done    chan struct{}
}

const maxPending = 1 << 20

// dialTCP connects to address within timeout, for autopaho.
func dialTCP(ctx context.Context, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

func newBufferedConn(c net.Conn) *bufferedConn {
	bc := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), done: make(chan struct{})}
	bc.cond = sync.NewCond(&bc.mu)
	go bc.writer()
	return bc
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Lock and Unlock make bufferedConn a sync.Locker, which paho locks around
// the pieces of one packet: writes from several goroutines (receipts,
// acknowledgements, pings) would otherwise interleave them.
func (c *bufferedConn) Lock()   { c.packet.Lock() }
func (c *bufferedConn) Unlock() { c.packet.Unlock() }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) >= maxPending && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *bufferedConn) writer() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && c.err == nil && !c.closed {
			c.cond.Wait()
		}
		if c.err != nil || len(c.pending) == 0 {
			c.mu.Unlock()
			return
		}
		out := c.pending
		c.pending = c.spare[:0]
		c.cond.Broadcast() // room for waiting writers
		c.mu.Unlock()

		_, err := c.Conn.Write(out)

		c.mu.Lock()
		c.spare = out
		if err != nil {
			c.err = err
			c.cond.Broadcast()
		}
		c.mu.Unlock()
	}
}

// Close writes out what is pending (a DISCONNECT, say), for at most a
// second, and closes the socket.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	return c.Conn.Close()
}
