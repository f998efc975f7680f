package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
)

// TestLiveDeliveryArchiveAndReceipt: a message from an MQTT 5 member
// reaches a member over MQTT 3.1.1 (mosquitto_sub) and a reader device
// over MQTT 5 at once, is archived and served over HTTP, and its sender
// gets a receipt with the archive's seq.
func TestLiveDeliveryArchiveAndReceipt(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()

	kitchen := mustDial(t, addr, "kitchen", connectOpts{})
	if r := kitchen.subscribe("rooms/+/messages/+"); r[0] != 1 {
		t.Fatalf("kitchen subscribe: reason %#x, want 1", r[0])
	}
	dadSub := mosquittoSub(t, addr, "dad", "-q", "1", "-t", "rooms/family/messages/+")
	kid := mustDial(t, addr, "kid", connectOpts{})
	kid.subscribe(hearth.ReceiptsTopic("kid"))

	if rc := kid.publish("rooms/family/messages/kid", 1, false, msg("k1", "dinner at 7?")); rc != 0 {
		t.Fatalf("publish: reason %#x", rc)
	}
	got := kitchen.next("rooms/family/messages/kid")
	var p hearth.Payload
	if err := json.Unmarshal(got.Payload, &p); err != nil || p.ID != "k1" || p.Text != "dinner at 7?" {
		t.Fatalf("kitchen got %s (%v)", got.Payload, err)
	}
	rc, ok := kid.receipts("kid", "family", 1)["k1"]
	if !ok || rc.Seq != 1 || rc.At == 0 {
		t.Fatalf("receipt %+v, want id k1 seq 1", rc)
	}
	waitFor(t, "mosquitto_sub to print the message", 5*time.Second, func() bool { return len(dadSub.Lines()) > 0 })

	h := readHistory(t, app, "dad", "family", "")
	if len(h.Messages) != 1 || h.HasMore {
		t.Fatalf("history %+v, want one message", h)
	}
	m := h.Messages[0]
	if m.Seq != 1 || m.ID != "k1" || m.From != "kid" || m.Room != "family" || m.Text != "dinner at 7?" || m.At != rc.At {
		t.Fatalf("archived %+v, receipt %+v", m, rc)
	}
}

// TestNoLeakThroughWildcards: wildcard subscriptions of a member and a
// device never deliver a room they cannot read, nor others' receipts.
func TestNoLeakThroughWildcards(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()

	kid := mustDial(t, addr, "kid", connectOpts{})
	kid.subscribe("#")
	kid.subscribe("rooms/+/messages/+", "rooms/+/typing/+", "users/+/receipts", "+/+/+/+")
	kitchen := mustDial(t, addr, "kitchen", connectOpts{})
	kitchen.subscribe("#")
	kidSub := mosquittoSub(t, addr, "kid", "-q", "1", "-t", "#", "-t", "rooms/+/messages/+")

	mum := mustDial(t, addr, "mum", connectOpts{})
	mum.subscribe("users/mum/receipts")
	mum.publish("rooms/parents/messages/mum", 1, false, msg("secret", "birthday present for kid"))
	mum.publish("rooms/parents/typing/mum", 0, false, `{"typing":true}`)
	mum.next("users/mum/receipts") // the parents' message is archived, and mum's receipt not leaked
	mum.publish("rooms/family/messages/mum", 1, false, msg("marker", "hello all"))

	kid.next("rooms/family/messages/mum")
	kitchen.next("rooms/family/messages/mum")
	waitFor(t, "mosquitto_sub to see the marker", 5*time.Second, func() bool {
		return slices.ContainsFunc(kidSub.Lines(), func(l string) bool { return strings.Contains(l, "marker") })
	})
	for name, topics := range map[string][]string{"kid": kid.topics(), "kitchen": kitchen.topics(), "kid (3.1.1)": kidSub.Lines()} {
		for _, tp := range topics {
			if strings.Contains(tp, "parents") || strings.Contains(tp, "receipts") {
				t.Errorf("%s received %q", name, tp)
			}
		}
	}
	// An explicit subscription to a room one cannot read is refused.
	if r := kid.subscribe("rooms/parents/messages/+"); r[0] != 0x87 {
		t.Errorf("kid subscribing to parents: reason %#x, want 0x87", r[0])
	}
	if r := kid.subscribe("$SYS/#"); r[0] != 0x87 {
		t.Errorf("kid subscribing to $SYS: reason %#x, want 0x87", r[0])
	}
}

