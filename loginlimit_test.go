package hearth

import (
	"fmt"
	"testing"
	"time"
)

// limiterClock is a LoginLimiter on a clock the test moves.
func limiterClock() (*LoginLimiter, *time.Time) {
	l := NewLoginLimiter()
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	return l, &now
}

// wait returns how long user must wait from remote with client; an
// attempt it may make is ended as a success when ok.
func limiterWait(l *LoginLimiter, user, remote, client string, ok bool) time.Duration {
	a, d := l.BeginClient(user, remote, client)
	if a != nil {
		a.Done(ok)
	}
	return d
}

func limiterFail(t *testing.T, l *LoginLimiter, user, remote, client string) {
	t.Helper()
	a, d := l.BeginClient(user, remote, client)
	if a == nil {
		t.Fatalf("%s from %s: refused for %s before failing", user, remote, d)
	}
	a.Done(false)
}

func TestLoginLimiter(t *testing.T) {
	l, now := limiterClock()
	req, other := "192.0.2.1", "192.0.2.2"
	// wait only looks: a possible attempt is ended as a success only
	// where that is the test's point.
	wait := func(user, r string) time.Duration {
		a, d := l.Begin(user, r)
		if a != nil {
			a.l.mu.Lock()
			for _, b := range a.checked {
				b.pending--
			}
			a.l.mu.Unlock()
		}
		return d
	}
	for range pairFailBurst {
		limiterFail(t, l, "kid", req, "")
	}
	if d := wait("kid", req); d <= 0 || d > pairFailEvery {
		t.Fatalf("after %d failures: wait %s, want (0, %s]", pairFailBurst, d, pairFailEvery)
	}
	if d := wait("kid", other); d != 0 {
		t.Fatalf("kid's right password from another address is held up by guesses from %s: %s", req, d)
	}
	if d := wait("dad", req); d != 0 {
		t.Fatalf("dad is held up by kid's failures: %s", d)
	}
	*now = now.Add(pairFailEvery)
	if d := wait("kid", req); d != 0 {
		t.Fatalf("after waiting: %s, want 0", d)
	}

	// Attempts being checked count: of six in parallel, five are checked
	// and fail, and the sixth is then refused without a check.
	var tries []*LoginAttempt
	for range pairFailBurst {
		a, _ := l.Begin("mum", req)
		if a == nil {
			t.Fatal("an attempt within the burst was refused")
		}
		tries = append(tries, a)
	}
	sixth := make(chan *LoginAttempt)
	go func() { a, _ := l.Begin("mum", req); sixth <- a }()
	time.Sleep(20 * time.Millisecond) // the sixth waits for the others
	for _, a := range tries {
		a.Done(false)
	}
	if a := <-sixth; a != nil {
		t.Fatal("a sixth guess in parallel got through")
	}
	// Right passwords at once all get in.
	for range 10 {
		a, _ := l.Begin("dad", "192.0.2.9")
		if a == nil {
			t.Fatal("a right password was held up by others in parallel")
		}
		go a.Done(true)
	}

	// One address trying many names is slowed down too.
	for i := range ipFailBurst {
		limiterFail(t, l, string(rune('a'+i%26))+"x", other, "")
	}
	if d := wait("zed", other); d == 0 {
		t.Fatal("an address with many failures is not slowed down")
	}
}

// TestLoginLimiterOneGuessEverySecond: an address guessing a password once
// a second is held after its burst, with a wait to tell, while the right
// password from another address gets in every time, for an hour.
func TestLoginLimiterOneGuessEverySecond(t *testing.T) {
	l, now := limiterClock()
	tried := 0 // guesses checked (and failed)
	for i := range 3600 {
		if d := limiterWait(l, "mum", "198.51.100.7:4000", "", false); d == 0 {
			tried++
		} else if d > max(pairFailEvery, userFailEvery) {
			t.Fatalf("second %d: the guesser waits %s, want at most %s", i, d, max(pairFailEvery, userFailEvery))
		}
		if d := limiterWait(l, "mum", "192.0.2.1:5000", "", true); d != 0 {
			t.Fatalf("second %d: the right password from another address waits %s", i, d)
		}
		*now = now.Add(time.Second)
	}
	if most := pairFailBurst + int(time.Hour/pairFailEvery); tried > most {
		t.Errorf("%d guesses in an hour got through, want at most %d", tried, most)
	}
}

// TestLoginLimiterDistributed: guesses from many addresses use up a name's
// own budget; then addresses that failed are held for that name, while a
// clean address and a known client still get in.
func TestLoginLimiterDistributed(t *testing.T) {
	l, now := limiterClock()
	// mum's phone logged in from home before, and mistyped once since.
	home := "192.0.2.50:1883"
	if d := limiterWait(l, "mum", home, "mums-phone", true); d != 0 {
		t.Fatal(d)
	}
	limiterFail(t, l, "mum", home, "")
	for i := range userFailBurst + 10 {
		limiterWait(l, "mum", fmt.Sprintf("203.0.113.%d:999", i), "", false)
	}
	if d := limiterWait(l, "mum", "203.0.113.3:999", "", false); d == 0 {
		t.Error("an attacking address may guess again once the name's budget is used up")
	}
	if d := limiterWait(l, "mum", home, "", false); d == 0 {
		t.Error("an unknown client at an address with a recent failure gets through a used-up budget")
	}
	if d := limiterWait(l, "mum", "192.0.2.77:1000", "", true); d != 0 {
		t.Errorf("a clean address waits %s", d)
	}
	if d := limiterWait(l, "mum", home, "mums-phone", true); d != 0 {
		t.Errorf("the known client waits %s", d)
	}
	// The address is clean again after cleanAfter.
	*now = now.Add(cleanAfter)
	if d := limiterWait(l, "mum", "203.0.113.3:999", "", true); d != 0 {
		t.Errorf("after %s: wait %s", cleanAfter, d)
	}
}

// TestLoginLimiterKnownClient: a device that logged in before keeps
// getting in while someone at its address guesses the same name.
func TestLoginLimiterKnownClient(t *testing.T) {
	l, _ := limiterClock()
	home := "192.0.2.50"
	if d := limiterWait(l, "doorbell", home+":1", "doorbell", true); d != 0 {
		t.Fatal(d)
	}
	for range pairFailBurst {
		limiterFail(t, l, "doorbell", home+":2", "kids-laptop")
	}
	if d := limiterWait(l, "doorbell", home+":3", "kids-laptop", false); d == 0 {
		t.Error("guesses at the device's address are not held")
	}
	if d := limiterWait(l, "doorbell", home+":4", "doorbell", true); d != 0 {
		t.Errorf("the known device waits %s", d)
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	l := NewLoginLimiter()
	req := "192.0.2.1"
	for i := range limiterKeep + 500 {
		if a, _ := l.Begin(string(rune(i))+"-user", req); a != nil {
			a.Done(i%2 == 0)
		}
	}
	for name, m := range map[string]map[string]*bucket{"user names": l.users, "pairs": l.pairs, "known clients": l.known} {
		if n := len(m); n > limiterKeep {
			t.Errorf("%d %s remembered, want at most %d", n, name, limiterKeep)
		}
	}
}
