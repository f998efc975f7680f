package bridge

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// TestBufferedConnKeepsPacketsWhole: paho writes a packet in pieces, from
// several goroutines at once; on a bufferedConn the pieces of each packet
// stay together.
func TestBufferedConnKeepsPacketsWhole(t *testing.T) {
	server, client := net.Pipe()
	bc := newBufferedConn(client)
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := packets.NewControlPacket(packets.PUBLISH)
				p.Content.(*packets.Publish).Topic = "t"
				p.Content.(*packets.Publish).QoS = 1
				p.Content.(*packets.Publish).PacketID = uint16(w*each + i + 1)
				p.Content.(*packets.Publish).Payload = bytes.Repeat([]byte{byte('a' + w)}, 40)
				if _, err := p.WriteTo(bc); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := make(chan int)
	go func() {
		n := 0
		for n < writers*each {
			p, err := packets.ReadPacket(server)
			if err != nil {
				break
			}
			pub := p.Content.(*packets.Publish)
			if len(pub.Payload) != 40 || bytes.Count(pub.Payload, pub.Payload[:1]) != 40 {
				t.Errorf("packet %d: payload %q mixed with another", pub.PacketID, pub.Payload)
				break
			}
			n++
		}
		got <- n
		io.Copy(io.Discard, server)
	}()
	wg.Wait()
	if n := <-got; n != writers*each {
		t.Fatalf("read %d whole packets of %d", n, writers*each)
	}
	bc.Close()
	server.Close()
}