// TestRefusedPublishes: spoofed senders, device writes, invalid payloads,
// retained messages, unknown rooms and oversized messages are neither
// delivered nor archived, at QoS 0 and 1, from MQTT 5 (with the reason
// code) and from MQTT 3.1.1 (mosquitto_pub).
func TestRefusedPublishes(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()

	watcher := mustDial(t, addr, "mum", connectOpts{}) // admin: sees everything that is delivered
	watcher.subscribe("rooms/#")
	kid := mustDial(t, addr, "kid", connectOpts{})
	kitchen := mustDial(t, addr, "kitchen", connectOpts{})

	big := strings.Repeat("x", 16500) // over max_message_bytes (16384), under the packet limit
	cases := []struct {
		name   string
		cl     *client
		user   string
		topic  string
		retain bool
		body   string
		code   byte // MQTT 5 PUBACK reason at QoS 1
	}{
		{"spoofed sender", kid, "kid", "rooms/family/messages/dad", false, msg("s1", "i am dad"), 0x87},
		{"device write", kitchen, "kitchen", "rooms/family/messages/kitchen", false, msg("d1", "beep"), 0x87},
		{"reader of no room", kid, "kid", "rooms/parents/messages/kid", false, msg("p1", "let me in"), 0x87},
		{"unknown room", kid, "kid", "rooms/attic/messages/kid", false, msg("a1", "hello?"), 0x87},
		{"bad json", kid, "kid", "rooms/family/messages/kid", false, `{"id":"b1","text":`, 0x99},
		{"missing id", kid, "kid", "rooms/family/messages/kid", false, `{"text":"no id"}`, 0x99},
		{"empty text", kid, "kid", "rooms/family/messages/kid", false, `{"id":"e1","text":""}`, 0x99},
		{"text too long", kid, "kid", "rooms/family/messages/kid", false, msg("l1", strings.Repeat("é", 4001)), 0x99},
		{"bad id", kid, "kid", "rooms/family/messages/kid", false, `{"id":"a b","text":"x"}`, 0x99},
		{"retained", kid, "kid", "rooms/family/messages/kid", true, msg("r1", "keep me"), 0x83},
		{"oversized", kid, "kid", "rooms/family/messages/kid", false, msg("o1", big), 0x97},
		{"bad typing", kid, "kid", "rooms/family/typing/kid", false, `{"typing":"yes"}`, 0x99},
		{"spoofed typing", kid, "kid", "rooms/family/typing/dad", false, `{"typing":true}`, 0x87},
		{"presence", kid, "kid", "presence/kid", false, `{"online":true}`, 0x87},
		{"receipts", kid, "kid", "users/dad/receipts", false, `{"id":"x","room":"family","seq":1}`, 0x87},
		{"outside the chat tree", kid, "kid", "home/lights", false, `on`, 0x87},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cl.t = t
			if rc := c.cl.publish(c.topic, 1, c.retain, c.body); rc != c.code {
				t.Errorf("MQTT 5 QoS 1: reason %#x, want %#x", rc, c.code)
			}
			c.cl.publish(c.topic, 0, c.retain, c.body)
			args := []string{"-t", c.topic, "-m", c.body}
			if c.retain {
				args = append(args, "-r")
			}
			mosquittoPub(t, addr, c.user, password(c.user), append(args, "-q", "1")...)
			mosquittoPub(t, addr, c.user, password(c.user), append(args, "-q", "0")...)
		})
	}
	kid.t = t
	kid.publish("rooms/family/messages/kid", 1, false, msg("marker", "the only one"))
	watcher.next("rooms/family/messages/kid")
	if got := watcher.topics(); len(got) != 1 {
		t.Errorf("delivered %v, want only the marker", got)
	}
	waitFor(t, "the marker archived", 5*time.Second, func() bool { return len(readHistory(t, app, "mum", "family", "").Messages) == 1 })
	for _, room := range []string{"family", "parents"} {
		h := readHistory(t, app, "mum", room, "?after=0")
		for _, m := range h.Messages {
			if m.ID != "marker" {
				t.Errorf("archived in %s: %+v", room, m)
			}
		}
	}
	// A spoofed will is refused at CONNECT.
	_, ca, err := dial(t, addr, "kid", connectOpts{will: &paho.WillMessage{Topic: "rooms/family/messages/dad", QoS: 1, Payload: []byte(msg("w1", "bye"))}})
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Errorf("spoofed will: connack %+v err %v, want 0x87", ca, err)
	}
	_, ca, err = dial(t, addr, "kid", connectOpts{will: &paho.WillMessage{Topic: "presence/kid", QoS: 1, Retain: true, Payload: []byte(`{"online":false}`)}})
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Errorf("presence will: connack %+v err %v, want 0x87", ca, err)
	}
	// MQTT 3.1.1 has no 0x87: the refusal is "not authorised" (5).
	out, err := mosquittoPub(t, addr, "kid", password("kid"), "--will-topic", "rooms/family/messages/dad", "--will-payload", msg("w2", "bye"), "-t", "home/x", "-m", "x")
	if err == nil || !strings.Contains(strings.ToLower(out), "not authori") {
		t.Errorf("3.1.1 spoofed will: %v %q, want refused as not authorised", err, out)
	}
}

