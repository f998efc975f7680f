package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth"
	"hearth/broker"
)

// TestStuckSubscriber: a subscriber that stops reading (a mosquitto_sub
// frozen with SIGSTOP, its keepalive far off) holds up neither the
// publisher nor the other subscribers: they are done while it is still
// connected. Once a write to it has waited WriteTimeout it is
// disconnected, and what was queued for it is freed.
func TestStuckSubscriber(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()), func(c *broker.Config) { c.WriteTimeout = 8 * time.Second })
	addr := app.MQTTAddr()
	filter := hearth.RoomMessagesFilter("family")
	dad := mustDial(t, addr, "dad", connectOpts{})
	dad.subscribe(filter)
	stuck := mosquittoSub(t, addr, "kid", "-q", "1", "-t", filter, "-i", "stuck-kid", "-k", "600")
	if err := stuck.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Cmd.Process.Signal(syscall.SIGCONT) })
	base := heap()

	// 1,500 messages of 4,000 characters: 6 MB, more than the socket
	// buffers between hearth and the frozen client take.
	mum := mustDial(t, addr, "mum", connectOpts{})
	text := strings.Repeat("x", hearth.MaxTextLen)
	const n = 1500
	for i := range n {
		if rc := mum.publish(hearth.MessageTopic("family", "mum"), 1, false, msg(fmt.Sprint("stuck-", i), text)); rc != 0 {
			t.Fatalf("publish %d: reason %#x", i, rc)
		}
	}
	timeout := time.After(30 * time.Second)
	for got := 0; got < n; got++ {
		select {
		case <-dad.recv:
		case <-timeout:
			t.Fatalf("dad got %d of %d messages", got, n)
		}
	}
	dad.mu.Lock()
	dad.got = nil // the test's own copies
	dad.mu.Unlock()
	if _, ok := app.broker.ClientInflight("stuck-kid"); !ok || app.broker.Stats.StuckClosed.Load() != 0 {
		t.Fatal("the stuck subscriber was dropped before the others were served: they waited for it")
	}
	waitFor(t, "the stuck subscriber to be disconnected", 30*time.Second, func() bool {
		_, ok := app.broker.ClientInflight("stuck-kid")
		return !ok
	})
	if app.broker.Stats.StuckClosed.Load() == 0 {
		t.Fatal("the stuck subscriber left, but not for being stuck")
	}
	after := heap()
	t.Logf("heap %.1f MB before the burst, %.1f MB once the stuck subscriber was dropped", float64(base)/1e6, float64(after)/1e6)
	if after > base+4<<20 {
		t.Fatalf("heap grew from %d to %d bytes", base, after)
	}
}
