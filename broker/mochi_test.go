package broker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// The bugs of mochi v2.7.9 that hearth mends, each shown on a plain mochi
// broker (every client allowed, no hearth hook) with a raw client. Each
// test passes while the bug is there; when an upgrade of mochi makes one
// fail, the bug is fixed upstream and the mend named in its message may
// go. The same behaviour on hearth is a row of TestConformance or a test
// of its own.

// allowAll lets every client connect, publish and subscribe.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }
func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

func startMochi(t *testing.T) string {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l.Address()
}

func dialMochi(t *testing.T, addr string, v byte, o mt.Connect) (*mt.Raw, mt.Packet) {
	t.Helper()
	r := mt.DialRaw(t, addr, v)
	return r, r.Connect(o)
}

func fixedUpstream(t *testing.T, what, mend string) {
	t.Helper()
	t.Fatalf("mochi no longer %s: the mend in %s may go", what, mend)
}

// mochi-mqtt/server issue #545: a client's QoS 1 publish under the packet
// id of an unacknowledged delivery deletes the delivery, which is then
// never sent again; and a SUBSCRIBE under such an id is refused with 0x91.
func TestMochiSharedPacketIDs(t *testing.T) {
	addr := startMochi(t)
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	held := func(id string) (*mt.Raw, uint16) {
		c, _ := dialMochi(t, addr, 5, mt.Connect{ID: id, Clean: true, Props: keep})
		c.Subscribe(1, "x/"+id, 1, nil)
		pub, _ := dialMochi(t, addr, 5, mt.Connect{ID: "p-" + id, Clean: true})
		pub.Publish("x/"+id, []byte("held"), 1, false, 1, nil)
		return c, c.NextPublish().ID
	}
	c, n := held("a")
	c.Publish("y", []byte("mine"), 1, false, n, nil)
	c.Expect(mt.PUBACK)
	c.Conn.Close()
	c, _ = dialMochi(t, addr, 5, mt.Connect{ID: "a", Props: keep})
	if _, err := c.ReadWithin(500 * time.Millisecond); err == nil {
		fixedUpstream(t, "loses a delivery whose packet id the client reuses (#545)", "outbound.go")
	}
	c, n = held("b")
	if codes := c.Subscribe(n, "z", 1, nil); codes[0] != 0x91 {
		fixedUpstream(t, "refuses a SUBSCRIBE under the id of a delivery", "outbound.go")
	}
}

// mochi's send quota leaks: a client with Receive Maximum 2 that
// acknowledges everything stalls after a few messages.
func TestMochiFlowControlStalls(t *testing.T) {
	addr := startMochi(t)
	c, _ := dialMochi(t, addr, 5, mt.Connect{ID: "c", Clean: true, Props: mt.Props{}.Add(mt.PropReceiveMaximum, uint16(2))})
	c.Subscribe(1, "x", 1, nil)
	pub, _ := dialMochi(t, addr, 5, mt.Connect{ID: "p", Clean: true})
	for i := range 10 {
		pub.Publish("x", []byte{byte(i)}, 1, false, uint16(i+1), nil)
		pub.Expect(mt.PUBACK)
	}
	got := 0
	for {
		p, err := c.ReadWithin(500 * time.Millisecond)
		if err != nil {
			break
		}
		if p.Type == mt.PUBLISH {
			got++
			c.Ack(mt.PUBACK, p.ID)
		}
	}
	if got == 10 {
		fixedUpstream(t, "stalls a client with a small Receive Maximum", "outbound.go")
	}
	t.Logf("mochi sent %d of 10 to a client with Receive Maximum 2", got)
}

// mochi answers a QoS 2 publish sent again before its PUBREL with PUBREC
// 0x91, which ends the flow for an MQTT 5 client.
func TestMochiQoS2ResendRefused(t *testing.T) {
	addr := startMochi(t)
	c, _ := dialMochi(t, addr, 5, mt.Connect{ID: "c", Clean: true})
	c.Publish("x", []byte("a"), 2, false, 7, nil)
	c.Expect(mt.PUBREC)
	c.PublishFlags("x", []byte("a"), 2<<1|8, 7, nil)
	if p := c.Expect(mt.PUBREC); p.Code != 0x91 {
		fixedUpstream(t, "answers a resent QoS 2 publish with PUBREC 0x91", "hook.go (OnPacketEncode)")
	}
}

// mochi sends MQTT 3.1.1 clients codes they do not have: 0x80 in the
// CONNACK for an empty client id without clean session, and a DISCONNECT
// to a connection that is taken over.
func TestMochi311Codes(t *testing.T) {
	addr := startMochi(t)
	_, ack := dialMochi(t, addr, 4, mt.Connect{})
	if ack.Code != 0x80 {
		fixedUpstream(t, "answers an empty 3.1.1 client id with CONNACK 0x80", "connect.go (connackCode3)")
	}
	old, _ := dialMochi(t, addr, 4, mt.Connect{ID: "d", Clean: true})
	dialMochi(t, addr, 4, mt.Connect{ID: "d", Clean: true})
	if p, err := old.ReadWithin(2 * time.Second); err != nil || p.Type != mt.DISCONNECT {
		fixedUpstream(t, "sends a 3.1.1 client a DISCONNECT", "hook.go (OnPacketEncode)")
	}
}

// mochi's "#" gets retained messages of "$" topics other than $SYS.
func TestMochiWildcardMatchesDollarRetained(t *testing.T) {
	addr := startMochi(t)
	pub, _ := dialMochi(t, addr, 5, mt.Connect{ID: "p", Clean: true})
	pub.Publish("$app/x", []byte("r"), 1, true, 1, nil)
	pub.Expect(mt.PUBACK)
	c, _ := dialMochi(t, addr, 5, mt.Connect{ID: "c", Clean: true})
	c.Subscribe(1, "#", 1, nil)
	if p, err := c.ReadWithin(500 * time.Millisecond); err != nil || p.Topic != "$app/x" {
		fixedUpstream(t, "sends retained $ topics to #", "publish.go (sendRetained)")
	}
}
