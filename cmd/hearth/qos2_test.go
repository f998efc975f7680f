package main

import (
	"encoding/json"
	"testing"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestChatMessageAtQoS2: a chat message published at QoS 2 (an MQTT
// 3.1.1 mosquitto_pub and a raw MQTT 5 client) is acknowledged, delivered
// and archived like one at QoS 1, with its receipt.
func TestChatMessageAtQoS2(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()
	dad := mustDial(t, addr, "dad", connectOpts{})
	dad.subscribe(hearth.RoomMessagesFilter("family"))
	kid := mustDial(t, addr, "kid", connectOpts{})
	kid.subscribe(hearth.ReceiptsTopic("kid"))
	if out, err := mosquittoPub(t, addr, "kid", password("kid"), "-q", "2", "-t", "rooms/family/messages/kid", "-m", msg("q2-a", "at qos 2")); err != nil {
		t.Fatalf("mosquitto_pub -q 2: %v: %s", err, out)
	}
	r := mt.DialRaw(t, addr, 5)
	r.Connect(mt.Connect{User: "kid", Pass: password("kid"), Clean: true})
	r.Publish("rooms/family/messages/kid", []byte(msg("q2-b", "also")), 2, false, 1, nil)
	if p := r.Expect(mt.PUBREC); p.Code != 0 {
		t.Fatalf("PUBREC %v", p)
	}
	r.Ack(mt.PUBREL, 1)
	r.Expect(mt.PUBCOMP)
	for _, id := range []string{"q2-a", "q2-b"} {
		var p hearth.Payload
		if err := json.Unmarshal(dad.next("rooms/family/messages/kid").Payload, &p); err != nil || p.ID != id {
			t.Fatalf("dad got %+v (%v), want %s", p, err, id)
		}
	}
	receipts := kid.receipts("kid", "family", 2)
	_, a := receipts["q2-a"]
	_, b := receipts["q2-b"]
	if !a || !b {
		t.Fatalf("receipts for %v, want q2-a and q2-b", receipts)
	}
	if h := readHistory(t, app, "dad", "family", ""); len(h.Messages) != 2 {
		t.Fatalf("history has %d messages, want 2", len(h.Messages))
	}
}
