package hearth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// baseConfig is a valid config.yaml. HASH_<name> stands for a bcrypt hash
// of "secret-<name>" and SAMPLE_HASH for one of SamplePassword.
const baseConfig = `data_dir: ./data
http:
  addr: 127.0.0.1:8080
  allowed_origins: ["https://chat.example.org", "http://localhost:5173"]
mqtt:
  addr: 127.0.0.1:1883
  tls: {addr: "", cert_file: "", key_file: ""}
  max_message_bytes: 16384
  publish_rate: 50
  publish_burst: 200
auth:
  token_ttl: 24h
  token_secret_file: ""
users:
  - {name: mum, password_hash: "HASH_mum", role: admin}
  - {name: dad, password_hash: "HASH_dad"}
  - {name: kitchen, password_hash: "HASH_kitchen", role: device}
rooms:
  - name: family
    title: Family
    members: ["*"]
    readers: [kitchen]
    retention: {max_age: 0, max_messages: 0}
  - name: chores
    members: [mum, dad]
bridge:
  broker_url: ""
  client_id: hearth-archiver
`

var testHashes = sync.OnceValue(func() map[string]string {
	h := map[string]string{}
	for _, pw := range []string{"secret-mum", "secret-dad", "secret-kitchen", SamplePassword} {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		h[pw] = string(b)
	}
	return h
})

// withHashes replaces the hash placeholders of a config text.
func withHashes(text string) string {
	h := testHashes()
	return strings.NewReplacer(
		"HASH_mum", h["secret-mum"],
		"HASH_dad", h["secret-dad"],
		"HASH_kitchen", h["secret-kitchen"],
		"SAMPLE_HASH", h[SamplePassword],
	).Replace(text)
}

// edit applies old→new replacement pairs to baseConfig; each old must occur.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	text := baseConfig
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("test bug: %q not in the base config", pairs[i])
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	return text
}

