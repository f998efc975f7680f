package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth"
	"hearth/broker"
)

// TestOfflineQueuesBoundedByBytes: one user's offline sessions hold at
// most mqtt.max_queued_bytes each and mqtt.max_offline_bytes together,
// whatever comes in; the rest is dropped and counted, and the memory and
// the session file stay small. A session that comes back gets what was
// kept, in order.
func TestOfflineQueuesBoundedByBytes(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MQTT.MaxQueuedBytes = 1 << 20
	cfg.MQTT.MaxOfflineBytes = 2 << 20
	cfg.ACL = []hearth.ACLRule{{User: "dad", Topic: "home/#", Access: hearth.AccessRead}}
	app := startApp(t, cfg)
	addr := app.MQTTAddr()
	const sessions, messages = 5, 1000
	for i := range sessions {
		c := mustDial(t, addr, "dad", connectOpts{clientID: fmt.Sprint("dad-tab-", i), sessionExpiry: 3600})
		c.subscribe("home/big")
		c.close()
	}
	before := heap()
	mum := dialRaw(t, addr, 5)
	mum.connect(rawConnect{user: "mum", pass: password("mum"), clean: true})
	payload := bytes.Repeat([]byte("x"), 16000)
	for i := range messages {
		mum.publish("home/big", append([]byte(fmt.Sprintf("%04d", i)), payload...), 1, false, uint16(i+1), nil)
		mum.expect(tPuback)
	}
	held := 0
	for i := range sessions {
		n, _ := app.broker.ClientInflight(fmt.Sprint("dad-tab-", i))
		if bytes := n * 16100; bytes > cfg.MQTT.MaxQueuedBytes {
			t.Errorf("session %d holds %d messages (%d bytes), over max_queued_bytes", i, n, bytes)
		}
		held += n
	}
	if bytes := held * 16100; bytes > cfg.MQTT.MaxOfflineBytes || held == 0 {
		t.Fatalf("dad's offline sessions hold %d messages (%d bytes), want some and at most max_offline_bytes", held, bytes)
	}
	if dropped := app.broker.Stats.QueueDropped.Load(); dropped != int64(sessions*messages-held) {
		t.Fatalf("dropped %d, want %d counted", dropped, sessions*messages-held)
	}
	if grew := int64(heap()) - int64(before); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB for %d MiB of queues", grew>>20, cfg.MQTT.MaxOfflineBytes>>20)
	}
	waitFor(t, "session writes", 10*time.Second, func() bool { return app.broker.SessionWritesPending() == 0 })
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "sessions.db")); err != nil || st.Size() > 32<<20 {
		t.Errorf("sessions.db: %v, %d MiB", err, st.Size()>>20)
	}
	// The first session comes back: what it kept, in order.
	n, _ := app.broker.ClientInflight("dad-tab-0")
	back := mustDial(t, addr, "dad", connectOpts{clientID: "dad-tab-0", sessionExpiry: 3600})
	waitFor(t, "the kept messages", 10*time.Second, func() bool { return len(back.topics()) == n })
	back.mu.Lock()
	defer back.mu.Unlock()
	for i, m := range back.got {
		if want := fmt.Sprintf("%04d", i); string(m.Payload[:4]) != want {
			t.Fatalf("message %d is %s, want %s: not in order", i, m.Payload[:4], want)
		}
	}
	t.Logf("%d sessions x %d messages of 16 KB: %d kept, %d dropped", sessions, messages, held, sessions*messages-held)
}

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
	r := dialRaw(t, addr, 5)
	r.connect(rawConnect{user: "kid", pass: password("kid"), clean: true})
	r.publish("rooms/family/messages/kid", []byte(msg("q2-b", "also")), 2, false, 1, nil)
	if p := r.expect(tPubrec); p.code != 0 {
		t.Fatalf("PUBREC %v", p)
	}
	r.ack(tPubrel, 1)
	r.expect(tPubcomp)
	receipts := map[string]bool{}
	for _, id := range []string{"q2-a", "q2-b"} {
		var p hearth.Payload
		if err := json.Unmarshal(dad.next("rooms/family/messages/kid").Payload, &p); err != nil || p.ID != id {
			t.Fatalf("dad got %+v (%v), want %s", p, err, id)
		}
		var rc hearth.Receipt
		if err := json.Unmarshal(kid.next(hearth.ReceiptsTopic("kid")).Payload, &rc); err != nil {
			t.Fatal(err)
		}
		receipts[rc.ID] = true // receipts are sent in parallel: in any order
	}
	if !receipts["q2-a"] || !receipts["q2-b"] {
		t.Fatalf("receipts for %v, want q2-a and q2-b", receipts)
	}
	if h := readHistory(t, app, "dad", "family", ""); len(h.Messages) != 2 {
		t.Fatalf("history has %d messages, want 2", len(h.Messages))
	}
}

