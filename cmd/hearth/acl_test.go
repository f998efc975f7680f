package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
)

// The ACL matrix: every role (admin mum, member dad, member kid who is not
// in the parents' room, device kitchen that reads family, and the bridge
// identity), every kind of topic, publish, subscribe and delivery, own
// name and someone else's, each with its exact outcome; and every HTTP
// route for every role. The rooms are testConfig's: family (every member;
// kitchen reads it) and parents (mum and dad).

// aclSubjects in the column order of the tables below.
var aclSubjects = []string{"mum", "dad", "kid", "kitchen", "bridge"}

// aclNames gives each subject's own name and another user's name for
// {me} and {other} in the tables. The bridge has no name of its own.
var aclNames = map[string][2]string{
	"mum": {"mum", "dad"}, "dad": {"dad", "mum"}, "kid": {"kid", "mum"},
	"kitchen": {"kitchen", "mum"}, "bridge": {"kid", "mum"},
}

func aclTopic(tpl, subject string) string {
	n := aclNames[subject]
	return strings.NewReplacer("{me}", n[0], "{other}", n[1]).Replace(tpl)
}

// aclDial connects a subject over MQTT 5; the bridge identity comes in on
// the internal listener with this run's secret.
func aclDial(t *testing.T, app *App, subject string) *client {
	t.Helper()
	if subject == "bridge" {
		url, user, pw := app.broker.BridgeEndpoint()
		return mustDial(t, strings.TrimPrefix(url, "mqtt://"), user, connectOpts{password: string(pw), clientID: "acl-bridge"})
	}
	return mustDial(t, app.MQTTAddr(), subject, connectOpts{})
}

// aclPayload is a valid payload for the kind of topic, so that only the
// policy decides.
func aclPayload(topic string) string {
	switch hearth.ParseTopic(topic).Kind {
	case hearth.TopicMessage:
		return msg(fmt.Sprintf("acl-%d", time.Now().UnixNano()), "matrix")
	case hearth.TopicTyping:
		return `{"typing":true}`
	case hearth.TopicEvent:
		return fmt.Sprintf(`{"id":"acl-%d","type":"reaction","target":{"from":"mum","id":"x"},"emoji":"👍"}`, time.Now().UnixNano())
	case hearth.TopicReceipts:
		return `{"id":"x","room":"family","seq":1,"at":"2026-01-01T00:00:00Z"}`
	case hearth.TopicRead:
		return `{"seq":1}`
	case hearth.TopicFocus:
		return `{"room":"family"}`
	}
	return "on"
}

// Y and N mark an outcome in the tables: allowed or refused.
const (
	Y = true
	N = false
)

