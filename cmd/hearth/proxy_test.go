package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
)

// testCert writes a self-signed certificate for 127.0.0.1, ::1 and
// localhost (and its key) into dir, and returns the files and a pool that
// trusts it.
func testCert(t *testing.T, dir string) (hearth.CertFiles, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "hearth test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := hearth.CertFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	writeFile(t, f.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, f.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return f, pool
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wsOpts are how dialWS connects.
type wsOpts struct {
	user, password string // password default: the user's
	tls            *tls.Config
	localIP        string // dial from this loopback address
	origin         string
	keepAlive      uint16
}

// wsMQTT is an MQTT 5 client (autopaho, which speaks WebSocket through
// gorilla) and what it receives.
type wsMQTT struct {
	cm   *autopaho.ConnectionManager
	recv chan *paho.Publish
}

// dialWS connects over MQTT on WebSocket at rawURL (ws:// or wss://) and
// returns the client, or the first connection error (a refused CONNACK is
// an *autopaho.ConnackError).
func dialWS(t *testing.T, rawURL string, o wsOpts) (*wsMQTT, error) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	if o.password == "" {
		o.password = password(o.user)
	}
	if o.keepAlive == 0 {
		o.keepAlive = 30
	}
	ctx, cancel := context.WithCancel(context.Background())
	up, failed := make(chan struct{}, 1), make(chan error, 1)
	c := &wsMQTT{recv: make(chan *paho.Publish, 100)}
	var err error
	c.cm, err = autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:       []*url.URL{u},
		TlsCfg:           o.tls,
		KeepAlive:        o.keepAlive,
		ConnectUsername:  o.user,
		ConnectPassword:  []byte(o.password),
		ReconnectBackoff: func(n int) time.Duration { return time.Duration(min(n, 1)) * time.Hour },
		WebSocketCfg: &autopaho.WebSocketConfig{
			Dialer: func(_ *url.URL, tc *tls.Config) *websocket.Dialer {
				d := &net.Dialer{Timeout: 5 * time.Second}
				if o.localIP != "" {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.localIP)}
				}
				return &websocket.Dialer{NetDialContext: d.DialContext, TLSClientConfig: tc, Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
			},
			Header: func(*url.URL, *tls.Config) http.Header {
				h := http.Header{}
				if o.origin != "" {
					h.Set("Origin", o.origin)
				}
				return h
			},
		},
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) { up <- struct{}{} },
		OnConnectError: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: fmt.Sprintf("%s-ws-%d", o.user, time.Now().UnixNano()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				c.recv <- pr.Packet
				return true, nil
			}},
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop := func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		c.cm.Disconnect(dctx)
		cancel()
	}
	select {
	case <-up:
		t.Cleanup(stop)
		return c, nil
	case err := <-failed:
		stop()
		return nil, err
	case <-time.After(10 * time.Second):
		stop()
		return nil, errors.New("no connection within 10 s")
	}
}

func (c *wsMQTT) publish(t *testing.T, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatalf("publish %s over websocket: %v", topic, err)
	}
}

func (c *wsMQTT) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe %s over websocket: %v", filter, err)
	}
}

func (c *wsMQTT) next(t *testing.T, topic string) *paho.Publish {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case p := <-c.recv:
			if p.Topic == topic {
				return p
			}
		case <-timeout:
			t.Fatalf("no message on %s within 5 s over websocket", topic)
		}
	}
}

// wsChat checks that a WebSocket client and a TCP one hear each other.
func wsChat(t *testing.T, app *App, ws *wsMQTT, wsUser, text string) {
	t.Helper()
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	kid.subscribe("rooms/family/messages/+")
	ws.subscribe(t, "rooms/family/messages/kid")
	ws.publish(t, "rooms/family/messages/"+wsUser, msg(fmt.Sprintf("w%d", time.Now().UnixNano()), text))
	if p := kid.next("rooms/family/messages/" + wsUser); !strings.Contains(string(p.Payload), text) {
		t.Fatalf("kid got %s, want %q", p.Payload, text)
	}
	kid.publish("rooms/family/messages/kid", 1, false, msg(fmt.Sprintf("k%d", time.Now().UnixNano()), "back to "+wsUser))
	if p := ws.next(t, "rooms/family/messages/kid"); !strings.Contains(string(p.Payload), "back to") {
		t.Fatalf("%s got %s", wsUser, p.Payload)
	}
}

