package broker

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
	"github.com/mochi-mqtt/server/v2/packets"
)

// publishAck publishes at QoS 1 and returns the PUBACK's reason code.
func publishAck(r *mt.Raw, topic, payload string, retain bool, id uint16) byte {
	r.Publish(topic, []byte(payload), 1, retain, id, nil)
	return r.Expect(mt.PUBACK).Code
}

// expectMark reads the next PUBLISH and checks it is the mark on topic.
func expectMark(t *testing.T, r *mt.Raw, who, topic, payload string) mt.Packet {
	t.Helper()
	p := r.NextPublish()
	if p.Topic != topic || string(p.Payload) != payload {
		t.Fatalf("%s got %s %s, want %s %s", who, p.Topic, p.Payload, topic, payload)
	}
	if p.QoS() == 1 {
		r.Ack(mt.PUBACK, p.ID)
	}
	return p
}

// TestReadMarksOnlyGrow: a mark is retained and delivered to the room's
// readers (the user's other device, another member, the kitchen display)
// when it is not lower than the one retained; a lower one is
// acknowledged with success but neither retained nor delivered; an equal
// one goes through; a higher one replaces it. A non-retained publish is
// retained all the same.
func TestReadMarksOnlyGrow(t *testing.T) {
	b := startBroker(t)
	topic := hearth.ReadTopic("family", "dad")
	phone := b.dial(t, "dad", mt.Connect{ID: "dad-phone", Clean: true})
	tablet := b.dial(t, "dad", mt.Connect{ID: "dad-tablet", Clean: true})
	kid := b.dial(t, "kid", mt.Connect{Clean: true})
	kitchen := b.dial(t, "kitchen", mt.Connect{Clean: true})
	watchers := map[string]*mt.Raw{"dad's tablet": tablet, "kid": kid, "kitchen": kitchen}
	for who, w := range watchers {
		if rc := w.Subscribe(1, "rooms/family/reads/+", 1, nil); rc[0] != 1 {
			t.Fatalf("%s subscribing to the family's reads: %#x", who, rc[0])
		}
	}
	if b.ReadMark("family", "dad") != 0 {
		t.Fatal("a mark before any was published")
	}
	for i, step := range []struct {
		payload   string
		delivered bool
		mark      uint64
	}{
		{`{"seq":5}`, true, 5},
		{`{"seq":3}`, false, 5},
		{`{"seq":5}`, true, 5},
		{`{"seq":0}`, false, 5},
		{`{"seq":7}`, true, 7},
	} {
		if rc := publishAck(phone, topic, step.payload, false, uint16(i+1)); rc != 0 {
			t.Fatalf("mark %s: PUBACK %#x, want success", step.payload, rc)
		}
		for who, w := range watchers {
			if step.delivered {
				expectMark(t, w, who, topic, step.payload)
			} else {
				w.NoPacket(200*time.Millisecond, who+" after the lower mark "+step.payload)
			}
		}
		if got := b.ReadMark("family", "dad"); got != step.mark {
			t.Fatalf("after %s: ReadMark %d, want %d", step.payload, got, step.mark)
		}
	}
	// A new subscriber gets the mark retained: the highest.
	mum := b.dial(t, "mum", mt.Connect{Clean: true})
	mum.Subscribe(1, "rooms/+/reads/+", 1, nil)
	p := expectMark(t, mum, "mum", topic, `{"seq":7}`)
	if !p.Retain() {
		t.Error("the retained mark came without the retain flag")
	}
	if b.ReadMark("family", "kid") != 0 || b.ReadMark("parents", "dad") != 0 {
		t.Error("marks of other users or rooms")
	}
}