func TestACLMatrixPublish(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	table := []struct {
		topic string
		want  [5]bool // mum, dad, kid, kitchen, bridge
	}{
		{"rooms/family/messages/{me}", [5]bool{Y, Y, Y, N, N}},
		{"rooms/family/messages/{other}", [5]bool{N, N, N, N, N}},
		{"rooms/parents/messages/{me}", [5]bool{Y, Y, N, N, N}},
		{"rooms/parents/messages/{other}", [5]bool{N, N, N, N, N}},
		{"rooms/nosuch/messages/{me}", [5]bool{N, N, N, N, N}},
		{"rooms/family/typing/{me}", [5]bool{Y, Y, Y, N, N}},
		{"rooms/family/typing/{other}", [5]bool{N, N, N, N, N}},
		{"rooms/parents/typing/{me}", [5]bool{Y, Y, N, N, N}},
		{"rooms/family/events/{me}", [5]bool{Y, Y, Y, N, N}},
		{"rooms/family/events/{other}", [5]bool{N, N, N, N, N}},
		{"rooms/parents/events/{me}", [5]bool{Y, Y, N, N, N}},
		{"presence/{me}", [5]bool{N, N, N, N, N}},
		{"presence/{other}", [5]bool{N, N, N, N, N}},
		{"users/{me}/receipts", [5]bool{N, N, N, N, Y}},
		{"users/{other}/receipts", [5]bool{N, N, N, N, Y}},
		{"$SYS/broker/uptime", [5]bool{N, N, N, N, N}},
		{"home/lights", [5]bool{Y, N, N, N, N}},
		{"rooms", [5]bool{N, N, N, N, N}},
		{"rooms/family/reads/{me}", [5]bool{Y, Y, Y, Y, N}},
		{"rooms/family/reads/{other}", [5]bool{N, N, N, N, N}},
		{"rooms/parents/reads/{me}", [5]bool{Y, Y, N, N, N}},
		{"rooms/parents/reads/{other}", [5]bool{N, N, N, N, N}},
		{"rooms/nosuch/reads/{me}", [5]bool{N, N, N, N, N}},
		{"users/{me}/focus", [5]bool{Y, Y, Y, Y, N}},
		{"users/{other}/focus", [5]bool{N, N, N, N, N}},
	}
	cases := 0
	for i, subject := range aclSubjects {
		cl := aclDial(t, app, subject)
		for _, row := range table {
			topic := aclTopic(row.topic, subject)
			rc := cl.publish(topic, 1, false, aclPayload(topic))
			want := byte(0x87)
			if row.want[i] {
				want = 0
			}
			if rc != want {
				t.Errorf("%s publishing on %s: reason %#x, want %#x", subject, topic, rc, want)
			}
			cases++
		}
	}
	t.Logf("%d publish cases", cases)

	// MQTT 3.1.1 has no reason codes: a refused QoS 1 or 2 publish is
	// acknowledged and dropped, as Mosquitto does, so that a device does
	// not send it again forever.
	watch := aclDial(t, app, "mum")
	watch.subscribe("#")
	watch.subscribe("$SYS/#")
	denied := app.broker.Refused(broker.NotAuthorized)
	topics := []string{"$SYS/broker/uptime", "presence/dad", "rooms/parents/messages/kid"}
	for _, topic := range topics {
		for _, qos := range []string{"1", "2"} {
			start := time.Now()
			out, err := mosquittoPub(t, app.MQTTAddr(), "kid", password("kid"), "-q", qos, "-t", topic, "-m", aclPayload(topic))
			if err != nil || time.Since(start) > 5*time.Second {
				t.Errorf("mosquitto_pub -q %s on %s: err %v after %s: %s", qos, topic, err, time.Since(start), out)
			}
		}
	}
	waitFor(t, "the refusals to be counted", 5*time.Second, func() bool { return app.broker.Refused(broker.NotAuthorized)-denied == int64(2*len(topics)) })
	watch.mu.Lock()
	defer watch.mu.Unlock()
	for _, got := range watch.got {
		if slices.Contains(topics, got.Topic) && string(got.Payload) == aclPayload(got.Topic) {
			t.Errorf("a refused 3.1.1 publish on %s was delivered", got.Topic)
		}
	}
}

func TestACLMatrixSubscribe(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	table := []struct {
		filter string
		want   [5]bool // mum, dad, kid, kitchen, bridge
	}{
		{"rooms/family/messages/+", [5]bool{Y, Y, Y, Y, Y}},
		{"rooms/family/messages/{other}", [5]bool{Y, Y, Y, Y, Y}},
		{"rooms/parents/messages/+", [5]bool{Y, Y, N, N, Y}},
		{"rooms/parents/messages/{other}", [5]bool{Y, Y, N, N, Y}},
		// The bridge may subscribe to a room a reload has yet to add; it
		// receives only configured rooms (TestACLMatrixDelivery).
		{"rooms/nosuch/messages/+", [5]bool{N, N, N, N, Y}},
		{"rooms/family/typing/+", [5]bool{Y, Y, Y, Y, N}},
		{"rooms/parents/typing/+", [5]bool{Y, Y, N, N, N}},
		{"rooms/family/events/+", [5]bool{Y, Y, Y, Y, Y}},
		{"rooms/parents/events/+", [5]bool{Y, Y, N, N, Y}},
		{"rooms/nosuch/events/+", [5]bool{N, N, N, N, Y}},
		{"presence/+", [5]bool{Y, Y, Y, Y, N}},
		{"presence/{other}", [5]bool{Y, Y, Y, Y, N}},
		{"users/{me}/receipts", [5]bool{Y, Y, Y, Y, N}},
		{"users/{other}/receipts", [5]bool{N, N, N, N, N}},
		{"users/+/receipts", [5]bool{Y, Y, Y, Y, N}},
		{"$SYS/#", [5]bool{Y, N, N, N, N}},
		{"#", [5]bool{Y, Y, Y, Y, Y}},
		{"+/+/+/+", [5]bool{Y, Y, Y, Y, Y}},
		{"rooms/+/messages/+", [5]bool{Y, Y, Y, Y, Y}},
		{"rooms/parents/#", [5]bool{Y, Y, N, N, Y}},
		{"home/lights", [5]bool{Y, N, N, N, N}},
		{"home/#", [5]bool{Y, N, N, N, N}},
		{"rooms/family/reads/+", [5]bool{Y, Y, Y, Y, N}},
		{"rooms/family/reads/{other}", [5]bool{Y, Y, Y, Y, N}},
		{"rooms/parents/reads/+", [5]bool{Y, Y, N, N, N}},
		{"rooms/parents/reads/{other}", [5]bool{Y, Y, N, N, N}},
		{"rooms/+/reads/+", [5]bool{Y, Y, Y, Y, N}},
		{"rooms/nosuch/reads/+", [5]bool{N, N, N, N, N}},
		{"users/{me}/focus", [5]bool{N, N, N, N, N}},
		{"users/{other}/focus", [5]bool{N, N, N, N, N}},
		{"users/+/focus", [5]bool{N, N, N, N, N}},
	}
	cases := 0
	for i, subject := range aclSubjects {
		cl := aclDial(t, app, subject)
		for _, row := range table {
			filter := aclTopic(row.filter, subject)
			rc := cl.subscribe(filter)[0]
			want := byte(0x87)
			if row.want[i] {
				want = 1 // granted QoS 1
			}
			if rc != want {
				t.Errorf("%s subscribing to %s: reason %#x, want %#x", subject, filter, rc, want)
			}
			cases++
		}
	}
	t.Logf("%d subscribe cases", cases)
}

