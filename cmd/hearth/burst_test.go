package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBurstToSmallReceiveMaximum: independent peers only. Ten
// mosquitto_pub processes publish at QoS 1 as fast as they can, and an MQTT
// 5 mosquitto_sub (Receive Maximum 20) must get every message, as must
// the archive. mochi's flow control used to lose send quota in such a
// burst and stall that subscriber. HEARTH_BURST_EACH sets how many each
// publisher sends (500; make soak sends 10,000 each).
func TestBurstToSmallReceiveMaximum(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	const pubs = 10
	each := 500
	if v := os.Getenv("HEARTH_BURST_EACH"); v != "" {
		var err error
		if each, err = strconv.Atoi(v); err != nil || each < 1 {
			t.Fatalf("HEARTH_BURST_EACH=%q", v)
		}
	}
	sub := mosquittoSub(t, app.MQTTAddr(), "dad", "-q", "1", "-t", "rooms/family/messages/+")
	sub5 := mosquittoSubV5(t, app.MQTTAddr(), "mum", "-q", "1", "-t", "rooms/family/messages/+")

	bin := needTool(t, "mosquitto_pub", "mosquitto-clients")
	h, p := hostPort(t, app.MQTTAddr())
	start := time.Now()
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
	n := pubs * each
	deadline := time.Now().Add(30*time.Second + time.Duration(n)*time.Millisecond)
	for len(sub5.Lines()) < n || len(sub.Lines()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("MQTT 5 subscriber got %d, MQTT 3.1.1 subscriber %d, of %d", len(sub5.Lines()), len(sub.Lines()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "all archived", 30*time.Second, func() bool { last, _ := app.store.LastSeq("family"); return last == uint64(n) })
	// Every delivery acknowledged: the gauges come back to 0, never below.
	waitFor(t, "every delivery acknowledged", 10*time.Second, func() bool { in, q := app.broker.Inflight(); return in == 0 && q == 0 })
	if d := app.broker.Stats.QueueDropped.Load(); d != 0 {
		t.Fatalf("%d messages dropped", d)
	}
	t.Logf("%d x %d messages: both subscribers and the archive got all %d in %s", pubs, each, n, time.Since(start).Round(time.Millisecond))
}