func parse(text string) (Config, error) {
	return ParseConfig(strings.NewReader(withHashes(text)))
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		edits []string // pairs applied to baseConfig
		text  string   // used instead when edits is nil
		want  []string // substrings of the error; nil: must succeed
		check func(t *testing.T, c Config)
	}{
		{name: "base is valid", edits: []string{}},
		{name: "unknown top-level key", edits: []string{"data_dir:", "colour: blue\ndata_dir:"}, want: []string{"colour: unknown key (line 1)"}},
		{name: "unknown nested key", edits: []string{"  publish_burst: 200", "  publish_burst: 200\n  max_clients: 3"}, want: []string{"mqtt.max_clients: unknown key (line 11)"}},
		{name: "unknown key in a list item", edits: []string{"role: device}", "role: device, colour: red}"}, want: []string{"users[2].colour: unknown key"}},
		{name: "unknown key in retention", edits: []string{"max_messages: 0}", "max_messages: 0, max_size: 9}"}, want: []string{"rooms[0].retention.max_size: unknown key"}},
		{name: "wrong type", edits: []string{"max_message_bytes: 16384", "max_message_bytes: lots"}, want: []string{`mqtt.max_message_bytes: want a whole number, got "lots" (line 8)`}},
		{name: "list for a string", edits: []string{"data_dir: ./data", "data_dir: [a, b]"}, want: []string{"data_dir: want a string, got a list"}},
		{name: "bad user name", edits: []string{"name: kitchen", "name: Kitchen"}, want: []string{`users[2].name: "Kitchen": bad name`}},
		{name: "duplicate user", edits: []string{"name: dad", "name: mum"}, want: []string{`users[1].name: duplicate user "mum" (also users[0])`}},
		{name: "empty users", text: "http: {addr: 127.0.0.1:8080}\nusers: []\nrooms: [{name: a}]\n", want: []string{"users: at least one user"}},
		{name: "duplicate room", edits: []string{"name: chores", "name: family"}, want: []string{`rooms[1].name: duplicate room "family" (also rooms[0])`}},
		{name: "bad room name", edits: []string{"name: chores", "name: my/room"}, want: []string{`rooms[1].name: "my/room": bad name`}},
		{name: "unknown role", edits: []string{"role: device", "role: robot"}, want: []string{`users[2].role: unknown role "robot"`}},
		{name: "bad password hash", edits: []string{`"HASH_dad"`, `"hunter2"`}, want: []string{"users[1].password_hash: not a bcrypt hash"}},
		{name: "missing password hash", edits: []string{`password_hash: "HASH_dad"`, `password_hash: ""`}, want: []string{"users[1].password_hash: required"}},
		{name: "unknown member", edits: []string{"members: [mum, dad]", "members: [mum, zed]"}, want: []string{`rooms[1].members[1]: unknown user "zed"`}},
		{name: "bad member name", edits: []string{"members: [mum, dad]", "members: [mum, Dad]"}, want: []string{`rooms[1].members[1]: "Dad": bad name`}},
		{name: "member twice", edits: []string{"members: [mum, dad]", "members: [mum, dad, mum]"}, want: []string{`rooms[1].members[2]: "mum" is listed twice`}},
		{name: "member in both lists", edits: []string{"members: [mum, dad]", "members: [mum, dad]\n    readers: [kitchen, dad]"}, want: []string{`rooms[1].readers[1]: "dad" is also in members`}},
		{name: "member reader under star", edits: []string{"readers: [kitchen]", "readers: [kitchen, dad]"}, want: []string{`rooms[0].readers[1]: "dad" (role member) is already a member through "*"`}},
		{name: "star readers with named members", edits: []string{"members: [mum, dad]", "members: [kitchen]\n    readers: ['*']"}},
		{name: "long title", edits: []string{"title: Family", "title: " + strings.Repeat("x", 65)}, want: []string{"rooms[0].title: at most 64"}},
		{name: "empty data_dir", edits: []string{"data_dir: ./data", `data_dir: ""`}, want: []string{"data_dir: must not be empty"}},
		{name: "bad http.addr", edits: []string{"addr: 127.0.0.1:8080", "addr: localhost"}, want: []string{"http.addr:", "host:port"}},
		{name: "bad http port", edits: []string{"addr: 127.0.0.1:8080", "addr: 127.0.0.1:80800"}, want: []string{"http.addr:", "port must be"}},
		{name: "empty http.addr", edits: []string{"addr: 127.0.0.1:8080", `addr: ""`}, want: []string{"http.addr: required"}},
		{name: "bad mqtt.addr", edits: []string{"addr: 127.0.0.1:1883", "addr: 1883"}, want: []string{"mqtt.addr:"}},
		{name: "same address twice", edits: []string{"addr: 127.0.0.1:1883", "addr: 127.0.0.1:8080"}, want: []string{"mqtt.addr: 127.0.0.1:8080 is also http.addr"}},
		{name: "tls addr without cert", edits: []string{`tls: {addr: ""`, `tls: {addr: "127.0.0.1:8883"`}, want: []string{"mqtt.tls.cert_file: required", "mqtt.tls.key_file: required"}},
		{name: "tls cert without addr", edits: []string{`cert_file: ""`, `cert_file: "cert.pem"`}, want: []string{"mqtt.tls.addr: required when cert_file or key_file is set"}},
		{name: "tls complete", edits: []string{`tls: {addr: "", cert_file: "", key_file: ""}`, `tls: {addr: "127.0.0.1:8883", cert_file: c.pem, key_file: k.pem}`}},
		{name: "origin with path", edits: []string{`"https://chat.example.org"`, `"https://chat.example.org/"`}, want: []string{"http.allowed_origins[0]:", "no trailing slash"}},
		{name: "origin with bad scheme", edits: []string{`"http://localhost:5173"`, `"ftp://localhost:5173"`}, want: []string{"http.allowed_origins[1]:"}},
		{name: "origin in upper case", edits: []string{`"https://chat.example.org"`, `"https://Chat.example.org"`}, want: []string{"http.allowed_origins[0]:", "lower case"}},
		{name: "origin star", edits: []string{`"https://chat.example.org"`, `"*"`}, want: []string{"http.allowed_origins[0]:"}},
		{name: "public_url", edits: []string{"  allowed_origins:", "  public_url: https://chat.example.org:8443/\n  allowed_origins:"}},
		{name: "public_url with a path", edits: []string{"  allowed_origins:", "  public_url: https://example.org/chat\n  allowed_origins:"}, want: []string{"http.public_url:", "no path"}},
		{name: "public_url without a scheme", edits: []string{"  allowed_origins:", "  public_url: chat.example.org\n  allowed_origins:"}, want: []string{"http.public_url:", "scheme must be http or https"}},
		{name: "public_url with a query", edits: []string{"  allowed_origins:", "  public_url: https://chat.example.org/?a=1\n  allowed_origins:"}, want: []string{"http.public_url:", "no path, query"}},
		{name: "public_url with a bad port", edits: []string{"  allowed_origins:", "  public_url: https://chat.example.org:0\n  allowed_origins:"}, want: []string{"http.public_url:", "port must be"}},
		{name: "http tls cert without key", edits: []string{"  allowed_origins:", "  tls: {cert_file: c.pem}\n  allowed_origins:"}, want: []string{"http.tls.key_file: required when http.tls.cert_file is set"}},
		{name: "http tls key without cert", edits: []string{"  allowed_origins:", "  tls: {key_file: k.pem}\n  allowed_origins:"}, want: []string{"http.tls.cert_file: required when http.tls.key_file is set"}},
		{name: "http tls complete", edits: []string{"  allowed_origins:", "  tls: {cert_file: c.pem, key_file: k.pem}\n  allowed_origins:"}},
		{name: "http tls unknown key", edits: []string{"  allowed_origins:", "  tls: {addr: ':443'}\n  allowed_origins:"}, want: []string{"http.tls.addr: unknown key"}},
		{name: "trusted proxies", edits: []string{"  allowed_origins:", "  trusted_proxies: [127.0.0.1, '::1', 10.0.0.0/8, 'fd00::/8', 10.1.2.3/16]\n  allowed_origins:"}},
		{name: "bad trusted proxies", edits: []string{"  allowed_origins:", "  trusted_proxies: [nginx, 10.0.0.0/33, 10.0.0.0/8, 'fe80::1%eth0', '::ffff:10.0.0.0/104', '']\n  allowed_origins:"},
			want: []string{`http.trusted_proxies[0]: "nginx": not an IP`, `http.trusted_proxies[1]: "10.0.0.0/33": not a CIDR`, `http.trusted_proxies[3]:`, `http.trusted_proxies[4]:`, `http.trusted_proxies[5]:`}},
		{name: "trusted proxies not a list", edits: []string{"  allowed_origins:", "  trusted_proxies: 127.0.0.1\n  allowed_origins:"}, want: []string{"http.trusted_proxies: want a list"}},
		{name: "timeouts", edits: []string{"  allowed_origins:", "  timeouts: {read: 5m, write: 6m}\n  allowed_origins:"},
			check: func(t *testing.T, c Config) {
				if got := c.HTTP.Timeouts; got.Read.D() != 5*time.Minute || got.Write.D() != 6*time.Minute || got.ReadHeader.D() != 10*time.Second || got.Idle.D() != 2*time.Minute {
					t.Errorf("timeouts %+v", got)
				}
			}},
		{name: "bad timeouts", edits: []string{"  allowed_origins:", "  timeouts: {read: 0, idle: 48h, write: 5}\n  allowed_origins:"}, want: []string{"http.timeouts.write:", "write e.g. 5h"}},
		{name: "write shorter than read", edits: []string{"  allowed_origins:", "  timeouts: {read: 2m}\n  allowed_origins:"}, want: []string{"http.timeouts.write: must be at least http.timeouts.read (2m)"}},
		{name: "zero timeouts", edits: []string{"  allowed_origins:", "  timeouts: {read: 0, idle: 48h}\n  allowed_origins:"}, want: []string{"http.timeouts.read: must be above 0", "http.timeouts.idle: must be above 0 and at most 24h, got 48h"}},
		{name: "small max_message_bytes", edits: []string{"max_message_bytes: 16384", "max_message_bytes: 100"}, want: []string{"mqtt.max_message_bytes: must be between 256 and 268435455"}},
		{name: "huge max_message_bytes", edits: []string{"max_message_bytes: 16384", "max_message_bytes: 268435456"}, want: []string{"mqtt.max_message_bytes: must be between 256 and 268435455"}},
		{name: "negative publish_rate", edits: []string{"publish_rate: 50", "publish_rate: -1"}, want: []string{"mqtt.publish_rate: must be 0"}},
		{name: "nan publish_rate", edits: []string{"publish_rate: 50", "publish_rate: .nan"}, want: []string{"mqtt.publish_rate:"}},
		{name: "negative max_connections", edits: []string{"publish_rate: 50", "publish_rate: 50\n  max_connections: -1\n  max_connections_per_user: -2"}, want: []string{"mqtt.max_connections: must be 0", "mqtt.max_connections_per_user: must be 0"}},
		{name: "zero burst with a rate", edits: []string{"publish_burst: 200", "publish_burst: 0"}, want: []string{"mqtt.publish_burst: must be at least 1"}},
		{name: "zero burst without a rate", edits: []string{"publish_rate: 50", "publish_rate: 0", "publish_burst: 200", "publish_burst: 0"}},
		{name: "bad attachments", edits: []string{"client_id: hearth-archiver", "client_id: hearth-archiver\nattachments: {max_bytes: 10, per_minute: -1}"},
			want: []string{"attachments.max_bytes: must be between 1024", "attachments.per_minute: must be 0"}},
		{name: "attachments set", edits: []string{"client_id: hearth-archiver", "client_id: hearth-archiver\nattachments: {max_bytes: 1048576, per_minute: 0}"}, check: func(t *testing.T, c Config) {
			if c.Attachments.MaxBytes != 1<<20 || c.Attachments.PerMinute != 0 {
				t.Errorf("attachments: %+v", c.Attachments)
			}
		}},
		{name: "bad connect_rate", edits: []string{"publish_rate: 50", "publish_rate: 50\n  connect_rate: {per_address: -1, per_user: .inf, burst: 0}"},
			want: []string{"mqtt.connect_rate.per_address: must be 0", "mqtt.connect_rate.per_user: must be 0", "mqtt.connect_rate.burst: must be at least 1"}},
		{name: "connect_rate off", edits: []string{"publish_rate: 50", "publish_rate: 50\n  connect_rate: {per_address: 0, per_user: 0, burst: 0}"}},
		{name: "devices", edits: []string{"bridge:", "devices:\n  - {user: kitchen, client_ids: [doorbell, kitchen-display]}\nbridge:"},
			check: func(t *testing.T, c Config) {
				if got := c.ClientIDOwners(); len(got) != 2 || got["doorbell"] != "kitchen" || got["kitchen-display"] != "kitchen" {
					t.Errorf("ClientIDOwners() = %v", got)
				}
			}},
		{name: "bad devices", edits: []string{"bridge:", "devices:\n  - {user: zed, client_ids: [\"\", hearth-archiver, x]}\n  - {user: dad, client_ids: [x]}\n  - {user: mum}\nbridge:"},
			want: []string{`devices[0].user: unknown user "zed"`, "devices[0].client_ids[0]: want 1 to 65535 bytes", `devices[0].client_ids[1]: "hearth-archiver" is the bridge's`,
				`devices[1].client_ids[0]: "x" is also devices[0].client_ids[2]`, "devices[2].client_ids: at least one client id is required"}},
		{name: "negative burst", edits: []string{"publish_burst: 200", "publish_burst: -3"}, want: []string{"mqtt.publish_burst: must be 0 or more"}},
		{name: "token_ttl not a duration", edits: []string{"token_ttl: 24h", "token_ttl: abc"}, want: []string{`auth.token_ttl: "abc" is not a duration`, "(line 12)"}},
		{name: "token_ttl bare number", edits: []string{"token_ttl: 24h", "token_ttl: 5"}, want: []string{"auth.token_ttl: bare number 5 needs a unit"}},
		{name: "token_ttl zero", edits: []string{"token_ttl: 24h", "token_ttl: 0"}, want: []string{"auth.token_ttl: must be above 0"}},
		{name: "token_ttl too long", edits: []string{"token_ttl: 24h", "token_ttl: 366d"}, want: []string{"auth.token_ttl: must be above 0 and at most 8760h"}},
		{name: "device_ttl zero", edits: []string{"token_ttl: 24h", "token_ttl: 24h\n  device_ttl: 0"}, want: []string{"auth.device_ttl: must be above 0 and at most 87600h"}},
		{name: "device_ttl too long", edits: []string{"token_ttl: 24h", "token_ttl: 24h\n  device_ttl: 3651d"}, want: []string{"auth.device_ttl: must be above 0"}},
		{name: "push subject not mailto or https", edits: []string{"data_dir: ./data", "data_dir: ./data\npush: {subject: \"http://x\"}"}, want: []string{`push.subject: must be mailto:ADDRESS or an https:// URL, got "http://x"`}},
		{name: "push subject mailto without address", edits: []string{"data_dir: ./data", "data_dir: ./data\npush: {subject: \"mailto:\"}"}, want: []string{`push.subject: must be mailto:ADDRESS`}},
		{name: "token_ttl in days", edits: []string{"token_ttl: 24h", "token_ttl: 30d"}, check: func(t *testing.T, c Config) {
			if got, want := c.Auth.TokenTTL.D(), 30*24*time.Hour; got != want {
				t.Errorf("token_ttl = %v, want %v", got, want)
			}
		}},
		{name: "max_age bare 0 and 30d", edits: []string{"max_age: 0, max_messages: 0", "max_age: 0, max_messages: 0}\n  - name: attic\n    retention: {max_age: 30d"}, check: func(t *testing.T, c Config) {
			if got := c.Rooms[0].Retention.MaxAge; got != 0 {
				t.Errorf("rooms[0] max_age = %v, want 0", got)
			}
			if got, want := c.Rooms[1].Retention.MaxAge.D(), 30*24*time.Hour; got != want {
				t.Errorf("rooms[1] max_age = %v, want %v", got, want)
			}
		}},
		{name: "max_age negative", edits: []string{"max_age: 0,", "max_age: -1h,"}, want: []string{"rooms[0].retention.max_age: must be 0"}},
		{name: "max_messages negative", edits: []string{"max_messages: 0}", "max_messages: -5}"}, want: []string{"rooms[0].retention.max_messages: must be 0"}},
		{name: "bad bridge url scheme", edits: []string{`broker_url: ""`, `broker_url: "http://broker:1883"`}, want: []string{"bridge.broker_url:", "scheme must be"}},
		{name: "bridge url without host", edits: []string{`broker_url: ""`, `broker_url: "mqtt://"`}, want: []string{"bridge.broker_url:", "no host"}},
		{name: "bridge url ok", edits: []string{`broker_url: ""`, `broker_url: "mqtts://broker.example.org:8883"`}},
		{name: "bad client_id", edits: []string{"client_id: hearth-archiver", "client_id: hearth archiver"}, want: []string{`bridge.client_id: "hearth archiver"`}},
		{name: "empty client_id", edits: []string{"client_id: hearth-archiver", `client_id: ""`}, want: []string{"bridge.client_id:"}},
		{name: "empty file", text: "", want: []string{"config is empty"}},
		{name: "only comments", text: "# nothing yet\n", want: []string{"config is empty"}},
		{name: "two documents", text: withHashes(baseConfig) + "---\ndata_dir: /tmp\n", want: []string{"more than one YAML document"}},
		{name: "not a mapping", text: "- a\n- b\n", want: []string{"config: want a mapping"}},
		{name: "yaml syntax error", text: "http: {addr: \n", want: []string{"yaml:"}},
		{name: "duplicate yaml key", edits: []string{"data_dir: ./data", "data_dir: ./data\ndata_dir: ./x"}, want: []string{"already defined"}},
		{name: "sample password on a public address", edits: []string{"HASH_mum", "SAMPLE_HASH", "addr: 127.0.0.1:8080", "addr: 0.0.0.0:8080"}, want: []string{
			"users[0].password_hash: mum still has the sample password and http.addr 0.0.0.0:8080 is not loopback; set a new one with 'hearth passwd'",
		}},
		{name: "sample password on an empty host", edits: []string{"HASH_kitchen", "SAMPLE_HASH", "addr: 127.0.0.1:1883", "addr: :1883"}, want: []string{
			"users[2].password_hash: kitchen still has the sample password and mqtt.addr :1883 is not loopback",
		}},
		{name: "sample password on loopback", edits: []string{"HASH_mum", "SAMPLE_HASH", "HASH_dad", "SAMPLE_HASH"}},
		{name: "sample password on localhost", edits: []string{"HASH_mum", "SAMPLE_HASH", "addr: 127.0.0.1:8080", "addr: localhost:8080", "addr: 127.0.0.1:1883", `addr: "[::1]:1883"`}},
		{name: "own password on a public address", edits: []string{"addr: 127.0.0.1:8080", "addr: 0.0.0.0:8080"}},
		{name: "several problems together", edits: []string{
			"name: kitchen", "name: Kitchen",
			"members: [mum, dad]", "members: [mum, zed]",
			"max_message_bytes: 16384", "max_message_bytes: 1",
			"client_id: hearth-archiver", `client_id: ""`,
		}, want: []string{
			`users[2].name: "Kitchen": bad name`,
			`rooms[0].readers[0]: unknown user "kitchen"`,
			`rooms[1].members[1]: unknown user "zed"`,
			"mqtt.max_message_bytes: must be between 256 and 268435455",
			"bridge.client_id:",
		}},
		{name: "several unknown keys together", edits: []string{"data_dir:", "colour: blue\ndata_dir:", "  publish_burst: 200", "  publish_burst: 200\n  max_clients: 3", "token_ttl: 24h", "token_ttl: 5"}, want: []string{
			"colour: unknown key", "mqtt.max_clients: unknown key", "auth.token_ttl: bare number 5",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if tt.edits != nil {
				text = edit(t, tt.edits...)
			}
			c, err := parse(text)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseConfig: %v, want no error", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseConfig: no error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q; got:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "$2a$") {
				t.Errorf("error prints a password hash:\n%v", err)
			}
		})
	}
}

