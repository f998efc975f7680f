package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// TestBehindNginx runs hearth behind Debian's nginx with the site file of
// docs/nginx.md (its ports and certificate paths changed): the page, the
// API, the redirect to HTTPS and /mqtt over wss all go through nginx, and
// the login limiter tells two clients apart by the X-Forwarded-For nginx
// sets. The clients dial from 127.0.0.2 and 127.0.0.3 (Linux routes all
// of 127/8 to lo).
func TestBehindNginx(t *testing.T) {
	nginx := needTool(t, "nginx", "nginx")
	dir := t.TempDir()
	files, pool := testCert(t, dir)
	httpsAddr, httpAddr := freePort(t), freePort(t)

	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.PublicURL = "https://" + httpsAddr
	cfg.HTTP.TrustedProxies = []string{"127.0.0.1"}
	app := startApp(t, cfg)

	doc, err := os.ReadFile("../../docs/nginx.md")
	if err != nil {
		t.Fatal(err)
	}
	_, site, ok := strings.Cut(string(doc), "```nginx\n")
	site, _, ok2 := strings.Cut(site, "```")
	if !ok || !ok2 {
		t.Fatal("docs/nginx.md has no ```nginx block")
	}
	for _, r := range [][2]string{
		{"listen 80;", "listen " + httpAddr + ";"},
		{"listen [::]:80;", ""},
		{"listen 443 ssl http2;", "listen " + httpsAddr + " ssl http2;"},
		{"listen [::]:443 ssl http2;", ""},
		{"/etc/letsencrypt/live/chat.example.org/fullchain.pem", files.CertFile},
		{"/etc/letsencrypt/live/chat.example.org/privkey.pem", files.KeyFile},
		{"root /var/www/html;", "root " + dir + ";"},
		{"http://127.0.0.1:8080", "http://" + app.HTTPAddr()},
	} {
		if !strings.Contains(site, r[0]) {
			t.Fatalf("docs/nginx.md's site no longer has %q: update this test with it", r[0])
		}
		site = strings.ReplaceAll(site, r[0], r[1])
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers that may read the temp dir
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
%[3]s
}
`, user, dir, site)
	writeFile(t, filepath.Join(dir, "nginx.conf"), []byte(conf))
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	waitFor(t, "nginx listening", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", httpsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	from := func(ip string) *http.Client {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{
			Transport:     &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	a, b := from("127.0.0.2"), from("127.0.0.3")
	base := "https://" + httpsAddr

	resp, err := a.Get(base + "/")
	if err != nil {
		t.Fatalf("the page through nginx: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("<html")) {
		t.Fatalf("the page through nginx: %d", resp.StatusCode)
	}
	resp, err = a.Get("http://" + httpAddr + "/some/where")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://127.0.0.1/some/where" {
		t.Errorf("plain http: %d to %q, want a redirect to https", resp.StatusCode, loc)
	}

	loginFrom := func(c *http.Client, user, pw string) (int, string) {
		body, _ := json.Marshal(map[string]string{"username": user, "password": pw})
		req, _ := http.NewRequest("POST", base+"/api/login", bytes.NewReader(body))
		req.Header.Set("X-Forwarded-For", "198.51.100.7") // forged: nginx appends the real one
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("login through nginx: %v", err)
		}
		defer resp.Body.Close()
		var lr struct{ Token string }
		json.NewDecoder(resp.Body).Decode(&lr)
		return resp.StatusCode, lr.Token
	}
	// 127.0.0.2 uses up its failed logins.
	for i := 0; ; i++ {
		code, _ := loginFrom(a, fmt.Sprintf("ghost%d", i), "wrong")
		if code == http.StatusTooManyRequests {
			break
		}
		if code != http.StatusUnauthorized || i > 30 {
			t.Fatalf("failed login %d through nginx: %d", i, code)
		}
	}
	if code, _ := loginFrom(a, "dad", password("dad")); code != http.StatusTooManyRequests {
		t.Errorf("the right password from the blocked 127.0.0.2: %d, want 429", code)
	}
	// 127.0.0.3 is another client: it logs in.
	code, tok := loginFrom(b, "dad", password("dad"))
	if code != 200 {
		t.Fatalf("login from 127.0.0.3 through nginx: %d, want 200 (the limiter took both clients for one)", code)
	}
	req, _ := http.NewRequest("GET", base+"/api/rooms", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := b.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /api/rooms through nginx: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// MQTT over wss through nginx's WebSocket upgrade, as the page does it.
	wss := "wss://" + httpsAddr + "/mqtt"
	tc := &tls.Config{RootCAs: pool}
	ws, err := dialWS(t, wss, wsOpts{user: "dad", password: tok, tls: tc, localIP: "127.0.0.3", origin: base})
	if err != nil {
		t.Fatalf("mqtt over wss through nginx: %v", err)
	}
	wsChat(t, app, ws, "dad", "through nginx")
	// MQTT's CONNECT counts failed logins with HTTP's, by the same address.
	_, err = dialWS(t, wss, wsOpts{user: "dad", tls: tc, localIP: "127.0.0.2", origin: base})
	var ce *autopaho.ConnackError
	if !errors.As(err, &ce) || ce.ReasonCode != 0x9F {
		t.Errorf("CONNECT with a password from the blocked 127.0.0.2: %v, want CONNACK 0x9F", err)
	}
	if ws2, err := dialWS(t, wss, wsOpts{user: "kid", tls: tc, localIP: "127.0.0.3", origin: base}); err != nil {
		t.Errorf("CONNECT with a password from 127.0.0.3: %v", err)
	} else {
		ws2.cm.Disconnect(context.Background())
	}
	if _, err := dialWS(t, wss, wsOpts{user: "dad", password: tok, tls: tc, localIP: "127.0.0.3", origin: "https://evil.example"}); err == nil {
		t.Error("a foreign origin got through nginx to /mqtt")
	}
}
