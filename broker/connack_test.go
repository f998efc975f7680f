package broker

import (
	"bytes"
	"net"
	"testing"
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
		var got bytes.Buffer
		cf := &connackFirst{Conn: writerConn{w: &got}}
		for _, w := range c.in {
			if n, err := cf.Write(w); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", c.name, n, err)
			}
		}
		if !bytes.Equal(got.Bytes(), c.want) {
			t.Errorf("%s: wrote %x, want %x", c.name, got.Bytes(), c.want)
		}
		cf.Write(publish) // after the CONNACK: straight through
		if !bytes.HasSuffix(got.Bytes(), publish) {
			t.Errorf("%s: a write after the CONNACK was held", c.name)
		}
	}
}

// writerConn is a net.Conn that only writes, into a buffer.
type writerConn struct {
	net.Conn
	w *bytes.Buffer
}

func (c writerConn) Write(p []byte) (int, error) { return c.w.Write(p) }