// TestParseConfigReportsEverything: one file with problems of every
// kind gets all of them back at once, each naming its key, in the order
// of the file; a rule about a key already refused is not repeated.
func TestParseConfigReportsEverything(t *testing.T) {
	text := edit(t,
		"data_dir:", "colour: blue\ndata_dir:",
		"addr: 127.0.0.1:8080", "addr: 0.0.0.0:8080",
		"max_message_bytes: 16384", "max_message_bytes: lots",
		"publish_rate: 50", "publish_rate: -1\n  max_clients: 3",
		"HASH_mum", "SAMPLE_HASH",
		`"HASH_dad"`, `"hunter2"`,
		"role: device}", "role: device, colour: red}",
		"members: [mum, dad]", "members: [mum, zed]",
		"token_ttl: 24h", "token_ttl: [1h]",
	)
	_, err := parse(text)
	got := Problems(err)
	want := []string{
		"colour: unknown key (line 1)",
		`mqtt.max_message_bytes: want a whole number, got "lots" (line 9)`,
		"mqtt.max_clients: unknown key (line 11)",
		"auth.token_ttl: want a duration",
		"users[2].colour: unknown key",
		"mqtt.publish_rate: must be 0 (no limit) or more, got -1",
		"users[1].password_hash: not a bcrypt hash",
		`rooms[1].members[1]: unknown user "zed"`,
		"users[0].password_hash: mum still has the sample password and http.addr 0.0.0.0:8080 is not loopback",
	}
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(got[i].Error(), w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
		}
	}
	if strings.Contains(err.Error(), "auth.token_ttl: must be") {
		t.Errorf("the refused token_ttl is reported again by its rule:\n%v", err)
	}

	// Through LoadConfig: the same problems, after "config PATH: ".
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(withHashes(text)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, lerr := LoadConfig(path)
	if !strings.HasPrefix(lerr.Error(), "config "+path+": colour: unknown key") || len(Problems(lerr)) != len(want) {
		t.Errorf("LoadConfig: %d problems:\n%v", len(Problems(lerr)), lerr)
	}
	// A YAML syntax error is one problem.
	os.WriteFile(path, []byte("http: {addr: \n"), 0o600)
	if _, err := LoadConfig(path); len(Problems(err)) != 1 || !strings.Contains(err.Error(), "yaml:") {
		t.Errorf("syntax error: %v (%d problems), want one yaml error", err, len(Problems(err)))
	}
	if Problems(nil) != nil {
		t.Error("Problems(nil) is not nil")
	}
}

