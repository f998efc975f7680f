package hearth

import (
	"net"
	"sync"
	"time"
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

// LoginLimiter holds a bucket of failed logins per user name and per
// client address, shared by the HTTP login and MQTT CONNECT. It is safe for
// concurrent use and bounded in memory.
type LoginLimiter struct {
	mu    sync.Mutex
	users map[string]*bucket
	ips   map[string]*bucket
	now   func() time.Time
}

// bucket is a token bucket: tokens refill at one per every, up to burst;
// an attempt takes one and a success gives it back.
type bucket struct {
	tokens  float64
	pending int // attempts being checked now
	burst   float64
	every   time.Duration
	last    time.Time // of the last refill
	used    time.Time // of the last use, for eviction
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.every))
		b.last = now
	}
}

// delay is how long until the bucket holds one token.
func (b *bucket) delay() time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.every))
}

// NewLoginLimiter returns an empty limiter.
func NewLoginLimiter() *LoginLimiter {
	return &LoginLimiter{users: map[string]*bucket{}, ips: map[string]*bucket{}, now: time.Now}
}

// Begin starts a login attempt for user from the remote address (host and
// port, or a host; the port is not counted). It returns how
// long the caller must wait (and a nil attempt) when failures used up
// either bucket, or the attempt. Attempts being checked count against the
// buckets too: one that would exceed them waits (a few seconds at most)
// for those to end, so that guesses made in parallel get no further than
// guesses made one by one, while several devices logging in at once all
// get in. Done ends the attempt.
func (l *LoginLimiter) Begin(user, remote string) (*LoginAttempt, time.Duration) {
	ip := hostOf(remote)
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		now := l.now()
		// The address first: a blocked address makes no bucket for the
		// names it tries.
		ib := l.get(l.ips, ip, ipFailEvery, ipFailBurst, now)
		if d := ib.delay(); d > 0 {
			return nil, d
		}
		ub := l.get(l.users, user, userFailEvery, userFailBurst, now)
		if d := ub.delay(); d > 0 {
			return nil, d
		}
		if ub.tokens-float64(ub.pending) >= 1 && ib.tokens-float64(ib.pending) >= 1 {
			ub.pending++
			ib.pending++
			return &LoginAttempt{l: l, buckets: [2]*bucket{ub, ib}}, 0
		}
		if time.Since(start) > beginWait {
			return nil, time.Second
		}
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		l.mu.Lock()
	}
}

// hostOf is the host part of a remote address. Behind a reverse proxy,
// the caller passes the client's address (ClientOf), not the proxy's.
func hostOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// beginWait is the longest an attempt waits for others being checked.
const beginWait = 3 * time.Second

// LoginAttempt is a login attempt in progress.
type LoginAttempt struct {
	l       *LoginLimiter
	buckets [2]*bucket
}

// Done ends the attempt: a failed one takes a token from both buckets.
func (a *LoginAttempt) Done(ok bool) {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	for _, b := range a.buckets {
		b.pending--
		if !ok {
			b.tokens--
		}
	}
}

func (l *LoginLimiter) get(m map[string]*bucket, key string, every time.Duration, burst int, now time.Time) *bucket {
	b, ok := m[key]
	if !ok {
		if len(m) >= limiterKeep {
			evictIdlest(m)
		}
		b = &bucket{tokens: float64(burst), burst: float64(burst), every: every, last: now}
		m[key] = b
	}
	b.refill(now)
	b.used = now
	return b
}

// evictIdlest drops the tenth of the entries least recently used.
func evictIdlest(m map[string]*bucket) {
	n := len(m)/10 + 1
	for range n {
		var oldK string
		var oldT time.Time
		for k, b := range m {
			if oldK == "" || b.used.Before(oldT) {
				oldK, oldT = k, b.used
			}
		}
		delete(m, oldK)
	}
}