// TestReadMarksRefused: a mark is {"seq":N} with N a non-negative
// integer, published by its user in a room it reads; it cannot be
// deleted. Anything else is refused (MQTT 5: 0x99 payload format
// invalid, 0x87 not authorized) and leaves the mark as it was. A user
// who cannot read a room can neither subscribe to its marks nor receive
// them through a wildcard.
func TestReadMarksRefused(t *testing.T) {
	b := startBroker(t)
	dad := b.dial(t, "dad", mt.Connect{Clean: true})
	topic := hearth.ReadTopic("family", "dad")
	if rc := publishAck(dad, topic, `{"seq":4}`, true, 1); rc != 0 {
		t.Fatalf("a good mark: %#x", rc)
	}
	id := uint16(10)
	for _, bad := range []string{`{"seq":-1}`, `{"seq":1.5}`, `{"seq":"9"}`, `{}`, `{"seq":9,"x":1}`, `{"seq":9}x`, `[9]`, `{"seq":null}`, ``, `{"seq":18446744073709551616}`} {
		id++
		if rc := publishAck(dad, topic, bad, true, id); rc != 0x99 {
			t.Errorf("mark %q: PUBACK %#x, want 0x99", bad, rc)
		}
	}
	for _, c := range []struct{ user, topic string }{
		{"dad", hearth.ReadTopic("family", "mum")},  // as another user
		{"kid", hearth.ReadTopic("parents", "kid")}, // a room kid cannot read
		{"kid", hearth.ReadTopic("nosuch", "kid")},  // no such room
		{"kitchen", hearth.ReadTopic("parents", "kitchen")},
	} {
		r := b.dial(t, c.user, mt.Connect{Clean: true})
		id++
		if rc := publishAck(r, c.topic, `{"seq":9}`, true, id); rc != 0x87 {
			t.Errorf("%s marking %s: PUBACK %#x, want 0x87", c.user, c.topic, rc)
		}
	}
	if got := b.ReadMark("family", "dad"); got != 4 {
		t.Fatalf("the mark after refusals: %d, want 4", got)
	}
	// kitchen, a reader, may mark the family room read.
	kitchen := b.dial(t, "kitchen", mt.Connect{Clean: true})
	if rc := publishAck(kitchen, hearth.ReadTopic("family", "kitchen"), `{"seq":2}`, false, 1); rc != 0 || b.ReadMark("family", "kitchen") != 2 {
		t.Errorf("kitchen marking family: %#x, mark %d", rc, b.ReadMark("family", "kitchen"))
	}

	kid := b.dial(t, "kid", mt.Connect{Clean: true})
	for _, f := range []string{"rooms/parents/reads/+", "rooms/parents/reads/dad"} {
		if rc := kid.Subscribe(1, f, 1, nil); rc[0] != 0x87 {
			t.Errorf("kid subscribing to %s: %#x, want 0x87", f, rc[0])
		}
	}
	kid.Subscribe(2, "rooms/+/reads/+", 1, nil)
	expectMark(t, kid, "kid", hearth.ReadTopic("family", "dad"), `{"seq":4}`)
	expectMark(t, kid, "kid", hearth.ReadTopic("family", "kitchen"), `{"seq":2}`)
	if rc := publishAck(dad, hearth.ReadTopic("parents", "dad"), `{"seq":3}`, false, 99); rc != 0 {
		t.Fatalf("dad marking parents: %#x", rc)
	}
	kid.NoPacket(300*time.Millisecond, "kid, who cannot read parents, after dad marked it")
}

// TestReadMarksConcurrent: devices of one user marking at the same time,
// each counting up, leave the highest mark retained, and a subscriber
// never sees a mark go down.
func TestReadMarksConcurrent(t *testing.T) {
	b := startBroker(t)
	topic := hearth.ReadTopic("family", "dad")
	watch := b.dial(t, "mum", mt.Connect{Clean: true})
	watch.Subscribe(1, topic, 0, nil)
	const devices, n = 4, 1000
	var wg sync.WaitGroup
	for dev := range devices {
		r := b.dial(t, "dad", mt.Connect{ID: fmt.Sprint("dad-", dev), Clean: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				r.Publish(topic, fmt.Appendf(nil, `{"seq":%d}`, i*devices+dev), 0, true, 0, nil)
			}
			r.Publish(topic, []byte(`{"seq":0}`), 1, false, 1, nil) // answered after the rest
			r.Read()
		}()
	}
	wg.Wait()
	const top = n*devices - 1
	if got := b.ReadMark("family", "dad"); got != top {
		t.Fatalf("ReadMark %d, want %d", got, top)
	}
	last := -1
	for {
		p, err := watch.ReadWithin(300 * time.Millisecond)
		if err != nil {
			break
		}
		var seq int
		fmt.Sscanf(strings.TrimPrefix(string(p.Payload), `{"seq":`), "%d", &seq)
		if seq < last {
			t.Fatalf("a mark went down: %d after %d", seq, last)
		}
		last = seq
	}
	if last != top {
		t.Fatalf("the last mark delivered: %d, want %d", last, top)
	}
}