func TestParseConfigValues(t *testing.T) {
	c, err := parse(edit(t, "addr: 127.0.0.1:1883", `addr: ""`))
	if err != nil {
		t.Fatal(err)
	}
	h := testHashes()
	want := Config{
		DataDir: "./data",
		HTTP:    HTTPConfig{Addr: "127.0.0.1:8080", AllowedOrigins: []string{"https://chat.example.org", "http://localhost:5173"}, Timeouts: DefaultConfig().HTTP.Timeouts},
		MQTT: MQTTConfig{Addr: "", MaxMessageBytes: 16384, PublishRate: 50, PublishBurst: 200, MaxConnections: 1000, MaxConnectionsPerUser: 20, MaxQueuedBytes: 64 << 20, MaxOfflineBytes: 256 << 20,
			ConnectRate: ConnectRateConfig{PerAddress: 10, PerUser: 5, Burst: 30}},
		Auth: AuthConfig{TokenTTL: Duration(24 * time.Hour), DeviceTTL: Duration(8760 * time.Hour)},
		Users: []User{
			{Name: "mum", PasswordHash: h["secret-mum"], Role: RoleAdmin},
			{Name: "dad", PasswordHash: h["secret-dad"], Role: RoleMember},
			{Name: "kitchen", PasswordHash: h["secret-kitchen"], Role: RoleDevice},
		},
		Rooms: []Room{
			{Name: "family", Title: "Family", Members: []string{"*"}, Readers: []string{"kitchen"}},
			{Name: "chores", Title: "chores", Members: []string{"mum", "dad"}},
		},
		Bridge:      BridgeConfig{ClientID: "hearth-archiver"},
		Attachments: AttachmentsConfig{MaxBytes: 20 << 20, PerMinute: 30},
		Push:        PushConfig{Subject: "mailto:hearth@localhost"},
	}
	assertConfig(t, c, want)

	if u, ok := c.User("kitchen"); !ok || u.Role != RoleDevice {
		t.Errorf("User(kitchen) = %+v, %v; want the device", u, ok)
	}
	if _, ok := c.User("zed"); ok {
		t.Errorf("User(zed) found")
	}
	if r, ok := c.Room("chores"); !ok || r.Title != "chores" {
		t.Errorf("Room(chores) = %+v, %v", r, ok)
	}
	if _, ok := c.Room("attic"); ok {
		t.Errorf("Room(attic) found")
	}

	// The result marshals back to YAML that parses to the same config.
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("reparse: %v\n%s", err, b)
	}
	assertConfig(t, c2, want)
}

