package main

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBurstToSmallReceiveMaximum: independent peers only. Ten
// mosquitto_pub processes publish at QoS 1 as fast as they can, and an MQTT
// 5 mosquitto_sub (Receive Maximum 20) must get every message, as must
// the archive. mochi's flow control used to lose send quota in such a
// burst and stall that subscriber.
func TestBurstToSmallReceiveMaximum(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	const pubs, each = 10, 500
	sub := mosquittoSub(t, app.MQTTAddr(), "dad", "-q", "1", "-t", "rooms/family/messages/+")
	sub5 := mosquittoSubV5(t, app.MQTTAddr(), "mum", "-q", "1", "-t", "rooms/family/messages/+")

	bin := needTool(t, "mosquitto_pub", "mosquitto-clients")
	h, p := hostPort(t, app.MQTTAddr())
	var wg sync.WaitGroup
	for i := range pubs {
		var lines strings.Builder
		for j := range each {
			fmt.Fprintf(&lines, "{\"id\":\"p%d-%d\",\"text\":\"burst %d of %d\"}\n", i, j, j, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "-h", h, "-p", p, "-u", "kid", "-P", password("kid"), "-V", "mqttv5", "-q", "1", "-M", "100", "-l", "-t", "rooms/family/messages/kid")
			cmd.Stdin = strings.NewReader(lines.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("mosquitto_pub: %v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	const n = pubs * each
	deadline := time.Now().Add(30 * time.Second)
	for len(sub5.lines()) < n || len(sub.lines()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("MQTT 5 subscriber got %d, MQTT 3.1.1 subscriber %d, of %d", len(sub5.lines()), len(sub.lines()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "all archived", 30*time.Second, func() bool { last, _ := app.store.LastSeq("family"); return last == n })
}
