package api

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-home/hearth/history"
)

func TestDeviceName(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36":                   "Chrome on Android",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iOS",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0":           "Edge on Windows",
		"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0":                                                                  "Firefox on Linux",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15":                      "Safari on macOS",
		"curl/8.5.0": "curl/8.5.0",
		"":           "Unknown device",
		"\x01\x02":   "Unknown device",
	} {
		if got := DeviceName(ua); got != want {
			t.Errorf("DeviceName(%q) = %q, want %q", ua, got, want)
		}
	}
}

// TestDevicesCache: revocation is immediate, last_used is written at most
// once a minute, and a user past MaxDevices loses the least recently used.
func TestDevicesCache(t *testing.T) {
	store, err := history.Open(filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d, err := NewDevices(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	d.now = func() time.Time { return now }
	dev, _, err := d.Add("dad", "Chrome on Android")
	if err != nil {
		t.Fatal(err)
	}
	if !d.DeviceActive("dad", dev.ID) || d.DeviceActive("kid", dev.ID) || d.DeviceActive("dad", "nosuch") {
		t.Fatal("DeviceActive: want it for dad's own device only")
	}
	stored := func() int64 {
		all, _ := store.Devices()
		return all[0].LastUsed
	}
	now = now.Add(30 * time.Second)
	d.DeviceActive("dad", dev.ID)
	if got := stored(); got != dev.LastUsed {
		t.Errorf("last_used written after 30 s: %d", got)
	}
	now = now.Add(31 * time.Second)
	d.DeviceActive("dad", dev.ID)
	if got := stored(); got != now.UnixMilli() {
		t.Errorf("last_used after a minute: %d, want %d", got, now.UnixMilli())
	}
	// A restart reads them back.
	d2, _ := NewDevices(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !d2.DeviceActive("dad", dev.ID) {
		t.Error("the device is not known after loading again")
	}
	if ok, _ := d.Remove("kid", dev.ID); ok {
		t.Error("kid removed dad's device")
	}
	if ok, _ := d.Remove("dad", dev.ID); !ok || d.DeviceActive("dad", dev.ID) {
		t.Error("dad's device is still active after removing it")
	}
	var first string
	for i := range MaxDevices {
		now = now.Add(time.Second)
		dv, ev, _ := d.Add("kid", "x")
		if i == 0 {
			first = dv.ID
		}
		if ev != "" {
			t.Fatalf("device %d evicted %s", i+1, ev)
		}
	}
	now = now.Add(time.Second)
	if _, ev, _ := d.Add("kid", "x"); ev != first || d.DeviceActive("kid", first) || len(d.Of("kid")) != MaxDevices {
		t.Errorf("past the limit: evicted %q, want the oldest %q; %d left", ev, first, len(d.Of("kid")))
	}
}
