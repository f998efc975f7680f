package broker

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

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
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

// login is a raw CONNECT with the target's credentials.
func (tg *target) login(o mt.Connect) mt.Connect {
	if o.User == "" {
		o.User, o.Pass = tg.user, tg.pass
	}
	return o
}

// dial connects a raw client and fails unless the CONNACK accepts it.
func (tg *target) dial(t *testing.T, v byte, o mt.Connect) (*mt.Raw, mt.Packet) {
	t.Helper()
	r := mt.DialRaw(t, tg.addr, v)
	ack := r.Connect(tg.login(o))
	if ack.Type != mt.CONNACK || ack.Code != 0 {
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

// startConformanceHearth starts hearth's broker with the test users and
// acl rules (harness_test.go), and mqtt.max_keepalive 60 as the Mosquitto
// it is compared with.
func startConformanceHearth(t *testing.T) *target {
	b := startBroker(t, func(_ *hearth.Config, c *Config) { c.MaxKeepalive = 60 })
	return &target{name: "hearth", addr: b.addr, ws: b.ws, user: "mum", pass: password("mum"), hearth: true}
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
	var out mt.SafeBuffer
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
	mt.WaitFor(t, "mosquitto to listen", 10*time.Second, func() bool {
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
	_, p := mt.HostPort(t, mt.FreePort(t))
	return p
}

func versionFlag(v byte) string {
	if v == 5 {
		return "mqttv5"
	}
	return "mqttv311"
}

// sub is a mosquitto_sub run against a target.
func (tg *target) sub(t *testing.T, v byte, args ...string) *mt.MosquittoSub {
	t.Helper()
	return mt.StartMosquittoSub(t, tg.addr, versionFlag(v), append(tg.creds(), args...))
}

// pub runs mosquitto_pub against a target.
func (tg *target) pub(t *testing.T, v byte, args ...string) (string, error) {
	t.Helper()
	bin := mt.NeedTool(t, "mosquitto_pub", "mosquitto-clients")
	h, p := mt.HostPort(t, tg.addr)
	all := append(append([]string{"-h", h, "-p", p, "-V", versionFlag(v)}, tg.creds()...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	return string(out), err
}

// received returns the payloads of topic that s printed.
func received(s *mt.MosquittoSub, topic string) []string {
	var out []string
	for _, l := range s.Lines() {
		if p, ok := strings.CutPrefix(l, topic+" "); ok {
			out = append(out, p)
		}
	}
	return out
}

// qos2Kept is the row of QoS 2 flows caught halfway, in both directions,
// and finished by the session's next connection: after the old one closed,
// or taking over the old one while it is still open.
func qos2Kept(takeover bool) func(t *testing.T, tg *target, v byte, topic string) {
	return func(t *testing.T, tg *target, v byte, topic string) {
		var keep mt.Props
		if v == 5 {
			keep = mt.Props{}.Add(mt.PropSessionExpiry, uint32(60))
		}
		clean := v == 5 // a 3.1.1 session is kept without clean session
		subID, pubID := fmt.Sprint("q2-sub-", takeover, v), fmt.Sprint("q2-pub-", takeover, v)
		// next opens the session's next connection, and checks that the
		// session was kept and the old connection is gone.
		next := func(old *mt.Raw, id string) *mt.Raw {
			t.Helper()
			if !takeover {
				old.Conn.Close()
			}
			r, ack := tg.dial(t, v, mt.Connect{ID: id, Props: keep})
			if !ack.Present {
				t.Fatalf("the session of %s is not present", id)
			}
			if closed, _ := old.Closed(5 * time.Second); takeover && !closed {
				t.Fatal("the connection taken over is still open")
			}
			return r
		}
		sub, _ := tg.dial(t, v, mt.Connect{ID: subID, Clean: clean, Props: keep})
		sub.Subscribe(1, topic, 2, nil)
		pub, _ := tg.dial(t, v, mt.Connect{ID: pubID, Clean: clean, Props: keep})
		pub.Publish(topic, []byte("x"), 2, false, 9, nil)
		pub.Expect(mt.PUBREC) // the PUBREL comes on the next connection

		pub = next(pub, pubID)
		pub.Ack(mt.PUBREL, 9)
		p := pub.Read()
		for p.Type == mt.PUBREC { // a broker may send its PUBREC again on resume
			p = pub.Read()
		}
		if p.Type != mt.PUBCOMP || p.ID != 9 || p.Code != 0 {
			t.Fatalf("publisher got %v, want PUBCOMP 9 success", p)
		}
		// Delivered on the PUBLISH or on the PUBREL: MQTT allows both.
		d := sub.NextPublish()
		sub.Ack(mt.PUBREC, d.ID)
		sub.Expect(mt.PUBREL) // the PUBCOMP goes on the next connection

		sub = next(sub, subID)
		if p := sub.Read(); p.Type != mt.PUBREL || p.ID != d.ID {
			t.Fatalf("the subscriber's next connection got %v, want PUBREL %d", p, d.ID)
		}
		sub.Ack(mt.PUBCOMP, d.ID)
		sub.NoPacket(300*time.Millisecond, "after PUBCOMP (the message again?)")
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
		mt.WaitFor(t, "3 messages", 5*time.Second, func() bool { return len(received(s, topic)) >= 3 })
		time.Sleep(200 * time.Millisecond)
		if got := received(s, topic); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
			t.Fatalf("got %q, want m0 m1 m2 once each", got)
		}
		if !strings.Contains(s.Out.String(), "PUBREL") {
			t.Fatalf("the subscriber saw no PUBREL: the delivery was not QoS 2:\n%s", s.Out.String())
		}
	}, ""},
	{"qos 2 flows on the wire", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, mt.Connect{ID: "q2-sub", Clean: true})
		if codes := sub.Subscribe(1, topic, 2, nil); !bytes.Equal(codes, []byte{2}) {
			t.Fatalf("SUBACK %v, want granted QoS 2", codes)
		}
		pub, _ := tg.dial(t, v, mt.Connect{ID: "q2-pub", Clean: true})
		pub.Publish(topic, []byte("once"), 2, false, 7, nil)
		if p := pub.Expect(mt.PUBREC); p.ID != 7 || p.Code != 0 {
			t.Fatalf("PUBREC %v, want id 7 success", p)
		}
		// Sent again before the PUBREL: acknowledged, not delivered twice.
		pub.PublishFlags(topic, []byte("once"), 2<<1|8, 7, nil) // DUP
		if p := pub.Expect(mt.PUBREC); p.ID != 7 || p.Code != 0 {
			t.Fatalf("PUBREC of the resend %v, want id 7 success", p)
		}
		pub.Ack(mt.PUBREL, 7)
		if p := pub.Expect(mt.PUBCOMP); p.ID != 7 || p.Code != 0 {
			t.Fatalf("PUBCOMP %v, want id 7 success", p)
		}
		d := sub.NextPublish()
		if d.QoS() != 2 || string(d.Payload) != "once" || d.ID == 0 {
			t.Fatalf("delivery %v, want QoS 2 'once'", d)
		}
		sub.Ack(mt.PUBREC, d.ID)
		if p := sub.Expect(mt.PUBREL); p.ID != d.ID {
			t.Fatalf("PUBREL %v, want id %d", p, d.ID)
		}
		sub.Ack(mt.PUBCOMP, d.ID)
		sub.NoPacket(300*time.Millisecond, "after PUBCOMP")
	}, ""},
	{"qos 2 state kept across reconnect", both, false, qos2Kept(false), ""},
	{"qos 2 state kept across takeover", both, false, qos2Kept(true), ""},
	{"will at qos 2", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		watch, _ := tg.dial(t, v, mt.Connect{ID: "will-watch", Clean: true})
		watch.Subscribe(1, topic, 2, nil)
		dev, _ := tg.dial(t, v, mt.Connect{ID: "will-dev", Clean: true, Will: &mt.Will{Topic: topic, Payload: "gone", QoS: 2}})
		dev.Conn.Close()
		if p := watch.NextPublish(); string(p.Payload) != "gone" || p.QoS() != 2 {
			t.Fatalf("will %v, want 'gone' at QoS 2", p)
		}
	}, ""},
	{"empty client id", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		r := mt.DialRaw(t, tg.addr, v)
		ack := r.Connect(tg.login(mt.Connect{Clean: false, Props: mt.Props{}.Add(mt.PropSessionExpiry, uint32(0))}))
		if v == 4 {
			if ack.Code != 0x02 { // identifier rejected [MQTT-3.1.3-8]
				t.Fatalf("3.1.1 empty id, clean session 0: CONNACK %#x, want 0x02", ack.Code)
			}
			return
		}
		if ack.Code != 0 || ack.Props.Str(mt.PropAssignedID) == "" {
			t.Fatalf("MQTT 5 empty id: CONNACK %v, assigned %q, want accepted with an assigned id", ack, ack.Props.Str(mt.PropAssignedID))
		}
	}, ""},
	{"dollar topics", both, false, func(t *testing.T, tg *target, v byte, topic string) {
		dtopic := "$app/" + topic
		exact, _ := tg.dial(t, v, mt.Connect{ID: "dollar-exact", Clean: true})
		exact.Subscribe(1, "$app/#", 1, nil)
		wild, _ := tg.dial(t, v, mt.Connect{ID: "dollar-wild", Clean: true})
		wild.Subscribe(1, "#", 1, nil)
		wild.Subscribe(2, "+/"+topic, 1, nil)
		pub, _ := tg.dial(t, v, mt.Connect{ID: "dollar-pub", Clean: true})
		pub.Publish(dtopic, []byte("d"), 1, false, 3, nil)
		if p := pub.Expect(mt.PUBACK); p.Code != 0 {
			t.Fatalf("PUBACK %v, want success", p)
		}
		if p := exact.NextPublish(); p.Topic != dtopic {
			t.Fatalf("$app/# got %v", p)
		}
		exact.Ack(mt.PUBACK, 1)
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			p, err := wild.ReadWithin(time.Until(deadline))
			if err != nil {
				break
			}
			if p.Topic == dtopic {
				t.Fatalf("# or + matched %s [MQTT-4.7.1-1]", dtopic)
			}
			if p.QoS() == 1 {
				wild.Ack(mt.PUBACK, p.ID)
			}
		}
	}, ""},
	{"receive maximum to the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, mt.Connect{ID: "rm-sub", Clean: true, Props: mt.Props{}.Add(mt.PropReceiveMaximum, uint16(2))})
		sub.Subscribe(1, topic, 1, nil)
		pub, _ := tg.dial(t, v, mt.Connect{ID: "rm-pub", Clean: true})
		for i := range 10 {
			pub.Publish(topic, []byte(strconv.Itoa(i)), 1, false, uint16(i+1), nil)
			pub.Expect(mt.PUBACK)
		}
		var got []string
		var unacked []uint16
		for len(got) < 10 {
			p, err := sub.ReadWithin(time.Second)
			if err != nil {
				if len(unacked) == 0 {
					t.Fatalf("stalled after %d of 10", len(got))
				}
				sub.Ack(mt.PUBACK, unacked[0])
				unacked = unacked[1:]
				continue
			}
			if p.Type != mt.PUBLISH {
				continue
			}
			got = append(got, string(p.Payload))
			unacked = append(unacked, p.ID)
			if len(unacked) > 2 {
				t.Fatalf("%d unacknowledged deliveries, the client's Receive Maximum is 2", len(unacked))
			}
			if len(unacked) == 2 {
				sub.NoPacket(200*time.Millisecond, "a third delivery while 2 are unacknowledged")
				sub.Ack(mt.PUBACK, unacked[0])
				unacked = unacked[1:]
			}
		}
		if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}, "sends more unacknowledged messages than the client's Receive Maximum [MQTT-3.3.4-9]"},
	{"receive maximum from the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		pub, ack := tg.dial(t, v, mt.Connect{ID: "rm-over", Clean: true})
		rm, ok := ack.Props.U16(mt.PropReceiveMaximum)
		if !ok {
			rm = 65535
		}
		for i := range int(rm) + 1 {
			pub.Publish(topic, []byte("x"), 2, false, uint16(i+1), nil) // no PUBREL: each stays in flight
		}
		closed, code := pub.Closed(5 * time.Second)
		if !closed || code != 0x93 {
			t.Fatalf("after %d QoS 2 publishes without PUBREL: closed %v, DISCONNECT %#x; want 0x93", rm+1, closed, code)
		}
	}, "closes the connection without DISCONNECT 0x93 [MQTT-3.3.4-9]"},
	{"message expiry", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(60))
		sub, _ := tg.dial(t, v, mt.Connect{ID: "exp-sub", Clean: true, Props: keep})
		sub.Subscribe(1, topic, 1, nil)
		sub.Conn.Close()
		time.Sleep(100 * time.Millisecond)
		pub, _ := tg.dial(t, v, mt.Connect{ID: "exp-pub", Clean: true})
		pub.Publish(topic, []byte("short"), 1, false, 1, mt.Props{}.Add(mt.PropMessageExpiry, uint32(1)))
		pub.Expect(mt.PUBACK)
		pub.Publish(topic, []byte("long"), 1, false, 2, mt.Props{}.Add(mt.PropMessageExpiry, uint32(60)))
		pub.Expect(mt.PUBACK)
		time.Sleep(2500 * time.Millisecond)
		sub, _ = tg.dial(t, v, mt.Connect{ID: "exp-sub", Props: keep})
		p := sub.NextPublish()
		sub.Ack(mt.PUBACK, p.ID)
		if string(p.Payload) != "long" {
			t.Fatalf("got %q first, want only 'long' (the other expired)", p.Payload)
		}
		if e, ok := p.Props.U32(mt.PropMessageExpiry); !ok || e == 0 || e > 58 {
			t.Fatalf("Message Expiry Interval %d (%v), want what is left of 60 s", e, ok)
		}
		sub.NoPacket(300*time.Millisecond, "the expired message")
	}, ""},
	{"no local", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		me, _ := tg.dial(t, v, mt.Connect{ID: "nl-me", Clean: true})
		me.Subscribe(1, topic, 1|4, nil)
		me.Publish(topic, []byte("mine"), 1, false, 5, nil)
		me.Expect(mt.PUBACK)
		other, _ := tg.dial(t, v, mt.Connect{ID: "nl-other", Clean: true})
		other.Publish(topic, []byte("theirs"), 1, false, 1, nil)
		if p := me.NextPublish(); string(p.Payload) != "theirs" {
			t.Fatalf("got %q, want only 'theirs' (No Local)", p.Payload)
		}
	}, ""},
	{"retain as published and retain handling", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		pub, _ := tg.dial(t, v, mt.Connect{ID: "rap-pub", Clean: true})
		pub.Publish(topic, []byte("kept"), 1, true, 1, nil)
		pub.Expect(mt.PUBACK)
		for _, c := range []struct {
			name         string
			options      byte
			first, again bool // a retained message on the first and the repeated SUBSCRIBE
		}{
			{"handling 0", 1, true, true},
			{"handling 1", 1 | 1<<4, true, false},
			{"handling 2", 1 | 2<<4, false, false},
		} {
			sub, _ := tg.dial(t, v, mt.Connect{ID: "rh-sub", Clean: true})
			for i, want := range []bool{c.first, c.again} {
				sub.Subscribe(uint16(i+1), topic, c.options, nil)
				p, err := sub.ReadWithin(300 * time.Millisecond)
				if got := err == nil && p.Type == mt.PUBLISH; got != want {
					t.Fatalf("%s, SUBSCRIBE %d: retained message %v (%v), want %v", c.name, i+1, got, p, want)
				}
				if err == nil && p.Type == mt.PUBLISH {
					if !p.Retain() {
						t.Fatalf("%s: a retained message sent for a subscription has no RETAIN flag", c.name)
					}
					sub.Ack(mt.PUBACK, p.ID)
				}
			}
			sub.Conn.Close()
		}
		plain, _ := tg.dial(t, v, mt.Connect{ID: "rap-plain", Clean: true})
		plain.Subscribe(1, topic, 1|2<<4, nil)
		rap, _ := tg.dial(t, v, mt.Connect{ID: "rap-rap", Clean: true})
		rap.Subscribe(1, topic, 1|8|2<<4, nil)
		pub.Publish(topic, []byte("live"), 1, true, 2, nil)
		pub.Expect(mt.PUBACK)
		if p := plain.NextPublish(); p.Retain() {
			t.Fatal("a live retained message kept RETAIN without Retain As Published")
		}
		if p := rap.NextPublish(); !p.Retain() {
			t.Fatal("Retain As Published: the live message lost RETAIN")
		}
		pub.Publish(topic, nil, 1, true, 3, nil) // clears it
		pub.Expect(mt.PUBACK)
	}, ""},
	{"subscription identifiers", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, mt.Connect{ID: "sid-sub", Clean: true})
		sub.Subscribe(1, topic+"/#", 1, mt.Props{}.Add(mt.PropSubscriptionID, 7))
		sub.Subscribe(2, topic+"/+", 1, mt.Props{}.Add(mt.PropSubscriptionID, 3))
		sub.Subscribe(3, topic+"/x", 1, nil)
		pub, _ := tg.dial(t, v, mt.Connect{ID: "sid-pub", Clean: true})
		pub.Publish(topic+"/x", []byte("x"), 1, false, 1, nil)
		// MQTT lets a broker send one copy with every identifier, or a
		// copy per subscription [MQTT-3.3.4-3] [MQTT-3.3.4-5]; an id is
		// never 0. hearth sends one copy.
		var ids []int
		copies := 0
		for {
			p, err := sub.ReadWithin(300 * time.Millisecond)
			if err != nil {
				break
			}
			if p.Type != mt.PUBLISH {
				continue
			}
			copies++
			sub.Ack(mt.PUBACK, p.ID)
			ids = append(ids, p.Props.Ints(mt.PropSubscriptionID)...)
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
		sub, _ := tg.dial(t, v, mt.Connect{ID: "props-sub", Clean: true})
		sub.Subscribe(1, topic, 1, nil)
		pub, _ := tg.dial(t, v, mt.Connect{ID: "props-pub", Clean: true})
		p := mt.Props{}.Add(mt.PropResponseTopic, topic+"/reply").Add(mt.PropCorrelation, []byte{1, 2, 3}).
			Add(mt.PropContentType, "application/json").Add(mt.PropPayloadFormat, byte(1)).
			Add(mt.PropUser, mt.Pair{K: "a", V: "1"}).Add(mt.PropUser, mt.Pair{K: "a", V: "2"}).Add(mt.PropUser, mt.Pair{K: "b", V: "3"})
		pub.Publish(topic, []byte(`{"q":1}`), 1, false, 1, p)
		pub.Expect(mt.PUBACK)
		d := sub.NextPublish()
		if d.Props.Str(mt.PropResponseTopic) != topic+"/reply" || !bytes.Equal([]byte(d.Props.Str(mt.PropCorrelation)), []byte{1, 2, 3}) ||
			d.Props.Str(mt.PropContentType) != "application/json" || len(d.Props[mt.PropPayloadFormat]) != 1 || d.Props[mt.PropPayloadFormat][0] != byte(1) {
			t.Fatalf("properties changed on the way: %v", d.Props)
		}
		var users []mt.Pair
		for _, u := range d.Props[mt.PropUser] {
			users = append(users, u.(mt.Pair))
		}
		if !slices.Equal(users, []mt.Pair{{K: "a", V: "1"}, {K: "a", V: "2"}, {K: "b", V: "3"}}) {
			t.Fatalf("user properties %v, want a=1 a=2 b=3 in order", users)
		}
	}, ""},
	{"topic alias from the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, mt.Connect{ID: "alias-sub", Clean: true})
		sub.Subscribe(1, topic, 0, nil)
		pub, ack := tg.dial(t, v, mt.Connect{ID: "alias-pub", Clean: true})
		if max, _ := ack.Props.U16(mt.PropTopicAliasMax); max < 1 {
			t.Fatalf("CONNACK Topic Alias Maximum %d: the client may use no alias", max)
		}
		pub.Publish(topic, []byte("1"), 0, false, 0, mt.Props{}.Add(mt.PropTopicAlias, uint16(1)))
		pub.Publish("", []byte("2"), 0, false, 0, mt.Props{}.Add(mt.PropTopicAlias, uint16(1)))
		for _, want := range []string{"1", "2"} {
			if p := sub.NextPublish(); p.Topic != topic || string(p.Payload) != want {
				t.Fatalf("got %v, want %s on %s", p, want, topic)
			}
		}
		max, _ := ack.Props.U16(mt.PropTopicAliasMax)
		pub.Publish(topic, []byte("3"), 0, false, 0, mt.Props{}.Add(mt.PropTopicAlias, max+1))
		if closed, code := pub.Closed(5 * time.Second); !closed || code != 0x94 {
			t.Fatalf("alias %d over the maximum %d: closed %v, DISCONNECT %#x; want 0x94 [MQTT-3.3.2-9]", max+1, max, closed, code)
		}
	}, ""},
	{"maximum packet size of the client", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		sub, _ := tg.dial(t, v, mt.Connect{ID: "mps-sub", Clean: true, Props: mt.Props{}.Add(mt.PropMaxPacketSize, uint32(256))})
		sub.Subscribe(1, topic, 1, nil)
		pub, _ := tg.dial(t, v, mt.Connect{ID: "mps-pub", Clean: true})
		pub.Publish(topic, bytes.Repeat([]byte("x"), 600), 1, false, 1, nil)
		pub.Expect(mt.PUBACK)
		pub.Publish(topic, []byte("small"), 1, false, 2, nil)
		pub.Expect(mt.PUBACK)
		if p := sub.NextPublish(); string(p.Payload) != "small" {
			t.Fatalf("got %d bytes, want only the small message", len(p.Payload))
		}
	}, ""},
	{"will delay", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		watch, _ := tg.dial(t, v, mt.Connect{ID: "wd-watch", Clean: true})
		watch.Subscribe(1, topic, 1, nil)
		keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(60))
		will := &mt.Will{Topic: topic, QoS: 1, Props: mt.Props{}.Add(mt.PropWillDelay, uint32(2))}
		// Back within the delay: no will.
		will.Payload = "back"
		dev, _ := tg.dial(t, v, mt.Connect{ID: "wd-dev", Clean: true, Props: keep, Will: will})
		dev.Conn.Close()
		time.Sleep(500 * time.Millisecond)
		tg.dial(t, v, mt.Connect{ID: "wd-dev", Props: keep})
		// Not back: the will after its delay.
		will.Payload = "late"
		dev2, _ := tg.dial(t, v, mt.Connect{ID: "wd-dev2", Clean: true, Props: keep, Will: will})
		start := time.Now()
		dev2.Conn.Close()
		p := watch.NextPublish()
		if string(p.Payload) != "late" {
			t.Fatalf("got will %q, want only 'late' (the other client came back)", p.Payload)
		}
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Fatalf("the will came after %s, before its 2 s delay", d)
		}
		watch.Ack(mt.PUBACK, p.ID)
		// The session ends before the delay: the will then.
		will.Payload, will.Props = "ended", mt.Props{}.Add(mt.PropWillDelay, uint32(60))
		dev3, _ := tg.dial(t, v, mt.Connect{ID: "wd-dev3", Clean: true, Props: mt.Props{}.Add(mt.PropSessionExpiry, uint32(1)), Will: will})
		dev3.Conn.Close()
		_ = watch.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if p, err := watch.ReadWithin(10 * time.Second); err != nil || string(p.Payload) != "ended" {
			t.Fatalf("at the end of the session: %v %v, want the will 'ended'", p, err)
		}
	}, ""},
	{"server keep alive", v5only, false, func(t *testing.T, tg *target, v byte, topic string) {
		r := mt.DialRaw(t, tg.addr, v)
		ack := r.Connect(tg.login(mt.Connect{ID: "ka", Clean: true, Keepalive: 600}))
		if ka, ok := ack.Props.U16(mt.PropServerKeepAlive); ack.Code != 0 || !ok || ka != 60 {
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
				bin := mt.NeedTool(t, "mosquitto_pub", "mosquitto-clients")
				h, p := mt.HostPort(t, tg.addr)
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
			for _, l := range s.Lines() {
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
		py := mt.NeedTool(t, "/usr/bin/python3", "python3")
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
		h, p := mt.HostPort(t, tg.addr)
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
		node := mt.NeedTool(t, "node", "nodejs")
		mqttJS, err := filepath.Abs("../webclient/node_modules/mqtt")
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
		h, p := mt.HostPort(t, tg.addr)
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
			r, _ := c.who.dial(t, v, mt.Connect{ID: "acl-" + c.who.user, Clean: true})
			codes := r.Subscribe(1, c.filter, 0, nil)
			if (codes[0] >= 0x80) != (c.want >= 0x80) {
				t.Errorf("%s subscribing to %s: %#x", c.who.user, c.filter, codes[0])
			}
			r.Conn.Close()
		}
		watch, _ := kid.dial(t, v, mt.Connect{ID: "acl-watch", Clean: true})
		watch.Subscribe(1, "home/#", 1, nil)
		pub, _ := ha.dial(t, v, mt.Connect{ID: "acl-ha", Clean: true})
		pub.Publish("home/secret/code", []byte("1234"), 1, false, 1, nil)
		pub.Expect(mt.PUBACK)
		pub.Publish("home/kitchen/light", []byte("on"), 1, false, 2, nil)
		pub.Expect(mt.PUBACK)
		pub.Publish("rooms/family/messages/homeassistant", []byte(`{"id":"x","text":"hi"}`), 1, false, 3, nil)
		if p := pub.Expect(mt.PUBACK); v == 5 && p.Code != 0x87 {
			t.Errorf("homeassistant writing in a room: PUBACK %#x, want 0x87", p.Code)
		}
		if p := watch.NextPublish(); p.Topic != "home/kitchen/light" {
			t.Fatalf("kid got %v, want only home/kitchen/light (home/secret is denied)", p)
		}
	}, ""},
}
