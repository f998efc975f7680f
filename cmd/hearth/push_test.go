package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-home/hearth/push"
)

// pushCert is the certificate of the tests' push services, trusted
// through SSL_CERT_FILE: Go reads that file once, at the first use of the
// system's roots, so TestMain sets it before any test runs.
var pushCert tls.Certificate

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hearth-push-ca")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "push service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	certFile := filepath.Join(dir, "push.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	pushCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	os.Setenv("SSL_CERT_FILE", certFile)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pushService is a push service on loopback over HTTPS: it records every
// request and answers each path with the status set for it (201 unless
// told otherwise).
type pushService struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []pushRequest
	status map[string]int
}

type pushRequest struct {
	path   string
	header http.Header
	body   []byte
}

func newPushService(t *testing.T) *pushService {
	ps := &pushService{status: map[string]int{}}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ps.mu.Lock()
		ps.got = append(ps.got, pushRequest{r.URL.Path, r.Header.Clone(), b})
		st, ok := ps.status[r.URL.Path]
		ps.mu.Unlock()
		if !ok {
			st = http.StatusCreated
		}
		w.WriteHeader(st)
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pushCert}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *pushService) requests(path string) []pushRequest {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []pushRequest
	for _, r := range ps.got {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

func (ps *pushService) setStatus(path string, code int) {
	ps.mu.Lock()
	ps.status[path] = code
	ps.mu.Unlock()
}

// subscriber is a browser's side of a push subscription: its own key
// pair and auth secret.
type subscriber struct {
	endpoint string
	key      *ecdh.PrivateKey
	auth     []byte
}

func newSubscriber(t *testing.T, endpoint string) *subscriber {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return &subscriber{endpoint: endpoint, key: k, auth: auth}
}

func (s *subscriber) json() map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{"endpoint": s.endpoint, "expirationTime": nil,
		"keys": map[string]string{"p256dh": b64(s.key.PublicKey().Bytes()), "auth": b64(s.auth)}}
}

// hkdf is RFC 5869 for one block (up to 32 bytes), as RFC 8291 uses it.
func hkdf(salt, ikm, info []byte, n int) []byte {
	ext := hmac.New(sha256.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	exp := hmac.New(sha256.New, prk)
	exp.Write(info)
	exp.Write([]byte{1})
	return exp.Sum(nil)[:n]
}

// decrypt opens an aes128gcm body (RFC 8188) sent to s (RFC 8291).
func (s *subscriber) decrypt(t *testing.T, body []byte) []byte {
	t.Helper()
	if len(body) < 21 {
		t.Fatalf("body of %d bytes: no aes128gcm header", len(body))
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen+17 {
		t.Fatalf("keyid of %d bytes, want the 65 of as_public", idlen)
	}
	asPublic, ct := body[21:21+idlen], body[21+idlen:]
	if uint32(len(ct)) > rs {
		t.Fatalf("one record of %d bytes is over the record size %d", len(ct), rs)
	}
	as, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		t.Fatalf("as_public: %v", err)
	}
	secret, err := s.key.ECDH(as)
	if err != nil {
		t.Fatal(err)
	}
	info := append(append([]byte("WebPush: info\x00"), s.key.PublicKey().Bytes()...), asPublic...)
	ikm := hkdf(s.auth, secret, info, 32)
	cek := hkdf(salt, ikm, []byte("Content-Encoding: aes128gcm\x00"), 16)
	nonce := hkdf(salt, ikm, []byte("Content-Encoding: nonce\x00"), 12)
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		t.Fatalf("the last record does not end with the delimiter 2")
	}
	return plain[:len(plain)-1]
}

// checkVAPID checks the Authorization header of a push request: "vapid
// t=JWT, k=KEY", KEY the server's public key, the JWT signed by it
// (ES256) for the push service's origin.
func checkVAPID(t *testing.T, h http.Header, key, origin string) {
	t.Helper()
	auth := h.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "vapid t=")
	jwt, k, ok2 := strings.Cut(rest, ", k=")
	if !ok || !ok2 {
		t.Fatalf("Authorization %q: want vapid t=JWT, k=KEY", auth)
	}
	if k != key {
		t.Errorf("k=%s, want the key of GET /api/push/key %s", k, key)
	}
	pub, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		t.Fatalf("k: %v", err)
	}
	pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub)
	if err != nil {
		t.Fatalf("k: %v", err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q: not three parts", jwt)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var header struct{ Alg, Typ string }
	if json.Unmarshal(hdr, &header); header.Alg != "ES256" {
		t.Errorf("JWT header %s: want alg ES256", hdr)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(pk, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Errorf("the JWT's ES256 signature does not verify with k")
	}
	cl, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Aud string `json:"aud"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(cl, &claims); err != nil {
		t.Fatalf("JWT claims %s: %v", cl, err)
	}
	if claims.Aud != origin {
		t.Errorf("aud %q, want %q", claims.Aud, origin)
	}
	if claims.Sub != "mailto:hearth@localhost" {
		t.Errorf("sub %q, want mailto:hearth@localhost", claims.Sub)
	}
	if left := time.Until(time.Unix(claims.Exp, 0)); left <= 0 || left > 24*time.Hour {
		t.Errorf("exp in %s, want within a day", left)
	}
}

// waitPush waits for the n-th request on path and returns it.
func (ps *pushService) waitPush(t *testing.T, path string, n int) pushRequest {
	t.Helper()
	waitFor(t, fmt.Sprintf("push %d to %s", n, path), 10*time.Second, func() bool { return len(ps.requests(path)) >= n })
	return ps.requests(path)[n-1]
}

// TestPush: a message archived is pushed, encrypted per RFC 8291 and
// signed per RFC 8292, to every reader of the room with a subscription,
// but not to its sender nor to someone who muted the room; a
// subscription the push service calls gone (410) is deleted.
func TestPush(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	ps := newPushService(t)
	origin := ps.srv.URL
	tok := map[string]string{}
	for _, u := range []string{"mum", "dad", "kid", "kitchen"} {
		tok[u] = login(t, app, u)
	}
	var key struct{ Key string }
	if code := api(t, app, "GET", "/api/push/key", tok["dad"], nil, &key); code != 200 || key.Key == "" {
		t.Fatalf("GET /api/push/key: %d %+v", code, key)
	}
	subs := map[string]*subscriber{}
	for _, u := range []string{"mum", "dad", "kid"} {
		subs[u] = newSubscriber(t, origin+"/push/"+u)
		if code := api(t, app, "POST", "/api/push/subscriptions", tok[u], subs[u].json(), nil); code != 201 {
			t.Fatalf("%s subscribing: %d", u, code)
		}
	}
	dad2 := newSubscriber(t, origin+"/push/dad2")
	if code := api(t, app, "POST", "/api/push/subscriptions", tok["dad"], dad2.json(), nil); code != 201 {
		t.Fatalf("dad subscribing again: %d", code)
	}

	post := func(text string) string {
		t.Helper()
		var r struct{ ID string }
		if code := api(t, app, "POST", "/api/rooms/family/messages", tok["mum"], map[string]string{"text": text}, &r); code != 202 {
			t.Fatalf("post: %d", code)
		}
		return r.ID
	}
	open := func(s *subscriber, r pushRequest) push.Payload {
		t.Helper()
		if r.header.Get("Content-Encoding") != "aes128gcm" || r.header.Get("TTL") != "86400" || r.header.Get("Urgency") != "normal" {
			t.Errorf("headers %v: want Content-Encoding aes128gcm, TTL 86400, Urgency normal", r.header)
		}
		checkVAPID(t, r.header, key.Key, origin)
		var p push.Payload
		plain := s.decrypt(t, r.body)
		if err := json.Unmarshal(plain, &p); err != nil {
			t.Fatalf("payload %s: %v", plain, err)
		}
		return p
	}

	long := strings.Repeat("ä", 250)
	id1 := post("dinner is ready " + long)
	for _, u := range []string{"dad", "kid"} {
		p := open(subs[u], ps.waitPush(t, "/push/"+u, 1))
		want := push.Payload{Room: "family", Title: "Family", From: "mum", ID: id1, Seq: p.Seq, Text: string([]rune("dinner is ready " + long)[:200])}
		if p != want || p.Seq == 0 {
			t.Errorf("%s's push: %+v, want %+v", u, p, want)
		}
	}
	open(dad2, ps.waitPush(t, "/push/dad2", 1))
	// The same message again is a duplicate: archived once, pushed once.
	if code := api(t, app, "POST", "/api/rooms/family/messages", tok["mum"], map[string]string{"id": id1, "text": "dinner is ready"}, nil); code != 202 {
		t.Fatalf("posting again: %d", code)
	}

	// kid mutes family: the next message reaches dad only.
	var muted struct{ Muted bool }
	if code := api(t, app, "PUT", "/api/rooms/family/mute", tok["kid"], map[string]bool{"muted": true}, &muted); code != 200 || !muted.Muted {
		t.Fatalf("mute: %d %+v", code, muted)
	}
	var rooms []struct {
		Name  string
		Muted bool
	}
	api(t, app, "GET", "/api/rooms", tok["kid"], nil, &rooms)
	if len(rooms) != 1 || rooms[0].Name != "family" || !rooms[0].Muted {
		t.Errorf("kid's rooms after muting: %+v", rooms)
	}
	id2 := post("second")
	if p := open(subs["dad"], ps.waitPush(t, "/push/dad", 2)); p.ID != id2 || p.Text != "second" {
		t.Errorf("dad's second push: %+v", p)
	}
	ps.waitPush(t, "/push/dad2", 2)

	// dad's first subscription is gone at the push service: deleted.
	ps.setStatus("/push/dad", http.StatusGone)
	post("third")
	ps.waitPush(t, "/push/dad", 3)
	ps.waitPush(t, "/push/dad2", 3)
	waitFor(t, "the gone subscription counted", 5*time.Second, func() bool { return app.notifier.Stats.Gone.Load() == 1 })
	id4 := post("fourth")
	if p := open(dad2, ps.waitPush(t, "/push/dad2", 4)); p.ID != id4 {
		t.Errorf("dad2's fourth push: %+v", p)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(ps.requests("/push/dad")); n != 3 {
		t.Errorf("the deleted subscription got %d requests, want 3", n)
	}
	if n := len(ps.requests("/push/kid")); n != 1 {
		t.Errorf("kid, who muted family, got %d pushes, want 1", n)
	}
	if n := len(ps.requests("/push/mum")); n != 0 {
		t.Errorf("mum, the sender, got %d pushes", n)
	}
	var body strings.Builder
	req, _ := http.NewRequest("GET", "http://"+app.HTTPAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok["mum"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&body, resp.Body)
	resp.Body.Close()
	for _, line := range []string{`hearth_push_sent_total{result="gone"} 1`, `hearth_push_sent_total{result="ok"} 7`, `hearth_push_sent_total{result="dropped"} 0`} {
		if !strings.Contains(body.String(), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	// Unmuted, kid gets the next one again.
	api(t, app, "PUT", "/api/rooms/family/mute", tok["kid"], map[string]bool{"muted": false}, nil)
	post("fifth")
	ps.waitPush(t, "/push/kid", 2)
}

// TestPushSubscriptions: what POST and DELETE /api/push/subscriptions
// and PUT /api/rooms/{room}/mute take and refuse.
func TestPushSubscriptions(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	tok := login(t, app, "dad")
	good := newSubscriber(t, "https://push.example/abc").json()
	with := func(f func(m map[string]any)) map[string]any {
		b, _ := json.Marshal(good)
		var m map[string]any
		json.Unmarshal(b, &m)
		f(m)
		return m
	}
	keys := func(p256dh, auth string) func(m map[string]any) {
		return func(m map[string]any) {
			k := m["keys"].(map[string]any)
			if p256dh != "" {
				k["p256dh"] = p256dh
			}
			if auth != "" {
				k["auth"] = auth
			}
		}
	}
	b64 := base64.RawURLEncoding.EncodeToString
	for _, c := range []struct {
		name string
		body any
		want int
	}{
		{"good", good, 201},
		{"same again", good, 201},
		{"http", with(func(m map[string]any) { m["endpoint"] = "http://127.0.0.1/x" }), 400},
		{"http localhost", with(func(m map[string]any) { m["endpoint"] = "http://localhost:8080/x" }), 400},
		{"no host", with(func(m map[string]any) { m["endpoint"] = "https:///x" }), 400},
		{"not a url", with(func(m map[string]any) { m["endpoint"] = "push.example" }), 400},
		{"p256dh short", with(keys(b64(make([]byte, 33)), "")), 400},
		{"p256dh off the curve", with(keys(b64(append([]byte{4}, make([]byte, 64)...)), "")), 400},
		{"p256dh not base64", with(keys("!!!", "")), 400},
		{"auth 15 bytes", with(keys("", b64(make([]byte, 15)))), 400},
		{"unknown key", with(func(m map[string]any) { m["extra"] = 1 }), 400},
	} {
		if code := api(t, app, "POST", "/api/push/subscriptions", tok, c.body, nil); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	for i := 1; i < 20; i++ {
		s := newSubscriber(t, fmt.Sprintf("https://push.example/%d", i)).json()
		if code := api(t, app, "POST", "/api/push/subscriptions", tok, s, nil); code != 201 {
			t.Fatalf("subscription %d: %d", i+1, code)
		}
	}
	if code := api(t, app, "POST", "/api/push/subscriptions", tok, newSubscriber(t, "https://push.example/21").json(), nil); code != 400 {
		t.Errorf("a 21st subscription: %d, want 400", code)
	}
	if code := api(t, app, "POST", "/api/push/subscriptions", tok, good, nil); code != 201 {
		t.Errorf("replacing one of 20: %d, want 201", code)
	}
	kid := login(t, app, "kid")
	if code := api(t, app, "DELETE", "/api/push/subscriptions", kid, map[string]string{"endpoint": "https://push.example/abc"}, nil); code != 404 {
		t.Errorf("kid deleting dad's subscription: %d, want 404", code)
	}
	if code := api(t, app, "DELETE", "/api/push/subscriptions", tok, map[string]string{"endpoint": "https://push.example/abc"}, nil); code != 204 {
		t.Errorf("dad deleting his subscription: %d, want 204", code)
	}
	if code := api(t, app, "DELETE", "/api/push/subscriptions", tok, map[string]string{"endpoint": "https://push.example/abc"}, nil); code != 404 {
		t.Errorf("deleting it again: %d, want 404", code)
	}
	if code := api(t, app, "DELETE", "/api/push/subscriptions", tok, map[string]string{}, nil); code != 400 {
		t.Errorf("deleting without an endpoint: %d, want 400", code)
	}
	for _, c := range []struct {
		room string
		body any
		want int
	}{
		{"family", map[string]any{}, 400},
		{"family", map[string]any{"muted": "yes"}, 400},
		{"parents", map[string]bool{"muted": true}, 200},
		{"nosuch", map[string]bool{"muted": true}, 404},
	} {
		if code := api(t, app, "PUT", "/api/rooms/"+c.room+"/mute", tok, c.body, nil); code != c.want {
			t.Errorf("mute %s %v: %d, want %d", c.room, c.body, code, c.want)
		}
	}
	if code := api(t, app, "PUT", "/api/rooms/parents/mute", kid, map[string]bool{"muted": true}, nil); code != 403 {
		t.Errorf("kid muting parents: %d, want 403", code)
	}
}

// TestVAPIDFileBroken: a vapid.json that cannot be read as keys stops the
// start with an error naming it, and is left as it was.
func TestVAPIDFileBroken(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, "vapid.json")
	os.WriteFile(path, []byte(`{"public_key":"x"`), 0o600)
	app, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		app.Close(context.Background())
		t.Fatal("hearth started with a broken vapid.json")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"public_key":"x"` {
		t.Errorf("vapid.json was changed to %s", b)
	}
}

// TestPushNotWhileFocused: a user whose MQTT connection shows the room
// (users/{me}/focus) gets no push of it; once it does not, they do.
func TestPushNotWhileFocused(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	var focus push.Focus = app.broker
	ps := newPushService(t)
	mum, dad, kid := login(t, app, "mum"), login(t, app, "dad"), login(t, app, "kid")
	for u, tok := range map[string]string{"dad": dad, "kid": kid} {
		if code := api(t, app, "POST", "/api/push/subscriptions", tok, newSubscriber(t, ps.srv.URL+"/push/"+u).json(), nil); code != 201 {
			t.Fatalf("%s subscribing: %d", u, code)
		}
	}
	post := func(text string) {
		t.Helper()
		if code := api(t, app, "POST", "/api/rooms/family/messages", mum, map[string]string{"text": text}, nil); code != 202 {
			t.Fatalf("post: %d", code)
		}
	}
	c := mustDial(t, app.MQTTAddr(), "dad", connectOpts{password: dad})
	c.publish("users/dad/focus", 0, false, `{"room":"family"}`)
	waitFor(t, "dad's focus on family", 5*time.Second, func() bool { return focus.Focused("dad", "family") })
	post("while dad looks")
	ps.waitPush(t, "/push/kid", 1)
	c.publish("users/dad/focus", 0, false, `{"room":""}`)
	waitFor(t, "dad's focus gone", 5*time.Second, func() bool { return !focus.Focused("dad", "family") })
	post("while dad is away")
	ps.waitPush(t, "/push/kid", 2)
	ps.waitPush(t, "/push/dad", 1)
	if n := len(ps.requests("/push/dad")); n != 1 {
		t.Errorf("dad got %d pushes, want 1 (none while he had family focused)", n)
	}
}
