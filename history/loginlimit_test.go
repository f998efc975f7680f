package history

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	l := newLoginLimiter()
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	req := httptest.NewRequest("POST", "/api/login", nil)
	req.RemoteAddr = "192.0.2.1:5555"
	other := httptest.NewRequest("POST", "/api/login", nil)
	other.RemoteAddr = "192.0.2.2:5555"

	wait := func(user string, r *http.Request) time.Duration {
		a, d := l.begin(user, r)
		if a != nil {
			a.succeeded() // only looking
		}
		return d
	}
	fail := func(user string, r *http.Request) {
		if a, d := l.begin(user, r); a == nil {
			t.Fatalf("%s: refused for %s before failing", user, d)
		}
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

	// Attempts in flight count at once: five begun, none finished.
	for range userFailBurst - 1 {
		fail("mum", req)
	}
	if a, _ := l.begin("mum", req); a == nil {
		t.Fatal("the fifth attempt refused")
	}
	if a, _ := l.begin("mum", req); a != nil {
		t.Fatal("a sixth attempt in parallel was let through")
	}

	// One address trying many names is slowed down too.
	for i := range ipFailBurst {
		l.begin(string(rune('a'+i%26))+"x", other)
	}
	if d := wait("zed", other); d == 0 {
		t.Fatal("an address with many failures is not slowed down")
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	l := newLoginLimiter()
	req := httptest.NewRequest("POST", "/api/login", nil)
	for i := range limiterKeep + 500 {
		l.begin(string(rune(i))+"-user", req)
	}
	if n := len(l.users); n > limiterKeep {
		t.Fatalf("%d user names remembered, want at most %d", n, limiterKeep)
	}
}
