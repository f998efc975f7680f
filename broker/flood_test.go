package broker

import (
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestFloodingEscalates: a connection that keeps publishing over the
// rate limit is disconnected (DISCONNECT 0x96); after three such
// disconnects its user is held off (CONNACK 0x9F) for a while, and other
// users are not.
func TestFloodingEscalates(t *testing.T) {
	b := startBroker(t, func(_ *hearth.Config, c *Config) {
		c.PublishRate, c.PublishBurst, c.HoldOff = 1, 3, 2*time.Second
	})
	typing := []byte(`{"typing":true}`)
	for flood := 1; flood <= 3; flood++ {
		kid := b.dial(t, "kid", mt.Connect{Clean: true})
		// The burst passes, then 0x96 for each QoS 1 publish over it.
		for i := range 6 {
			want := byte(0)
			if i >= 3 {
				want = 0x96
			}
			kid.Publish("rooms/family/typing/kid", typing, 1, false, uint16(i+1), nil)
			if p := kid.Expect(mt.PUBACK); p.Code != want {
				t.Fatalf("flood %d, publish %d: reason %#x, want %#x", flood, i, p.Code, want)
			}
		}
		// Keeping on at QoS 0 ends the connection at the 20th refusal.
		for range 30 {
			kid.Publish("rooms/family/typing/kid", typing, 0, false, 0, nil)
		}
		if closed, code := kid.Closed(5 * time.Second); !closed || code != 0x96 {
			t.Fatalf("flood %d: closed %v, DISCONNECT %#x; want 0x96", flood, closed, code)
		}
	}
	if n := b.Stats.FloodDisconnects.Load(); n != 3 {
		t.Errorf("flood disconnects counted %d, want 3", n)
	}
	r := mt.DialRaw(t, b.addr, 5)
	if ack := r.Connect(mt.Connect{User: "kid", Pass: password("kid"), Clean: true}); ack.Code != 0x9F {
		t.Fatalf("kid reconnecting while held off: CONNACK %v, want 0x9F", ack)
	}
	b.dial(t, "dad", mt.Connect{Clean: true}) // others are not held off
	time.Sleep(2 * time.Second)
	kid := b.dial(t, "kid", mt.Connect{Clean: true})
	kid.Publish("rooms/family/typing/kid", []byte(`{"typing":false}`), 1, false, 1, nil)
	if p := kid.Expect(mt.PUBACK); p.Code != 0 {
		t.Fatalf("kid after the hold-off: reason %#x", p.Code)
	}
}
