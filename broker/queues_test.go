package broker

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"

	bolt "go.etcd.io/bbolt"
)

func (b *testBroker) dial(t *testing.T, user string, o mt.Connect) *mt.Raw {
	t.Helper()
	r := mt.DialRaw(t, b.addr, 5)
	o.User, o.Pass = user, password(user)
	if ack := r.Connect(o); ack.Type != mt.CONNACK || ack.Code != 0 {
		t.Fatalf("%s: CONNACK %v", user, ack)
	}
	return r
}

var heap = mt.Heap

// TestOfflineQueuesBoundedByBytes: one user's offline sessions hold at
// most max_queued_bytes each and max_offline_bytes together, whatever
// comes in; the rest is dropped and counted, and the memory and the
// session file stay small. A session that comes back gets what was kept,
// in order.
func TestOfflineQueuesBoundedByBytes(t *testing.T) {
	b := startBroker(t, func(_ *hearth.Config, c *Config) { c.MaxQueuedBytes, c.MaxOfflineBytes = 1<<20, 2<<20 })
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(3600))
	const sessions, messages = 5, 1000
	for i := range sessions {
		c := b.dial(t, "dad", mt.Connect{ID: fmt.Sprint("dad-tab-", i), Clean: true, Props: keep})
		c.Subscribe(1, "home/big", 1, nil)
		c.Conn.Close()
	}
	mt.WaitFor(t, "the sessions to go offline", 5*time.Second, func() bool { return b.Info().ClientsConnected == 0 })
	before := heap()
	mum := b.dial(t, "mum", mt.Connect{Clean: true})
	payload := bytes.Repeat([]byte("x"), 16000)
	for i := range messages {
		mum.Publish("home/big", append([]byte(fmt.Sprintf("%04d", i)), payload...), 1, false, uint16(i+1), nil)
		mum.Expect(mt.PUBACK)
	}
	held := 0
	for i := range sessions {
		n, _ := b.held(fmt.Sprint("dad-tab-", i))
		if n*16100 > 1<<20 {
			t.Errorf("session %d holds %d messages, over max_queued_bytes", i, n)
		}
		held += n
	}
	if held == 0 || held*16100 > 2<<20 {
		t.Fatalf("dad's offline sessions hold %d messages, want some and at most max_offline_bytes", held)
	}
	if dropped := b.Stats.QueueDropped.Load(); dropped != int64(sessions*messages-held) {
		t.Fatalf("dropped %d, want %d counted", dropped, sessions*messages-held)
	}
	if grew := int64(heap()) - int64(before); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB for 2 MiB of queues", grew>>20)
	}
	mt.WaitFor(t, "session writes", 10*time.Second, func() bool { return b.SessionWritesPending() == 0 })
	if st, err := os.Stat(filepath.Join(filepath.Dir(b.cfg.SessionFile), "sessions.db")); err != nil || st.Size() > 32<<20 {
		t.Errorf("sessions.db: %v", err)
	}
	// The first session comes back: what it kept, in order.
	n, _ := b.held("dad-tab-0")
	back := b.dial(t, "dad", mt.Connect{ID: "dad-tab-0", Props: keep})
	for i := range n {
		p := back.NextPublish()
		if want := fmt.Sprintf("%04d", i); string(p.Payload[:4]) != want {
			t.Fatalf("message %d is %s, want %s: not in order", i, p.Payload[:4], want)
		}
		back.Ack(mt.PUBACK, p.ID)
	}
	t.Logf("%d sessions x %d messages of 16 KB: %d kept, %d dropped", sessions, messages, held, sessions*messages-held)
}

