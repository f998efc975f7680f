package main

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"hearth/broker"
)

// TestFloodingEscalates: a connection that keeps publishing over the
// rate limit is disconnected (DISCONNECT 0x96); after three such
// disconnects its user is held off (CONNACK 0x9F) for a while, and other
// users are not.
func TestFloodingEscalates(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MQTT.PublishRate, cfg.MQTT.PublishBurst = 1, 3
	app := startApp(t, cfg, func(c *broker.Config) { c.HoldOff = 2 * time.Second })
	addr := app.MQTTAddr()

	for flood := 1; flood <= 3; flood++ {
		kid := mustDial(t, addr, "kid", connectOpts{})
		// The burst passes, then 0x96 for each QoS 1 publish over it.
		for i := range 6 {
			want := byte(0)
			if i >= 3 {
				want = 0x96
			}
			if rc := kid.publish("rooms/family/typing/kid", 1, false, `{"typing":true}`); rc != want {
				t.Fatalf("flood %d, publish %d: reason %#x, want %#x", flood, i, rc, want)
			}
		}
		// Keeping on at QoS 0 ends the connection at the 20th refusal.
		for range 30 {
			_, err := kid.c.Publish(context.Background(), &paho.Publish{Topic: "rooms/family/typing/kid", Payload: []byte(`{"typing":true}`)})
			if err != nil {
				break // disconnected
			}
		}
		// The server sends DISCONNECT 0x96 and closes the connection; with
		// the client's publishes still unread, the close can reach the
		// client before the DISCONNECT does.
		select {
		case d := <-kid.gone:
			if d.ReasonCode != 0x96 {
				t.Fatalf("flood %d: DISCONNECT %#x, want 0x96", flood, d.ReasonCode)
			}
		case <-kid.c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("flood %d: still connected after 30 publishes over the limit", flood)
		}
	}
	if n := app.broker.Stats.FloodDisconnects.Load(); n != 3 {
		t.Errorf("flood disconnects counted %d, want 3", n)
	}

	_, ca, err := dial(t, addr, "kid", connectOpts{})
	if err == nil || ca == nil || ca.ReasonCode != 0x9F {
		t.Fatalf("kid reconnecting while held off: %v (connack %+v), want 0x9F", err, ca)
	}
	mustDial(t, addr, "dad", connectOpts{}) // others are not held off
	time.Sleep(2 * time.Second)
	kid := mustDial(t, addr, "kid", connectOpts{})
	if rc := kid.publish("rooms/family/typing/kid", 1, false, `{"typing":false}`); rc != 0 {
		t.Fatalf("kid after the hold-off: reason %#x", rc)
	}
}
