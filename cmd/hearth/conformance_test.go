package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"hearth"
)

// The conformance suite: one row per MQTT behaviour, each run against
// hearth and against Debian's mosquitto (the reference broker), over MQTT
// 3.1.1 and 5 where the behaviour exists in both, with independent
// clients: libmosquitto's mosquitto_pub and mosquitto_sub, python3-paho-mqtt
// (the library Home Assistant uses), MQTT.js, and raw packets where a
// client library would hide what is asserted.

// target is a broker under test.
type target struct {
	name       string
	addr       string // MQTT over TCP
	ws         string // MQTT over WebSocket
	user, pass string // "" for anonymous
	hearth     bool
}

// creds are the user name and password arguments for mosquitto_pub/sub.
func (tg *target) creds() []string {
	if tg.user == "" {
		return nil
	}
	return []string{"-u", tg.user, "-P", tg.pass}
}

// connect is a raw CONNECT with the target's credentials.
func (tg *target) connect(o rawConnect) rawConnect {
	if o.user == "" {
		o.user, o.pass = tg.user, tg.pass
	}
	return o
}

// dial connects a raw client and fails unless the CONNACK accepts it.
func (tg *target) dial(t *testing.T, v byte, o rawConnect) (*raw, packet) {
	t.Helper()
	r := dialRaw(t, tg.addr, v)
	ack := r.connect(tg.connect(o))
	if ack.typ != tConnack || ack.code != 0 {
		t.Fatalf("%s: CONNACK %v, want accepted", tg.name, ack)
	}
	return r, ack
}

// conformanceRow is one behaviour.
type conformanceRow struct {
	name       string
	versions   []byte // 4 (3.1.1) and 5
	hearthOnly bool   // a hearth setting or rule, not a broker behaviour
	run        func(t *testing.T, tg *target, v byte, topic string)
	// mosquitto is where Mosquitto 2.0.11 is known to break the row's
	// rule: its run is skipped with this reason.
	mosquitto string
}

var both = []byte{4, 5}
var v5only = []byte{5}