// TestPacketIDsApart: the ids of a client's own packets and of the
// deliveries to it are apart (mochi-mqtt/server issue #545, for every
// packet type): a client that holds an unacknowledged delivery under id
// N publishes at QoS 1 and 2 and subscribes under id N; the delivery is
// still there (sent again after a reconnect) and the SUBACK is no 0x91.
func TestPacketIDsApart(t *testing.T) {
	b := startBroker(t)
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	c := b.dial(t, "mum", mt.Connect{ID: "ids", Clean: true, Props: keep})
	c.Subscribe(1, "home/ids/in", 1, nil)
	pub := b.dial(t, "mum", mt.Connect{Clean: true})
	pub.Publish("home/ids/in", []byte("held"), 1, false, 1, nil)
	pub.Expect(mt.PUBACK)
	n := c.NextPublish().ID // not acknowledged
	c.Publish("home/ids/out", []byte("q1"), 1, false, n, nil)
	if p := c.Expect(mt.PUBACK); p.ID != n || p.Code != 0 {
		t.Fatalf("PUBACK %v", p)
	}
	c.Publish("home/ids/out", []byte("q2"), 2, false, n, nil)
	if p := c.Expect(mt.PUBREC); p.ID != n || p.Code != 0 {
		t.Fatalf("PUBREC %v", p)
	}
	c.Ack(mt.PUBREL, n)
	if p := c.Expect(mt.PUBCOMP); p.ID != n || p.Code != 0 {
		t.Fatalf("PUBCOMP %v", p)
	}
	if codes := c.Subscribe(n, "home/ids/other", 1, nil); codes[0] != 1 {
		t.Fatalf("SUBACK under the id of a delivery: %#x, want 1", codes[0])
	}
	if held, _ := b.held("ids"); held != 1 {
		t.Fatalf("the session holds %d deliveries, want the unacknowledged one", held)
	}
	c.Conn.Close()
	c = b.dial(t, "mum", mt.Connect{ID: "ids", Props: keep})
	if p := c.NextPublish(); p.ID != n || !p.Dup() || string(p.Payload) != "held" {
		t.Fatalf("after reconnecting: %v, want 'held' again under id %d", p, n)
	}
	c.Ack(mt.PUBACK, n)
	mt.WaitFor(t, "the queue to empty", 5*time.Second, func() bool { held, _ := b.held("ids"); return held == 0 })
	if in, q := b.Inflight(); in != 0 || q != 0 {
		t.Fatalf("gauges: inflight %d, queued %d; want 0", in, q)
	}
}

// TestNoAcknowledgementCutOff: a client that reads but acknowledges
// nothing, while messages wait for it, is disconnected after the write
// timeout; its session keeps the messages.
func TestNoAcknowledgementCutOff(t *testing.T) {
	b := startBroker(t, func(_ *hearth.Config, c *Config) { c.WriteTimeout = 2 * time.Second })
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	c := b.dial(t, "mum", mt.Connect{ID: "mute", Clean: true, Props: keep, Keepalive: 60})
	c.Subscribe(1, "home/mute", 1, nil)
	pub := b.dial(t, "mum", mt.Connect{Clean: true})
	pub.Publish("home/mute", []byte("x"), 1, false, 1, nil)
	pub.Expect(mt.PUBACK)
	c.NextPublish()
	start := time.Now()
	if closed, _ := c.Closed(10 * time.Second); !closed {
		t.Fatal("still connected 10 s after a delivery it never acknowledged")
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("cut off after %s, before the 2 s timeout", d)
	}
	if b.Stats.StuckClosed.Load() != 1 {
		t.Fatal("not counted as stuck")
	}
	if held, ok := b.held("mute"); !ok || held != 1 {
		t.Fatalf("the session holds %d (%v), want the message kept", held, ok)
	}
}

