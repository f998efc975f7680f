package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

type roomReads struct {
	Name    string `json:"name"`
	LastSeq uint64 `json:"last_seq"`
	ReadSeq uint64 `json:"read_seq"`
	Unread  int    `json:"unread"`
}

// roomsOf returns GET /api/rooms for token, by room name.
func roomsOf(t *testing.T, app *App, token string) map[string]roomReads {
	t.Helper()
	var rooms []roomReads
	if code := api(t, app, "GET", "/api/rooms", token, nil, &rooms); code != 200 {
		t.Fatalf("GET /api/rooms: %d", code)
	}
	out := map[string]roomReads{}
	for _, r := range rooms {
		out[r.Name] = r
	}
	return out
}

// TestRoomsReadSeqAndUnread: GET /api/rooms gives each room the caller's
// read mark and how many messages of others lie after it; one's own
// messages do not count, and after marking the last seq nothing is
// unread. Marks survive a restart of hearth (they live in sessions.db).
func TestRoomsReadSeqAndUnread(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	app := startApp(t, cfg)
	mum := mustDial(t, app.MQTTAddr(), "mum", connectOpts{})
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	mum.subscribe(hearth.ReceiptsTopic("mum"))
	kid.subscribe(hearth.ReceiptsTopic("kid"))
	for i := range 3 {
		mum.publish(hearth.MessageTopic("family", "mum"), 1, false, msg(fmt.Sprint("m", i), "from mum"))
		mum.receipts("mum", "family", 1)
	}
	for i := range 2 {
		kid.publish(hearth.MessageTopic("family", "kid"), 1, false, msg(fmt.Sprint("k", i), "from kid"))
		kid.receipts("kid", "family", 1)
	}
	mum.publish(hearth.MessageTopic("parents", "mum"), 1, false, msg("p0", "parents only"))
	mum.receipts("mum", "parents", 1)

	kidTok, mumTok, dadTok := login(t, app, "kid"), login(t, app, "mum"), login(t, app, "dad")
	check := func(token, who, room string, readSeq uint64, unread int) {
		t.Helper()
		r, ok := roomsOf(t, app, token)[room]
		if !ok || r.ReadSeq != readSeq || r.Unread != unread {
			t.Errorf("%s's %s: %+v (listed %v), want read_seq %d, unread %d", who, room, r, ok, readSeq, unread)
		}
	}
	check(kidTok, "kid", "family", 0, 3) // mum's three; kid's own two do not count
	check(mumTok, "mum", "family", 0, 2)
	check(dadTok, "dad", "family", 0, 5)
	check(dadTok, "dad", "parents", 0, 1)
	check(mumTok, "mum", "parents", 0, 0)
	if _, ok := roomsOf(t, app, kidTok)["parents"]; ok {
		t.Error("kid lists parents")
	}

	// kid marks seq 3 read (mum's m2 is seq 3): nothing of mum's is left.
	if rc := kid.publish(hearth.ReadTopic("family", "kid"), 1, true, `{"seq":3}`); rc != 0 {
		t.Fatalf("kid's mark: %#x", rc)
	}
	waitFor(t, "kid's mark", 5*time.Second, func() bool { return app.broker.ReadMark("family", "kid") == 3 })
	check(kidTok, "kid", "family", 3, 0)
	// dad marks 4, then an older tab sends 2: the mark stays 4.
	dad := mustDial(t, app.MQTTAddr(), "dad", connectOpts{})
	dad.publish(hearth.ReadTopic("family", "dad"), 1, false, `{"seq":4}`)
	dad.publish(hearth.ReadTopic("family", "dad"), 1, false, `{"seq":2}`)
	check(dadTok, "dad", "family", 4, 1)
	dad.publish(hearth.ReadTopic("family", "dad"), 1, false, `{"seq":5}`)
	check(dadTok, "dad", "family", 5, 0)

	// A restart keeps the marks.
	mum.close()
	kid.close()
	dad.close()
	if err := app.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, cfg)
	check(kidTok, "kid", "family", 3, 0)
	check(dadTok, "dad", "family", 5, 0)
	check(dadTok, "dad", "parents", 0, 1)
	sub := mustDial(t, app.MQTTAddr(), "kitchen", connectOpts{})
	sub.subscribe("rooms/family/reads/+")
	got := map[string]string{}
	for len(got) < 2 {
		select {
		case p := <-sub.recv:
			got[p.Topic] = string(p.Payload)
		case <-time.After(5 * time.Second):
			t.Fatalf("retained marks after the restart: only %v", got)
		}
	}
	if got[hearth.ReadTopic("family", "kid")] != `{"seq":3}` || got[hearth.ReadTopic("family", "dad")] != `{"seq":5}` {
		t.Errorf("retained marks after the restart: %v", got)
	}
}