// TestFocus: focus is delivered to nobody, not even to a "#" of an admin
// or the user itself, and nobody may subscribe to it. Focused follows
// what each connection of the user published last, and forgets a
// connection when it ends or is taken over. A focus naming no room, at
// QoS 2, or retained is refused.
func TestFocus(t *testing.T) {
	b := startBroker(t)
	topic := hearth.FocusTopic("dad")
	mum := b.dial(t, "mum", mt.Connect{Clean: true})
	mum.Subscribe(1, "#", 1, nil)
	phone := b.dial(t, "dad", mt.Connect{ID: "dad-phone", Clean: true})
	for _, f := range []string{topic, "users/+/focus"} {
		if rc := phone.Subscribe(1, f, 1, nil); rc[0] != 0x87 {
			t.Errorf("dad subscribing to %s: %#x, want 0x87", f, rc[0])
		}
	}
	if rc := mum.Subscribe(2, "users/dad/focus", 1, nil); rc[0] != 0x87 {
		t.Errorf("mum (admin) subscribing to dad's focus: %#x, want 0x87", rc[0])
	}
	phone.Subscribe(2, "#", 1, nil)
	wait := func(want bool, room, what string) {
		t.Helper()
		mt.WaitFor(t, what, 5*time.Second, func() bool { return b.Focused("dad", room) == want })
	}
	phone.Publish(topic, []byte(`{"room":"family"}`), 0, false, 0, nil)
	wait(true, "family", "dad's focus on family")
	if b.Focused("dad", "parents") || b.Focused("mum", "family") {
		t.Fatal("focus on the wrong room or user")
	}
	if rc := publishAck(phone, topic, `{"room":"parents"}`, false, 1); rc != 0 {
		t.Fatalf("focus at QoS 1: %#x", rc)
	}
	if b.Focused("dad", "family") || !b.Focused("dad", "parents") {
		t.Fatal("focus did not move to parents")
	}
	tablet := b.dial(t, "dad", mt.Connect{ID: "dad-tablet", Clean: true})
	tablet.Publish(topic, []byte(`{"room":"family"}`), 0, false, 0, nil)
	wait(true, "family", "the tablet's focus")
	phone.Publish(topic, []byte(`{"room":""}`), 0, false, 0, nil)
	wait(false, "parents", "the phone's focus to go")
	if !b.Focused("dad", "family") {
		t.Fatal("the tablet's focus went with the phone's")
	}
	id := uint16(1)
	for _, bad := range []struct {
		payload string
		qos     byte
		retain  bool
		code    byte
	}{
		{`{"room":"nosuch"}`, 1, false, 0x99},
		{`{"room":"Bad Name"}`, 1, false, 0x99},
		{`{"room":1}`, 1, false, 0x99},
		{`{}`, 1, false, 0x99},
		{`{"room":"parents"}`, 2, false, 0x99},
		{`{"room":"parents"}`, 1, true, 0x83},
	} {
		id++
		tablet.Publish(topic, []byte(bad.payload), bad.qos, bad.retain, id, nil)
		typ := byte(mt.PUBACK)
		if bad.qos == 2 {
			typ = mt.PUBREC
		}
		if rc := tablet.Expect(typ).Code; rc != bad.code {
			t.Errorf("focus %s qos %d retain %v: %#x, want %#x", bad.payload, bad.qos, bad.retain, rc, bad.code)
		}
	}
	if b.Focused("dad", "parents") || !b.Focused("dad", "family") {
		t.Fatal("a refused focus changed the focus")
	}
	if rc := publishAck(mum, topic, `{"room":"family"}`, false, 50); rc != 0x87 {
		t.Errorf("mum publishing dad's focus: %#x, want 0x87", rc)
	}
	for who, r := range map[string]*mt.Raw{"mum": mum, "dad's phone": phone} {
		for {
			p, err := r.ReadWithin(200 * time.Millisecond)
			if err != nil {
				break
			}
			if strings.HasSuffix(p.Topic, "/focus") {
				t.Errorf("%s received focus %s", who, p.Payload)
			}
		}
	}
	// A takeover forgets the old connection's focus.
	b.dial(t, "dad", mt.Connect{ID: "dad-tablet", Clean: true})
	wait(false, "family", "the focus to go with the taken-over tablet")
	// So does the end of a connection.
	phone.Publish(topic, []byte(`{"room":"family"}`), 0, false, 0, nil)
	wait(true, "family", "the phone's focus")
	phone.Conn.Close()
	wait(false, "family", "the focus to go with the phone's connection")
}

// TestReadMarkCheckAndStoreAtomic: marks accepted from many goroutines at
// once (the read loops of many connections, without the network in
// between) leave the highest one retained.
func TestReadMarkCheckAndStoreAtomic(t *testing.T) {
	b := startBroker(t)
	topic := hearth.ReadTopic("family", "kid")
	const workers, n = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				b.hook.accept(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic,
					Payload: fmt.Appendf(nil, `{"seq":%d}`, i*workers+w)}, hearth.TopicRead, nil)
			}
		}()
	}
	wg.Wait()
	if got := b.ReadMark("family", "kid"); got != workers*n-1 {
		t.Fatalf("ReadMark %d, want %d", got, workers*n-1)
	}
}
