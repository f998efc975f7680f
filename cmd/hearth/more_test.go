package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"
	"log/slog"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/history"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// nextPresence waits for the next presence of user.
func nextPresence(t *testing.T, cl *client, user string) hearth.Presence {
	t.Helper()
	var p hearth.Presence
	if err := json.Unmarshal(cl.next(hearth.PresenceTopic(user)).Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPresenceCountsConnections: presence is retained, starts offline for
// every user, and counts a user's connections so that two count once.
func TestPresenceCountsConnections(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()
	dad := mustDial(t, addr, "dad", connectOpts{})
	dad.subscribe("presence/+")
	start := map[string]hearth.Presence{}
	for len(start) < 4 { // mum, dad (online), kid, kitchen
		m := <-dad.recv
		var p hearth.Presence
		json.Unmarshal(m.Payload, &p)
		start[strings.TrimPrefix(m.Topic, "presence/")] = p
	}
	for _, u := range []string{"mum", "kid", "kitchen"} {
		if p, ok := start[u]; !ok || p.Online {
			t.Errorf("retained presence of %s at start: %+v (%v), want offline", u, p, ok)
		}
	}
	kid1 := mustDial(t, addr, "kid", connectOpts{})
	if p := nextPresence(t, dad, "kid"); !p.Online || p.Connections != 1 || p.LastSeen == 0 {
		t.Fatalf("first connection: %+v", p)
	}
	kid2 := mustDial(t, addr, "kid", connectOpts{})
	if p := nextPresence(t, dad, "kid"); !p.Online || p.Connections != 2 {
		t.Fatalf("second connection: %+v", p)
	}
	kid1.close()
	if p := nextPresence(t, dad, "kid"); !p.Online || p.Connections != 1 {
		t.Fatalf("one left: %+v", p)
	}
	kid2.close()
	if p := nextPresence(t, dad, "kid"); p.Online || p.Connections != 0 || p.LastSeen == 0 {
		t.Fatalf("all gone: %+v", p)
	}
	// A newcomer gets the retained state at once.
	mum := mustDial(t, addr, "mum", connectOpts{})
	mum.subscribe("presence/kid")
	if p := nextPresence(t, mum, "kid"); p.Online {
		t.Fatalf("retained: %+v", p)
	}
}

// TestTypingEvents: typing events reach the room's readers; they are not
// archived.
func TestTypingEvents(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	kitchen := mustDial(t, app.MQTTAddr(), "kitchen", connectOpts{})
	kitchen.subscribe("rooms/family/typing/+")
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	kid.publish("rooms/family/typing/kid", 0, false, `{"typing":true}`)
	if p := kitchen.next("rooms/family/typing/kid"); string(p.Payload) != `{"typing":true}` {
		t.Fatalf("typing payload %s", p.Payload)
	}
	if last, _ := app.store.LastSeq("family"); last != 0 {
		t.Fatalf("typing archived: last seq %d", last)
	}
}

// TestWebSocket: MQTT over WebSocket at /mqtt on the HTTP port, with the
// Origin checked.
func TestWebSocket(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	kid.subscribe("rooms/family/messages/+")

	u, _ := url.Parse("ws://" + app.HTTPAddr() + "/mqtt")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan struct{}, 1)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:      []*url.URL{u},
		KeepAlive:       30,
		ConnectUsername: "dad",
		ConnectPassword: []byte(login(t, app, "dad")), // a token, as browsers use
		OnConnectionUp:  func(*autopaho.ConnectionManager, *paho.Connack) { up <- struct{}{} },
		ClientConfig:    paho.ClientConfig{ClientID: "dad-browser"},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-up:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection over websocket")
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if _, err := cm.Publish(pctx, &paho.Publish{Topic: "rooms/family/messages/dad", QoS: 1, Payload: []byte(msg("ws1", "over websocket"))}); err != nil {
		t.Fatalf("publish over websocket: %v", err)
	}
	if p := kid.next("rooms/family/messages/dad"); !strings.Contains(string(p.Payload), "over websocket") {
		t.Fatalf("kid got %s", p.Payload)
	}
	cm.Disconnect(pctx)

	for _, c := range []struct {
		origin string
		want   int
	}{
		{"http://evil.example", http.StatusForbidden},
		{"http://" + app.HTTPAddr(), http.StatusSwitchingProtocols},
		{"", http.StatusSwitchingProtocols},
	} {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial(u.String(), h)
		if resp == nil {
			t.Fatalf("origin %q: %v", c.origin, err)
		}
		if resp.StatusCode != c.want {
			t.Errorf("origin %q: status %d, want %d", c.origin, resp.StatusCode, c.want)
		}
		if conn != nil {
			if conn.Subprotocol() != "mqtt" {
				t.Errorf("subprotocol %q, want mqtt", conn.Subprotocol())
			}
			conn.Close()
		}
	}
	if code := api(t, app, "GET", "/mqtt", "", nil, nil); code != http.StatusBadRequest {
		t.Errorf("plain GET /mqtt: %d, want 400", code)
	}

	// A refused CONNECT gets its CONNACK before the WebSocket closes, so a
	// browser learns why.
	conn, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := []byte{0x10, 26, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60,
		0, 2, 'w', 's', 0, 3, 'd', 'a', 'd', 0, 5, 'w', 'r', 'o', 'n', 'g'}
	if err := conn.WriteMessage(websocket.BinaryMessage, connect); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil || len(b) < 4 || b[0] != 0x20 || b[3] == 0 {
		t.Fatalf("a wrong password over WebSocket: %x, %v; want a refusing CONNACK", b, err)
	}
}

// TestPublishRateLimit: over publish_rate and publish_burst, a publish
// gets 0x96 and is not delivered; the connection keeps working.
func TestPublishRateLimit(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MQTT.PublishRate, cfg.MQTT.PublishBurst = 1, 3
	app := startApp(t, cfg)
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	var codes []byte
	for range 5 {
		codes = append(codes, kid.publish("rooms/family/typing/kid", 1, false, `{"typing":true}`))
	}
	if !bytes.Equal(codes, []byte{0, 0, 0, 0x96, 0x96}) {
		t.Fatalf("reason codes %x, want 00 00 00 96 96", codes)
	}
	if n := app.broker.Refused(broker.RateLimited); n != 2 {
		t.Errorf("rate limited counted %d, want 2", n)
	}
	// Over HTTP the same rate holds per user: 429 with Retry-After.
	tok := login(t, app, "dad")
	var statuses []int
	for i := range 5 {
		statuses = append(statuses, api(t, app, "POST", "/api/rooms/family/messages", tok, map[string]string{"id": fmt.Sprint("h", i), "text": "hi"}, nil))
	}
	if !slices.Equal(statuses, []int{202, 202, 202, 429, 429}) {
		t.Errorf("HTTP posts: %v, want three 202 then 429", statuses)
	}
}

// TestReadyz: /readyz is 503 while the bridge is not subscribed.
func TestReadyz(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	if code := api(t, app, "GET", "/readyz", "", nil, nil); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	app.bridgeCancel()
	<-app.bridgeDone
	if code := api(t, app, "GET", "/readyz", "", nil, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the bridge stopped: %d, want 503", code)
	}
	if code := api(t, app, "GET", "/healthz", "", nil, nil); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	app.bridgeCancel = nil // Close must not wait for it again
}

// TestCommands runs passwd, token and serve's config errors through run.
func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"passwd"}, strings.NewReader("s3cret pass\n"), &out, &errb); err != nil {
		t.Fatalf("passwd: %v (%s)", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	hash := lines[len(lines)-1]
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret pass")) != nil {
		t.Fatalf("passwd printed %q, not a hash of the password", hash)
	}
	if err := run(t.Context(), []string{"passwd"}, strings.NewReader("\n"), &out, &errb); err == nil {
		t.Error("passwd accepted an empty password")
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	y := "data_dir: data\nusers:\n  - {name: kid, password_hash: \"" + hash + "\"}\nrooms:\n  - {name: family, members: [\"*\"]}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"token", "-config", cfgPath, "-user", "kid", "-ttl", "1h"}, nil, &out, &errb); err != nil {
		t.Fatalf("token: %v", err)
	}
	secret, err := os.ReadFile(filepath.Join(dir, "data", "token.secret"))
	if err != nil {
		t.Fatalf("token secret not in data_dir: %v", err)
	}
	cfg, _ := hearth.LoadConfig(cfgPath)
	a, _ := hearth.NewAuthenticator(cfg.Users, secret)
	if u, err := a.Verify(strings.TrimSpace(out.String())); err != nil || u.Name != "kid" {
		t.Fatalf("token does not verify: %v %+v", err, u)
	}
	for _, args := range [][]string{
		{"token", "-config", cfgPath, "-user", "zed"},
		{"token", "-config", cfgPath},
		{"token", "-config", cfgPath, "-user", "kid", "-ttl", "0"},
		{"serve", "-config", filepath.Join(dir, "missing.yaml")},
		{"frobnicate"},
		{},
	} {
		if err := run(t.Context(), args, nil, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	// A broken config stops serve with an error naming the key.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(y+"mqtt: {publish_rate: -1}\n"), 0o600)
	err = run(t.Context(), []string{"serve", "-config", bad}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "mqtt.publish_rate") {
		t.Errorf("serve with a bad config: %v, want an error naming mqtt.publish_rate", err)
	}
}

// TestRefusalsKeepTextOutOfTheLog: refused publishes are logged at debug
// level only, and never with their text.
func TestRefusalsKeepTextOutOfTheLog(t *testing.T) {
	var logs mqtttest.SafeBuffer
	app, err := Start(testConfig(t, t.TempDir()), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	waitFor(t, "ready", 10*time.Second, app.Ready)
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	const secret = "TOP-SECRET-TEXT"
	kid.publish("rooms/family/messages/kid", 1, false, `{"id":"x","text":"`+secret+`","ts":"bad"}`)
	kid.publish("rooms/family/messages/dad", 1, false, msg("y", secret))
	mosquittoPub(t, app.MQTTAddr(), "kid", password("kid"), "-q", "1", "-t", "rooms/parents/messages/kid", "-m", msg("z", secret))
	kid.publish("rooms/family/messages/kid", 1, false, msg("ok", "fine"))
	waitFor(t, "archived", 5*time.Second, func() bool { last, _ := app.store.LastSeq("family"); return last == 1 })
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("message text in the log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("refusals logged as errors:\n%s", logs.String())
	}
}

// TestRetentionRuns: a room's retention is applied in the background as
// soon as hearth starts.
func TestRetentionRuns(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	app := startApp(t, cfg)
	var msgs []hearth.Message
	for i := range 30 {
		msgs = append(msgs, hearth.Message{ID: fmt.Sprint("r", i), Room: "family", From: "kid", Text: "old", At: time.Now().UnixMilli()})
	}
	if _, err := app.store.Append(msgs); err != nil {
		t.Fatal(err)
	}
	app.Close(t.Context())

	cfg.Rooms[0].Retention.MaxMessages = 10
	app2 := startApp(t, cfg)
	waitFor(t, "retention", 5*time.Second, func() bool {
		p, _, _ := app2.store.Page("family", history.Query{Limit: 200, HasAfter: true})
		return len(p) == 10 && p[0].Seq == 21
	})
}

// TestSilentSocketsClosed: a connection that never sends its CONNECT is
// closed after the connect timeout, over TCP and over WebSocket.
func TestSilentSocketsClosed(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()), func(c *broker.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	tcp, err := net.Dial("tcp", app.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+app.HTTPAddr()+"/mqtt", http.Header{"Sec-WebSocket-Protocol": {"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tcp.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent TCP socket: read returned %v, want it closed by hearth", err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent WebSocket: read returned %v, want it closed by hearth", err)
	}
}

// TestConnectionLimits: a user's connections beyond the limit are refused
// (MQTT 5 0x97, 3.1.1 "server unavailable"), and so are connections beyond
// the overall limit; resuming one's own connection is not refused.
func TestConnectionLimits(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MQTT.MaxConnectionsPerUser = 2
	cfg.MQTT.MaxConnections = 4
	app := startApp(t, cfg)
	addr := app.MQTTAddr()
	mustDial(t, addr, "kid", connectOpts{clientID: "kid-1"})
	kid2 := mustDial(t, addr, "kid", connectOpts{clientID: "kid-2"})
	// Connections are counted once their session is established, which
	// can come after the CONNACK: wait until presence says two.
	kid2.subscribe(hearth.PresenceTopic("kid"))
	for p := nextPresence(t, kid2, "kid"); p.Connections != 2; p = nextPresence(t, kid2, "kid") {
	}
	if _, ca, err := dial(t, addr, "kid", connectOpts{clientID: "kid-3"}); err == nil || ca == nil || ca.ReasonCode != 0x97 {
		t.Fatalf("third connection of kid: connack %+v err %v, want 0x97", ca, err)
	}
	if out, err := mosquittoPub(t, addr, "kid", password("kid"), "-t", "home/x", "-m", "x"); err == nil || !strings.Contains(strings.ToLower(out), "unavailable") {
		t.Errorf("3.1.1 third connection: %v %q, want server unavailable", err, out)
	}
	// Taking over one's own open connection is a reconnect, not a third one.
	mustDial(t, addr, "kid", connectOpts{clientID: "kid-2"})
	// The connection taken over counts until its goroutine has ended.
	waitFor(t, "the old connection to end", 5*time.Second, func() bool { return app.broker.Info().ClientsConnected == 4 }) // and the bridge's two
	mustDial(t, addr, "dad", connectOpts{})
	mustDial(t, addr, "mum", connectOpts{})
	if _, ca, err := dial(t, addr, "kitchen", connectOpts{}); err == nil || ca == nil || ca.ReasonCode < 0x80 {
		t.Fatalf("fifth connection overall: connack %+v err %v, want refused", ca, err)
	}
}