// TestAuthRefusals: wrong passwords, unknown users and anonymous clients
// are refused on MQTT 5 and 3.1.1; a token from /api/login is accepted as
// the password, but only for its own user.
func TestAuthRefusals(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()
	for _, c := range []struct {
		name, user string
		o          connectOpts
	}{
		{"wrong password", "kid", connectOpts{password: "nope"}},
		{"unknown user", "zed", connectOpts{password: "pw-zed"}},
		{"anonymous", "", connectOpts{noAuth: true}},
		{"other user's token", "dad", connectOpts{password: login(t, app, "kid")}},
		{"bridge identity", hearth.BridgeUser, connectOpts{password: "guess"}},
	} {
		_, ca, err := dial(t, addr, c.user, c.o)
		if err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Errorf("%s: connack %+v err %v, want 0x86", c.name, ca, err)
		}
	}
	if out, err := mosquittoPub(t, addr, "kid", "nope", "-t", "rooms/family/messages/kid", "-m", msg("x", "y")); err == nil {
		t.Errorf("mosquitto_pub with a wrong password succeeded: %s", out)
	}
	// The token works as an MQTT password.
	cl := mustDial(t, addr, "kid", connectOpts{password: login(t, app, "kid")})
	if rc := cl.publish("rooms/family/messages/kid", 1, false, msg("t1", "token ok")); rc != 0 {
		t.Errorf("publish with token: %#x", rc)
	}
	// Password guessing over HTTP is slowed down: 429 with Retry-After.
	codes := []int{}
	for range 6 {
		codes = append(codes, api(t, app, "POST", "/api/login", "", map[string]string{"username": "mum", "password": "guess"}, nil))
	}
	if !slices.Equal(codes, []int{401, 401, 401, 401, 401, 429}) {
		t.Errorf("wrong passwords: statuses %v, want five 401 then 429", codes)
	}
	if n := app.broker.Refused(broker.BadCredentials); n < 6 {
		t.Errorf("bad credentials counted %d, want at least 6", n)
	}
}

