package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth"
)

// TestOfflineQueuesBoundedByBytes: one user's offline sessions hold at
// most mqtt.max_queued_bytes each and mqtt.max_offline_bytes together,
// whatever comes in; the rest is dropped and counted, and the memory and
// the session file stay small. A session that comes back gets what was
// kept, in order.
func TestOfflineQueuesBoundedByBytes(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MQTT.MaxQueuedBytes = 1 << 20
	cfg.MQTT.MaxOfflineBytes = 2 << 20
	cfg.ACL = []hearth.ACLRule{{User: "dad", Topic: "home/#", Access: hearth.AccessRead}}
	app := startApp(t, cfg)
	addr := app.MQTTAddr()
	const sessions, messages = 5, 1000
	for i := range sessions {
		c := mustDial(t, addr, "dad", connectOpts{clientID: fmt.Sprint("dad-tab-", i), sessionExpiry: 3600})
		c.subscribe("home/big")
		c.close()
	}
	before := heap()
	mum := dialRaw(t, addr, 5)
	mum.connect(rawConnect{user: "mum", pass: password("mum"), clean: true})
	payload := bytes.Repeat([]byte("x"), 16000)
	for i := range messages {
		mum.publish("home/big", append([]byte(fmt.Sprintf("%04d", i)), payload...), 1, false, uint16(i+1), nil)
		mum.expect(tPuback)
	}
	held := 0
	for i := range sessions {
		n, _ := app.broker.ClientInflight(fmt.Sprint("dad-tab-", i))
		if bytes := n * 16100; bytes > cfg.MQTT.MaxQueuedBytes {
			t.Errorf("session %d holds %d messages (%d bytes), over max_queued_bytes", i, n, bytes)
		}
		held += n
	}
	if bytes := held * 16100; bytes > cfg.MQTT.MaxOfflineBytes || held == 0 {
		t.Fatalf("dad's offline sessions hold %d messages (%d bytes), want some and at most max_offline_bytes", held, bytes)
	}
	if dropped := app.broker.Stats.QueueDropped.Load(); dropped != int64(sessions*messages-held) {
		t.Fatalf("dropped %d, want %d counted", dropped, sessions*messages-held)
	}
	if grew := int64(heap()) - int64(before); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB for %d MiB of queues", grew>>20, cfg.MQTT.MaxOfflineBytes>>20)
	}
	waitFor(t, "session writes", 10*time.Second, func() bool { return app.broker.SessionWritesPending() == 0 })
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "sessions.db")); err != nil || st.Size() > 32<<20 {
		t.Errorf("sessions.db: %v, %d MiB", err, st.Size()>>20)
	}
	// The first session comes back: what it kept, in order.
	n, _ := app.broker.ClientInflight("dad-tab-0")
	back := mustDial(t, addr, "dad", connectOpts{clientID: "dad-tab-0", sessionExpiry: 3600})
	waitFor(t, "the kept messages", 10*time.Second, func() bool { return len(back.topics()) == n })
	back.mu.Lock()
	defer back.mu.Unlock()
	for i, m := range back.got {
		if want := fmt.Sprintf("%04d", i); string(m.Payload[:4]) != want {
			t.Fatalf("message %d is %s, want %s: not in order", i, m.Payload[:4], want)
		}
	}
	t.Logf("%d sessions x %d messages of 16 KB: %d kept, %d dropped", sessions, messages, held, sessions*messages-held)
}
