package broker

import (
	"fmt"
	"os/exec"
	"regexp"
	"testing"
	"time"

	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestLoginGuessesHeldPerAddress: someone guessing mum's password ten
// times a second from one address (127.0.0.2) is refused there with
// 0x9F and a reason string that says when to try again (3.1.1: "server
// unavailable"), while mum's mosquitto_pub with the right password from
// another address (127.0.0.1) gets through every time.
func TestLoginGuessesHeldPerAddress(t *testing.T) {
	b := startBroker(t)
	pub := mt.NeedTool(t, "mosquitto_pub", "mosquitto-clients")
	h, p := mt.HostPort(t, b.addr)
	sub := mt.StartMosquittoSub(t, b.addr, "mqttv5", []string{"-u", "dad", "-P", password("dad"), "-t", "rooms/family/messages/+"})
	retry := regexp.MustCompile(`^too many failed logins: try again in [1-9][0-9]* s$`)
	held := 0
	for i := range 30 {
		r := mt.DialRawFrom(t, "127.0.0.2", b.addr, 5)
		switch ack := r.Connect(mt.Connect{ID: "guesser", User: "mum", Pass: "guess", Clean: true}); ack.Code {
		case 0x86:
			if held > 0 {
				t.Fatalf("guess %d: 0x86 after being held", i)
			}
		case 0x9F:
			if reason := ack.Props.Str(0x1F); !retry.MatchString(reason) {
				t.Errorf("guess %d: reason string %q, want when to try again", i, reason)
			}
			held++
		default:
			t.Fatalf("guess %d: CONNACK %v", i, ack)
		}
		r.Conn.Close()
		msg := fmt.Sprintf(`{"id":"m%d","text":"hi"}`, i)
		if out, err := exec.Command(pub, "-h", h, "-p", p, "-V", "mqttv5", "-q", "1", "-u", "mum", "-P", password("mum"),
			"-t", "rooms/family/messages/mum", "-m", msg).CombinedOutput(); err != nil {
			t.Fatalf("round %d: mosquitto_pub with the right password: %v: %s", i, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if held < 20 {
		t.Errorf("%d of 30 guesses held, want at least 20", held)
	}
	r := mt.DialRawFrom(t, "127.0.0.2", b.addr, 4)
	if ack := r.Connect(mt.Connect{ID: "guesser", User: "mum", Pass: "guess", Clean: true}); ack.Code != 3 {
		t.Errorf("MQTT 3.1.1 guess while held: CONNACK %v, want 3 (server unavailable)", ack)
	}
	mt.WaitFor(t, "mum's 30 messages", 5*time.Second, func() bool { return len(received(sub, "rooms/family/messages/mum")) == 30 })
}
