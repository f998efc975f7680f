package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// metric reads one gauge or counter from a running hearth's metrics.addr.
func metric(t *testing.T, addr, name string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return n
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

// killWhenCommitted waits until the session file holds every change, then
// kills hearth with SIGKILL and starts it again.
func (s *server) killWhenCommitted() {
	s.t.Helper()
	waitFor(s.t, "session writes committed", 10*time.Second, func() bool {
		return metric(s.t, s.metrics, "hearth_session_writes_pending") == 0
	})
	s.kill()
	s.start()
}

// ids returns the message ids of payloads, in order.
func ids(t *testing.T, payloads []string) []string {
	t.Helper()
	var out []string
	for _, p := range payloads {
		m, err := hearth.ParsePayload([]byte(p))
		if err != nil {
			t.Fatalf("payload %q: %v", p, err)
		}
		out = append(out, m.ID)
	}
	return out
}

// TestSessionsSurviveKill: a kitchen display (MQTT 5, paho) and a
// doorbell (MQTT 3.1.1, mosquitto_sub) subscribe with persistent sessions
// and go offline. Messages come in before and after two SIGKILLs of
// hearth; the devices, back without subscribing again, get every one of
// them once and in order: their subscriptions and queues survived, with
// packet ids they can acknowledge.
func TestSessionsSurviveKill(t *testing.T) {
	s := startServer(t)
	filter := hearth.RoomMessagesFilter("family")
	topic := hearth.MessageTopic("family", "mum")

	display := mustDial(t, s.mqtt, "kitchen", connectOpts{clientID: "kitchen-display", sessionExpiry: 3600, manual: true})
	if rc := display.subscribe(filter); rc[0] != 1 {
		t.Fatalf("display subscribe: %v", rc)
	}
	display.close()
	h, p := hostPort(t, s.mqtt)
	bell := func(args ...string) *exec.Cmd {
		all := append([]string{"-h", h, "-p", p, "-u", "kitchen", "-P", password("kitchen"), "-V", "mqttv311",
			"-i", "doorbell", "-c", "-q", "1"}, args...)
		return exec.Command(needTool(t, "mosquitto_sub", "mosquitto-clients"), all...)
	}
	if out, err := bell("-t", filter, "-E").CombinedOutput(); err != nil {
		t.Fatalf("doorbell subscribe: %v\n%s", err, out)
	}

	const perRound, rounds = 150, 3
	var want []string
	for round := range rounds {
		pub := mustDial(t, s.mqtt, "mum", connectOpts{manual: true})
		for i := range perRound {
			id := fmt.Sprintf("r%d-m%03d", round, i)
			if rc := pub.publish(topic, 1, false, msg(id, "hello "+id)); rc != 0 {
				t.Fatalf("publish %s: reason %#x", id, rc)
			}
			want = append(want, id)
		}
		pub.close()
		if round < rounds-1 {
			s.killWhenCommitted()
			t.Logf("SIGKILL %d with %d messages queued for each device", round+1, len(want))
		}
	}

	// The display resumes its session (clean start false, no SUBSCRIBE).
	display = mustDial(t, s.mqtt, "kitchen", connectOpts{clientID: "kitchen-display", sessionExpiry: 3600})
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case m := <-display.recv:
			got = append(got, string(m.Payload))
		case <-timeout:
			t.Fatalf("display got %d of %d messages", len(got), len(want))
		}
	}
	select {
	case m := <-display.recv:
		t.Fatalf("display got more than %d messages: %s", len(want), m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	if g := ids(t, got); strings.Join(g, " ") != strings.Join(want, " ") {
		t.Fatalf("display got, out of order or wrong:\n%v\nwant\n%v", g, want)
	}

	// The doorbell resumes its 3.1.1 session; mosquitto_sub subscribes
	// again, which keeps the queue.
	out, err := bell("-t", filter, "-C", strconv.Itoa(len(want)), "-W", "20").Output()
	if err != nil {
		t.Fatalf("doorbell: %v after %d lines", err, strings.Count(string(out), "\n"))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if g := ids(t, lines); strings.Join(g, " ") != strings.Join(want, " ") {
		t.Fatalf("doorbell got, out of order or wrong:\n%v\nwant\n%v", g, want)
	}
	t.Logf("%d messages across %d SIGKILLs: each device got all, once, in order", len(want), rounds-1)

	// Retained messages survive too: dad's presence keeps its last_seen.
	dad := mustDial(t, s.mqtt, "dad", connectOpts{manual: true})
	dad.close()
	watch := mustDial(t, s.mqtt, "kid", connectOpts{manual: true})
	watch.subscribe(hearth.PresenceTopic("dad"))
	before := nextPresence(t, watch, "dad")
	for before.Online { // retained before dad's disconnect was seen
		before = nextPresence(t, watch, "dad")
	}
	watch.close()
	if before.LastSeen == 0 {
		t.Fatalf("dad's presence before the kill: %+v", before)
	}

	// A session that ends (clean start) is gone from the file too: after
	// another kill, nothing is queued for it.
	fresh := mustDial(t, s.mqtt, "kitchen", connectOpts{clientID: "kitchen-display", cleanStart: true, manual: true})
	fresh.close()
	pub := mustDial(t, s.mqtt, "mum", connectOpts{manual: true})
	pub.publish(topic, 1, false, msg("after-clean", "nobody queues this"))
	pub.close()
	s.killWhenCommitted()
	display = mustDial(t, s.mqtt, "kitchen", connectOpts{clientID: "kitchen-display", sessionExpiry: 3600})
	select {
	case m := <-display.recv:
		var pl hearth.Payload
		_ = json.Unmarshal(m.Payload, &pl)
		t.Fatalf("a session ended with clean start still got %q", pl.ID)
	case <-time.After(500 * time.Millisecond):
	}
	watch = mustDial(t, s.mqtt, "kid", connectOpts{})
	watch.subscribe(hearth.PresenceTopic("dad"))
	if after := nextPresence(t, watch, "dad"); after != before {
		t.Fatalf("dad's presence after the kill: %+v, before: %+v", after, before)
	}
}

// TestQoS2StateSurvivesKill: QoS 2 flows caught halfway by a SIGKILL of
// hearth finish after it, each message exactly once. A publisher's
// PUBLISH was answered with PUBREC, its PUBREL comes after the restart and
// finds its record (PUBCOMP 0x00, not 0x92). A subscriber had answered
// one delivery with PUBREC (the PUBREL is sent again) and not yet
// answered another (sent again with DUP under the same Packet id).
func TestQoS2StateSurvivesKill(t *testing.T) {
	s := startServer(t)
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(3600))
	const topic = "home/q2"
	sub, _ := dialMum(t, s.mqtt, mt.Connect{ID: "q2-sub", Clean: true, Props: keep})
	sub.Subscribe(1, topic, 2, nil)
	pub, _ := dialMum(t, s.mqtt, mt.Connect{ID: "q2-pub", Clean: true, Props: keep})
	pub.Publish(topic, []byte("a"), 2, false, 5, nil)
	pub.Expect(mt.PUBREC) // no PUBREL yet
	a := sub.NextPublish()
	sub.Ack(mt.PUBREC, a.ID)
	sub.Expect(mt.PUBREL) // no PUBCOMP yet
	pub.Publish(topic, []byte("b"), 2, false, 6, nil)
	pub.Expect(mt.PUBREC)
	pub.Ack(mt.PUBREL, 6)
	pub.Expect(mt.PUBCOMP)
	b := sub.NextPublish() // no PUBREC yet
	if string(a.Payload) != "a" || string(b.Payload) != "b" {
		t.Fatalf("deliveries %v %v", a, b)
	}
	pub.Conn.Close()
	sub.Conn.Close()
	s.killWhenCommitted()

	pub, ack := dialMum(t, s.mqtt, mt.Connect{ID: "q2-pub", Props: keep})
	if !ack.Present {
		t.Fatal("the publisher's session did not survive")
	}
	pub.Ack(mt.PUBREL, 5)
	p := pub.Read()
	for p.Type == mt.PUBREC { // mochi resends its PUBREC on resume
		p = pub.Read()
	}
	if p.Type != mt.PUBCOMP || p.ID != 5 || p.Code != 0 {
		t.Fatalf("publisher got %v, want mt.PUBCOMP 5 success", p)
	}
	sub, ack = dialMum(t, s.mqtt, mt.Connect{ID: "q2-sub", Props: keep})
	if !ack.Present {
		t.Fatal("the subscriber's session did not survive")
	}
	if p := sub.Read(); p.Type != mt.PUBREL || p.ID != a.ID {
		t.Fatalf("first after the restart: %v, want mt.PUBREL %d", p, a.ID)
	}
	sub.Ack(mt.PUBCOMP, a.ID)
	if p := sub.Read(); p.Type != mt.PUBLISH || p.ID != b.ID || !p.Dup() || string(p.Payload) != "b" {
		t.Fatalf("then %v, want 'b' again with DUP under id %d", p, b.ID)
	}
	sub.Ack(mt.PUBREC, b.ID)
	if p := sub.Expect(mt.PUBREL); p.ID != b.ID {
		t.Fatalf("mt.PUBREL %v", p)
	}
	sub.Ack(mt.PUBCOMP, b.ID)
	sub.NoPacket(500*time.Millisecond, "after both flows completed")
}

// dialMum connects a raw MQTT 5 client as mum.
func dialMum(t *testing.T, addr string, o mt.Connect) (*mt.Raw, mt.Packet) {
	t.Helper()
	r := mt.DialRaw(t, addr, 5)
	o.User, o.Pass = "mum", password("mum")
	ack := r.Connect(o)
	if ack.Type != mt.CONNACK || ack.Code != 0 {
		t.Fatalf("CONNACK %v", ack)
	}
	return r, ack
}
