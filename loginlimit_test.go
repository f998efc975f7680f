package hearth

import (
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	l := NewLoginLimiter()
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	req, other := "192.0.2.1", "192.0.2.2"

	wait := func(user string, r string) time.Duration {
		a, d := l.Begin(user, r)
		if a != nil {
			a.Done(true) // only looking
		}
		return d
	}
	fail := func(user string, r string) {
		a, d := l.Begin(user, r)
		if a == nil {
			t.Fatalf("%s: refused for %s before failing", user, d)
		}
		a.Done(false)
	}
	for range userFailBurst {
		fail("kid", req)
	}
	if d := wait("kid", req); d <= 0 || d > userFailEvery {
		t.Fatalf("after %d failures: wait %s, want (0, %s]", userFailBurst, d, userFailEvery)
	}
	if d := wait("kid", other); d == 0 {
		t.Fatal("another address may guess kid's password at full speed")
	}
	if d := wait("dad", req); d != 0 {
		t.Fatalf("dad is held up by kid's failures: %s", d)
	}
	now = now.Add(userFailEvery)
	if d := wait("kid", req); d != 0 {
		t.Fatalf("after waiting: %s, want 0", d)
	}

	// Attempts being checked count: of six in parallel, five are checked
	// and fail, and the sixth is then refused without a check.
	var tries []*LoginAttempt
	for range userFailBurst {
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
		fail(string(rune('a'+i%26))+"x", other)
	}
	if d := wait("zed", other); d == 0 {
		t.Fatal("an address with many failures is not slowed down")
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	l := NewLoginLimiter()
	req := "192.0.2.1"
	for i := range limiterKeep + 500 {
		if a, _ := l.Begin(string(rune(i))+"-user", req); a != nil {
			a.Done(true)
		}
	}
	if n := len(l.users); n > limiterKeep {
		t.Fatalf("%d user names remembered, want at most %d", n, limiterKeep)
	}
}
