package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// The Home Assistant recipe (docs/home-assistant.md), as it is written:
// the config, the payloads and the topics are read out of the document,
// so that it cannot say what is not tested.

const recipePath = "../../docs/home-assistant.md"

// recipeBlock returns the fenced block that follows "<!-- test: name -->"
// in the recipe.
func recipeBlock(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(recipePath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- test: " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)```")
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no block marked %q", recipePath, name)
	}
	return string(m[1])
}

// recipeFind returns the first submatch of re in the named block.
func recipeFind(t *testing.T, block, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(recipeBlock(t, block))
	if m == nil {
		t.Fatalf("block %q of %s: no match for %s", block, recipePath, re)
	}
	return m[1]
}

// recipeConfig writes the recipe's config, with every password hash
// replaced by the test user's, on this test's ports and data directory;
// it returns the file's path and the parsed config.
func recipeConfig(t *testing.T) (string, hearth.Config) {
	t.Helper()
	dir := t.TempDir()
	block := recipeBlock(t, "config")
	user := regexp.MustCompile(`\{name: ([a-z0-9_-]+), password_hash: "[^"]*"`)
	block = user.ReplaceAllStringFunc(block, func(s string) string {
		name := user.FindStringSubmatch(s)[1]
		return fmt.Sprintf("{name: %s, password_hash: %q", name, mqtttest.PasswordHash(name))
	})
	y := fmt.Sprintf("data_dir: %q\nhttp: {addr: \"127.0.0.1:0\"}\nmqtt: {addr: \"127.0.0.1:0\", publish_rate: 0}\n", filepath.Join(dir, "data")) + block
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := hearth.LoadConfig(path)
	if err != nil {
		t.Fatalf("the recipe's config: %v\n%s", err, y)
	}
	return path, cfg
}

// recipePayloads are the chat payloads of the recipe's snippets, with
// what their templates fill in filled in, and the topics they publish on.
type recipePayload struct{ what, topic, payload string }

func recipePayloads(t *testing.T) []recipePayload {
	t.Helper()
	now := time.Now().UnixMilli()
	// Home Assistant: a Jinja template in a YAML single-quoted string.
	ha := recipeFind(t, "rest_command", `(?m)^\s*payload: '(.*)'$`)
	ha = regexp.MustCompile(`\{\{.*?\}\}`).ReplaceAllString(ha, strconv.FormatInt(now, 10))
	// ESPHome: a C string literal for str_sprintf.
	lit := recipeFind(t, "esphome-doorbell", `str_sprintf\(("(?:[^"\\]|\\.)*")`)
	esp, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("ESPHome's payload literal %s: %v", lit, err)
	}
	esp = strings.NewReplacer("%08x", "1a2b3c4d", "%u", strconv.FormatInt(now%4294967296, 10)).Replace(esp)
	// Tasmota: a rule's Publish command, %utctime% being Unix seconds.
	tas := regexp.MustCompile(`Publish (\S+) (\{.*\}) ENDON`).FindStringSubmatch(recipeBlock(t, "tasmota"))
	if tas == nil {
		t.Fatal("the Tasmota rule has no Publish TOPIC {...} ENDON")
	}
	return []recipePayload{
		{"Home Assistant's rest_command", "", ha},
		{"ESPHome's doorbell", recipeFind(t, "esphome-doorbell", `topic: (rooms/\S+)`), esp},
		{"Tasmota's rule", tas[1], strings.ReplaceAll(tas[2], "%utctime%", strconv.FormatInt(now/1000, 10))},
	}
}

