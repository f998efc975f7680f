package broker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestPresenceCoalesced: 300 quick connect and disconnect cycles of one
// user send a subscriber of presence/+ at most one presence of that user
// per second (and one more), and the retained presence that remains is
// right: offline after the last disconnect, online while one connection
// stays.
func TestPresenceCoalesced(t *testing.T) {
	b := startBroker(t)
	sub := mt.StartMosquittoSub(t, b.addr, "mqttv5", []string{"-u", "dad", "-P", password("dad"), "-t", "presence/+"})
	kids := func() []hearth.Presence {
		var out []hearth.Presence
		for _, l := range received(sub, "presence/kid") {
			var p hearth.Presence
			if err := json.Unmarshal([]byte(l), &p); err != nil {
				t.Fatalf("presence %q: %v", l, err)
			}
			out = append(out, p)
		}
		return out
	}
	mt.WaitFor(t, "kid's retained presence", 5*time.Second, func() bool { return len(kids()) == 1 })
	start := time.Now()
	for range 300 {
		r := mt.DialRaw(t, b.addr, 5)
		if ack := r.Connect(mt.Connect{User: "kid", Pass: password("kid"), Clean: true}); ack.Code != 0 {
			t.Fatalf("CONNACK %v", ack)
		}
		r.Conn.Close()
	}
	took := time.Since(start)
	last := func() hearth.Presence { ps := kids(); return ps[len(ps)-1] }
	mt.WaitFor(t, "kid offline", 5*time.Second, func() bool { p := last(); return !p.Online && p.Connections == 0 })
	time.Sleep(2 * presenceEvery) // nothing more comes
	got := kids()[1:]
	if most := int(took/presenceEvery) + 2; len(got) > most {
		t.Errorf("300 cycles in %s sent %d presences of kid, want at most %d", took.Round(time.Millisecond), len(got), most)
	}
	t.Logf("300 cycles in %s: %d presences of kid", took.Round(time.Millisecond), len(got))
	retained := func() hearth.Presence {
		s := mt.StartMosquittoSub(t, b.addr, "mqttv5", []string{"-u", "mum", "-P", password("mum"), "-t", "presence/kid"})
		mt.WaitFor(t, "the retained presence", 5*time.Second, func() bool { return len(received(s, "presence/kid")) > 0 })
		var p hearth.Presence
		json.Unmarshal([]byte(received(s, "presence/kid")[0]), &p)
		return p
	}
	if p := retained(); p.Online || p.Connections != 0 {
		t.Errorf("retained after the last disconnect: %+v, want offline", p)
	}

	// Cycles again, with one connection that stays.
	stay := mt.DialRaw(t, b.addr, 5)
	if ack := stay.Connect(mt.Connect{User: "kid", Pass: password("kid"), Clean: true}); ack.Code != 0 {
		t.Fatalf("CONNACK %v", ack)
	}
	for range 50 {
		r := mt.DialRaw(t, b.addr, 5)
		r.Connect(mt.Connect{User: "kid", Pass: password("kid"), Clean: true})
		r.Conn.Close()
	}
	mt.WaitFor(t, "kid online once", 5*time.Second, func() bool { p := last(); return p.Online && p.Connections == 1 })
	time.Sleep(2 * presenceEvery)
	if p := retained(); !p.Online || p.Connections != 1 {
		t.Errorf("retained with one connection left: %+v, want online, 1", p)
	}
}
