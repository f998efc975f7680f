package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// testUsers are the users of every end-to-end test; each one's password
// is password(name).
var testUsers = []mqtttest.User{{Name: "mum", Role: "admin"}, {Name: "dad", Role: "member"}, {Name: "kid", Role: "member"}, {Name: "kitchen", Role: "device"}}

var password = mqtttest.Password

// testConfig returns a config on 127.0.0.1:0 ports with data in dir.
func testConfig(t *testing.T, dir string) hearth.Config {
	t.Helper()
	cfg, err := hearth.ParseConfig(strings.NewReader(mqtttest.ConfigYAML(dir, testUsers)))
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// startApp starts hearth on cfg and waits until it is ready.
func startApp(t *testing.T, cfg hearth.Config, tune ...func(*broker.Config)) *App {
	t.Helper()
	return startAppLog(t, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), tune...)
}

// startAppLog is startApp with its own logger.
func startAppLog(t *testing.T, cfg hearth.Config, log *slog.Logger, tune ...func(*broker.Config)) *App {
	t.Helper()
	app, err := Start(cfg, log, tune...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	waitFor(t, "ready", 10*time.Second, app.Ready)
	return app
}

// buildHearth builds the hearth binary into dir and returns its path.
func buildHearth(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "hearth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client is a real paho MQTT 5 client that records what it receives.
type client struct {
	t    *testing.T
	c    *paho.Client
	mu   sync.Mutex
	got  []*paho.Publish
	recv chan *paho.Publish
	gone chan *paho.Disconnect // a DISCONNECT from the server
}

type connectOpts struct {
	clientID      string
	password      string // default: the user's password
	noAuth        bool
	cleanStart    bool
	sessionExpiry uint32
	will          *paho.WillMessage
	recvBuffer    int  // messages received and not yet read; default 100,000
	manual        bool // the test closes the client itself: no cleanup keeps it
}

// dial connects user over MQTT 5 and returns the client, or the CONNACK
// error.
func dial(t *testing.T, addr, user string, o connectOpts) (*client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if o.recvBuffer == 0 {
		o.recvBuffer = 100000
	}
	cl := &client{t: t, recv: make(chan *paho.Publish, o.recvBuffer), gone: make(chan *paho.Disconnect, 1)}
	if o.clientID == "" {
		o.clientID = fmt.Sprintf("%s-%d", user, time.Now().UnixNano())
	}
	cl.c = paho.NewClient(paho.ClientConfig{
		ClientID: o.clientID,
		Conn:     conn,
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case cl.gone <- d:
			default:
			}
		},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cl.mu.Lock()
			cl.got = append(cl.got, pr.Packet)
			cl.mu.Unlock()
			cl.recv <- pr.Packet
			return true, nil
		}},
	})
	cp := &paho.Connect{KeepAlive: 30, ClientID: o.clientID, CleanStart: o.cleanStart || o.sessionExpiry == 0, WillMessage: o.will}
	if !o.noAuth {
		cp.Username, cp.UsernameFlag = user, true
		pw := o.password
		if pw == "" {
			pw = password(user)
		}
		cp.Password, cp.PasswordFlag = []byte(pw), true
	}
	if o.sessionExpiry > 0 {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &o.sessionExpiry}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	if !o.manual {
		t.Cleanup(func() { cl.close() })
	}
	return cl, ca, nil
}

// mustDial connects or fails the test.
func mustDial(t *testing.T, addr, user string, o connectOpts) *client {
	t.Helper()
	cl, ca, err := dial(t, addr, user, o)
	if err != nil {
		t.Fatalf("connect %s: %v (connack %+v)", user, err, ca)
	}
	return cl
}

func (cl *client) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = cl.c.Disconnect(&paho.Disconnect{})
	<-ctxDone(ctx, cl.c.Done())
}

func ctxDone(ctx context.Context, ch <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		select {
		case <-ch:
		case <-ctx.Done():
		}
		close(out)
	}()
	return out
}

func (cl *client) subscribe(filters ...string) []byte {
	cl.t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := cl.c.Subscribe(ctx, s)
	if sa == nil {
		cl.t.Fatalf("subscribe %v: %v", filters, err)
	}
	return sa.Reasons
}

// publish publishes and returns the PUBACK reason code (0 for QoS 0).
func (cl *client) publish(topic string, qos byte, retain bool, payload string) byte {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := cl.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if pr != nil {
		return pr.ReasonCode
	}
	if err != nil {
		cl.t.Fatalf("publish %s: %v", topic, err)
	}
	return 0
}