// TestACLMatrixDelivery: everyone subscribes to "#" (and mum to $SYS/#
// too); what each one then receives is exactly what the policy lets it
// read, whatever the filter matched.
func TestACLMatrixDelivery(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	clients := map[string]*client{}
	for _, subject := range aclSubjects {
		cl := aclDial(t, app, subject)
		cl.subscribe("#")
		if subject == "mum" {
			if rc := cl.subscribe("$SYS/#"); rc[0] != 1 {
				t.Fatalf("mum subscribing to $SYS/#: %#x", rc[0])
			}
		}
		clients[subject] = cl
	}
	mum, dad := clients["mum"], clients["dad"]
	mum.publish("rooms/family/messages/mum", 1, false, msg("d1", "family"))
	mum.publish("rooms/parents/messages/mum", 1, false, msg("d2", "parents"))
	mum.publish("rooms/family/typing/mum", 0, false, `{"typing":true}`)
	mum.publish("rooms/parents/typing/mum", 0, false, `{"typing":true}`)
	mum.publish("home/lights", 1, false, "on")
	mum.publish("rooms/family/events/mum", 1, false, aclPayload("rooms/family/events/mum"))
	mum.publish("rooms/family/reads/mum", 1, false, `{"seq":1}`)
	mum.publish("rooms/parents/reads/mum", 1, false, `{"seq":1}`)
	mum.publish("users/mum/focus", 0, false, `{"room":"family"}`)
	dad.publish("users/dad/focus", 1, false, `{"room":"parents"}`)
	dad.publish("rooms/family/messages/dad", 1, false, msg("d3", "from dad"))
	dad.next("users/dad/receipts")

	// Every receipt so far is published once mum has the receipt of a
	// marker; a second marker then follows everything in each queue.
	mum.publish("rooms/family/messages/mum", 1, false, msg("marker-1", "marker"))
	waitFor(t, "mum's receipt of the marker", 5*time.Second, func() bool {
		mum.mu.Lock()
		defer mum.mu.Unlock()
		return slices.ContainsFunc(mum.got, func(p *paho.Publish) bool {
			return p.Topic == "users/mum/receipts" && strings.Contains(string(p.Payload), `"marker-1"`)
		})
	})
	mum.publish("rooms/family/messages/mum", 1, false, msg("marker-2", "marker"))
	for _, subject := range aclSubjects {
		cl := clients[subject]
		waitFor(t, subject+" to get the last marker", 5*time.Second, func() bool {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			return slices.ContainsFunc(cl.got, func(p *paho.Publish) bool { return strings.Contains(string(p.Payload), "marker-2") })
		})
	}

	presence := []string{"presence/dad", "presence/kid", "presence/kitchen", "presence/mum"}
	want := map[string][]string{
		"mum": append([]string{"$SYS", "home/lights", "rooms/family/messages/dad", "rooms/family/messages/mum", "rooms/family/events/mum",
			"rooms/family/typing/mum", "rooms/parents/messages/mum", "rooms/parents/typing/mum", "users/mum/receipts",
			"rooms/family/reads/mum", "rooms/parents/reads/mum"}, presence...),
		"dad": append([]string{"rooms/family/messages/dad", "rooms/family/messages/mum", "rooms/family/typing/mum", "rooms/family/events/mum",
			"rooms/parents/messages/mum", "rooms/parents/typing/mum", "users/dad/receipts",
			"rooms/family/reads/mum", "rooms/parents/reads/mum"}, presence...),
		"kid":     append([]string{"rooms/family/messages/dad", "rooms/family/messages/mum", "rooms/family/typing/mum", "rooms/family/events/mum", "rooms/family/reads/mum"}, presence...),
		"kitchen": append([]string{"rooms/family/messages/dad", "rooms/family/messages/mum", "rooms/family/typing/mum", "rooms/family/events/mum", "rooms/family/reads/mum"}, presence...),
		"bridge":  {"rooms/family/messages/dad", "rooms/family/messages/mum", "rooms/parents/messages/mum", "rooms/family/events/mum"},
	}
	for _, subject := range aclSubjects {
		got := map[string]bool{}
		for _, tp := range clients[subject].topics() {
			if strings.HasPrefix(tp, "$SYS/") {
				tp = "$SYS"
			}
			got[tp] = true
		}
		var g []string
		for tp := range got {
			g = append(g, tp)
		}
		slices.Sort(g)
		w := slices.Sorted(slices.Values(want[subject]))
		if !slices.Equal(g, w) {
			t.Errorf("%s received on\n  %v\nwant\n  %v", subject, g, w)
		}
	}
}

