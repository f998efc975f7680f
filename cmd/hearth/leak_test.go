package main

import (
	"runtime"
	"testing"
	"time"

	"github.com/hearth-home/hearth/internal/mqtttest"
)

// heap returns the live heap after a collection.
var heap = mqtttest.Heap

// TestConnectCyclesLeaveNothingBehind: 1,000 connections that log in,
// subscribe, publish and leave, and 200 refused ones, leave no goroutines
// and no memory behind in hearth.
func TestConnectCyclesLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()
	cycle := func(i int) {
		user := []string{"kid", "dad", "kitchen", "mum"}[i%4]
		cl := mustDial(t, addr, user, connectOpts{recvBuffer: 64, manual: true})
		cl.subscribe("rooms/family/messages/+", "presence/+")
		if user != "kitchen" && i%10 == 0 {
			cl.publish("rooms/family/typing/"+user, 0, false, `{"typing":true}`)
		}
		cl.close()
	}
	for i := range 50 { // warm up: pools, buffers, the first presence messages
		cycle(i)
	}
	time.Sleep(200 * time.Millisecond)
	g0, h0, c0 := runtime.NumGoroutine(), heap(), app.broker.Info().ClientsConnected

	for i := range 1000 {
		cycle(i)
	}
	for range 200 {
		if _, _, err := dial(t, addr, "kid", connectOpts{password: "wrong", recvBuffer: 1, manual: true}); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}

	var g int
	deadline := time.Now().Add(10 * time.Second)
	for {
		g = runtime.NumGoroutine()
		if g <= g0+5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := heap()
	t.Logf("goroutines %d -> %d, heap %d KiB -> %d KiB", g0, g, h0>>10, h>>10)
	if g > g0+5 {
		t.Errorf("goroutines grew from %d to %d", g0, g)
	}
	if h > h0+8<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", h0>>10, h>>10)
	}
	if n := app.broker.Info().ClientsConnected; n != c0 {
		t.Errorf("%d clients counted as connected, want %d (the bridge's)", n, c0)
	}
}
