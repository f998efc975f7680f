package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// Device logins ("stay logged in"): POST /api/login with "remember"
// makes a device record and gives a long-lived token carrying its id;
// GET /api/devices lists the caller's, DELETE /api/devices/{id} revokes
// one: its token is refused from then on, and its MQTT connections are
// closed.

// DeviceStore is where device logins are kept: history.Store.
type DeviceStore interface {
	AddDevice(d history.Device) error
	Devices() ([]history.Device, error)
	DeleteDevice(user, id string) (bool, error)
	TouchDevice(id string, at int64) error
}

// DeviceCloser closes the MQTT connections logged in with a device's
// token (broker.Broker).
type DeviceCloser interface {
	CloseDevice(id string) int
}

// touchEvery is how often a device's last use is written at most.
const touchEvery = time.Minute

// Devices keeps the device logins in memory, so that checking a token
// reads no file, and writes them through to the store. It is the
// hearth.DeviceChecker of the Authenticator. Safe for concurrent use.
type Devices struct {
	store DeviceStore
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	byID map[string]*history.Device
}

// NewDevices loads the device logins of store.
func NewDevices(store DeviceStore, log *slog.Logger) (*Devices, error) {
	all, err := store.Devices()
	if err != nil {
		return nil, err
	}
	d := &Devices{store: store, log: log, now: time.Now, byID: map[string]*history.Device{}}
	for i := range all {
		d.byID[all[i].ID] = &all[i]
	}
	return d, nil
}

// DeviceActive reports whether device id of user exists, and notes its
// use (written at most once a minute per device).
func (d *Devices) DeviceActive(user, id string) bool {
	d.mu.Lock()
	dev, ok := d.byID[id]
	if !ok || dev.User != user {
		d.mu.Unlock()
		return false
	}
	now := d.now().UnixMilli()
	touch := now-dev.LastUsed >= touchEvery.Milliseconds()
	if touch {
		dev.LastUsed = now
	}
	d.mu.Unlock()
	if touch {
		if err := d.store.TouchDevice(id, now); err != nil {
			d.log.Warn("device login: noting its use", "device", id, "error", err)
		}
	}
	return true
}

// MaxDevices is the most device logins one user keeps: a new one past it
// revokes the one least recently used.
const MaxDevices = 50

// Add makes a new device login of user named name. It returns the id of
// a device it revoked to stay within MaxDevices, or "".
func (d *Devices) Add(user, name string) (dev history.Device, evicted string, err error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	now := d.now().UnixMilli()
	dev = history.Device{ID: hex.EncodeToString(b[:]), User: user, Name: name, CreatedAt: now, LastUsed: now}
	if err := d.store.AddDevice(dev); err != nil {
		return history.Device{}, "", err
	}
	d.mu.Lock()
	d.byID[dev.ID] = &dev
	n, oldest := 0, (*history.Device)(nil)
	for _, o := range d.byID {
		if o.User == user {
			n++
			if oldest == nil || o.LastUsed < oldest.LastUsed || o.LastUsed == oldest.LastUsed && o.CreatedAt < oldest.CreatedAt {
				oldest = o
			}
		}
	}
	d.mu.Unlock()
	if n > MaxDevices {
		evicted = oldest.ID
		if _, err := d.Remove(user, evicted); err != nil {
			d.log.Warn("device login: removing the least recently used", "device", evicted, "error", err)
		}
	}
	return dev, evicted, nil
}