// TestHTTPS: with http.tls, the page, the API, /mqtt (wss) and hearth
// backup work over HTTPS, with a client that trusts only that certificate;
// a bad pair stops the start with the key named.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	files, pool := testCert(t, dir)
	cfg.HTTP.TLS = files
	app := startApp(t, cfg)
	base := "https://" + app.HTTPAddr()
	if !strings.HasPrefix(app.URL(), "https://127.0.0.1:") {
		t.Errorf("URL %s, want https", app.URL())
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}

	resp, err := hc.Get(base + "/")
	if err != nil {
		t.Fatalf("GET / over https: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("<html")) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET / over https: %d %q", resp.StatusCode, body[:min(len(body), 100)])
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("GET / over %s, want HTTP/2 over TLS", resp.Proto)
	}
	var lr struct{ Token string }
	resp, err = hc.Post(base+"/api/login", "application/json", strings.NewReader(`{"username":"dad","password":"`+password("dad")+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	if resp.StatusCode != 200 || lr.Token == "" {
		t.Fatalf("login over https: %d", resp.StatusCode)
	}

	// The certificate is checked: a client that does not trust it fails.
	if _, err := http.Get(base + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the certificate: %v, want a certificate error", err)
	}
	// Plain HTTP on the HTTPS port is refused.
	if code := httpDo(t, "GET", "http://"+app.HTTPAddr()+"/healthz", "", "", nil); code != http.StatusBadRequest {
		t.Errorf("plain http to the https port: %d, want 400", code)
	}

	ws, err := dialWS(t, "wss://"+app.HTTPAddr()+"/mqtt", wsOpts{user: "dad", password: lr.Token, tls: &tls.Config{RootCAs: pool}, origin: "https://localhost:" + portOf(app.HTTPAddr())})
	if err != nil {
		t.Fatalf("mqtt over wss: %v", err)
	}
	wsChat(t, app, ws, "dad", "over wss")
	if _, err := dialWS(t, "wss://"+app.HTTPAddr()+"/mqtt", wsOpts{user: "dad", password: lr.Token, tls: &tls.Config{RootCAs: pool}, origin: "http://localhost:" + portOf(app.HTTPAddr())}); err == nil {
		t.Error("wss with an http:// origin was allowed")
	}

	// hearth backup asks the running server over HTTPS.
	var buf bytes.Buffer
	cfg.HTTP.Addr = app.HTTPAddr()
	if how, err := backupFromServer(context.Background(), cfg, &buf); err != nil || buf.Len() == 0 {
		t.Fatalf("backup over https: %q, %v (%d bytes)", how, err, buf.Len())
	}

	// Bad files: hearth does not start, and says which key.
	other, _ := testCert(t, t.TempDir())
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not a certificate"))
	for _, c := range []struct {
		name  string
		files hearth.CertFiles
		want  string
	}{
		{"missing cert", hearth.CertFiles{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: files.KeyFile}, "http.tls.cert_file: open "},
		{"missing key", hearth.CertFiles{CertFile: files.CertFile, KeyFile: filepath.Join(dir, "nope.pem")}, "http.tls.key_file: open "},
		{"key of another cert", hearth.CertFiles{CertFile: files.CertFile, KeyFile: other.KeyFile}, "http.tls: cert_file " + files.CertFile + " and key_file " + other.KeyFile + " are not a certificate and its key"},
		{"not PEM", hearth.CertFiles{CertFile: garbage, KeyFile: files.KeyFile}, "http.tls: cert_file " + garbage},
	} {
		bad := testConfig(t, t.TempDir())
		bad.HTTP.TLS = c.files
		a, err := Start(bad, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			a.Close(context.Background())
			t.Errorf("%s: started", c.name)
			continue
		}
		var ce *hearth.ConfigError
		if !strings.Contains(err.Error(), c.want) || !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a ConfigError with %q", c.name, err, c.want)
		}
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestOriginCheck: /mqtt and CORS allow the page's origins (loopback ones
// without http.public_url, its origin with it) and http.allowed_origins,
// whatever the Host header says; DNS rebinding, where a hostile name
// resolves to hearth and Host matches Origin, is refused.
func TestOriginCheck(t *testing.T) {
	loop := startApp(t, testConfig(t, t.TempDir()))
	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.PublicURL = "https://chat.example.org"
	cfg.HTTP.AllowedOrigins = []string{"http://localhost:5173"}
	public := startApp(t, cfg)

	refused := map[*App]int64{} // the 403s of each, counted as origin_not_allowed
	for _, c := range []struct {
		app          *App
		origin, host string // host "" is the address dialled
		want         int
	}{
		{loop, "http://evil.example:" + portOf(loop.HTTPAddr()), "evil.example:" + portOf(loop.HTTPAddr()), http.StatusForbidden}, // DNS rebinding
		{loop, "http://evil.example", "", http.StatusForbidden},
		{loop, "http://127.0.0.1:" + portOf(loop.HTTPAddr()), "", http.StatusSwitchingProtocols},
		{loop, "http://localhost:" + portOf(loop.HTTPAddr()), "localhost:" + portOf(loop.HTTPAddr()), http.StatusSwitchingProtocols},
		{loop, "http://[::1]:" + portOf(loop.HTTPAddr()), "", http.StatusSwitchingProtocols},
		{loop, "http://127.0.0.1:1", "", http.StatusForbidden},
		{loop, "", "", http.StatusSwitchingProtocols}, // not a browser
		{public, "https://chat.example.org", "chat.example.org", http.StatusSwitchingProtocols},
		{public, "https://chat.example.org", "", http.StatusSwitchingProtocols}, // a proxy that changes Host
		{public, "http://localhost:5173", "", http.StatusSwitchingProtocols},
		{public, "http://chat.example.org", "chat.example.org", http.StatusForbidden},
		{public, "http://127.0.0.1:" + portOf(public.HTTPAddr()), "", http.StatusForbidden},
		{public, "http://evil.example:" + portOf(public.HTTPAddr()), "evil.example:" + portOf(public.HTTPAddr()), http.StatusForbidden},
	} {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		if c.host != "" {
			h.Set("Host", c.host) // gorilla sends it as the request's Host
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial("ws://"+c.app.HTTPAddr()+"/mqtt", h)
		if resp == nil {
			t.Fatalf("origin %q: %v", c.origin, err)
		}
		if resp.StatusCode != c.want {
			t.Errorf("origin %q host %q: status %d, want %d", c.origin, c.host, resp.StatusCode, c.want)
		}
		if resp.StatusCode == http.StatusForbidden {
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "http.public_url") {
				t.Errorf("403 says %q, want it to name http.public_url", b)
			}
			refused[c.app]++
		}
		if conn != nil {
			conn.Close()
		}

		// CORS on the API follows the same list.
		req, _ := http.NewRequest("OPTIONS", "http://"+c.app.HTTPAddr()+"/api/rooms", nil)
		req.Header = h.Clone()
		if c.host != "" {
			req.Host = c.host
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		wantCORS := ""
		if c.want == http.StatusSwitchingProtocols {
			wantCORS = c.origin
		}
		if acao != wantCORS {
			t.Errorf("CORS for origin %q host %q: Access-Control-Allow-Origin %q", c.origin, c.host, acao)
		}
	}
	for app, n := range refused {
		if got := app.broker.Refused(broker.OriginNotAllowed); got != n {
			t.Errorf("origin_not_allowed counted %d, want %d", got, n)
		}
	}
}

// TestHTTPTimeouts: a request body that trickles in is cut off at
// http.timeouts.read with 408, while a WebSocket stays up idle for longer
// than the read and write timeouts.
func TestHTTPTimeouts(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.Timeouts.Read = hearth.Duration(time.Second)
	cfg.HTTP.Timeouts.Write = hearth.Duration(1500 * time.Millisecond) // the 408 must still go out
	app := startApp(t, cfg)

	conn, err := net.DialTimeout("tcp", app.HTTPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The body so far is the start of a valid JSON string, so that the
	// handler keeps reading until the timeout cuts it off.
	fmt.Fprintf(conn, "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":\"")
	start := time.Now()
	answer := make(chan *http.Response, 1)
	go func() {
		resp, _ := http.ReadResponse(bufio.NewReader(conn), nil)
		answer <- resp
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var resp *http.Response
	answered := false
	for sent := 0; !answered; sent++ {
		if time.Since(start) > 8*time.Second {
			t.Fatalf("a body sent one byte a second is still being read after %s (%d bytes)", time.Since(start).Round(time.Second), sent)
		}
		if _, err := conn.Write([]byte("a")); err != nil {
			t.Logf("write after %s: %v", time.Since(start), err)
			break // the server has hung up
		}
		select {
		case resp = <-answer:
			answered = true
		case <-tick.C:
		}
	}
	if !answered {
		resp = <-answer
	}
	took := time.Since(start)
	if resp == nil {
		t.Fatalf("slow body: no answer after %s, want 408", took)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: %d %s after %s, want 408", resp.StatusCode, b, took)
	}
	if took < time.Second || took > 5*time.Second {
		t.Errorf("slow body cut off after %s, want about 1 s", took)
	}
	if !strings.Contains(string(b), "http.timeouts.read") {
		t.Errorf("408 says %q", b)
	}

	// A WebSocket idle for longer than both timeouts keeps working.
	ws, err := dialWS(t, "ws://"+app.HTTPAddr()+"/mqtt", wsOpts{user: "dad", keepAlive: 60})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // idle is the point
	wsChat(t, app, ws, "dad", "after a quiet while")
	// And ordinary requests still work.
	if code := api(t, app, "GET", "/healthz", "", nil, nil); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

// TestBadPaths: nasty paths get a 4xx (or a redirect to a clean path),
// never a 500, from the real server, and never a file outside the page.
func TestBadPaths(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	tok := login(t, app, "dad")
	long := strings.Repeat("a", 8000)
	for _, c := range []struct {
		path string
		want int // 0: any 3xx or 4xx
	}{
		{"/%c0%ae%c0%ae/etc/passwd", 400},
		{"/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", 400},
		{"/%c0%af", 400},
		{"/%e0%80%ae%e0%80%ae/etc/passwd", 400},
		{"/%f0%80%80%af", 400},
		{"/%ff%fe", 400},
		{"/index.html%c0", 400},
		{"/%ed%a0%80", 400}, // a UTF-16 surrogate
		{"/../../etc/passwd", 0},
		{"/..%2f..%2fetc%2fpasswd", 404},
		{"/%2e%2e/%2e%2e/etc/passwd", 0},
		{"/%252e%252e/%252e%252e/etc/passwd", 404},
		{"/%252e%252e%252fetc%252fpasswd", 404},
		{"/%00", 404},
		{"/index.html%00", 404},
		{"/index.html%00.js", 404},
		{"/%2500", 404},
		{"//etc/passwd", 0},
		{"/.%2e/", 404}, // "/../": only the page's own names are served
		{"/\\..\\..\\etc\\passwd", 404},
		{"/%5c..%5c..%5cetc%5cpasswd", 404},
		{"/" + long, 404},
		{"/" + strings.Repeat("a/", 4000), 404},
		{"/" + strings.Repeat("b", 70000), 431},
		{"/%", 400},
		{"/%zz", 400},
		{"/index.html/", 0},
		{"/api/rooms/%c0%ae/messages", 400},
		{"/api/rooms/%ff/messages", 400},
		{"/api/rooms/%00/messages", 400},
		{"/api/rooms/..%2f..%2fetc/messages", 400},
		{"/api/rooms/%2e%2e/messages", 0},
		{"/api/rooms/" + long + "/messages", 400},
		{"/api/rooms/family/messages?before=%c0%ae", 400},
		{"/api/rooms/family/messages?limit=%00", 400},
		{"/api/%c0%ae", 404},
		{"/api/" + long, 404},
		{"/mqtt%00", 404},
		{"/healthz%c0%ae", 400},
	} {
		conn, err := net.DialTimeout("tcp", app.HTTPAddr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", c.path, app.HTTPAddr(), tok)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		name := c.path[:min(len(c.path), 60)]
		if err != nil {
			t.Errorf("GET %s: %v", name, err)
			conn.Close()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		switch {
		case resp.StatusCode >= 500:
			t.Errorf("GET %s: %d %q", name, resp.StatusCode, b)
		case c.want == 0 && (resp.StatusCode < 300 || resp.StatusCode > 499):
			t.Errorf("GET %s: %d, want a redirect or a 4xx", name, resp.StatusCode)
		case c.want != 0 && resp.StatusCode != c.want:
			t.Errorf("GET %s: %d %q, want %d", name, resp.StatusCode, b, c.want)
		case bytes.Contains(b, []byte("root:")):
			t.Errorf("GET %s: served /etc/passwd", name)
		}
	}
}

// TestClientAddress: behind a trusted proxy, the login limiter counts the
// address X-Forwarded-For names; from anyone else, that header is ignored.
func TestClientAddress(t *testing.T) {
	exhaust := func(t *testing.T, app *App, xff string) {
		t.Helper()
		for i := 0; ; i++ {
			code := loginVia(t, app, fmt.Sprintf("ghost%d", i), "wrong", xff)
			if code == http.StatusTooManyRequests {
				return
			}
			if code != http.StatusUnauthorized || i > 30 {
				t.Fatalf("failed login %d from %s: %d", i, xff, code)
			}
		}
	}
	t.Run("trusted", func(t *testing.T) {
		cfg := testConfig(t, t.TempDir())
		cfg.HTTP.TrustedProxies = []string{"127.0.0.0/8"}
		app := startApp(t, cfg)
		exhaust(t, app, "198.51.100.1")
		if code := loginVia(t, app, "dad", password("dad"), "198.51.100.1"); code != http.StatusTooManyRequests {
			t.Errorf("right password from the blocked address: %d, want 429", code)
		}
		if code := loginVia(t, app, "dad", password("dad"), "198.51.100.2"); code != 200 {
			t.Errorf("login from another client behind the proxy: %d, want 200", code)
		}
		// A client that writes its own X-Forwarded-For before the proxy's
		// entry gains nothing.
		if code := loginVia(t, app, "dad", password("dad"), "203.0.113.9, 198.51.100.1"); code != http.StatusTooManyRequests {
			t.Errorf("spoofed entry left of the blocked address: %d, want 429", code)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		app := startApp(t, testConfig(t, t.TempDir()))
		exhaust(t, app, "198.51.100.1")
		if code := loginVia(t, app, "dad", password("dad"), "198.51.100.2"); code != http.StatusTooManyRequests {
			t.Errorf("a new X-Forwarded-For from an untrusted peer: %d, want 429 (the header must be ignored)", code)
		}
	})
}

// loginVia logs in with an X-Forwarded-For header and returns the status.
func loginVia(t *testing.T, app *App, user, pw, xff string) int {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	req, _ := http.NewRequest("POST", "http://"+app.HTTPAddr()+"/api/login", bytes.NewReader(b))
	req.Header.Set("X-Forwarded-For", xff)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
