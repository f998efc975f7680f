package history

import (
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

	for i := range userFailBurst {
		if d := l.wait("kid", req); d != 0 {
			t.Fatalf("attempt %d: wait %s, want 0", i+1, d)
		}
		l.failed("kid", req)
	}
	if d := l.wait("kid", req); d <= 0 || d > userFailEvery {
		t.Fatalf("after %d failures: wait %s, want (0, %s]", userFailBurst, d, userFailEvery)
	}
	if d := l.wait("kid", other); d == 0 {
		t.Fatal("another address may guess kid's password at full speed")
	}
	if d := l.wait("dad", req); d != 0 {
		t.Fatalf("dad is held up by kid's failures: %s", d)
	}
	now = now.Add(userFailEvery)
	if d := l.wait("kid", req); d != 0 {
		t.Fatalf("after waiting: %s, want 0", d)
	}

	// One address trying many names is slowed down too.
	for i := range ipFailBurst {
		l.failed(string(rune('a'+i%26))+"x", other)
	}
	if d := l.wait("zed", other); d == 0 {
		t.Fatal("an address with many failures is not slowed down")
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	l := newLoginLimiter()
	req := httptest.NewRequest("POST", "/api/login", nil)
	for i := range limiterKeep + 500 {
		l.failed(string(rune(i))+"-user", req)
	}
	if n := len(l.users); n > limiterKeep {
		t.Fatalf("%d user names remembered, want at most %d", n, limiterKeep)
	}
}
