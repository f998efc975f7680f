package broker

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// held returns how many messages the session of a client id holds
// (queued and unacknowledged), and whether mochi knows the client.
func (b *testBroker) held(id string) (int, bool) {
	if _, ok := b.server.Clients.Get(id); !ok {
		return 0, false
	}
	if s, ok := b.hook.router.lookup(id); ok {
		return s.unacked(), true
	}
	return 0, true
}

// subscribed reports whether a client id has a subscription matching topic.
func (b *testBroker) subscribed(id, topic string) bool {
	_, ok := b.server.Topics.Subscribers(topic).Subscriptions[id]
	return ok
}

func chatMsg(id, text string) []byte {
	p, _ := json.Marshal(hearth.Payload{ID: id, Text: text})
	return p
}

// TestExpiredSessionStopsReceiving: a persistent session that expires is
// gone, subscriptions included (mochi leaves those behind), and receives
// nothing more when its client id comes back.
func TestExpiredSessionStopsReceiving(t *testing.T) {
	b := startBroker(t)
	dad := b.dial(t, "dad", mt.Connect{ID: "dads-tablet", Clean: true, Props: mt.Props{}.Add(mt.PropSessionExpiry, uint32(1))})
	dad.Subscribe(1, "rooms/family/messages/+", 1, nil)
	if !b.subscribed("dads-tablet", "rooms/family/messages/kid") {
		t.Fatal("the subscription is not there to begin with")
	}
	dad.Conn.Close()
	mt.WaitFor(t, "the session to expire", 10*time.Second, func() bool { _, known := b.held("dads-tablet"); return !known })
	if b.subscribed("dads-tablet", "rooms/family/messages/kid") {
		t.Fatal("the expired session is still subscribed")
	}
	kid := b.dial(t, "kid", mt.Connect{Clean: true})
	kid.Publish("rooms/family/messages/kid", chatMsg("late", "after expiry"), 1, false, 1, nil)
	kid.Expect(mt.PUBACK)
	back := b.dial(t, "dad", mt.Connect{ID: "dads-tablet", Props: mt.Props{}.Add(mt.PropSessionExpiry, uint32(60))})
	back.NoPacket(300*time.Millisecond, "a new session under the expired one's id")
}

// TestOfflineSessionsCapped: a user keeps at most 20 offline sessions;
// beyond that the oldest end, as if expired, and receive nothing more.
func TestOfflineSessionsCapped(t *testing.T) {
	b := startBroker(t)
	filter := hearth.RoomMessagesFilter("family")
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(3600))
	const n = 25
	for i := range n {
		c := b.dial(t, "kid", mt.Connect{ID: fmt.Sprint("tab-", i), Clean: true, Props: keep})
		c.Subscribe(1, filter, 1, nil)
		c.Conn.Close()
		mt.WaitFor(t, "the session to go offline", 5*time.Second, func() bool { return b.Info().ClientsConnected == 0 })
	}
	mt.WaitFor(t, "the oldest sessions to end", 5*time.Second, func() bool { return b.Stats.SessionsCapped.Load() == n-20 })
	mum := b.dial(t, "mum", mt.Connect{Clean: true})
	mum.Publish(hearth.MessageTopic("family", "mum"), chatMsg("capped", "who gets this?"), 1, false, 1, nil)
	mum.Expect(mt.PUBACK)
	for i := range n {
		q, ok := b.held(fmt.Sprint("tab-", i))
		if kept := i >= n-20; ok != kept || (kept && q != 1) {
			t.Errorf("session tab-%d: present %v with %d queued; want present %v", i, ok, q, kept)
		}
		if kept := i >= n-20; b.subscribed(fmt.Sprint("tab-", i), hearth.MessageTopic("family", "mum")) != kept {
			t.Errorf("session tab-%d subscribed: want %v", i, kept)
		}
	}
}

// TestStuckSubscriber: a subscriber that stops reading (a mosquitto_sub
// frozen with SIGSTOP, its keepalive far off) holds up neither the
// publisher nor the other subscribers: they are done while it is still
// connected. Once a write to it has waited WriteTimeout it is
// disconnected, and what was queued for it is freed.
func TestStuckSubscriber(t *testing.T) {
	b := startBroker(t, func(_ *hearth.Config, c *Config) { c.WriteTimeout = 8 * time.Second })
	filter := hearth.RoomMessagesFilter("family")
	dad := b.dial(t, "dad", mt.Connect{Clean: true})
	dad.Subscribe(1, filter, 1, nil)
	stuck := mt.StartMosquittoSub(t, b.addr, "mqttv311", []string{"-u", "kid", "-P", password("kid"), "-q", "1", "-t", filter, "-i", "stuck-kid", "-k", "600"})
	if err := stuck.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Cmd.Process.Signal(syscall.SIGCONT) })
	base := heap()

	// 1,500 messages of 4,000 characters: 6 MB, more than the socket
	// buffers between hearth and the frozen client take.
	mum := b.dial(t, "mum", mt.Connect{Clean: true})
	text := strings.Repeat("x", hearth.MaxTextLen)
	const n = 1500
	done := make(chan int)
	go func() {
		got := 0
		for got < n {
			p, err := dad.ReadWithin(30 * time.Second)
			if err != nil {
				break
			}
			if p.Type == mt.PUBLISH {
				got++
				dad.Ack(mt.PUBACK, p.ID)
			}
		}
		done <- got
	}()
	for i := range n {
		mum.Publish(hearth.MessageTopic("family", "mum"), chatMsg(fmt.Sprint("stuck-", i), text), 1, false, uint16(i+1), nil)
		if p := mum.Expect(mt.PUBACK); p.Code != 0 {
			t.Fatalf("publish %d: %v", i, p)
		}
	}
	if got := <-done; got != n {
		t.Fatalf("dad got %d of %d messages", got, n)
	}
	if _, ok := b.held("stuck-kid"); !ok || b.Stats.StuckClosed.Load() != 0 {
		t.Fatal("the stuck subscriber was dropped before the others were served: they waited for it")
	}
	mt.WaitFor(t, "the stuck subscriber to be disconnected", 30*time.Second, func() bool { _, ok := b.held("stuck-kid"); return !ok })
	if b.Stats.StuckClosed.Load() == 0 {
		t.Fatal("the stuck subscriber left, but not for being stuck")
	}
	after := heap()
	t.Logf("heap %.1f MB before the burst, %.1f MB once the stuck subscriber was dropped", float64(base)/1e6, float64(after)/1e6)
	if after > base+4<<20 {
		t.Fatalf("heap grew from %d to %d bytes", base, after)
	}
}
