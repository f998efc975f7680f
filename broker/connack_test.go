package broker

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

func TestConnackAhead(t *testing.T) {
	publish := []byte{0x32, 0x04, 0, 1, 'a', 1}
	connack := []byte{0x20, 0x03, 0, 0, 0}
	big := append([]byte{0x30, 0x80, 0x01}, bytes.Repeat([]byte{'x'}, 128)...)
	for _, c := range []struct {
		name string
		in   [][]byte
		want []byte
	}{
		{"connack alone", [][]byte{connack}, connack},
		{"publish before connack, one write", [][]byte{append(append([]byte{}, publish...), connack...)}, append(append([]byte{}, connack...), publish...)},
		{"publish, then connack", [][]byte{publish, connack}, append(append([]byte{}, connack...), publish...)},
		{"long publish split, then connack", [][]byte{big[:50], big[50:], connack}, append(append([]byte{}, connack...), big...)},
	} {
		got := &writerConn{}
		cc := newClientConn(got, time.Second, 1<<20, nil)
		for _, w := range c.in {
			if n, err := cc.Write(w); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", c.name, n, err)
			}
		}
		cc.Write(publish) // after the CONNACK: straight through
		cc.Close()
		<-cc.done
		if want := append(append([]byte{}, c.want...), publish...); !bytes.Equal(got.w.Bytes(), want) {
			t.Errorf("%s: wrote %x, want %x", c.name, got.w.Bytes(), want)
		}
	}
}

// writerConn is a net.Conn that only writes, into a buffer.
type writerConn struct {
	net.Conn
	w bytes.Buffer
}

func (c *writerConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *writerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *writerConn) SetWriteDeadline(time.Time) error { return nil }
func (c *writerConn) Close() error                     { return nil }

// TestClientConnStuck: a client that takes no bytes is disconnected after
// the write timeout, and meanwhile writes do not wait for it.
func TestClientConnStuck(t *testing.T) {
	server, client := net.Pipe() // nobody reads client
	defer client.Close()
	stuck := make(chan struct{}, 1)
	cc := newClientConn(server, time.Second, 1<<20, func() { stuck <- struct{}{} })
	start := time.Now()
	for range 100 {
		if _, err := cc.Write([]byte{0x20, 0x03, 0, 0, 0}); err != nil && !errors.Is(err, errStuck) {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("writes waited %s for a client that does not read", d)
	}
	select {
	case <-stuck:
	case <-time.After(5 * time.Second):
		t.Fatal("not reported stuck")
	}
	<-cc.done
	if _, err := cc.Write([]byte{0xd0, 0}); !errors.Is(err, errStuck) {
		t.Errorf("a write after: %v, want errStuck", err)
	}
}

// TestHoldsEndWithTheHolder: a read loop closed by another goroutine
// (a takeover, a shutdown) takes no new holds, so the connections it
// delivers to are never left holding writes; and a connection's own
// Close writes out what another read loop's hold kept back (its
// DISCONNECT).
func TestHoldsEndWithTheHolder(t *testing.T) {
	pingresp := []byte{0xd0, 0}
	connack := []byte{0x20, 0x03, 0, 0, 0}
	disconnect := []byte{0xe0, 0}
	s := &lockedConn{}
	sub := newClientConn(s, time.Second, 1<<20, nil)
	sub.Write(connack)
	pub := newClientConn(&lockedConn{}, time.Second, 1<<20, nil)

	pub.hold(sub)
	pub.Close() // from another goroutine: its holds are let go
	pub.hold(sub)
	sub.Write(pingresp)
	s.await(t, "after its holder closed", append(append([]byte{}, connack...), pingresp...))

	other := newClientConn(&lockedConn{}, time.Second, 1<<20, nil)
	other.hold(sub)
	sub.Write(disconnect)
	sub.Close()
	s.await(t, "closing while held", append(append(append([]byte{}, connack...), pingresp...), disconnect...))
	other.flush()
}

// lockedConn is a net.Conn that only writes, into a buffer that tests may
// read while it is written.
type lockedConn struct {
	net.Conn
	w mt.SafeBuffer
}

func (c *lockedConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *lockedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *lockedConn) SetWriteDeadline(time.Time) error { return nil }
func (c *lockedConn) Close() error                     { return nil }

// await waits up to a second for exactly want to have been written.
func (c *lockedConn) await(t *testing.T, what string, want []byte) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := []byte(c.w.String())
		if bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: wrote %x, want %x", what, got, want)
		}
	}
}
