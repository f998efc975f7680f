package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// reloadConfig writes a config.yaml for reload tests: data in dir, the
// listeners given (127.0.0.1:0 when ""), users, and rooms written as YAML
// list items.
type reloadConfig struct {
	dir, http, mqtt string
	users           []hearth.User
	rooms           []string
	extra           string // more top-level YAML
}

func (c reloadConfig) write(t *testing.T, path string) {
	t.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, "data_dir: %q\nhttp: {addr: %q}\nmqtt: {addr: %q, publish_rate: 0}\nusers:\n", c.dir, cmp(c.http, "127.0.0.1:0"), cmp(c.mqtt, "127.0.0.1:0"))
	for _, u := range c.users {
		fmt.Fprintf(&y, "  - {name: %s, role: %s, password_hash: %q}\n", u.Name, u.Role, u.PasswordHash)
	}
	y.WriteString("rooms:\n")
	for _, r := range c.rooms {
		fmt.Fprintf(&y, "  - %s\n", r)
	}
	y.WriteString(c.extra)
	if err := os.WriteFile(path, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// withUser returns users without the one called drop (if any), and with
// add (if its name is set) in the place of the user of that name or last.
func withUser(users []hearth.User, drop string, add hearth.User) []hearth.User {
	out := slices.DeleteFunc(slices.Clone(users), func(u hearth.User) bool { return u.Name == drop })
	if add.Name == "" {
		return out
	}
	if i := slices.IndexFunc(out, func(u hearth.User) bool { return u.Name == add.Name }); i >= 0 {
		out[i] = add
		return out
	}
	return append(out, add)
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// startLogged starts hearth on the config file at path, logging at info
// level into logs.
func startLogged(t *testing.T, path string, logs *mqtttest.SafeBuffer) *App {
	t.Helper()
	cfg, err := hearth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return startAppLog(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

func apiLogin(t *testing.T, app *App, user, pw string) (string, int) {
	t.Helper()
	var r struct{ Token string }
	code := api(t, app, "POST", "/api/login", "", map[string]string{"username": user, "password": pw}, &r)
	return r.Token, code
}

// gone waits for the server to end cl's connection and returns the
// DISCONNECT's reason code.
func (cl *client) goneWithin(d time.Duration) (byte, bool) {
	select {
	case p := <-cl.gone:
		return p.ReasonCode, true
	case <-time.After(d):
		return 0, false
	}
}

// TestReload: a reload applies users, passwords, rooms and access to a
// running hearth, its open connections included, and changes nothing
// when the new config has problems.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	base := testConfig(t, filepath.Join(dir, "data"))
	rooms := []string{
		`{name: family, title: Family, members: ["*"], readers: [kitchen]}`,
		`{name: parents, title: Parents, members: [mum, dad]}`,
	}
	rc := reloadConfig{dir: base.DataDir, users: base.Users, rooms: rooms}
	rc.write(t, path)
	var logs mqtttest.SafeBuffer
	app := startLogged(t, path, &logs)
	addr := app.MQTTAddr()

	kid := mustDial(t, addr, "kid", connectOpts{})
	kidTok := login(t, app, "kid")
	dad := mustDial(t, addr, "dad", connectOpts{})
	dadTok := login(t, app, "dad")
	kitchen := mustDial(t, addr, "kitchen", connectOpts{})
	kitchen.subscribe("rooms/+/messages/+")
	mum := mustDial(t, addr, "mum", connectOpts{})
	mum.subscribe(hearth.ReceiptsTopic("mum"), "presence/+")
	mumTok := login(t, app, "mum")

	// The edit: nan added, kid removed, dad's password changed, a room
	// added, kitchen reads attic instead of family, the HTTP listener
	// moved (which needs a restart), the token lifetime shortened.
	nan := hearth.User{Name: "nan", Role: hearth.RoleMember, PasswordHash: bcryptHash(t, password("nan"))}
	dadUser, _ := base.User("dad")
	dadUser.PasswordHash = bcryptHash(t, "pw-dad-2")
	rc.users = withUser(withUser(base.Users, "kid", nan), "", dadUser)
	rc.rooms = []string{
		`{name: family, title: Family, members: ["*"]}`,
		`{name: parents, title: Parents, members: [mum, dad]}`,
		`{name: attic, title: Attic, members: [mum, nan], readers: [kitchen]}`,
	}
	rc.http = "127.0.0.1:1"
	rc.extra = "auth: {token_ttl: 1h}\n"
	rc.write(t, path)
	if err := app.Reload(path); err != nil {
		t.Fatalf("reload: %v", err)
	}

	// kid and dad lose their connections, and are told why (0x87).
	for name, cl := range map[string]*client{"kid": kid, "dad": dad} {
		if code, ok := cl.goneWithin(5 * time.Second); !ok || code != 0x87 {
			t.Errorf("%s: disconnected %v with %#x, want 0x87 not authorized", name, ok, code)
		}
	}
	// kid, removed, cannot come back, by password or token, over MQTT or HTTP.
	for _, pw := range []string{password("kid"), kidTok} {
		if _, ca, err := dial(t, addr, "kid", connectOpts{password: pw}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Errorf("kid connecting after being removed: %v (connack %+v), want 0x86", err, ca)
		}
	}
	if _, code := apiLogin(t, app, "kid", password("kid")); code != 401 {
		t.Errorf("kid /api/login: %d, want 401", code)
	}
	if code := api(t, app, "GET", "/api/rooms", kidTok, nil, nil); code != 401 {
		t.Errorf("kid's old token on /api/rooms: %d, want 401", code)
	}
	// dad: the old password and the old token are refused, the new one works.
	if _, ca, err := dial(t, addr, "dad", connectOpts{}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Errorf("dad with the old password: %v (connack %+v), want 0x86", err, ca)
	}
	if _, ca, err := dial(t, addr, "dad", connectOpts{password: dadTok}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Errorf("dad with a token from before the change: %v (connack %+v), want 0x86", err, ca)
	}
	if _, code := apiLogin(t, app, "dad", password("dad")); code != 401 {
		t.Errorf("dad /api/login with the old password: %d, want 401", code)
	}
	if code := api(t, app, "GET", "/api/rooms", dadTok, nil, nil); code != 401 {
		t.Errorf("dad's old token: %d, want 401", code)
	}
	mustDial(t, addr, "dad", connectOpts{password: "pw-dad-2"})
	newTok, code := apiLogin(t, app, "dad", "pw-dad-2")
	if code != 200 || api(t, app, "GET", "/api/rooms", newTok, nil, nil) != 200 {
		t.Errorf("dad with the new password: login %d", code)
	}
	// mum is untouched: still connected, her token still works.
	if code := api(t, app, "GET", "/api/rooms", mumTok, nil, nil); code != 200 {
		t.Errorf("mum's token after the reload: %d", code)
	}

	// nan logs in, and posts in the new room; it is archived, and kitchen,
	// its reader, gets it on the connection it had before the reload.
	nanCl := mustDial(t, addr, "nan", connectOpts{})
	nanCl.subscribe(hearth.ReceiptsTopic("nan"))
	mum.publish("rooms/family/messages/mum", 1, false, msg("f1", "kitchen no longer reads this"))
	if rc := nanCl.publish("rooms/attic/messages/nan", 1, false, msg("a1", "up here")); rc != 0 {
		t.Fatalf("nan posting in attic: reason %#x", rc)
	}
	if it, ok := nanCl.receipts("nan", "attic", 1)["a1"]; !ok || it.Seq != 1 {
		t.Errorf("receipt for nan's message: %+v", it)
	}
	kitchen.next("rooms/attic/messages/nan")
	if slices.Contains(kitchen.topics(), "rooms/family/messages/mum") {
		t.Errorf("kitchen received family after losing it: %q", kitchen.topics())
	}
	var list []struct{ Name, Title string }
	nanTok, _ := apiLogin(t, app, "nan", password("nan"))
	if api(t, app, "GET", "/api/rooms", nanTok, nil, &list); len(list) != 2 || list[1].Name != "attic" || list[1].Title != "Attic" {
		t.Errorf("nan's rooms: %+v, want family and attic", list)
	}
	if h := readHistory(t, app, "nan", "attic", ""); len(h.Messages) != 1 || h.Messages[0].ID != "a1" {
		t.Errorf("attic's history: %+v", h.Messages)
	}
	// The presence of kid is cleared, nan's is published.
	waitFor(t, "presence of nan and kid's cleared", 5*time.Second, func() bool {
		var nanSeen, kidCleared bool
		mum.mu.Lock()
		defer mum.mu.Unlock()
		for _, p := range mum.got {
			nanSeen = nanSeen || p.Topic == "presence/nan"
			kidCleared = kidCleared || (p.Topic == "presence/kid" && len(p.Payload) == 0)
		}
		return nanSeen && kidCleared
	})
	// A new token lives an hour.
	var lr struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	api(t, app, "POST", "/api/login", "", map[string]string{"username": "mum", "password": password("mum")}, &lr)
	if left := time.Until(lr.ExpiresAt); left > time.Hour || left < 59*time.Minute {
		t.Errorf("token expires in %v, want 1h (auth.token_ttl reloaded)", left)
	}

	// The log: one line of what changed, and the key that needs a restart.
	out := logs.String()
	for _, want := range []string{
		`msg="config reloaded"`, "users_added=[nan]", "users_removed=[kid]", `users_changed="[dad (password)]"`,
		"rooms_added=[attic]", "rooms_changed=[family]", "connections_closed=2",
		`msg="config reload: restart needed to apply a change" key=http.addr`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if app.HTTPAddr() == "127.0.0.1:1" {
		t.Error("the HTTP listener moved without a restart")
	}

	// A config with problems changes nothing, and every problem is logged.
	bad := rc
	bad.users = withUser(rc.users, "", hearth.User{Name: "zed", Role: "robot", PasswordHash: "nope"})
	bad.rooms = append(slices.Clone(rc.rooms), `{name: attic, members: [nobody]}`)
	bad.write(t, path)
	err := app.Reload(path)
	if err == nil || len(hearth.Problems(err)) != 4 {
		t.Fatalf("reload of a bad config: %v, want 4 problems", err)
	}
	out = logs.String()
	for _, want := range []string{`users[4].role: unknown role \"robot\"`, "users[4].password_hash: not a bcrypt hash",
		`rooms[3].name: duplicate room \"attic\"`, `rooms[3].members[0]: unknown user \"nobody\"`,
		`msg="config reload refused: nothing changed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if _, code := apiLogin(t, app, "nan", password("nan")); code != 200 {
		t.Errorf("nan after a refused reload: %d", code)
	}

	// The same file again: nothing to do, and it says so.
	rc.write(t, path)
	if err := app.Reload(path); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `msg="config reloaded: no change"`) {
		t.Errorf("log lacks the no-change line:\n%s", logs.String())
	}
}

// TestReloadDropsQueuedUnreadable: what an offline session of a user had
// queued from a room the user may no longer read is not delivered when
// the session comes back; the rest is.
func TestReloadDropsQueuedUnreadable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	base := testConfig(t, filepath.Join(dir, "data"))
	rc := reloadConfig{dir: base.DataDir, users: base.Users, rooms: []string{
		`{name: family, members: ["*"], readers: [kitchen]}`, `{name: porch, members: [mum], readers: [kitchen]}`}}
	rc.write(t, path)
	var logs mqtttest.SafeBuffer
	app := startLogged(t, path, &logs)
	addr := app.MQTTAddr()

	o := connectOpts{clientID: "kitchen-display", sessionExpiry: 3600, manual: true}
	k := mustDial(t, addr, "kitchen", o)
	k.subscribe("rooms/+/messages/+")
	k.close()
	mum := mustDial(t, addr, "mum", connectOpts{})
	mum.publish("rooms/family/messages/mum", 1, false, msg("f1", "for the family"))
	mum.publish("rooms/porch/messages/mum", 1, false, msg("p1", "parcel at the door"))
	waitFor(t, "both archived", 5*time.Second, func() bool {
		f, _ := app.store.LastSeq("family")
		p, _ := app.store.LastSeq("porch")
		return f == 1 && p == 1
	})

	rc.rooms[0] = `{name: family, members: ["*"]}`
	rc.write(t, path)
	if err := app.Reload(path); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "queued_dropped=1") {
		t.Errorf("log lacks queued_dropped=1:\n%s", logs.String())
	}
	o.manual = false
	k = mustDial(t, addr, "kitchen", o)
	k.next("rooms/porch/messages/mum")
	mum.publish("rooms/porch/messages/mum", 1, false, msg("p2", "marker"))
	k.next("rooms/porch/messages/mum")
	if slices.Contains(k.topics(), "rooms/family/messages/mum") {
		t.Errorf("kitchen got family's message queued before the reload: %q", k.topics())
	}
}