// TestReadMarksWitness: Debian's mosquitto clients, MQTT 3.1.1: the
// kitchen display sees a member's marks as they grow, and a lower mark,
// acknowledged, never reaches it.
func TestReadMarksWitness(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	sub := mosquittoSub(t, app.MQTTAddr(), "kitchen", "-q", "1", "-t", "rooms/family/reads/+")
	topic := hearth.ReadTopic("family", "dad")
	for _, mark := range []string{`{"seq":4}`, `{"seq":2}`, `{"seq":6}`} {
		if out, err := mosquittoPub(t, app.MQTTAddr(), "dad", password("dad"), "-q", "1", "-t", topic, "-m", mark); err != nil {
			t.Fatalf("mosquitto_pub %s: %v: %s", mark, err, out)
		}
	}
	want := []string{topic + ` {"seq":4}`, topic + ` {"seq":6}`}
	waitFor(t, "the marks at mosquitto_sub", 5*time.Second, func() bool { return len(sub.Lines()) >= 2 })
	time.Sleep(200 * time.Millisecond)
	if got := sub.Lines(); !slices.Equal(got, want) {
		t.Errorf("mosquitto_sub printed\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if app.broker.ReadMark("family", "dad") != 6 {
		t.Errorf("ReadMark %d, want 6", app.broker.ReadMark("family", "dad"))
	}
}

// TestReloadTakesReadMarks: a reload that takes a room from a user stops
// its marks reaching that user at once, on a subscription made before,
// and a new subscription gets no retained mark of it.
func TestReloadTakesReadMarks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	base := testConfig(t, filepath.Join(dir, "data"))
	rc := reloadConfig{dir: base.DataDir, users: base.Users, rooms: []string{
		`{name: family, title: Family, members: ["*"], readers: [kitchen]}`,
		`{name: parents, title: Parents, members: [mum, dad]}`,
	}}
	rc.write(t, path)
	var logs mqtttest.SafeBuffer
	app := startLogged(t, path, &logs)
	dad := mustDial(t, app.MQTTAddr(), "dad", connectOpts{})
	dad.subscribe("rooms/+/reads/+")
	mum := mustDial(t, app.MQTTAddr(), "mum", connectOpts{})
	mum.publish(hearth.ReadTopic("parents", "mum"), 1, false, `{"seq":1}`)
	dad.next(hearth.ReadTopic("parents", "mum"))

	rc.rooms[1] = `{name: parents, title: Parents, members: [mum]}`
	rc.write(t, path)
	if err := app.Reload(path); err != nil {
		t.Fatalf("reload: %v", err)
	}
	mum.publish(hearth.ReadTopic("parents", "mum"), 1, false, `{"seq":2}`)
	mum.publish(hearth.ReadTopic("family", "mum"), 1, false, `{"seq":9}`)
	dad.next(hearth.ReadTopic("family", "mum")) // published after: the parents' one would have come first
	fresh := mustDial(t, app.MQTTAddr(), "dad", connectOpts{})
	fresh.subscribe("rooms/+/reads/+")
	fresh.next(hearth.ReadTopic("family", "mum"))
	time.Sleep(200 * time.Millisecond)
	count := func(cl *client) int {
		n := 0
		for _, tp := range cl.topics() {
			if tp == hearth.ReadTopic("parents", "mum") {
				n++
			}
		}
		return n
	}
	if n := count(fresh); n != 0 {
		t.Errorf("dad's new connection received %d parents' marks after the reload", n)
	}
	n := count(dad)
	if n != 1 {
		t.Errorf("dad received %d parents' marks, want only the one before the reload", n)
	}
}