func TestConformance(t *testing.T) {
	targets := []*target{startConformanceHearth(t), startMosquitto(t)}
	cols := []string{"hearth v4", "hearth v5", "mosquitto v4", "mosquitto v5"}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-44s %-13s %-13s %-13s %-13s\n", "row", cols[0], cols[1], cols[2], cols[3])
	for _, row := range conformanceRows {
		cell := map[string]string{}
		for _, tg := range targets {
			for _, v := range row.versions {
				if row.hearthOnly && !tg.hearth {
					cell[fmt.Sprintf("%s v%d", tg.name, v)] = "n/a"
					continue
				}
				name := fmt.Sprintf("%s/%s/v%d", row.name, tg.name, v)
				topic := fmt.Sprintf("conf/%s/%s/v%d", strings.ReplaceAll(row.name, " ", "-"), tg.name, v)
				skipped := false
				ok := t.Run(name, func(t *testing.T) {
					if !tg.hearth && row.mosquitto != "" {
						skipped = true
						t.Skip("Mosquitto 2.0.11: " + row.mosquitto)
					}
					row.run(t, tg, v, topic)
				})
				res := map[bool]string{true: "pass", false: "FAIL"}[ok]
				if skipped {
					res = "fails (known)"
				}
				cell[fmt.Sprintf("%s v%d", tg.name, v)] = res
			}
		}
		fmt.Fprintf(&table, "%-44s", row.name)
		for _, c := range cols {
			fmt.Fprintf(&table, " %-13s", cmpOr(cell[c], "-"))
		}
		table.WriteString("\n")
	}
	t.Log(table.String())
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// startConformanceHearth starts hearth with an admin for the suite's
// topics, and a Home Assistant device user under acl rules.
func startConformanceHearth(t *testing.T) *target {
	cfg := testConfig(t, t.TempDir())
	h, err := bcrypt.GenerateFromPassword([]byte(password("homeassistant")), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Users = append(cfg.Users, hearth.User{Name: "homeassistant", PasswordHash: string(h), Role: hearth.RoleDevice})
	cfg.ACL = []hearth.ACLRule{
		{User: "homeassistant", Topic: "homeassistant/#", Access: hearth.AccessReadWrite},
		{User: "homeassistant", Topic: "home/#", Access: hearth.AccessReadWrite},
		{Role: hearth.RoleDevice, Topic: "devices/%u/#", Access: hearth.AccessReadWrite},
		{Role: hearth.RoleMember, Topic: "home/#", Access: hearth.AccessRead},
		{Role: hearth.RoleMember, Topic: "home/secret/#", Access: hearth.AccessDeny},
	}
	cfg.MQTT.MaxKeepalive = 60
	app := startApp(t, cfg)
	return &target{name: "hearth", addr: app.MQTTAddr(), ws: "ws://" + app.HTTPAddr() + "/mqtt", user: "mum", pass: password("mum"), hearth: true}
}

// startMosquitto starts Debian's mosquitto on free loopback ports, with no
// limit on queued messages.
func startMosquitto(t *testing.T) *target {
	t.Helper()
	bin := "/usr/sbin/mosquitto" // not on every PATH
	if p, err := exec.LookPath("mosquitto"); err == nil {
		bin = p
	} else if _, err := os.Stat(bin); err != nil {
		t.Fatal("mosquitto not found: apt-get install mosquitto (.ci/run does)")
	}
	port, wsPort := freePortNumber(t), freePortNumber(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf(`listener %s 127.0.0.1
listener %s 127.0.0.1
protocol websockets
allow_anonymous true
max_queued_messages 0
max_keepalive 60
persistence false
`, port, wsPort)
	if os.Geteuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var out safeBuffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := "127.0.0.1:" + port
	waitFor(t, "mosquitto to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &target{name: "mosquitto", addr: addr, ws: "ws://127.0.0.1:" + wsPort}
}

func freePortNumber(t *testing.T) string {
	t.Helper()
	_, p := hostPort(t, freePort(t))
	return p
}

func versionFlag(v byte) string {
	if v == 5 {
		return "mqttv5"
	}
	return "mqttv311"
}

// sub is a mosquitto_sub run against a target.
func (tg *target) sub(t *testing.T, v byte, args ...string) *mosqSub {
	t.Helper()
	return runMosquittoSub(t, tg.addr, versionFlag(v), append(tg.creds(), args...))
}

// pub runs mosquitto_pub against a target.
func (tg *target) pub(t *testing.T, v byte, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "mosquitto_pub", "mosquitto-clients")
	h, p := hostPort(t, tg.addr)
	all := append(append([]string{"-h", h, "-p", p, "-V", versionFlag(v)}, tg.creds()...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	return string(out), err
}

// received returns the payloads of topic that s printed.
func received(s *mosqSub, topic string) []string {
	var out []string
	for _, l := range s.lines() {
		if p, ok := strings.CutPrefix(l, topic+" "); ok {
			out = append(out, p)
		}
	}
	return out
}

// noPacket fails if r receives a packet within d.
func noPacket(t *testing.T, r *raw, d time.Duration, what string) {
	t.Helper()
	if p, err := r.readWithin(d); err == nil {
		t.Fatalf("%s: got %v", what, p)
	}
}

// next reads the next PUBLISH, answering nothing.
func nextPublish(t *testing.T, r *raw) packet {
	t.Helper()
	for {
		p := r.read()
		if p.typ == tPublish {
			return p
		}
		if p.typ != tPingresp {
			t.Fatalf("got %v, want a PUBLISH", p)
		}
	}
}

var conformanceRows = []conformanceRow{
	{"qos 2 with mosquitto clients", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		s := tg.sub(t, v, "-q", "2", "-t", topic)
		for i := range 3 {
			if out, err := tg.pub(t, v, "-q", "2", "-t", topic, "-m", fmt.Sprint("m", i)); err != nil {
				t.Fatalf("mosquitto_pub -q 2: %v: %s", err, out)
			}
		}
		waitFor(t, "3 messages", 5*time.Second, func() bool { return len(received(s, topic)) >= 3 })
		time.Sleep(200 * time.Millisecond)
		if got := received(s, topic); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
			t.Fatalf("got %q, want m0 m1 m2 once each", got)
		}
		if !strings.Contains(s.out.String(), "PUBREL") {
			t.Fatalf("the subscriber saw no PUBREL: the delivery was not QoS 2:\n%s", s.out.String())
		}
	}, ""},
	{"qos 2 flows on the wire", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, rawConnect{id: "q2-sub", clean: true})
		if codes := sub.subscribe(1, topic, 2, nil); !bytes.Equal(codes, []byte{2}) {
			t.Fatalf("SUBACK %v, want granted QoS 2", codes)
		}
		pub, _ := tg.dial(t, v, rawConnect{id: "q2-pub", clean: true})
		pub.publish(topic, []byte("once"), 2, false, 7, nil)
		if p := pub.expect(tPubrec); p.id != 7 || p.code != 0 {
			t.Fatalf("PUBREC %v, want id 7 success", p)
		}
		// Sent again before the PUBREL: acknowledged, not delivered twice.
		pub.publishFlags(topic, []byte("once"), 2<<1|8, 7, nil) // DUP
		if p := pub.expect(tPubrec); p.id != 7 || p.code != 0 {
			t.Fatalf("PUBREC of the resend %v, want id 7 success", p)
		}
		pub.ack(tPubrel, 7)
		if p := pub.expect(tPubcomp); p.id != 7 || p.code != 0 {
			t.Fatalf("PUBCOMP %v, want id 7 success", p)
		}
		d := nextPublish(t, sub)
		if d.qos() != 2 || string(d.payload) != "once" || d.id == 0 {
			t.Fatalf("delivery %v, want QoS 2 'once'", d)
		}
		sub.ack(tPubrec, d.id)
		if p := sub.expect(tPubrel); p.id != d.id {
			t.Fatalf("PUBREL %v, want id %d", p, d.id)
		}
		sub.ack(tPubcomp, d.id)
		noPacket(t, sub, 300*time.Millisecond, "after PUBCOMP")
	}, ""},
	{"qos 2 state kept across reconnect", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		var keep props
		if v == 5 {
			keep = props{}.add(pSessionExpiry, uint32(60))
		}
		clean := v == 5 // a 3.1.1 session is kept without clean session
		subID, pubID := fmt.Sprint("q2-keep-sub-", v), fmt.Sprint("q2-keep-pub-", v)
		sub, _ := tg.dial(t, v, rawConnect{id: subID, clean: clean, props: keep})
		sub.subscribe(1, topic, 2, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: pubID, clean: clean, props: keep})
		pub.publish(topic, []byte("x"), 2, false, 9, nil)
		pub.expect(tPubrec)
		pub.c.Close() // before the PUBREL

		pub, ack := tg.dial(t, v, rawConnect{id: pubID, props: keep})
		if !ack.present {
			t.Fatal("the publisher's session is not present")
		}
		pub.ack(tPubrel, 9)
		for p := pub.read(); ; p = pub.read() {
			if p.typ == tPubcomp {
				if p.id != 9 || p.code != 0 {
					t.Fatalf("PUBCOMP %v, want id 9 success", p)
				}
				break
			}
			if p.typ != tPubrec {
				t.Fatalf("publisher got %v", p)
			}
		}
		// Delivered on the PUBLISH or on the PUBREL: MQTT allows both.
		d := nextPublish(t, sub)
		sub.ack(tPubrec, d.id)
		sub.expect(tPubrel)
		sub.c.Close() // before the PUBCOMP

		sub, ack = tg.dial(t, v, rawConnect{id: subID, props: keep})
		if !ack.present {
			t.Fatal("the subscriber's session is not present")
		}
		if p := sub.read(); p.typ != tPubrel || p.id != d.id {
			t.Fatalf("resumed subscriber got %v, want PUBREL %d", p, d.id)
		}
		sub.ack(tPubcomp, d.id)
		noPacket(t, sub, 300*time.Millisecond, "after PUBCOMP (the message again?)")
	}, ""},
	{"qos 2 state kept across takeover", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		var keep props
		if v == 5 {
			keep = props{}.add(pSessionExpiry, uint32(60))
		}
		clean := v == 5
		subID, pubID := fmt.Sprint("q2-take-sub-", v), fmt.Sprint("q2-take-pub-", v)
		sub, _ := tg.dial(t, v, rawConnect{id: subID, clean: clean, props: keep})
		sub.subscribe(1, topic, 2, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: pubID, clean: clean, props: keep})
		pub.publish(topic, []byte("x"), 2, false, 11, nil)
		pub.expect(tPubrec)
		// A second connection takes the session over while the first is open.
		pub2, ack := tg.dial(t, v, rawConnect{id: pubID, props: keep})
		if !ack.present {
			t.Fatal("the publisher's session is not present")
		}
		if closed, _ := pub.closed(5 * time.Second); !closed {
			t.Fatal("the connection taken over is still open")
		}
		pub2.ack(tPubrel, 11)
		for p := pub2.read(); p.typ != tPubcomp; p = pub2.read() {
			if p.typ != tPubrec {
				t.Fatalf("publisher got %v", p)
			}
		}
		d := nextPublish(t, sub)
		sub.ack(tPubrec, d.id)
		sub.expect(tPubrel)
		sub2, ack := tg.dial(t, v, rawConnect{id: subID, props: keep})
		if !ack.present {
			t.Fatal("the subscriber's session is not present")
		}
		if p := sub2.read(); p.typ != tPubrel || p.id != d.id {
			t.Fatalf("after the takeover: %v, want PUBREL %d", p, d.id)
		}
		sub2.ack(tPubcomp, d.id)
		noPacket(t, sub2, 300*time.Millisecond, "after PUBCOMP")
	}, ""},
	{"will at qos 2", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		watch, _ := tg.dial(t, v, rawConnect{id: "will-watch", clean: true})
		watch.subscribe(1, topic, 2, nil)
		dev, _ := tg.dial(t, v, rawConnect{id: "will-dev", clean: true, will: &rawWill{topic: topic, payload: "gone", qos: 2}})
		dev.c.Close()
		if p := nextPublish(t, watch); string(p.payload) != "gone" || p.qos() != 2 {
			t.Fatalf("will %v, want 'gone' at QoS 2", p)
		}
	}, ""},
	{"empty client id", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		r := dialRaw(t, tg.addr, v)
		ack := r.connect(tg.connect(rawConnect{clean: false, props: props{}.add(pSessionExpiry, uint32(0))}))
		if v == 4 {
			if ack.code != 0x02 { // identifier rejected [MQTT-3.1.3-8]
				t.Fatalf("3.1.1 empty id, clean session 0: CONNACK %#x, want 0x02", ack.code)
			}
			return
		}
		if ack.code != 0 || ack.props.str(pAssignedID) == "" {
			t.Fatalf("MQTT 5 empty id: CONNACK %v, assigned %q, want accepted with an assigned id", ack, ack.props.str(pAssignedID))
		}
	}, ""},
	{"dollar topics", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		dtopic := "$app/" + topic
		exact, _ := tg.dial(t, v, rawConnect{id: "dollar-exact", clean: true})
		exact.subscribe(1, "$app/#", 1, nil)
		wild, _ := tg.dial(t, v, rawConnect{id: "dollar-wild", clean: true})
		wild.subscribe(1, "#", 1, nil)
		wild.subscribe(2, "+/"+topic, 1, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: "dollar-pub", clean: true})
		pub.publish(dtopic, []byte("d"), 1, false, 3, nil)
		if p := pub.expect(tPuback); p.code != 0 {
			t.Fatalf("PUBACK %v, want success", p)
		}
		if p := nextPublish(t, exact); p.topic != dtopic {
			t.Fatalf("$app/# got %v", p)
		}
		exact.ack(tPuback, 1)
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			p, err := wild.readWithin(time.Until(deadline))
			if err != nil {
				break
			}
			if p.topic == dtopic {
				t.Fatalf("# or + matched %s [MQTT-4.7.1-1]", dtopic)
			}
			if p.qos() == 1 {
				wild.ack(tPuback, p.id)
			}
		}
	}, ""},
	{"receive maximum to the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, rawConnect{id: "rm-sub", clean: true, props: props{}.add(pReceiveMaximum, uint16(2))})
		sub.subscribe(1, topic, 1, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: "rm-pub", clean: true})
		for i := range 10 {
			pub.publish(topic, []byte(strconv.Itoa(i)), 1, false, uint16(i+1), nil)
			pub.expect(tPuback)
		}
		var got []string
		var unacked []uint16
		for len(got) < 10 {
			p, err := sub.readWithin(time.Second)
			if err != nil {
				if len(unacked) == 0 {
					t.Fatalf("stalled after %d of 10", len(got))
				}
				sub.ack(tPuback, unacked[0])
				unacked = unacked[1:]
				continue
			}
			if p.typ != tPublish {
				continue
			}
			got = append(got, string(p.payload))
			unacked = append(unacked, p.id)
			if len(unacked) > 2 {
				t.Fatalf("%d unacknowledged deliveries, the client's Receive Maximum is 2", len(unacked))
			}
			if len(unacked) == 2 {
				noPacket(t, sub, 200*time.Millisecond, "a third delivery while 2 are unacknowledged")
				sub.ack(tPuback, unacked[0])
				unacked = unacked[1:]
			}
		}
		if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}, "sends more unacknowledged messages than the client's Receive Maximum [MQTT-3.3.4-9]"},
	{"receive maximum from the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		pub, ack := tg.dial(t, v, rawConnect{id: "rm-over", clean: true})
		rm, ok := ack.props.u16(pReceiveMaximum)
		if !ok {
			rm = 65535
		}
		for i := range int(rm) + 1 {
			pub.publish(topic, []byte("x"), 2, false, uint16(i+1), nil) // no PUBREL: each stays in flight
		}
		closed, code := pub.closed(5 * time.Second)
		if !closed || code != 0x93 {
			t.Fatalf("after %d QoS 2 publishes without PUBREL: closed %v, DISCONNECT %#x; want 0x93", rm+1, closed, code)
		}
	}, "closes the connection without DISCONNECT 0x93 [MQTT-3.3.4-9]"},
	{"message expiry", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		keep := props{}.add(pSessionExpiry, uint32(60))
		sub, _ := tg.dial(t, v, rawConnect{id: "exp-sub", clean: true, props: keep})
		sub.subscribe(1, topic, 1, nil)
		sub.c.Close()
		time.Sleep(100 * time.Millisecond)
		pub, _ := tg.dial(t, v, rawConnect{id: "exp-pub", clean: true})
		pub.publish(topic, []byte("short"), 1, false, 1, props{}.add(pMessageExpiry, uint32(1)))
		pub.expect(tPuback)
		pub.publish(topic, []byte("long"), 1, false, 2, props{}.add(pMessageExpiry, uint32(60)))
		pub.expect(tPuback)
		time.Sleep(2500 * time.Millisecond)
		sub, _ = tg.dial(t, v, rawConnect{id: "exp-sub", props: keep})
		p := nextPublish(t, sub)
		sub.ack(tPuback, p.id)
		if string(p.payload) != "long" {
			t.Fatalf("got %q first, want only 'long' (the other expired)", p.payload)
		}
		if e, ok := p.props.u32(pMessageExpiry); !ok || e == 0 || e > 58 {
			t.Fatalf("Message Expiry Interval %d (%v), want what is left of 60 s", e, ok)
		}
		noPacket(t, sub, 300*time.Millisecond, "the expired message")
	}, ""},
	{"no local", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		me, _ := tg.dial(t, v, rawConnect{id: "nl-me", clean: true})
		me.subscribe(1, topic, 1|4, nil)
		me.publish(topic, []byte("mine"), 1, false, 5, nil)
		me.expect(tPuback)
		other, _ := tg.dial(t, v, rawConnect{id: "nl-other", clean: true})
		other.publish(topic, []byte("theirs"), 1, false, 1, nil)
		if p := nextPublish(t, me); string(p.payload) != "theirs" {
			t.Fatalf("got %q, want only 'theirs' (No Local)", p.payload)
		}
	}, ""},
	{"retain as published and retain handling", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		pub, _ := tg.dial(t, v, rawConnect{id: "rap-pub", clean: true})
		pub.publish(topic, []byte("kept"), 1, true, 1, nil)
		pub.expect(tPuback)
		for _, c := range []struct {
			name         string
			options      byte
			first, again bool // a retained message on the first and the repeated SUBSCRIBE
		}{
			{"handling 0", 1, true, true},
			{"handling 1", 1 | 1<<4, true, false},
			{"handling 2", 1 | 2<<4, false, false},
		} {
			sub, _ := tg.dial(t, v, rawConnect{id: "rh-sub", clean: true})
			for i, want := range []bool{c.first, c.again} {
				sub.subscribe(uint16(i+1), topic, c.options, nil)
				p, err := sub.readWithin(300 * time.Millisecond)
				if got := err == nil && p.typ == tPublish; got != want {
					t.Fatalf("%s, SUBSCRIBE %d: retained message %v (%v), want %v", c.name, i+1, got, p, want)
				}
				if err == nil && p.typ == tPublish {
					if !p.retain() {
						t.Fatalf("%s: a retained message sent for a subscription has no RETAIN flag", c.name)
					}
					sub.ack(tPuback, p.id)
				}
			}
			sub.c.Close()
		}
		plain, _ := tg.dial(t, v, rawConnect{id: "rap-plain", clean: true})
		plain.subscribe(1, topic, 1|2<<4, nil)
		rap, _ := tg.dial(t, v, rawConnect{id: "rap-rap", clean: true})
		rap.subscribe(1, topic, 1|8|2<<4, nil)
		pub.publish(topic, []byte("live"), 1, true, 2, nil)
		pub.expect(tPuback)
		if p := nextPublish(t, plain); p.retain() {
			t.Fatal("a live retained message kept RETAIN without Retain As Published")
		}
		if p := nextPublish(t, rap); !p.retain() {
			t.Fatal("Retain As Published: the live message lost RETAIN")
		}
		pub.publish(topic, nil, 1, true, 3, nil) // clears it
		pub.expect(tPuback)
	}, ""},
	{"subscription identifiers", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, rawConnect{id: "sid-sub", clean: true})
		sub.subscribe(1, topic+"/#", 1, props{}.add(pSubscriptionID, 7))
		sub.subscribe(2, topic+"/+", 1, props{}.add(pSubscriptionID, 3))
		sub.subscribe(3, topic+"/x", 1, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: "sid-pub", clean: true})
		pub.publish(topic+"/x", []byte("x"), 1, false, 1, nil)
		// MQTT lets a broker send one copy with every identifier, or a
		// copy per subscription [MQTT-3.3.4-3] [MQTT-3.3.4-5]; an id is
		// never 0. hearth sends one copy.
		var ids []int
		copies := 0
		for {
			p, err := sub.readWithin(300 * time.Millisecond)
			if err != nil {
				break
			}
			if p.typ != tPublish {
				continue
			}
			copies++
			sub.ack(tPuback, p.id)
			ids = append(ids, p.props.ints(pSubscriptionID)...)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []int{3, 7}) {
			t.Fatalf("subscription identifiers %v over %d copies, want 3 and 7", ids, copies)
		}
		if tg.hearth && copies != 1 {
			t.Fatalf("%d copies for overlapping subscriptions, want one", copies)
		}
	}, ""},
	{"request response and user properties", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, rawConnect{id: "props-sub", clean: true})
		sub.subscribe(1, topic, 1, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: "props-pub", clean: true})
		p := props{}.add(pResponseTopic, topic+"/reply").add(pCorrelation, []byte{1, 2, 3}).
			add(pContentType, "application/json").add(pPayloadFormat, byte(1)).
			add(pUser, pair{"a", "1"}).add(pUser, pair{"a", "2"}).add(pUser, pair{"b", "3"})
		pub.publish(topic, []byte(`{"q":1}`), 1, false, 1, p)
		pub.expect(tPuback)
		d := nextPublish(t, sub)
		if d.props.str(pResponseTopic) != topic+"/reply" || !bytes.Equal([]byte(d.props.str(pCorrelation)), []byte{1, 2, 3}) ||
			d.props.str(pContentType) != "application/json" || len(d.props[pPayloadFormat]) != 1 || d.props[pPayloadFormat][0] != byte(1) {
			t.Fatalf("properties changed on the way: %v", d.props)
		}
		var users []pair
		for _, u := range d.props[pUser] {
			users = append(users, u.(pair))
		}
		if !slices.Equal(users, []pair{{"a", "1"}, {"a", "2"}, {"b", "3"}}) {
			t.Fatalf("user properties %v, want a=1 a=2 b=3 in order", users)
		}
	}, ""},
	{"topic alias from the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, rawConnect{id: "alias-sub", clean: true})
		sub.subscribe(1, topic, 0, nil)
		pub, ack := tg.dial(t, v, rawConnect{id: "alias-pub", clean: true})
		if max, _ := ack.props.u16(pTopicAliasMax); max < 1 {
			t.Fatalf("CONNACK Topic Alias Maximum %d: the client may use no alias", max)
		}
		pub.publish(topic, []byte("1"), 0, false, 0, props{}.add(pTopicAlias, uint16(1)))
		pub.publish("", []byte("2"), 0, false, 0, props{}.add(pTopicAlias, uint16(1)))
		for _, want := range []string{"1", "2"} {
			if p := nextPublish(t, sub); p.topic != topic || string(p.payload) != want {
				t.Fatalf("got %v, want %s on %s", p, want, topic)
			}
		}
	}, ""},
	{"maximum packet size of the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, rawConnect{id: "mps-sub", clean: true, props: props{}.add(pMaxPacketSize, uint32(256))})
		sub.subscribe(1, topic, 1, nil)
		pub, _ := tg.dial(t, v, rawConnect{id: "mps-pub", clean: true})
		pub.publish(topic, bytes.Repeat([]byte("x"), 600), 1, false, 1, nil)
		pub.expect(tPuback)
		pub.publish(topic, []byte("small"), 1, false, 2, nil)
		pub.expect(tPuback)
		if p := nextPublish(t, sub); string(p.payload) != "small" {
			t.Fatalf("got %d bytes, want only the small message", len(p.payload))
		}
	}, ""},
	{"will delay", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		watch, _ := tg.dial(t, v, rawConnect{id: "wd-watch", clean: true})
		watch.subscribe(1, topic, 1, nil)
		keep := props{}.add(pSessionExpiry, uint32(60))
		will := &rawWill{topic: topic, qos: 1, props: props{}.add(pWillDelay, uint32(2))}
		// Back within the delay: no will.
		will.payload = "back"
		dev, _ := tg.dial(t, v, rawConnect{id: "wd-dev", clean: true, props: keep, will: will})
		dev.c.Close()
		time.Sleep(500 * time.Millisecond)
		tg.dial(t, v, rawConnect{id: "wd-dev", props: keep})
		// Not back: the will after its delay.
		will.payload = "late"
		dev2, _ := tg.dial(t, v, rawConnect{id: "wd-dev2", clean: true, props: keep, will: will})
		start := time.Now()
		dev2.c.Close()
		p := nextPublish(t, watch)
		if string(p.payload) != "late" {
			t.Fatalf("got will %q, want only 'late' (the other client came back)", p.payload)
		}
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Fatalf("the will came after %s, before its 2 s delay", d)
		}
		watch.ack(tPuback, p.id)
		// The session ends before the delay: the will then.
		will.payload, will.props = "ended", props{}.add(pWillDelay, uint32(60))
		dev3, _ := tg.dial(t, v, rawConnect{id: "wd-dev3", clean: true, props: props{}.add(pSessionExpiry, uint32(1)), will: will})
		dev3.c.Close()
		_ = watch.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if p, err := watch.readWithin(10 * time.Second); err != nil || string(p.payload) != "ended" {
			t.Fatalf("at the end of the session: %v %v, want the will 'ended'", p, err)
		}
	}, ""},
	{"server keep alive", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		r := dialRaw(t, tg.addr, v)
		ack := r.connect(tg.connect(rawConnect{id: "ka", clean: true, keepalive: 600}))
		if ka, ok := ack.props.u16(pServerKeepAlive); ack.code != 0 || !ok || ka != 60 {
			t.Fatalf("keep alive 600 with a 60 s maximum: CONNACK %v, Server Keep Alive %d (%v), want 60", ack, ka, ok)
		}
	}, ""},
	{"burst of 10 publishers to one subscriber", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		each := 2000
		if n, err := strconv.Atoi(os.Getenv("HEARTH_BURST_EACH")); err == nil && n > 0 {
			each = n
		}
		s := tg.sub(t, v, "-q", "1", "-t", topic+"/+")
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				var lines strings.Builder
				for j := range each {
					fmt.Fprintf(&lines, "%d-%d\n", i, j)
				}
				bin := needTool(t, "mosquitto_pub", "mosquitto-clients")
				h, p := hostPort(t, tg.addr)
				cmd := exec.Command(bin, append(append([]string{"-h", h, "-p", p, "-V", versionFlag(v)}, tg.creds()...),
					"-q", "1", "-M", "100", "-l", "-t", fmt.Sprintf("%s/%d", topic, i))...)
				cmd.Stdin = strings.NewReader(lines.String())
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("mosquitto_pub %d: %v: %s", i, err, out)
				}
			})
		}
		wg.Wait()
		want := 10 * each
		count := func() int {
			n := 0
			for _, l := range s.lines() {
				if strings.HasPrefix(l, topic+"/") {
					n++
				}
			}
			return n
		}
		deadline := time.Now().Add(60 * time.Second)
		for count() < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		if got := count(); got != want {
			t.Fatalf("the subscriber got %d of %d", got, want)
		}
		t.Logf("%s v%d: %d of %d delivered", tg.name, v, count(), want)
	}, ""},
	{"python paho qos 0 1 2", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		py := needTool(t, "/usr/bin/python3", "python3")
		script := `
import sys, time, threading
import paho.mqtt.client as mqtt
host, port, user, pw, topic, v = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
proto = mqtt.MQTTv5 if v == "5" else mqtt.MQTTv311
got, subscribed = [], threading.Event()
def on_message(c, u, m): got.append((m.qos, m.payload.decode()))
def on_subscribe(c, u, mid, granted, *rest): subscribed.set()
def client(cid):
    c = mqtt.Client(client_id=cid, protocol=proto)
    if user: c.username_pw_set(user, pw)
    c.connect(host, port, 30)
    c.loop_start()
    return c
sub = client("py-sub-" + v)
sub.on_message, sub.on_subscribe = on_message, on_subscribe
sub.subscribe(topic, qos=2)
if not subscribed.wait(5): sys.exit("no SUBACK")
pub = client("py-pub-" + v)
for q in (0, 1, 2):
    for i in range(10):
        pub.publish(topic, "%d-%d" % (q, i), qos=q).wait_for_publish(5)
deadline = time.time() + 5
while len(got) < 30 and time.time() < deadline: time.sleep(0.02)
time.sleep(0.2)
for q, p in sorted(got): print(q, p)
`
		h, p := hostPort(t, tg.addr)
		out, err := exec.Command(py, "-c", script, h, p, tg.user, tg.pass, topic, strconv.Itoa(int(v))).CombinedOutput()
		if err != nil {
			t.Fatalf("python3 paho: %v: %s", err, out)
		}
		var want []string
		for q := range 3 {
			for i := range 10 {
				want = append(want, fmt.Sprintf("%d %d-%d", q, q, i))
			}
		}
		slices.Sort(want)
		if got := strings.Fields(strings.ReplaceAll(string(out), " ", "_")); len(got) != 30 {
			t.Fatalf("python paho got %d messages, want 30 once each:\n%s", len(got), out)
		}
		if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !slices.Equal(got, want) {
			t.Fatalf("python paho got\n%s\nwant every message once at its QoS", out)
		}
	}, ""},
	{"MQTT.js over TCP and WebSocket", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		node := needTool(t, "node", "nodejs")
		mqttJS, err := filepath.Abs("../../webclient/node_modules/mqtt")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(mqttJS); err != nil {
			t.Fatalf("MQTT.js is not installed (make web does): %v", err)
		}
		script := `
const mqtt = require(process.argv[1]);
const [url, user, pass, topic, v] = process.argv.slice(2);
const opts = {protocolVersion: Number(v), username: user || undefined, password: pass || undefined, reconnectPeriod: 0, connectTimeout: 5000};
const got = [];
const sub = mqtt.connect(url, {...opts, clientId: "js-sub-" + v + url.slice(0, 2)});
sub.on("message", (t, m, p) => got.push(p.qos + " " + m.toString()));
sub.on("error", e => { console.error(e.message); process.exit(1); });
sub.on("connect", () => sub.subscribe(topic, {qos: 2}, err => {
  if (err) { console.error(err.message); process.exit(1); }
  const pub = mqtt.connect(url, {...opts, clientId: "js-pub-" + v + url.slice(0, 2)});
  pub.on("connect", async () => {
    for (let i = 0; i < 10; i++) await pub.publishAsync(topic, "m" + i, {qos: 2});
    setTimeout(() => { console.log(got.join("\n")); process.exit(0); }, 300);
  });
}));
setTimeout(() => { console.error("timeout"); process.exit(1); }, 10000);
`
		h, p := hostPort(t, tg.addr)
		for _, url := range []string{"mqtt://" + h + ":" + p, tg.ws} {
			out, err := exec.Command(node, "-e", script, mqttJS, url, tg.user, tg.pass, topic, strconv.Itoa(int(v))).CombinedOutput()
			if err != nil {
				t.Fatalf("MQTT.js %s: %v: %s", url, err, out)
			}
			var want []string
			for i := range 10 {
				want = append(want, fmt.Sprintf("2 m%d", i))
			}
			if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !slices.Equal(got, want) {
				t.Fatalf("MQTT.js over %s got %q, want m0..m9 at QoS 2", url, got)
			}
		}
	}, ""},
	{"home topics under acl rules", both, true, func(t *testing.T, tg *target, v byte, topic string) {
		ha := &target{name: tg.name, addr: tg.addr, user: "homeassistant", pass: password("homeassistant")}
		kid := &target{name: tg.name, addr: tg.addr, user: "kid", pass: password("kid")}
		kitchen := &target{name: tg.name, addr: tg.addr, user: "kitchen", pass: password("kitchen")}
		for _, c := range []struct {
			who    *target
			filter string
			want   byte // SUBACK: 0x80+ refused (3.1.1 0x80, MQTT 5 0x87)
		}{
			{ha, "homeassistant/#", 0}, {ha, "home/+/state", 0}, {ha, "rooms/family/messages/+", 0x80},
			{ha, "$SYS/#", 0x80}, {kid, "home/#", 0}, {kid, "home/secret/#", 0x80}, {kid, "homeassistant/#", 0x80},
			{kitchen, "devices/kitchen/#", 0}, {kitchen, "devices/doorbell/#", 0x80},
		} {
			r, _ := c.who.dial(t, v, rawConnect{id: "acl-" + c.who.user, clean: true})
			codes := r.subscribe(1, c.filter, 0, nil)
			if (codes[0] >= 0x80) != (c.want >= 0x80) {
				t.Errorf("%s subscribing to %s: %#x", c.who.user, c.filter, codes[0])
			}
			r.c.Close()
		}
		watch, _ := kid.dial(t, v, rawConnect{id: "acl-watch", clean: true})
		watch.subscribe(1, "home/#", 1, nil)
		pub, _ := ha.dial(t, v, rawConnect{id: "acl-ha", clean: true})
		pub.publish("home/secret/code", []byte("1234"), 1, false, 1, nil)
		pub.expect(tPuback)
		pub.publish("home/kitchen/light", []byte("on"), 1, false, 2, nil)
		pub.expect(tPuback)
		pub.publish("rooms/family/messages/homeassistant", []byte(`{"id":"x","text":"hi"}`), 1, false, 3, nil)
		if p := pub.expect(tPuback); v == 5 && p.code != 0x87 {
			t.Errorf("homeassistant writing in a room: PUBACK %#x, want 0x87", p.code)
		}
		if p := nextPublish(t, watch); p.topic != "home/kitchen/light" {
			t.Fatalf("kid got %v, want only home/kitchen/light (home/secret is denied)", p)
		}
	}, ""},
}
