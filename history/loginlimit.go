package history

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login attempts that fail are limited per user name and per client
// address, against password guessing. Successful logins cost nothing.
const (
	userFailBurst = 5                // failures in a row before a user name is slowed down
	userFailEvery = 30 * time.Second // then one more try per this
	ipFailBurst   = 20
	ipFailEvery   = 10 * time.Second
	limiterKeep   = 10000 // names or addresses remembered; the idlest go first
)

// loginLimiter holds a token bucket of failures per user name and per
// address. It is safe for concurrent use and bounded in memory.
type loginLimiter struct {
	mu    sync.Mutex
	users map[string]*bucket
	ips   map[string]*bucket
	now   func() time.Time
}

type bucket struct {
	lim   *rate.Limiter
	every time.Duration
	last  time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{users: map[string]*bucket{}, ips: map[string]*bucket{}, now: time.Now}
}

// begin starts a login attempt for user from r's address. It returns
// how long the caller must wait first (and a nil attempt), or the attempt,
// which takes a failure from both buckets at once, so that attempts made
// in parallel count before their passwords are checked. A successful
// attempt gives its failures back.
func (l *loginLimiter) begin(user string, r *http.Request) (*attempt, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ub := l.get(l.users, user, userFailEvery, userFailBurst, now)
	ib := l.get(l.ips, clientIP(r), ipFailEvery, ipFailBurst, now)
	if d := max(ub.delay(now), ib.delay(now)); d > 0 {
		return nil, d
	}
	return &attempt{l: l, res: []*rate.Reservation{ub.lim.ReserveN(now, 1), ib.lim.ReserveN(now, 1)}}, 0
}

// attempt is a login attempt in progress.
type attempt struct {
	l   *loginLimiter
	res []*rate.Reservation
}

// succeeded gives the attempt's failures back: the password was right.
func (a *attempt) succeeded() {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	now := a.l.now()
	for _, r := range a.res {
		r.CancelAt(now)
	}
}

func (l *loginLimiter) get(m map[string]*bucket, key string, every time.Duration, burst int, now time.Time) *bucket {
	b, ok := m[key]
	if !ok {
		if len(m) >= limiterKeep {
			evictIdlest(m)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(every), burst), every: every}
		m[key] = b
	}
	b.last = now
	return b
}

// delay is how long until one more failure would be allowed.
func (b *bucket) delay(now time.Time) time.Duration {
	t := b.lim.TokensAt(now)
	if t >= 1 {
		return 0
	}
	return time.Duration((1 - t) * float64(b.every))
}

// evictIdlest drops the tenth of the entries least recently used.
func evictIdlest(m map[string]*bucket) {
	n := len(m)/10 + 1
	for range n {
		var oldK string
		var oldT time.Time
		for k, b := range m {
			if oldK == "" || b.last.Before(oldT) {
				oldK, oldT = k, b.last
			}
		}
		delete(m, oldK)
	}
}

// clientIP is the address the request came from. hearth does not trust
// X-Forwarded-For: behind a proxy, every client shares its address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