func TestParseConfigDefaults(t *testing.T) {
	// Only what has no default; everything else comes from DefaultConfig.
	c, err := parse("users: [{name: mum, password_hash: HASH_mum}]\nrooms: [{name: family, members: ['*']}]\nmqtt: {publish_rate: 5}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.MQTT.PublishRate = 5
	want.Users = []User{{Name: "mum", PasswordHash: testHashes()["secret-mum"], Role: RoleMember}}
	want.Rooms = []Room{{Name: "family", Title: "family", Members: []string{"*"}}}
	assertConfig(t, c, want)
}

func assertConfig(t *testing.T, got, want Config) {
	t.Helper()
	g, _ := yaml.Marshal(got)
	w, _ := yaml.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("config differs\ngot:\n%s\nwant:\n%s", g, w)
	}
}

func TestConfigErrorUnwrap(t *testing.T) {
	_, err := parse(edit(t, "name: kitchen", "name: Kitchen", "max_message_bytes: 16384", "max_message_bytes: 1"))
	if !errors.Is(err, ErrBadName) {
		t.Errorf("errors.Is(err, ErrBadName) = false; err: %v", err)
	}
	var ce *ConfigError
	// Problems come in the order of the file's keys: mqtt before users.
	if !errors.As(err, &ce) || ce.Key != "mqtt.max_message_bytes" {
		t.Errorf("errors.As: %+v, want the first problem at mqtt.max_message_bytes", ce)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	text := edit(t,
		`token_secret_file: ""`, `token_secret_file: secret/token`,
		`tls: {addr: "", cert_file: "", key_file: ""}`, `tls: {addr: "127.0.0.1:8883", cert_file: tls/cert.pem, key_file: /etc/hearth/key.pem}`,
		"  allowed_origins:", "  tls: {cert_file: web/cert.pem, key_file: web/key.pem}\n  allowed_origins:")
	if err := os.WriteFile(path, []byte(withHashes(text)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ key, got, want string }{
		{"data_dir", c.DataDir, filepath.Join(dir, "data")},
		{"auth.token_secret_file", c.Auth.TokenSecretFile, filepath.Join(dir, "secret", "token")},
		{"mqtt.tls.cert_file", c.MQTT.TLS.CertFile, filepath.Join(dir, "tls", "cert.pem")},
		{"mqtt.tls.key_file", c.MQTT.TLS.KeyFile, "/etc/hearth/key.pem"},
		{"http.tls.cert_file", c.HTTP.TLS.CertFile, filepath.Join(dir, "web", "cert.pem")},
		{"http.tls.key_file", c.HTTP.TLS.KeyFile, filepath.Join(dir, "web", "key.pem")},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.key, f.got, f.want)
		}
	}

	// ParseConfig leaves paths as written.
	pc, err := parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if pc.DataDir != "./data" || pc.MQTT.TLS.CertFile != "tls/cert.pem" {
		t.Errorf("ParseConfig changed paths: data_dir %q, cert_file %q", pc.DataDir, pc.MQTT.TLS.CertFile)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	_, err := LoadConfig(missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadConfig(missing) = %v, want fs.ErrNotExist", err)
	}
	if want := "config " + missing + ": "; err == nil || !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), missing) != 1 {
		t.Errorf("error = %v, want it to start with %q and name the path once", err, want)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(withHashes(edit(t, "data_dir:", "colour: blue\ndata_dir:"))), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(bad)
	if want := "config " + bad + ": colour: unknown key (line 1)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestConfigIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080":        true,
		"127.1.2.3:80":          true,
		"localhost:1883":        true,
		"[::1]:1883":            true,
		"[::ffff:127.0.0.1]:80": true,
		":8080":                 false,
		"0.0.0.0:8080":          false,
		"[::]:8080":             false,
		"192.168.1.10:8080":     false,
		"hearth.local:8080":     false,
		"localhost":             false, // no port: not an address
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestDurationParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "24h", want: 24 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "-1d", want: -24 * time.Hour},
		{in: "0", want: 0},
		{in: "", err: true},
		{in: "d", err: true},
		{in: "1.5d", err: true},
		{in: "1d-2h", err: true},
		{in: "5", err: true},
		{in: "abc", err: true},
		{in: "999999999d", err: true},
	} {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.err || (err == nil && got.D() != tt.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got.D(), err, tt.want, tt.err)
		}
	}
}

