package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hearth-home/hearth"
)

// TestPublishingSubscriberGetsEverything: a client that receives at QoS 1
// and publishes at QoS 1 on the same connection, as the web chat does,
// and drops its connection now and then, still gets every message. mochi
// keeps a client's and the server's packet ids in one map; with mochi's
// own deliveries, 860 to 1,000 of 1,500 arrived (mochi-mqtt/server issue
// #545). hearth's deliveries have ids of their own (broker/outbound.go).
// make soak runs it SOAKCOUNT times.
func TestPublishingSubscriberGetsEverything(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	addr := app.MQTTAddr()
	const n = 1500
	var mu sync.Mutex
	got := map[string]bool{} // messages dad's phone processed and acknowledged
	var gen atomic.Int64     // connection generation: what arrived on a dropped one was lost with it
	expiry := uint32(600)

	// dad's phone: a persistent session that acks slowly, publishes its own
	// messages, and loses its connection from time to time.
	connect := func() (*paho.Client, net.Conn) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		var c *paho.Client
		c = paho.NewClient(paho.ClientConfig{ClientID: "dads-phone", Conn: conn, EnableManualAcknowledgment: true,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				var p hearth.Payload
				json.Unmarshal(pr.Packet.Payload, &p)
				g := gen.Load()
				go func() {
					time.Sleep(20 * time.Millisecond) // the app works on it
					if gen.Load() != g {
						return // the phone died first: the broker must deliver it again
					}
					mu.Lock()
					got[p.ID] = true
					mu.Unlock()
					pr.Client.Ack(pr.Packet)
				}()
				return true, nil
			}}})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: "dads-phone", KeepAlive: 30, CleanStart: false,
			Username: "dad", UsernameFlag: true, Password: []byte(password("dad")), PasswordFlag: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		if !ca.SessionPresent {
			if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "rooms/family/messages/kid", QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
		}
		return c, conn
	}
	dad, conn := connect()

	kid := mustDial(t, addr, "kid", connectOpts{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			kid.publish("rooms/family/messages/kid", 1, false, msg(fmt.Sprintf("k%04d", i), "to dad"))
		}
	}()
	for round := 0; ; round++ {
		select {
		case <-done:
		default:
			// Publish a few of dad's own at QoS 1 (their ids meet the
			// deliveries' ids), then drop the connection without a word.
			for j := range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				dad.Publish(ctx, &paho.Publish{Topic: "rooms/family/messages/dad", QoS: 1, Payload: []byte(msg(fmt.Sprintf("d%d-%d", round, j), "from dad"))})
				cancel()
			}
			gen.Add(1)
			conn.Close()
			<-dad.Done()
			dad, conn = connect()
			continue
		}
		break
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		have := len(got)
		mu.Unlock()
		if have == n {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			mu.Lock()
			for i := range n {
				if id := fmt.Sprintf("k%04d", i); !got[id] {
					missing = append(missing, id)
				}
			}
			mu.Unlock()
			t.Fatalf("dad's phone got %d of %d; missing %v", have, n, missing[:min(20, len(missing))])
		}
		time.Sleep(20 * time.Millisecond)
	}
	dad.Disconnect(&paho.Disconnect{})
}