// TestClientIDBelongsToItsUser: another user cannot take over a client id,
// neither while its owner is connected nor after, when the session waits
// with queued messages.
func TestClientIDBelongsToItsUser(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()

	dad := mustDial(t, addr, "dad", connectOpts{clientID: "dads-phone", sessionExpiry: 3600})
	dad.subscribe("rooms/family/messages/+")
	if _, ca, err := dial(t, addr, "kid", connectOpts{clientID: "dads-phone", sessionExpiry: 3600}); err == nil || ca.ReasonCode != 0x85 {
		t.Fatalf("takeover while connected: connack %+v err %v, want 0x85", ca, err)
	}
	dad.close()
	mum := mustDial(t, addr, "mum", connectOpts{})
	mum.publish("rooms/family/messages/mum", 1, false, msg("q1", "queued for dad"))
	if _, ca, err := dial(t, addr, "kid", connectOpts{clientID: "dads-phone", sessionExpiry: 3600}); err == nil || ca.ReasonCode != 0x85 {
		t.Fatalf("takeover of a waiting session: connack %+v err %v, want 0x85", ca, err)
	}
	for _, id := range []string{"hearth-archiver", "hearth-archiver-receipts"} {
		if _, ca, err := dial(t, addr, "mum", connectOpts{clientID: id}); err == nil || ca.ReasonCode != 0x85 {
			t.Fatalf("the bridge's client id %s: connack %+v err %v, want 0x85", id, ca, err)
		}
	}
	// Dad resumes his own session and gets what was queued.
	dad2 := mustDial(t, addr, "dad", connectOpts{clientID: "dads-phone", sessionExpiry: 3600})
	if p := dad2.next("rooms/family/messages/mum"); !strings.Contains(string(p.Payload), "queued for dad") {
		t.Fatalf("dad got %s", p.Payload)
	}
}

// TestDuplicateGetsItsReceiptAgain: a retry with the same id is archived
// once and answered with the same seq.
func TestDuplicateGetsItsReceiptAgain(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	kid.subscribe("users/kid/receipts")
	var seqs []uint64
	for i := range 3 {
		kid.publish("rooms/family/messages/kid", 1, false, msg("same", fmt.Sprint("try ", i)))
		seqs = append(seqs, kid.receipts("kid", "family", 1)["same"].Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 1, 1}) {
		t.Fatalf("receipt seqs %v, want [1 1 1]", seqs)
	}
	h := readHistory(t, app, "kid", "family", "")
	if len(h.Messages) != 1 || h.Messages[0].Text != "try 0" {
		t.Fatalf("history %+v, want the first copy only", h.Messages)
	}
	// The same id from another sender is another message.
	dad := mustDial(t, app.MQTTAddr(), "dad", connectOpts{})
	dad.subscribe("users/dad/receipts")
	dad.publish("rooms/family/messages/dad", 1, false, msg("same", "dad's"))
	if r := dad.receipts("dad", "family", 1)["same"]; r.Seq != 2 {
		t.Fatalf("dad's receipt seq %d, want 2", r.Seq)
	}
}

// TestRestartKeepsHistoryAndSeq: history and seq continue across a
// restart on the same data directory; tokens stay valid (the secret is
// kept in data_dir).
func TestRestartKeepsHistoryAndSeq(t *testing.T) {
	dir := t.TempDir()
	app := startApp(t, testConfig(t, dir))
	tok := login(t, app, "kid")
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	kid.subscribe("users/kid/receipts")
	for i := range 3 {
		kid.publish("rooms/family/messages/kid", 1, false, msg(fmt.Sprint("r", i), "before"))
		kid.receipts("kid", "family", 1)
	}
	kid.close()
	if err := app.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	app2 := startApp(t, testConfig(t, dir))
	var rooms []struct {
		Name    string `json:"name"`
		LastSeq uint64 `json:"last_seq"`
	}
	if code := api(t, app2, "GET", "/api/rooms", tok, nil, &rooms); code != 200 || rooms[0].LastSeq != 3 {
		t.Fatalf("rooms after restart: %d %+v", code, rooms)
	}
	kid2 := mustDial(t, app2.MQTTAddr(), "kid", connectOpts{})
	kid2.subscribe("users/kid/receipts")
	kid2.publish("rooms/family/messages/kid", 1, false, msg("r0", "again"))
	kid2.publish("rooms/family/messages/kid", 1, false, msg("r3", "after"))
	seqs := kid2.receipts("kid", "family", 2)
	if seqs["r0"].Seq != 1 || seqs["r3"].Seq != 4 {
		t.Fatalf("after restart: receipts %v, want r0:1 (the duplicate) and r3:4", seqs)
	}
	h := readHistory(t, app2, "kid", "family", "")
	if len(h.Messages) != 4 {
		t.Fatalf("history after restart has %d messages, want 4", len(h.Messages))
	}
}

