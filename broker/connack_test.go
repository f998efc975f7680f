package broker

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
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