// Of returns user's device logins, oldest first.
func (d *Devices) Of(user string) []history.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []history.Device{}
	for _, dev := range d.byID {
		if dev.User == user {
			out = append(out, *dev)
		}
	}
	slices.SortFunc(out, func(a, b history.Device) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

// Remove revokes user's device id, and reports whether there was one.
// Its tokens fail from the moment it returns.
func (d *Devices) Remove(user, id string) (bool, error) {
	d.mu.Lock()
	dev, ok := d.byID[id]
	if !ok || dev.User != user {
		d.mu.Unlock()
		return false, nil
	}
	delete(d.byID, id)
	d.mu.Unlock()
	if _, err := d.store.DeleteDevice(user, id); err != nil {
		return true, err
	}
	return true, nil
}

// RemoveUsers revokes every device login of the users named (removed
// from config, or their password changed), and returns how many.
func (d *Devices) RemoveUsers(users []string) int {
	n := 0
	for _, u := range users {
		for _, dev := range d.Of(u) {
			if ok, err := d.Remove(u, dev.ID); ok {
				n++
				if err != nil {
					d.log.Warn("device login: removing it", "device", dev.ID, "error", err)
				}
			}
		}
	}
	return n
}

// deviceKey carries the device id of the request's token in its context.
type deviceKey struct{}

// deviceOf is the device id of the request's token, "" for a token of no
// device login.
func deviceOf(r *http.Request) string {
	id, _ := r.Context().Value(deviceKey{}).(string)
	return id
}

func withDevice(r *http.Request, id string) *http.Request {
	if id == "" {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), deviceKey{}, id))
}

type deviceJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	LastUsed  string `json:"last_used,omitempty"`
	Current   *bool  `json:"current,omitempty"`
}

func rfc3339(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

func (a *API) registerDevices(mux *http.ServeMux) {
	mux.Handle("GET /api/devices", a.wrap(a.authed(a.listDevices)))
	mux.Handle("DELETE /api/devices/{id}", a.wrap(a.authed(a.deleteDevice)))
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	out := []deviceJSON{}
	if a.cfg.Devices != nil {
		cur := deviceOf(r)
		for _, d := range a.cfg.Devices.Of(u.Name) {
			current := d.ID == cur
			out = append(out, deviceJSON{ID: d.ID, Name: d.Name, CreatedAt: rfc3339(d.CreatedAt), LastUsed: rfc3339(d.LastUsed), Current: &current})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	id := r.PathValue("id")
	if !hearth.ValidID(id) {
		return errStatus(http.StatusBadRequest, "id: not a device id")
	}
	ok := false
	if a.cfg.Devices != nil {
		var err error
		if ok, err = a.cfg.Devices.Remove(u.Name, id); err != nil {
			a.log.Warn("device login revoked, but not removed from the archive", "device", id, "error", err)
		}
	}
	if !ok {
		return errStatus(http.StatusNotFound, "no such device login")
	}
	closed := 0
	if a.cfg.DeviceCloser != nil {
		closed = a.cfg.DeviceCloser.CloseDevice(id)
	}
	a.log.Info("device login revoked", "user", u.Name, "device", id, "mqtt_connections_closed", closed)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DeviceName names a device by its browser's User-Agent, such as
// "Chrome on Android" or "Safari on iOS"; another program by its first
// product token ("curl/8.5.0"); "Unknown device" without one.
func DeviceName(ua string) string {
	browser := ""
	switch {
	case strings.Contains(ua, "Edg/") || strings.Contains(ua, "EdgA/") || strings.Contains(ua, "EdgiOS/"):
		browser = "Edge"
	case strings.Contains(ua, "OPR/"):
		browser = "Opera"
	case strings.Contains(ua, "SamsungBrowser/"):
		browser = "Samsung Internet"
	case strings.Contains(ua, "Firefox/") || strings.Contains(ua, "FxiOS/"):
		browser = "Firefox"
	case strings.Contains(ua, "Chrome/") || strings.Contains(ua, "CriOS/") || strings.Contains(ua, "Chromium/"):
		browser = "Chrome"
	case strings.Contains(ua, "Safari/"):
		browser = "Safari"
	}
	system := ""
	switch {
	case strings.Contains(ua, "Android"):
		system = "Android"
	case strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad") || strings.Contains(ua, "iPod"):
		system = "iOS"
	case strings.Contains(ua, "CrOS"):
		system = "ChromeOS"
	case strings.Contains(ua, "Windows"):
		system = "Windows"
	case strings.Contains(ua, "Macintosh") || strings.Contains(ua, "Mac OS X"):
		system = "macOS"
	case strings.Contains(ua, "Linux"):
		system = "Linux"
	}
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "Browser on " + system
	}
	first, _, _ := strings.Cut(strings.TrimSpace(ua), " ")
	var b strings.Builder
	for _, c := range first {
		if b.Len() >= 40 {
			break
		}
		if c > ' ' && c < 0x7f {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "Unknown device"
	}
	return b.String()
}
