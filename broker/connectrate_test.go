package broker

import (
	"regexp"
	"testing"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestConnectRate: new connections over the rate of their address are
// refused with 0x9F and when to try again (3.1.1: 3, server unavailable),
// those over the rate of their user likewise, from any address; other
// addresses and users are not affected, and wrong passwords do not use up
// a user's rate.
func TestConnectRate(t *testing.T) {
	b := startBroker(t, func(_ *hearth.Config, c *Config) {
		c.ConnectRatePerAddress, c.ConnectRatePerUser, c.ConnectBurst = 0.1, 0.1, 5
	})
	retry := regexp.MustCompile(`^too many connections: try again in [1-9][0-9]* s$`)
	connect := func(from, user, pass string, v byte) mt.Packet {
		t.Helper()
		r := mt.DialRawFrom(t, from, b.addr, v)
		ack := r.Connect(mt.Connect{User: user, Pass: pass, Clean: true})
		r.Conn.Close()
		return ack
	}
	for i := range 5 {
		if ack := connect("127.0.0.2", "kid", password("kid"), 5); ack.Code != 0 {
			t.Fatalf("connection %d within the burst: %v", i, ack)
		}
	}
	ack := connect("127.0.0.2", "dad", password("dad"), 5)
	if ack.Code != 0x9F || !retry.MatchString(ack.Props.Str(0x1F)) {
		t.Errorf("over the address's rate: %v reason %q, want 0x9F with when to try again", ack, ack.Props.Str(0x1F))
	}
	if ack := connect("127.0.0.2", "dad", password("dad"), 4); ack.Code != 3 {
		t.Errorf("over the address's rate, MQTT 3.1.1: %v, want 3", ack)
	}
	if ack := connect("127.0.0.1", "dad", password("dad"), 5); ack.Code != 0 {
		t.Errorf("another address: %v", ack)
	}
	if ack := connect("127.0.0.3", "kid", password("kid"), 5); ack.Code != 0x9F {
		t.Errorf("over the user's rate from a new address: %v, want 0x9F", ack)
	}
	if ack := connect("127.0.0.3", "mum", password("mum"), 5); ack.Code != 0 {
		t.Errorf("another user at that address: %v", ack)
	}
	for range 4 {
		if ack := connect("127.0.0.4", "dad", "guess", 5); ack.Code != 0x86 {
			t.Fatalf("wrong password: %v", ack)
		}
	}
	if ack := connect("127.0.0.5", "dad", password("dad"), 5); ack.Code != 0 {
		t.Errorf("dad after wrong passwords elsewhere: %v", ack)
	}
	if n := b.Refused(ConnectRate); n != 3 {
		t.Errorf("%d refusals counted, want 3", n)
	}
}