// TestHTTPPostAndRoutes: POST publishes through the broker with the same
// rules; health, readiness and metrics answer.
func TestHTTPPostAndRoutes(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	kitchen := mustDial(t, app.MQTTAddr(), "kitchen", connectOpts{})
	kitchen.subscribe("rooms/family/messages/+")

	var res map[string]string
	if code := api(t, app, "POST", "/api/rooms/family/messages", login(t, app, "dad"), map[string]string{"id": "h1", "text": "from the web"}, &res); code != 202 || res["id"] != "h1" {
		t.Fatalf("post: %d %v", code, res)
	}
	if p := kitchen.next("rooms/family/messages/dad"); !strings.Contains(string(p.Payload), "from the web") {
		t.Fatalf("kitchen got %s", p.Payload)
	}
	waitFor(t, "archived", 5*time.Second, func() bool { return len(readHistory(t, app, "dad", "family", "").Messages) == 1 })
	if code := api(t, app, "POST", "/api/rooms/family/messages", "", map[string]string{"text": "x"}, nil); code != 401 {
		t.Errorf("post without token: %d, want 401", code)
	}
	if code := api(t, app, "POST", "/api/rooms/family/messages", login(t, app, "kitchen"), map[string]string{"text": "x"}, nil); code != 403 {
		t.Errorf("post by a reader: %d, want 403", code)
	}
	if code := api(t, app, "POST", "/api/rooms/family/messages", login(t, app, "kid"), map[string]string{"text": strings.Repeat("y", 20000)}, nil); code != 413 && code != 400 {
		t.Errorf("post too long: %d, want 413 or 400", code)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 401, "/": 200, "/nope.js": 404, "/api/nope": 404} {
		if code := api(t, app, "GET", path, "", nil, nil); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
}

// TestMQTTPasswordGuessingLimited: after five wrong passwords over MQTT
// from one address, CONNECT from there by a client not seen before is
// refused with 0x9F, even with the right password; a client that logged
// in from there before (dad's browser, over HTTP) still gets in.
func TestMQTTPasswordGuessingLimited(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	tok := login(t, app, "dad") // dad's browser, logged in earlier
	for i := range 5 {
		if _, ca, err := dial(t, app.MQTTAddr(), "dad", connectOpts{password: "guess", recvBuffer: 1}); err == nil || ca.ReasonCode != 0x86 {
			t.Fatalf("guess %d: connack %+v, want 0x86", i+1, ca)
		}
	}
	if _, ca, err := dial(t, app.MQTTAddr(), "dad", connectOpts{}); err == nil || ca.ReasonCode != 0x9F {
		t.Fatalf("after five guesses: connack %+v err %v, want 0x9F", ca, err)
	}
	// dad's browser logged in over HTTP from this address before: a known
	// client, which guesses by other clients there do not lock out.
	if code := api(t, app, "POST", "/api/login", "", map[string]string{"username": "dad", "password": password("dad")}, nil); code != 200 {
		t.Fatalf("HTTP login of a known client after five MQTT guesses: %d, want 200", code)
	}
	mustDial(t, app.MQTTAddr(), "kid", connectOpts{}) // another user is not held up
	// A token costs no bcrypt and cannot be guessed: dad's browser still
	// gets in while his password is being guessed.
	mustDial(t, app.MQTTAddr(), "dad", connectOpts{password: tok})
}
