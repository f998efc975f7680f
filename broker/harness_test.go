package broker

import (
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// The users of the broker's tests; each one's password is password(name).
var testUsers = []mt.User{{Name: "mum", Role: "admin"}, {Name: "dad", Role: "member"}, {Name: "kid", Role: "member"}, {Name: "kitchen", Role: "device"}, {Name: "homeassistant", Role: "device"}}

var password = mt.Password

// testBroker is a broker of the tests, serving MQTT over TCP and over
// WebSocket on loopback.
type testBroker struct {
	*Broker
	addr, ws string
}

// startBroker starts a broker with the test users, two rooms and acl
// rules for home topics; tune may change its settings.
func startBroker(t testing.TB, tune ...func(*hearth.Config, *Config)) *testBroker {
	t.Helper()
	return startBrokerLog(t, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), tune...)
}

// startBrokerLog is startBroker logging to log.
func startBrokerLog(t testing.TB, log *slog.Logger, tune ...func(*hearth.Config, *Config)) *testBroker {
	t.Helper()
	dir := t.TempDir()
	var y strings.Builder
	y.WriteString(mt.ConfigYAML(dir, testUsers))
	y.WriteString(`acl:
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

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
