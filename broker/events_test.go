package broker

import (
	"strings"
	"testing"
	"time"

	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestEventPublish: events are checked like messages, and an edit or
// delete of someone else's message is refused as not authorized (MQTT 5
// 0x87), counted as an invalid publish.
func TestEventPublish(t *testing.T) {
	b := startBroker(t)
	kid := mt.DialRaw(t, b.addr, 5)
	if ack := kid.Connect(mt.Connect{ID: "kid-ev", User: "kid", Pass: password("kid"), Clean: true}); ack.Code != 0 {
		t.Fatalf("kid: %v", ack)
	}
	dadsMsg := `"target":{"from":"dad","id":"m1"}`
	ownMsg := `"target":{"from":"kid","id":"m2"}`
	id := uint16(0)
	for _, c := range []struct {
		topic, payload string
		retain         bool
		want           byte
	}{
		{"rooms/family/events/kid", `{"id":"e1","type":"reaction",` + dadsMsg + `,"emoji":"👍"}`, false, 0},
		{"rooms/family/events/kid", `{"id":"e2","type":"edit",` + ownMsg + `,"text":"fixed"}`, false, 0},
		{"rooms/family/events/kid", `{"id":"e3","type":"delete",` + ownMsg + `}`, false, 0},
		{"rooms/family/events/kid", `{"id":"e4","type":"edit",` + dadsMsg + `,"text":"mine now"}`, false, 0x87},
		{"rooms/family/events/kid", `{"id":"e5","type":"delete",` + dadsMsg + `}`, false, 0x87},
		{"rooms/family/events/kid", `{"id":"e6","type":"reaction",` + dadsMsg + `}`, false, 0x99},
		{"rooms/family/events/kid", `{"id":"e7","type":"reaction",` + dadsMsg + `,"emoji":"👍"}`, true, 0x83},
		{"rooms/family/events/dad", `{"id":"e8","type":"reaction",` + dadsMsg + `,"emoji":"👍"}`, false, 0x87},
		{"rooms/parents/events/kid", `{"id":"e9","type":"reaction",` + dadsMsg + `,"emoji":"👍"}`, false, 0x87},
	} {
		id++
		before := b.Refused(InvalidPublish)
		kid.Publish(c.topic, []byte(c.payload), 1, c.retain, id, nil)
		if ack := kid.Expect(mt.PUBACK); ack.Code != c.want {
			t.Errorf("%s %s: PUBACK %#x, want %#x", c.topic, c.payload, ack.Code, c.want)
		}
		if c.want == 0x87 && c.topic == "rooms/family/events/kid" { // not another's message: counted as invalid
			if got := b.Refused(InvalidPublish) - before; got != 1 {
				t.Errorf("%s: %d invalid publishes counted, want 1", c.payload, got)
			}
		}
	}
	// Over HTTP, the same refusal is of the kind ErrNotAllowed (403).
	if err := b.Publish("kid", "rooms/family/events/kid", []byte(`{"id":"h1","type":"delete",`+dadsMsg+`}`)); err == nil || !strings.Contains(err.Error(), "only its sender") {
		t.Errorf("HTTP delete of dad's message: %v", err)
	}
}

// TestEventsNotForMessageSubscribers: a kitchen display subscribed to
// rooms/family/messages/+ receives messages, never events; a subscriber
// of the events gets them.
func TestEventsNotForMessageSubscribers(t *testing.T) {
	b := startBroker(t)
	kitchen := mt.DialRaw(t, b.addr, 5)
	if ack := kitchen.Connect(mt.Connect{ID: "kitchen-1", User: "kitchen", Pass: password("kitchen"), Clean: true}); ack.Code != 0 {
		t.Fatalf("kitchen: %v", ack)
	}
	if codes := kitchen.Subscribe(1, "rooms/family/messages/+", 1, nil); codes[0] != 1 {
		t.Fatalf("kitchen subscribing: %x", codes)
	}
	mum := mt.DialRaw(t, b.addr, 5)
	if ack := mum.Connect(mt.Connect{ID: "mum-1", User: "mum", Pass: password("mum"), Clean: true}); ack.Code != 0 {
		t.Fatalf("mum: %v", ack)
	}
	if codes := mum.Subscribe(1, "rooms/family/events/+", 1, nil); codes[0] != 1 {
		t.Fatalf("mum subscribing: %x", codes)
	}
	dad := mt.DialRaw(t, b.addr, 5)
	if ack := dad.Connect(mt.Connect{ID: "dad-1", User: "dad", Pass: password("dad"), Clean: true}); ack.Code != 0 {
		t.Fatalf("dad: %v", ack)
	}
	dad.Publish("rooms/family/events/dad", []byte(`{"id":"r1","type":"reaction","target":{"from":"kid","id":"m1"},"emoji":"👍"}`), 1, false, 1, nil)
	dad.Expect(mt.PUBACK)
	dad.Publish("rooms/family/messages/dad", []byte(`{"id":"m9","text":"marker"}`), 1, false, 2, nil)
	dad.Expect(mt.PUBACK)
	p := kitchen.Expect(mt.PUBLISH)
	if p.Topic != "rooms/family/messages/dad" {
		t.Fatalf("kitchen received %s %s before the marker", p.Topic, p.Payload)
	}
	if p, err := kitchen.ReadWithin(200 * time.Millisecond); err == nil {
		t.Fatalf("kitchen received more: %v", p)
	}
	if p := mum.Expect(mt.PUBLISH); p.Topic != "rooms/family/events/dad" || !strings.Contains(string(p.Payload), `"r1"`) {
		t.Fatalf("mum received %s %s, want the reaction", p.Topic, p.Payload)
	}
}