// next waits for the next message on topic (others are skipped).
// receipts reads the user's receipts until they confirm n messages, and
// returns their items by message id. It fails on a receipt that is not
// for room, and on an id confirmed twice.
func (cl *client) receipts(user, room string, n int) map[string]hearth.ReceiptItem {
	cl.t.Helper()
	items := map[string]hearth.ReceiptItem{}
	for len(items) < n {
		var r hearth.Receipt
		p := cl.next(hearth.ReceiptsTopic(user))
		if err := json.Unmarshal(p.Payload, &r); err != nil || r.Room != room || len(r.Items) == 0 {
			cl.t.Fatalf("receipt %s (%v), want items of room %s", p.Payload, err, room)
		}
		for _, it := range r.Items {
			if _, dup := items[it.ID]; dup {
				cl.t.Fatalf("receipt %s confirms %s again", p.Payload, it.ID)
			}
			items[it.ID] = it
		}
	}
	return items
}

func (cl *client) next(topic string) *paho.Publish {
	cl.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case p := <-cl.recv:
			if p.Topic == topic {
				return p
			}
		case <-timeout:
			cl.t.Fatalf("no message on %s within 5s", topic)
		}
	}
}

// topics returns the topics of everything received so far.
func (cl *client) topics() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []string
	for _, p := range cl.got {
		out = append(out, p.Topic)
	}
	return out
}

func msg(id, text string) string {
	b, _ := json.Marshal(hearth.Payload{ID: id, Text: text})
	return string(b)
}

// api calls the HTTP API and decodes a JSON answer into out (if not nil).
func api(t *testing.T, app *App, method, path, token string, body any, out any) int {
	t.Helper()
	b := ""
	if body != nil {
		j, _ := json.Marshal(body)
		b = string(j)
	}
	return httpDo(t, method, "http://"+app.HTTPAddr()+path, token, b, out)
}

// httpDo sends a request with an optional bearer token and JSON body, and
// decodes a JSON answer into out (if not nil).
func httpDo(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

func login(t *testing.T, app *App, user string) string {
	t.Helper()
	var r struct{ Token string }
	if code := api(t, app, "POST", "/api/login", "", map[string]string{"username": user, "password": password(user)}, &r); code != 200 {
		t.Fatalf("login %s: status %d", user, code)
	}
	return r.Token
}

type page struct {
	Messages []hearth.Message `json:"messages"`
	HasMore  bool             `json:"has_more"`
}

func readHistory(t *testing.T, app *App, user, room, query string) page {
	t.Helper()
	var p page
	if code := api(t, app, "GET", "/api/rooms/"+room+"/messages"+query, login(t, app, user), nil, &p); code != 200 {
		t.Fatalf("history %s: status %d", room, code)
	}
	return p
}

var (
	needTool = mqtttest.NeedTool
	hostPort = mqtttest.HostPort
	waitFor  = mqtttest.WaitFor
	freePort = mqtttest.FreePort
)

type mosqSub = mqtttest.MosquittoSub

// mosquittoPub publishes with Debian's mosquitto_pub (MQTT 3.1.1 unless
// args say otherwise) and returns its combined output and error.
func mosquittoPub(t *testing.T, addr, user, pw string, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "mosquitto_pub", "mosquitto-clients")
	h, p := hostPort(t, addr)
	all := append([]string{"-h", h, "-p", p, "-u", user, "-P", pw, "-V", "mqttv311"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	return string(out), err
}

// mosquittoSub starts Debian's mosquitto_sub and waits for its SUBACK.
// Its lines() are the messages it printed so far ("topic payload").
func mosquittoSub(t *testing.T, addr, user string, args ...string) *mosqSub {
	t.Helper()
	return startMosquittoSub(t, addr, user, "mqttv311", args)
}

// mosquittoSubV5 is mosquittoSub over MQTT 5 (Receive Maximum 20).
func mosquittoSubV5(t *testing.T, addr, user string, args ...string) *mosqSub {
	t.Helper()
	return startMosquittoSub(t, addr, user, "mqttv5", args)
}

func startMosquittoSub(t *testing.T, addr, user, version string, args []string) *mosqSub {
	t.Helper()
	return runMosquittoSub(t, addr, version, append([]string{"-u", user, "-P", password(user)}, args...))
}

// runMosquittoSub starts mosquitto_sub with args and waits for its SUBACK.
func runMosquittoSub(t *testing.T, addr, version string, args []string) *mosqSub {
	t.Helper()
	return mqtttest.StartMosquittoSub(t, addr, version, args)
}