// TestRecipeSnippets checks what the recipe's device snippets would send
// with hearth's own validator and access rules (the devices cannot run
// here).
func TestRecipeSnippets(t *testing.T) {
	_, cfg := recipeConfig(t)
	policy := hearth.NewPolicy(&cfg)
	ids := map[string]bool{}
	for _, p := range recipePayloads(t) {
		msg, err := hearth.ParsePayload([]byte(p.payload))
		if err != nil {
			t.Errorf("%s: payload %s: %v", p.what, p.payload, err)
			continue
		}
		if msg.Text != "the doorbell rang" || ids[msg.ID] {
			t.Errorf("%s: id %q, text %q; want a new id and \"the doorbell rang\"", p.what, msg.ID, msg.Text)
		}
		ids[msg.ID] = true
		if p.topic != "" && !policy.CanPublish("doorbell", p.topic) {
			t.Errorf("%s: the doorbell may not publish on %s", p.what, p.topic)
		}
	}
	prefix := func(block string) string { return recipeFind(t, block, `topic_prefix: (\S+)`) }
	tasmotaTopic := strings.NewReplacer("%topic%", recipeFind(t, "tasmota", `Topic (\w+);`), "%prefix%", "tele").
		Replace(recipeFind(t, "tasmota", `FullTopic (\S+)`)) + "STATE"
	for _, c := range []struct {
		user, topic string
		publish     bool
	}{
		{"kitchen", recipeFind(t, "esphome-kitchen", `topic: (rooms/\S+)`), false},
		{"kitchen", prefix("esphome-kitchen") + "/status", true},
		{"doorbell", prefix("esphome-doorbell") + "/status", true},
		{"doorbell", tasmotaTopic, true},
	} {
		ok := policy.CanSubscribe(c.user, c.topic)
		if c.publish {
			ok = policy.CanPublish(c.user, c.topic)
		}
		if !ok {
			t.Errorf("%s may not use %s (publish %v)", c.user, c.topic, c.publish)
		}
	}
	if policy.CanPublish("kitchen", "rooms/family/messages/kitchen") {
		t.Error("the kitchen display may write in the family room")
	}
}

// recipeScript is Home Assistant's side and the devices', in
// python3-paho-mqtt's 1.x API over MQTT 3.1.1. It prints what each client
// was granted and received, as JSON.
const recipeScript = `
import json, sys, threading
import paho.mqtt.client as mqtt

host, port, arg = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])

class Client:
    def __init__(self, user, cid):
        self.user, self.got, self.acks, self.rc = user, [], {}, None
        self.cv = threading.Condition()
        self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, clean_session=True)
        self.c.username_pw_set(user, arg["passwords"][user])
        self.c.on_connect, self.c.on_subscribe, self.c.on_message = self.on_connect, self.on_subscribe, self.on_message
        self.c.connect(host, port, 30)
        self.c.loop_start()
        self.wait(lambda: self.rc is not None, "CONNACK")
        if self.rc != 0:
            sys.exit("%s: CONNACK %d" % (user, self.rc))
    def wait(self, cond, what):
        with self.cv:
            if not self.cv.wait_for(cond, 10):
                sys.exit("%s: no %s; got %s" % (self.user, what, self.got))
    def on_connect(self, c, u, flags, rc):
        with self.cv:
            self.rc = rc
            self.cv.notify_all()
    def on_subscribe(self, c, u, mid, granted):
        with self.cv:
            self.acks[mid] = granted[0]
            self.cv.notify_all()
    def on_message(self, c, u, m):
        with self.cv:
            self.got.append({"topic": m.topic, "payload": m.payload.decode(), "retain": bool(m.retain)})
            self.cv.notify_all()
    def subscribe(self, topic):
        _, mid = self.c.subscribe(topic, qos=1)
        self.wait(lambda: mid in self.acks, "SUBACK for " + topic)
        return self.acks[mid]
    def publish(self, topic, payload, qos=1, retain=False):
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)
    def until(self, topic, n=1):
        self.wait(lambda: sum(g["topic"] == topic for g in self.got) >= n, "%d on %s" % (n, topic))

out = {}
watch = Client("mum", "py-watch")  # an admin: it would see any topic
out["watch_sub"] = watch.subscribe("#")
kitchen = Client("kitchen", "py-kitchen")
out["kitchen_sub"] = kitchen.subscribe("rooms/family/messages/+")
ha = Client("homeassistant", "py-ha")
out["ha_subs"] = {t: ha.subscribe(t) for t in arg["ha_subscribe"]}
for p in arg["ha_publish"]:
    ha.publish(p["topic"], p["payload"], retain=p.get("retain", False))
# The marker comes after everything above on the same connection: once
# it is delivered, so is whatever of the above was going to be.
ha.publish("home/marker", "done")
watch.until("home/marker")
ha.until("home/marker")
ha2 = Client("homeassistant", "py-ha-later")
ha2.subscribe("homeassistant/#")
ha2.until(arg["discovery_topic"])
bell = Client("doorbell", "py-doorbell")
for p in arg["doorbell_publish"]:
    bell.publish(p["topic"], p["payload"], qos=p["qos"])
kitchen.until("rooms/family/messages/doorbell", len([p for p in arg["doorbell_publish"] if p["topic"].startswith("rooms/")]))
watch.until("devices/doorbell/tele/STATE")
for name, c in (("watch", watch), ("kitchen", kitchen), ("ha", ha), ("ha2", ha2)):
    out[name] = c.got
print(json.dumps(out))
`