func TestACLMatrixHTTP(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	tokens := map[string]string{"none": "", "forged": "not-a-token"}
	for _, u := range []string{"mum", "dad", "kid", "kitchen"} {
		tokens[u] = login(t, app, u)
	}
	subjects := []string{"mum", "dad", "kid", "kitchen", "none", "forged"}
	post := `{"text":"from the matrix"}`
	// Photos: one dad sent to family, one mum sent to parents, one mum
	// uploaded and never sent.
	photo := func(w int) string {
		var b bytes.Buffer
		jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, w, 8)), nil)
		return b.String()
	}
	upload := func(user, room string, w int) string {
		var att struct{ ID string }
		if code := httpDo(t, "POST", "http://"+app.HTTPAddr()+"/api/rooms/"+room+"/attachments", tokens[user], photo(w), &att); code != 201 {
			t.Fatalf("%s uploading to %s: %d", user, room, code)
		}
		return att.ID
	}
	famPhoto, parPhoto, unsent := upload("dad", "family", 9), upload("mum", "parents", 10), upload("mum", "family", 11)
	if _, err := app.store.Append([]hearth.Message{
		{ID: "p1", Room: "family", From: "dad", Attachments: []string{famPhoto}},
		{ID: "p2", Room: "parents", From: "mum", Attachments: []string{parPhoto}},
	}); err != nil {
		t.Fatal(err)
	}
	jpg := photo(12)
	sub, _ := json.Marshal(newSubscriber(t, "https://push.example/matrix").json())
	unsub := `{"endpoint":"https://push.example/matrix"}`
	mute := `{"muted":true}`
	table := []struct {
		method, path, body string
		want               [6]int // mum, dad, kid, kitchen, no token, forged token
	}{
		{"GET", "/api/rooms", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"GET", "/api/rooms/family/messages", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"GET", "/api/rooms/parents/messages", "", [6]int{200, 200, 403, 403, 401, 401}},
		{"GET", "/api/rooms/nosuch/messages", "", [6]int{404, 404, 404, 404, 401, 401}},
		{"POST", "/api/rooms/family/messages", post, [6]int{202, 202, 202, 403, 401, 401}},
		{"POST", "/api/rooms/parents/messages", post, [6]int{202, 202, 403, 403, 401, 401}},
		{"POST", "/api/rooms/nosuch/messages", post, [6]int{404, 404, 404, 404, 401, 401}},
		{"GET", "/api/rooms/family/search?q=matrix", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"GET", "/api/rooms/parents/search?q=matrix", "", [6]int{200, 200, 403, 403, 401, 401}},
		{"GET", "/api/rooms/nosuch/search?q=matrix", "", [6]int{404, 404, 404, 404, 401, 401}},
		{"GET", "/api/rooms/family/search", "", [6]int{400, 400, 400, 400, 401, 401}},
		{"POST", "/api/token", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"GET", "/api/backup", "", [6]int{200, 403, 403, 403, 401, 401}},
		{"GET", "/api/push/key", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"POST", "/api/push/subscriptions", string(sub), [6]int{201, 201, 201, 201, 401, 401}},
		{"DELETE", "/api/push/subscriptions", unsub, [6]int{204, 204, 204, 204, 401, 401}},
		{"DELETE", "/api/push/subscriptions", unsub, [6]int{404, 404, 404, 404, 401, 401}},
		{"PUT", "/api/rooms/family/mute", mute, [6]int{200, 200, 200, 200, 401, 401}},
		{"PUT", "/api/rooms/parents/mute", mute, [6]int{200, 200, 403, 403, 401, 401}},
		{"PUT", "/api/rooms/nosuch/mute", mute, [6]int{404, 404, 404, 404, 401, 401}},
		{"GET", "/api/devices", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"DELETE", "/api/devices/nosuch", "", [6]int{404, 404, 404, 404, 401, 401}},
		{"GET", "/api/nosuch", "", [6]int{404, 404, 404, 404, 404, 404}},
		{"POST", "/api/rooms/family/attachments", jpg, [6]int{201, 201, 201, 403, 401, 401}},
		{"POST", "/api/rooms/parents/attachments", jpg, [6]int{201, 201, 403, 403, 401, 401}},
		{"POST", "/api/rooms/nosuch/attachments", jpg, [6]int{404, 404, 404, 404, 401, 401}},
		{"GET", "/api/attachments/" + famPhoto, "", [6]int{200, 200, 200, 200, 401, 401}},
		{"GET", "/api/attachments/" + famPhoto + "/thumb", "", [6]int{200, 200, 200, 200, 401, 401}},
		{"GET", "/api/attachments/" + parPhoto, "", [6]int{200, 200, 404, 404, 401, 401}},
		{"GET", "/api/attachments/" + parPhoto + "/thumb", "", [6]int{200, 200, 404, 404, 401, 401}},
		{"GET", "/api/attachments/" + unsent, "", [6]int{200, 404, 404, 404, 401, 401}},
		{"GET", "/api/attachments/" + unsent + "/thumb", "", [6]int{200, 404, 404, 404, 401, 401}},
		{"GET", "/api/attachments/" + strings.Repeat("0", 64), "", [6]int{404, 404, 404, 404, 401, 401}},
		{"GET", "/", "", [6]int{200, 200, 200, 200, 200, 200}},
		{"GET", "/healthz", "", [6]int{200, 200, 200, 200, 200, 200}},
		{"GET", "/readyz", "", [6]int{200, 200, 200, 200, 200, 200}},
		{"GET", "/metrics", "", [6]int{200, 403, 403, 403, 401, 401}},
	}
	cases := 0
	for _, row := range table {
		for i, subject := range subjects {
			code := httpDo(t, row.method, "http://"+app.HTTPAddr()+row.path, tokens[subject], row.body, nil)
			if code != row.want[i] {
				t.Errorf("%s %s as %s: %d, want %d", row.method, row.path, subject, code, row.want[i])
			}
			cases++
		}
	}

	// Which rooms each one sees, and where it may write.
	for u, want := range map[string]string{
		"mum": "family:true parents:true", "dad": "family:true parents:true",
		"kid": "family:true", "kitchen": "family:false",
	} {
		var rooms []struct {
			Name     string `json:"name"`
			CanWrite bool   `json:"can_write"`
		}
		httpDo(t, "GET", "http://"+app.HTTPAddr()+"/api/rooms", tokens[u], "", &rooms)
		var got []string
		for _, r := range rooms {
			got = append(got, fmt.Sprintf("%s:%v", r.Name, r.CanWrite))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s's rooms: %v, want %s", u, got, want)
		}
		cases++
	}
	t.Logf("%d HTTP cases", cases)
	if code := httpDo(t, "GET", "http://"+app.HTTPAddr()+"/api/rooms", tokens["mum"]+"x", "", nil); code != http.StatusUnauthorized {
		t.Errorf("a token with a spoiled signature: %d", code)
	}
}
