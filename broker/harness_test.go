package broker

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"hearth"
)

// The users of the broker's tests; each one's password is "pw-" + name.
var testUsers = []struct{ name, role string }{
	{"mum", "admin"}, {"dad", "member"}, {"kid", "member"}, {"kitchen", "device"}, {"homeassistant", "device"},
}

var (
	hashOnce sync.Once
	hashes   = map[string]string{}
)

func password(user string) string { return "pw-" + user }

// testBroker is a broker of the tests, serving MQTT over TCP and over
// WebSocket on loopback.
type testBroker struct {
	*Broker
	addr, ws string
}

// startBroker starts a broker with the test users, two rooms and acl
// rules for home topics; tune may change its settings.
func startBroker(t *testing.T, tune ...func(*hearth.Config, *Config)) *testBroker {
	t.Helper()
	hashOnce.Do(func() {
		for _, u := range testUsers {
			h, err := bcrypt.GenerateFromPassword([]byte(password(u.name)), bcrypt.MinCost)
			if err != nil {
				panic(err)
			}
			hashes[u.name] = string(h)
		}
	})
	dir := t.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "data_dir: %q\nhttp: {addr: \"127.0.0.1:0\"}\nmqtt: {addr: \"127.0.0.1:0\", publish_rate: 0}\nusers:\n", dir)
	for _, u := range testUsers {
		fmt.Fprintf(&y, "  - {name: %s, role: %s, password_hash: %q}\n", u.name, u.role, hashes[u.name])
	}
	y.WriteString(`rooms:
  - {name: family, title: Family, members: ["*"], readers: [kitchen]}
  - {name: parents, title: Parents, members: [mum, dad]}
acl:
  - {user: homeassistant, topic: "homeassistant/#", access: readwrite}
  - {user: homeassistant, topic: "home/#", access: readwrite}
  - {role: device, topic: "devices/%u/#", access: readwrite}
  - {role: member, topic: "home/#", access: read}
  - {role: member, topic: "home/secret/#", access: deny}
`)
	cfg, err := hearth.ParseConfig(strings.NewReader(y.String()))
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	bc := Config{
		MQTTAddr:        cfg.MQTT.Addr,
		MaxMessageBytes: cfg.MQTT.MaxMessageBytes,
		MaxQueuedBytes:  cfg.MQTT.MaxQueuedBytes,
		MaxOfflineBytes: cfg.MQTT.MaxOfflineBytes,
		SessionFile:     filepath.Join(dir, "sessions.db"),
		BridgeClientID:  cfg.Bridge.ClientID,
	}
	for _, f := range tune {
		f(&cfg, &bc)
	}
	auth, err := hearth.NewAuthenticator(cfg.Users, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := New(bc, hearth.NewPolicy(&cfg), auth, log)
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	ws := httptest.NewServer(b.WebSocketHandler())
	t.Cleanup(func() {
		b.Close()
		ws.Close()
	})
	return &testBroker{Broker: b, addr: b.MQTTAddr(), ws: "ws" + strings.TrimPrefix(ws.URL, "http") + "/mqtt"}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