func TestDurationYAML(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "24h", want: 24 * time.Hour},
		{in: `"30d"`, want: 30 * 24 * time.Hour},
		{in: "0", want: 0},
		{in: "5", err: "bare number 5 needs a unit"},
		{in: "1.5", err: "bare number 1.5 needs a unit"},
		{in: "true", err: "not a duration"},
		{in: "[1h]", err: "want a duration"},
	} {
		var v struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte("d: "+tt.in), &v)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("d: %s: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || v.D.D() != tt.want {
			t.Errorf("d: %s = %v, %v; want %v", tt.in, v.D.D(), err, tt.want)
		}
	}

	for d, want := range map[time.Duration]string{0: "0s", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 1500 * time.Millisecond: "1.5s"} {
		b, err := yaml.Marshal(Duration(d))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("Marshal(%v) = %q, %v; want %q", d, b, err, want)
		}
		var back Duration
		if err := yaml.Unmarshal(b, &back); err != nil || back.D() != d {
			t.Errorf("Unmarshal(%q) = %v, %v; want %v", b, back.D(), err, d)
		}
	}

	var f Duration
	if err := f.Set("720h"); err != nil || f.D() != 720*time.Hour || f.String() != "720h" {
		t.Errorf("Set(720h): %v, %v", f, err)
	}
}