// TestRestoredSessionReceives: after a restart, a persistent session that
// had nothing queued still gets what is published for it while it is
// offline, without subscribing again; and that message is in the session
// file, so it survives the next restart too.
func TestRestoredSessionReceives(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sessions.db")
	onFile := func(_ *hearth.Config, c *Config) { c.SessionFile = file }
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	b := startBroker(t, onFile)
	c := b.dial(t, "mum", mt.Connect{ID: "display", Clean: true, Props: keep})
	c.Subscribe(1, "home/door", 1, nil)
	c.Conn.Close()
	mt.WaitFor(t, "the session to be offline", 5*time.Second, func() bool { return b.Info().ClientsConnected == 0 })
	b.Close()

	b = startBroker(t, onFile)
	pub := b.dial(t, "mum", mt.Connect{Clean: true})
	pub.Publish("home/door", []byte("ring"), 1, false, 1, nil)
	pub.Expect(mt.PUBACK)
	mt.WaitFor(t, "session writes", 5*time.Second, func() bool { return b.SessionWritesPending() == 0 })
	b.Close()

	b = startBroker(t, onFile)
	c = b.dial(t, "mum", mt.Connect{ID: "display", Props: keep})
	if p := c.NextPublish(); string(p.Payload) != "ring" {
		t.Fatalf("got %v, want the ring published while offline", p)
	}
}

// TestResendKeepsToReceiveMaximum: a client back with a smaller Receive
// Maximum than it had gets what was in flight again only as far as the
// new one allows, and the rest on its acknowledgements, in order.
func TestResendKeepsToReceiveMaximum(t *testing.T) {
	b := startBroker(t)
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	c := b.dial(t, "mum", mt.Connect{ID: "rm", Clean: true, Props: keep.Add(mt.PropReceiveMaximum, uint16(5))})
	c.Subscribe(1, "home/rm", 1, nil)
	pub := b.dial(t, "mum", mt.Connect{Clean: true})
	for i := range 5 {
		pub.Publish("home/rm", []byte{'0' + byte(i)}, 1, false, uint16(i+1), nil)
		pub.Expect(mt.PUBACK)
	}
	for range 5 {
		c.NextPublish() // not acknowledged
	}
	c.Conn.Close()
	c = b.dial(t, "mum", mt.Connect{ID: "rm", Props: mt.Props{}.Add(mt.PropSessionExpiry, uint32(600)).Add(mt.PropReceiveMaximum, uint16(2))})
	var got []string
	var unacked []uint16
	for len(got) < 5 {
		p := c.NextPublish()
		if !p.Dup() {
			t.Fatalf("%v is not marked DUP", p)
		}
		got = append(got, string(p.Payload))
		unacked = append(unacked, p.ID)
		if len(unacked) == 2 {
			c.NoPacket(200*time.Millisecond, "more than the Receive Maximum of 2 unacknowledged")
			c.Ack(mt.PUBACK, unacked[0]) // each acknowledgement frees one
			unacked = unacked[1:]
		}
	}
	if want := "01234"; fmt.Sprint(got) != fmt.Sprint(strings.Split(want, "")) {
		t.Fatalf("resent %v, want %v in order", got, want)
	}
}