type pyGot struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	Retain  bool   `json:"retain"`
}

// TestHomeAssistantRecipe runs the recipe on a real hearth with
// python3-paho-mqtt: Home Assistant's user in its topics and refused
// elsewhere, a retained discovery config, the doorbell's messages (ESPHome
// and Tasmota payloads over MQTT, Home Assistant's rest_command over the
// API) in the kitchen's subscription and in the archive.
func TestHomeAssistantRecipe(t *testing.T) {
	py := needTool(t, "/usr/bin/python3", "python3-paho-mqtt")
	if out, err := exec.Command(py, "-c", "import paho.mqtt.client").CombinedOutput(); err != nil {
		t.Fatalf("python3 cannot import paho.mqtt.client (apt-get install python3-paho-mqtt; .ci/run does): %v: %s", err, out)
	}
	cfgPath, cfg := recipeConfig(t)
	app := startApp(t, cfg)
	payloads := recipePayloads(t)
	haBody, esp, tas := payloads[0].payload, payloads[1], payloads[2]

	const discoveryTopic = "homeassistant/binary_sensor/doorbell/config"
	discovery := `{"name":"Doorbell","state_topic":"home/doorbell/state","unique_id":"doorbell-1"}`
	refusedChat := `{"id":"ha-1","text":"Home Assistant may not write here"}`
	arg := map[string]any{
		"passwords":       map[string]string{"mum": password("mum"), "kitchen": password("kitchen"), "homeassistant": password("homeassistant"), "doorbell": password("doorbell")},
		"discovery_topic": discoveryTopic,
		"ha_subscribe":    []string{"homeassistant/#", "home/#", "rooms/family/messages/+", "other/#"},
		"ha_publish": []map[string]any{
			{"topic": discoveryTopic, "payload": discovery, "retain": true},
			{"topic": "homeassistant/status", "payload": "online", "retain": true},
			{"topic": "home/hall/light", "payload": "on"},
			{"topic": "rooms/family/messages/homeassistant", "payload": refusedChat},
			{"topic": "other/x", "payload": "refused"},
		},
		"doorbell_publish": []map[string]any{
			{"topic": esp.topic, "payload": esp.payload, "qos": 1},
			{"topic": tas.topic, "payload": tas.payload, "qos": 0},
			{"topic": "devices/doorbell/tele/STATE", "payload": `{"Uptime":"0T00:01:00"}`, "qos": 0},
		},
	}
	argJSON, _ := json.Marshal(arg)
	denied := app.broker.Refused(broker.NotAuthorized)
	h, p := hostPort(t, app.MQTTAddr())
	cmd := exec.Command(py, "-c", recipeScript, h, p, string(argJSON))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 paho: %v\n%s", err, stderr.Bytes())
	}
	var got struct {
		WatchSub   int            `json:"watch_sub"`
		KitchenSub int            `json:"kitchen_sub"`
		HASubs     map[string]int `json:"ha_subs"`
		Watch      []pyGot        `json:"watch"`
		Kitchen    []pyGot        `json:"kitchen"`
		HA         []pyGot        `json:"ha"`
		HA2        []pyGot        `json:"ha2"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("python3 printed %q: %v", stdout, err)
	}

	t.Run("subscriptions", func(t *testing.T) {
		want := map[string]int{"homeassistant/#": 1, "home/#": 1, "rooms/family/messages/+": 0x80, "other/#": 0x80}
		for f, code := range want {
			if got.HASubs[f] != code {
				t.Errorf("homeassistant's SUBACK for %s: %#x, want %#x", f, got.HASubs[f], code)
			}
		}
		if got.WatchSub != 1 || got.KitchenSub != 1 {
			t.Errorf("SUBACKs: mum's # %#x, kitchen's %#x; want 1", got.WatchSub, got.KitchenSub)
		}
	})
	topics := func(ms []pyGot) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Topic)
		}
		return out
	}
	t.Run("home topics", func(t *testing.T) {
		for _, topic := range []string{discoveryTopic, "homeassistant/status", "home/hall/light", "home/marker"} {
			if !slices.Contains(topics(got.HA), topic) || !slices.Contains(topics(got.Watch), topic) {
				t.Errorf("%s: homeassistant got %v, mum got %v; want it in both", topic, topics(got.HA), topics(got.Watch))
			}
		}
		found := false
		for _, m := range got.HA2 {
			if m.Topic == discoveryTopic {
				found = true
				if !m.Retain || m.Payload != discovery {
					t.Errorf("the later subscriber got %+v, want the retained discovery config %s", m, discovery)
				}
			}
		}
		if !found {
			t.Errorf("the later subscriber got %v, not the retained %s", topics(got.HA2), discoveryTopic)
		}
	})
	t.Run("refused publishes are dropped", func(t *testing.T) {
		for _, who := range [][]pyGot{got.Watch, got.Kitchen, got.HA, got.HA2} {
			for _, m := range who {
				if m.Topic == "rooms/family/messages/homeassistant" || m.Topic == "other/x" {
					t.Errorf("a subscriber got %+v, which homeassistant may not publish", m)
				}
			}
		}
		if n := app.broker.Refused(broker.NotAuthorized) - denied; n < 2 {
			t.Errorf("the broker refused %d publishes, want at least homeassistant's 2", n)
		}
	})
	t.Run("the kitchen gets the doorbell", func(t *testing.T) {
		var want, have []string
		for _, p := range []string{esp.payload, tas.payload} {
			want = append(want, "rooms/family/messages/doorbell "+p)
		}
		for _, m := range got.Kitchen {
			have = append(have, m.Topic+" "+m.Payload)
		}
		if !slices.Equal(have, want) {
			t.Errorf("the kitchen got\n%q\nwant\n%q", have, want)
		}
	})

	// Home Assistant's rest_command: a doorbell token from hearth token,
	// and the payload as the template makes it.
	var tokenOut, tokenErr bytes.Buffer
	if err := run(t.Context(), []string{"token", "-config", cfgPath, "-user", "doorbell", "-ttl", "8760h"}, nil, &tokenOut, &tokenErr); err != nil {
		t.Fatalf("hearth token: %v: %s", err, tokenErr.String())
	}
	var posted struct{ ID string }
	url := "http://" + app.HTTPAddr() + "/api/rooms/family/messages"
	if code := httpDo(t, "POST", url, strings.TrimSpace(tokenOut.String()), haBody, &posted); code != 202 {
		t.Fatalf("the rest_command's POST %s: %d, want 202", haBody, code)
	}
	if code := httpDo(t, "POST", url, login(t, app, "homeassistant"), `{"text":"not mine to say"}`, nil); code != 403 {
		t.Errorf("homeassistant posting in family: %d, want 403", code)
	}

	t.Run("archive", func(t *testing.T) {
		var ids []string
		for _, p := range []string{esp.payload, tas.payload, haBody} {
			m, _ := hearth.ParsePayload([]byte(p))
			ids = append(ids, m.ID)
		}
		if posted.ID != ids[2] {
			t.Errorf("the API answered id %q, want the template's %q", posted.ID, ids[2])
		}
		var msgs []hearth.Message
		waitFor(t, "the doorbell's three messages in the archive", 10*time.Second, func() bool {
			msgs = readHistory(t, app, "dad", "family", "").Messages
			return len(msgs) >= 3
		})
		var have []string
		for _, m := range msgs {
			have = append(have, m.From+" "+m.ID+" "+m.Text)
		}
		var want []string
		for _, id := range ids {
			want = append(want, "doorbell "+id+" the doorbell rang")
		}
		if !slices.Equal(have, want) {
			t.Errorf("the family room's history\n%q\nwant\n%q", have, want)
		}
	})
}
