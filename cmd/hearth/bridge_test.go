package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/history"
)

// TestBridgeSurvivesDroppedConnections drops the bridge's connection again
// and again in the middle of a stream: every message is archived exactly
// once and every delivery to the bridge is acknowledged in the end.
func TestBridgeSurvivesDroppedConnections(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	const n = 3000
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	kills := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			time.Sleep(15 * time.Millisecond)
			app.bridge.TerminateConnectionForTest()
			kills++
			waitFor(t, "bridge back", 10*time.Second, app.bridge.Ready)
		}
	}()
	for i := range n {
		if rc := kid.publish("rooms/family/messages/kid", 1, false, msg(fmt.Sprintf("m%05d", i), "stream")); rc != 0 {
			t.Fatalf("publish %d: reason %#x", i, rc)
		}
	}
	cancel()
	wg.Wait()
	if kills < 3 {
		t.Fatalf("the connection was dropped only %d times", kills)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		last, err := app.store.LastSeq("family")
		if err == nil && last >= n {
			break
		}
		if time.Now().After(deadline) {
			in, queued := app.broker.Inflight()
			t.Fatalf("archived %d of %d; %d deliveries unacknowledged, %d queued; ready %v", last, n, in, queued, app.bridge.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := map[string]int{}
	var after uint64
	for {
		msgs, more, err := app.store.Page("family", history.Query{Limit: history.MaxLimit, After: after, HasAfter: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			seen[m.ID]++
			after = m.Seq
		}
		if !more {
			break
		}
	}
	if after != n || len(seen) != n {
		t.Fatalf("archived %d messages with %d distinct ids, want %d", after, len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s archived %d times", id, c)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		in, queued := app.broker.Inflight() // the bridge is the only subscriber
		if in == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries to the bridge still unacknowledged, %d queued", in, queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := app.bridge.Stats.Archived.Load(); got != n {
		t.Errorf("bridge counted %d archived, want %d", got, n)
	}
	t.Logf("%d messages, %d dropped connections, %d duplicates redelivered", n, kills, app.bridge.Stats.Duplicates.Load())
}

// TestBurstHeldNotDropped: a burst much larger than the bridge's inflight
// limit is held back at the publishers instead of dropped, so all of it
// reaches a live subscriber and the archive.
func TestBurstHeldNotDropped(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()), func(c *broker.Config) { c.MaxInflight = 64 })
	const publishers, each = 4, 500
	watch := mustDial(t, app.MQTTAddr(), "kitchen", connectOpts{})
	watch.subscribe("rooms/family/messages/+")

	var wg sync.WaitGroup
	for p := range publishers {
		cl := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
		for w := range 8 { // eight publishes in flight per connection
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < each; i += 8 {
					if rc := cl.publish("rooms/family/messages/kid", 1, false, msg(fmt.Sprintf("b%d-%d", p, i), "burst")); rc != 0 {
						t.Errorf("publish: reason %#x", rc)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	const n = publishers * each
	waitFor(t, "all archived", 30*time.Second, func() bool {
		last, _ := app.store.LastSeq("family")
		return last == n
	})
	waitFor(t, "all delivered live", 10*time.Second, func() bool { return len(watch.topics()) == n })
	if n := app.broker.Stats.QueueDropped.Load(); n != 0 {
		t.Fatalf("the broker dropped %d messages", n)
	}
}
