package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// TestReservedClientIDs: kid made a persistent session under the kitchen
// display's client id (mosquitto_sub -i doorbell -c) before the id was
// reserved for kitchen in devices. After a restart with the reservation,
// kid's session is gone: kitchen connects with that id, with a session of
// its own (none of kid's subscriptions), and gets its messages; kid is
// refused with 0x85, exactly as for an id another user's session holds,
// whether kitchen is connected or not.
func TestReservedClientIDs(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	app := startApp(t, cfg)
	bin := needTool(t, "mosquitto_sub", "mosquitto-clients")
	squat := func(addr string) (string, error) {
		h, p := hostPort(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-h", h, "-p", p, "-V", "mqttv311", "-i", "doorbell", "-c", "-u", "kid", "-P", password("kid"),
			"-t", "presence/+", "-t", "rooms/family/messages/+", "-E").CombinedOutput()
		return string(out), err
	}
	if out, err := squat(app.MQTTAddr()); err != nil {
		t.Fatalf("kid's session under doorbell: %v: %s", err, out)
	}
	if out, err := mosquittoPub(t, app.MQTTAddr(), "mum", password("mum"), "-q", "1", "-t", "rooms/family/messages/mum", "-m", msg("q1", "queued for kid")); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}

	y := mqtttest.ConfigYAML(dir, testUsers) + "devices:\n  - {user: kitchen, client_ids: [doorbell, doorbell-2]}\n"
	cfg, err := hearth.ParseConfig(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	app = startApp(t, cfg)
	addr := app.MQTTAddr()
	if out, err := squat(addr); err == nil {
		t.Fatalf("kid with the reserved id got in: %s", out)
	}
	reasons := map[string]bool{}
	refused := func(what, id string) {
		t.Helper()
		_, ca, err := dial(t, addr, "kid", connectOpts{clientID: id, sessionExpiry: 3600})
		if err == nil || ca == nil || ca.ReasonCode != 0x85 {
			t.Errorf("kid with %s: connack %+v err %v, want 0x85", what, ca, err)
			return
		}
		reasons[ca.Properties.ReasonString] = true
	}
	refused("a reserved id, free", "doorbell")
	sub := mosquittoSub(t, addr, "kitchen", "-i", "doorbell", "-c", "-t", "rooms/family/messages/+")
	if out, err := mosquittoPub(t, addr, "mum", password("mum"), "-q", "1", "-t", "rooms/family/messages/mum", "-m", msg("m1", "for the kitchen")); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	waitFor(t, "kitchen's message", 5*time.Second, func() bool {
		return strings.Contains(strings.Join(sub.Lines(), "\n"), `rooms/family/messages/mum {"id":"m1"`)
	})
	refused("a reserved id, in use", "doorbell")
	refused("another reserved id, free", "doorbell-2")
	dad := mustDial(t, addr, "dad", connectOpts{clientID: "dads-phone", sessionExpiry: 3600})
	defer dad.close()
	refused("an id another user's session holds", "dads-phone")
	if len(reasons) != 1 {
		t.Errorf("the refusals differ in their reason strings: %v", reasons)
	}
	if l := strings.Join(sub.Lines(), "\n"); strings.Contains(l, "presence/") || strings.Contains(l, "queued for kid") {
		t.Errorf("kitchen got kid's session: %s", l)
	}
}
