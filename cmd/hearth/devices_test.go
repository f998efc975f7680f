package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

type loginAnswer struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	Device    *struct {
		ID        string `json:"id"`
		CreatedAt string `json:"created_at"`
		Name      string `json:"name"`
	} `json:"device"`
}

type deviceList struct {
	Devices []struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		CreatedAt string `json:"created_at"`
		LastUsed  string `json:"last_used"`
		Current   bool   `json:"current"`
	} `json:"devices"`
}

const androidChrome = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"

// rememberLogin logs in with "remember" and the User-Agent ua.
func rememberLogin(t *testing.T, app *App, user, pw, ua string) loginAnswer {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"username": user, "password": pw, "remember": true})
	req, _ := http.NewRequest("POST", "http://"+app.HTTPAddr()+"/api/login", strings.NewReader(string(b)))
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a loginAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 || a.Device == nil {
		t.Fatalf("remember login of %s: %d %v %+v", user, resp.StatusCode, err, a)
	}
	return a
}

// TestDeviceLogins: a remembered login is a long-lived token of a device
// record that survives a restart, is listed, slides on refresh, and ends
// when revoked (API, MQTT CONNECT, and open MQTT connections) or when the
// password changes.
func TestDeviceLogins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	base := testConfig(t, filepath.Join(dir, "data"))
	rooms := []string{`{name: family, title: Family, members: ["*"], readers: [kitchen]}`}
	rc := reloadConfig{dir: base.DataDir, users: base.Users, rooms: rooms}
	rc.write(t, path)
	var logs mqtttest.SafeBuffer
	first := startLogged(t, path, &logs)

	dev := rememberLogin(t, first, "dad", password("dad"), androidChrome)
	if dev.Device.Name != "Chrome on Android" || dev.Device.ID == "" || !hearth.ValidID(dev.Device.ID) {
		t.Errorf("device %+v: want a valid id and the name Chrome on Android", dev.Device)
	}
	exp, _ := time.Parse(time.RFC3339, dev.ExpiresAt)
	if left := time.Until(exp); left < 8759*time.Hour || left > 8761*time.Hour {
		t.Errorf("a device token expires in %s, want a year (auth.device_ttl)", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	first.Close(ctx)
	cancel()

	// After a restart the token still works.
	app := startLogged(t, path, &logs)
	if code := api(t, app, "GET", "/api/rooms", dev.Token, nil, nil); code != 200 {
		t.Fatalf("the device token after a restart: %d", code)
	}
	var list deviceList
	if code := api(t, app, "GET", "/api/devices", dev.Token, nil, &list); code != 200 || len(list.Devices) != 1 {
		t.Fatalf("GET /api/devices: %d %+v", code, list)
	}
	if d := list.Devices[0]; d.ID != dev.Device.ID || !d.Current || d.Name != "Chrome on Android" || d.CreatedAt != dev.Device.CreatedAt || d.LastUsed == "" {
		t.Errorf("listed %+v, want the device, current", d)
	}
	plain := login(t, app, "dad")
	api(t, app, "GET", "/api/devices", plain, nil, &list)
	if len(list.Devices) != 1 || list.Devices[0].Current {
		t.Errorf("listed with an ordinary token: %+v, want the device, not current", list)
	}
	var kidList deviceList
	api(t, app, "GET", "/api/devices", login(t, app, "kid"), nil, &kidList)
	if len(kidList.Devices) != 0 {
		t.Errorf("kid sees %+v", kidList)
	}

	// A refresh gives a fresh token of the same device.
	var fresh loginAnswer
	if code := api(t, app, "POST", "/api/token", dev.Token, nil, &fresh); code != 200 || fresh.Token == "" {
		t.Fatalf("refresh: %d", code)
	}
	api(t, app, "GET", "/api/devices", fresh.Token, nil, &list)
	if len(list.Devices) != 1 || !list.Devices[0].Current {
		t.Errorf("after a refresh: %+v, want the same device, current", list)
	}
	exp, _ = time.Parse(time.RFC3339, fresh.ExpiresAt)
	if time.Until(exp) < 8759*time.Hour {
		t.Errorf("a refreshed device token expires at %s, want a year from now", fresh.ExpiresAt)
	}

	// MQTT takes the token; the device's connections close on revocation.
	c1 := mustDial(t, app.MQTTAddr(), "dad", connectOpts{password: dev.Token})
	c2 := mustDial(t, app.MQTTAddr(), "dad", connectOpts{password: fresh.Token})
	other := mustDial(t, app.MQTTAddr(), "dad", connectOpts{password: plain})

	if code := api(t, app, "DELETE", "/api/devices/"+dev.Device.ID, login(t, app, "kid"), nil, nil); code != 404 {
		t.Errorf("kid revoking dad's device: %d, want 404", code)
	}
	if code := api(t, app, "DELETE", "/api/devices/nosuch", plain, nil, nil); code != 404 {
		t.Errorf("revoking an unknown device: %d, want 404", code)
	}
	if code := api(t, app, "DELETE", "/api/devices/"+dev.Device.ID, plain, nil, nil); code != 204 {
		t.Fatalf("revoking: %d, want 204", code)
	}
	for i, c := range []*client{c1, c2} {
		if rc, ok := c.goneWithin(5 * time.Second); !ok || rc != 0x87 {
			t.Errorf("connection %d of the revoked device: closed %v, reason %#x, want 0x87", i+1, ok, rc)
		}
	}
	if rc := other.publish("rooms/family/messages/dad", 1, false, msg("still-here", "x")); rc != 0 {
		t.Errorf("dad's other connection: publish %#x", rc)
	}
	for _, tok := range []string{dev.Token, fresh.Token} {
		if code := api(t, app, "GET", "/api/rooms", tok, nil, nil); code != 401 {
			t.Errorf("the revoked device's token on the API: %d, want 401", code)
		}
		if _, ca, err := dial(t, app.MQTTAddr(), "dad", connectOpts{password: tok}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Errorf("the revoked device's token on MQTT: %v %+v, want CONNACK 0x86", err, ca)
		}
	}
	api(t, app, "GET", "/api/devices", plain, nil, &list)
	if len(list.Devices) != 0 {
		t.Errorf("after revoking: %+v", list)
	}

	// A password change ends device logins.
	dev2 := rememberLogin(t, app, "dad", password("dad"), "curl/8.5.0")
	if dev2.Device.Name != "curl/8.5.0" {
		t.Errorf("name %q, want curl/8.5.0", dev2.Device.Name)
	}
	c3 := mustDial(t, app.MQTTAddr(), "dad", connectOpts{password: dev2.Token})
	dadUser, _ := base.User("dad")
	dadUser.PasswordHash = bcryptHash(t, "pw-dad-2")
	rc.users = withUser(base.Users, "", dadUser)
	rc.write(t, path)
	if err := app.Reload(path); err != nil {
		t.Fatal(err)
	}
	if code := api(t, app, "GET", "/api/rooms", dev2.Token, nil, nil); code != 401 {
		t.Errorf("a device token after a password change: %d, want 401", code)
	}
	if _, ok := c3.goneWithin(5 * time.Second); !ok {
		t.Errorf("the device's connection stayed open after the password change")
	}
	tok, _ := apiLogin(t, app, "dad", "pw-dad-2")
	api(t, app, "GET", "/api/devices", tok, nil, &list)
	if len(list.Devices) != 0 {
		t.Errorf("after the password change: %+v", list)
	}
}