// TestArchiveRecordsLazy: the archive's session, while it is connected,
// writes a delivery record only for a message it has not acknowledged
// within a sweep or two, and every record when it disconnects; those
// come back after a restart. The archive acknowledges within
// milliseconds, so in a burst its records are never written.
func TestArchiveRecordsLazy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sessions.db")
	onFile := func(_ *hearth.Config, c *Config) { c.SessionFile = file }
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	b := startBroker(t, onFile)
	records := func() int {
		t.Helper()
		mt.WaitFor(t, "session writes", 5*time.Second, func() bool { return b.SessionWritesPending() == 0 })
		n := 0
		if err := b.hook.sessions.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketDeliver).Stats().KeyN
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	archive := func(clean bool) *mt.Raw {
		url, user, pass := b.BridgeEndpoint()
		r := mt.DialRaw(t, strings.TrimPrefix(url, "mqtt://"), 5)
		if ack := r.Connect(mt.Connect{ID: b.cfg.BridgeClientID, User: user, Pass: string(pass), Clean: clean, Props: keep}); ack.Type != mt.CONNACK || ack.Code != 0 {
			t.Fatalf("archive: CONNACK %v", ack)
		}
		return r
	}
	const topic = "rooms/family/messages/kid"
	chat := func(i int) []byte { return fmt.Appendf(nil, `{"id":"m%d","text":"hi"}`, i) }
	c := archive(true)
	c.Subscribe(1, "rooms/+/messages/+", 1, nil)
	pub := b.dial(t, "kid", mt.Connect{Clean: true})
	for i := range 3 {
		pub.Publish(topic, chat(i), 1, false, uint16(i+1), nil)
		pub.Expect(mt.PUBACK)
	}
	var ids []uint16
	for range 3 {
		ids = append(ids, c.NextPublish().ID)
	}
	if n := records(); n != 0 {
		t.Fatalf("%d delivery records at once, want none yet", n)
	}
	c.Ack(mt.PUBACK, ids[0])
	mt.WaitFor(t, "the two unacknowledged to be written", 5*time.Second, func() bool { return records() == 2 })

	pub.Publish(topic, chat(3), 1, false, 4, nil)
	pub.Expect(mt.PUBACK)
	c.NextPublish()
	c.Conn.Close()
	mt.WaitFor(t, "the archive to be offline", 5*time.Second, func() bool { return b.Info().ClientsConnected == 1 })
	if n := records(); n != 3 {
		t.Fatalf("%d delivery records after the archive disconnected, want 3", n)
	}
	b.Close()

	b = startBroker(t, onFile)
	c = archive(false)
	for i := 1; i <= 3; i++ {
		if p := c.NextPublish(); string(p.Payload) != string(chat(i)) {
			t.Fatalf("got %s after the restart, want %s", p.Payload, chat(i))
		}
	}
}

// TestSubscribersFollowChanges: the router's cache of who subscribes to
// a topic follows every change: an UNSUBSCRIBE, a new SUBSCRIBE, a
// connection that ends its session, and one that resumes it elsewhere.
func TestSubscribersFollowChanges(t *testing.T) {
	b := startBroker(t)
	pub := b.dial(t, "mum", mt.Connect{Clean: true})
	n := uint16(0)
	send := func(text string) {
		n++
		pub.Publish("home/door", []byte(text), 1, false, n, nil)
		pub.Expect(mt.PUBACK)
	}
	gets := func(c *mt.Raw, want string) {
		t.Helper()
		p := c.NextPublish()
		if string(p.Payload) != want {
			t.Fatalf("got %q, want %q", p.Payload, want)
		}
		c.Ack(mt.PUBACK, p.ID)
	}
	c := b.dial(t, "dad", mt.Connect{ID: "door", Clean: true})
	c.Subscribe(1, "home/door", 1, nil)
	send("one")
	gets(c, "one")
	c.Unsubscribe(2, "home/door")
	send("two")
	c.NoPacket(300*time.Millisecond, "a message after UNSUBSCRIBE")
	c.Subscribe(3, "home/+", 1, nil)
	send("three")
	gets(c, "three")

	// Ended with the connection: a new one with the same id gets nothing.
	c.Conn.Close()
	mt.WaitFor(t, "the session to end", 5*time.Second, func() bool { return !b.subscribed("door", "home/door") })
	c = b.dial(t, "dad", mt.Connect{ID: "door", Clean: true})
	send("four")
	c.NoPacket(300*time.Millisecond, "a message to a new session that did not subscribe")

	// A persistent session taken over keeps its subscription.
	keep := mt.Props{}.Add(mt.PropSessionExpiry, uint32(600))
	d := b.dial(t, "dad", mt.Connect{ID: "display", Clean: true, Props: keep})
	d.Subscribe(1, "home/door", 1, nil)
	send("five")
	gets(d, "five")
	d2 := b.dial(t, "dad", mt.Connect{ID: "display", Props: keep})
	send("six")
	gets(d2, "six")
	c.NoPacket(100*time.Millisecond, "a message to a new session that did not subscribe")
}