// TestPacketIDsApart: the ids of a client's own packets and of the
// deliveries to it are apart (mochi-mqtt/server issue #545, for every
// packet type): a client that holds an unacknowledged delivery under id
// N publishes at QoS 1 and 2 and subscribes under id N; the delivery is
// still there (sent again after a reconnect) and the SUBACK is no 0x91.
func TestPacketIDsApart(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()
	keep := props{}.add(pSessionExpiry, uint32(600))
	c := dialRaw(t, addr, 5)
	c.connect(rawConnect{id: "ids", user: "mum", pass: password("mum"), clean: true, props: keep})
	c.subscribe(1, "home/ids/in", 1, nil)
	pub := dialRaw(t, addr, 5)
	pub.connect(rawConnect{user: "mum", pass: password("mum"), clean: true})
	pub.publish("home/ids/in", []byte("held"), 1, false, 1, nil)
	pub.expect(tPuback)
	d := nextPublish(t, c) // not acknowledged
	n := d.id
	c.publish("home/ids/out", []byte("q1"), 1, false, n, nil)
	if p := c.expect(tPuback); p.id != n || p.code != 0 {
		t.Fatalf("PUBACK %v", p)
	}
	c.publish("home/ids/out", []byte("q2"), 2, false, n, nil)
	if p := c.expect(tPubrec); p.id != n || p.code != 0 {
		t.Fatalf("PUBREC %v", p)
	}
	c.ack(tPubrel, n)
	if p := c.expect(tPubcomp); p.id != n || p.code != 0 {
		t.Fatalf("PUBCOMP %v", p)
	}
	if codes := c.subscribe(n, "home/ids/other", 1, nil); codes[0] != 1 {
		t.Fatalf("SUBACK under the id of a delivery: %#x, want 1", codes[0])
	}
	if held, _ := app.broker.ClientInflight("ids"); held != 1 {
		t.Fatalf("the session holds %d deliveries, want the unacknowledged one", held)
	}
	c.c.Close()
	c = dialRaw(t, addr, 5)
	c.connect(rawConnect{id: "ids", user: "mum", pass: password("mum"), props: keep})
	if p := nextPublish(t, c); p.id != n || !p.dup() || string(p.payload) != "held" {
		t.Fatalf("after reconnecting: %v, want 'held' again under id %d", p, n)
	}
	c.ack(tPuback, n)
	waitFor(t, "the queue to empty", 5*time.Second, func() bool { held, _ := app.broker.ClientInflight("ids"); return held == 0 })
	if in, q := app.broker.Inflight(); in < 0 || q < 0 {
		t.Fatalf("gauges went negative: inflight %d, queued %d", in, q)
	}
}

// TestNoAcknowledgementCutOff: a client that reads but acknowledges
// nothing, while messages wait for it, is disconnected after the write
// timeout; its session keeps the messages.
func TestNoAcknowledgementCutOff(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()), func(c *broker.Config) { c.WriteTimeout = 2 * time.Second })
	addr := app.MQTTAddr()
	keep := props{}.add(pSessionExpiry, uint32(600))
	c := dialRaw(t, addr, 5)
	c.connect(rawConnect{id: "mute", user: "mum", pass: password("mum"), clean: true, props: keep, keepalive: 60})
	c.subscribe(1, "home/mute", 1, nil)
	pub := dialRaw(t, addr, 5)
	pub.connect(rawConnect{user: "mum", pass: password("mum"), clean: true})
	pub.publish("home/mute", []byte("x"), 1, false, 1, nil)
	pub.expect(tPuback)
	nextPublish(t, c)
	start := time.Now()
	if closed, _ := c.closed(10 * time.Second); !closed {
		t.Fatal("still connected 10 s after a delivery it never acknowledged")
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("cut off after %s, before the 2 s timeout", d)
	}
	if app.broker.Stats.StuckClosed.Load() != 1 {
		t.Fatal("not counted as stuck")
	}
	if held, ok := app.broker.ClientInflight("mute"); !ok || held != 1 {
		t.Fatalf("the session holds %d (%v), want the message kept", held, ok)
	}
}
