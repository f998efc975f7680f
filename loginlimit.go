package hearth

import (
	"math"
	"net"
	"sync"
	"time"
)

// Login attempts that fail are limited per user name and client address,
// and per address, against password guessing, so that guesses from one
// address never hold up the right password from another. Successful
// logins cost nothing.
//
// A failure of one user name from anywhere also counts against that
// name's own budget. While that is used up (guesses from many addresses),
// an address that failed within cleanAfter is refused for that name; an
// address without recent failures, and a known client (one that logged
// in as that user from that address before), still get in.
const (
	pairFailBurst = 5                // failures of one name from one address before it is slowed down
	pairFailEvery = 30 * time.Second // then one more try per this
	ipFailBurst   = 20               // failures from one address, whatever the names
	ipFailEvery   = 10 * time.Second
	userFailBurst = 50 // failures of one name from every address together
	userFailEvery = time.Minute
	cleanAfter    = time.Hour           // an address without failures for this long is clean
	knownFor      = 30 * 24 * time.Hour // a client is known this long after its last login
	limiterKeep   = 10000               // entries remembered per map; the idlest go first
)

// LoginLimiter holds buckets of failed logins, shared by the HTTP login
// and MQTT CONNECT. It is safe for concurrent use and bounded in memory.
type LoginLimiter struct {
	mu    sync.Mutex
	pairs map[string]*bucket // by user name and address
	ips   map[string]*bucket // by address
	users map[string]*bucket // by user name
	known map[string]*bucket // by user name, address and client id: clients that logged in
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
	failed  time.Time // of the last failure (addresses)
	ok      time.Time // of the last success (known clients)
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
	// Rounded up: a bucket a hair short of a token must not say 0.
	return time.Duration(math.Ceil((1 - b.tokens) * float64(b.every)))
}

// room reports whether an attempt fits beside those being checked.
func (b *bucket) room() bool { return b.tokens-float64(b.pending) >= 1 }

// NewLoginLimiter returns an empty limiter.
func NewLoginLimiter() *LoginLimiter {
	return &LoginLimiter{pairs: map[string]*bucket{}, ips: map[string]*bucket{}, users: map[string]*bucket{},
		known: map[string]*bucket{}, now: time.Now}
}

// Begin starts a login attempt for user from the remote address (host and
// port, or a host; the port is not counted), as BeginClient does for a
// client without an id (the HTTP login).
func (l *LoginLimiter) Begin(user, remote string) (*LoginAttempt, time.Duration) {
	return l.BeginClient(user, remote, "")
}

// BeginClient starts a login attempt for user from the remote address by
// the client id client. It returns how long the caller must wait (and a
// nil attempt) when failures used up a bucket, or the attempt. Attempts
// being checked count against the buckets too: one that would exceed them
// waits (a few seconds at most) for those to end, so that guesses made in
// parallel get no further than guesses made one by one, while several
// devices logging in at once all get in. Done ends the attempt.
//
// A client that logged in as user from this address with this client id
// within knownFor has a bucket of its own, so that guesses from its
// address by anyone else (another device behind the same router) do not
// lock it out.
func (l *LoginLimiter) BeginClient(user, remote, client string) (*LoginAttempt, time.Duration) {
	ip := HostOf(remote)
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		a, wait := l.attempt(user, ip, client, l.now())
		if wait > 0 {
			return nil, wait
		}
		if a.fits() {
			for _, b := range a.checked {
				b.pending++
			}
			return a, 0
		}
		if time.Since(start) > beginWait {
			return nil, time.Second
		}
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		l.mu.Lock()
	}
}

// attempt finds the buckets of an attempt, or how long it must wait; mu
// is held.
func (l *LoginLimiter) attempt(user, ip, client string, now time.Time) (*LoginAttempt, time.Duration) {
	a := &LoginAttempt{l: l, known: user + "\x00" + ip + "\x00" + client}
	if kb, ok := l.known[a.known]; ok && now.Sub(kb.ok) < knownFor {
		kb.refill(now)
		kb.used = now
		a.checked = []*bucket{kb}
		return a, kb.delay()
	}
	// The address first: a blocked address makes no bucket for the
	// names it tries.
	a.ip = l.get(l.ips, ip, ipFailEvery, ipFailBurst, now)
	if d := a.ip.delay(); d > 0 {
		return nil, d
	}
	pb := l.get(l.pairs, user+"\x00"+ip, pairFailEvery, pairFailBurst, now)
	if d := pb.delay(); d > 0 {
		return nil, d
	}
	ub := l.get(l.users, user, userFailEvery, userFailBurst, now)
	a.checked = []*bucket{a.ip, pb}
	if a.ip.failed.IsZero() || now.Sub(a.ip.failed) >= cleanAfter {
		a.charged = ub // a clean address is not held by the name's budget
		return a, 0
	}
	if d := ub.delay(); d > 0 {
		return nil, min(d, a.ip.failed.Add(cleanAfter).Sub(now))
	}
	a.checked = append(a.checked, ub)
	return a, 0
}

// HostOf is the host part of a remote address ("192.0.2.7:50122"), or
// remote itself when it has no port. Behind a reverse proxy, the caller
// passes the client's address (ClientOf), not the proxy's.
func HostOf(remote string) string {
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
	checked []*bucket // each needs room; a failure takes a token of each
	ip      *bucket   // the address's: a failure marks it not clean; nil for a known client
	charged *bucket   // the name's, when not checked: a failure takes one of its tokens, if any
	known   string    // the key of the client, made known by a success
}

func (a *LoginAttempt) fits() bool {
	for _, b := range a.checked {
		if !b.room() {
			return false
		}
	}
	return true
}

// Done ends the attempt: a failed one takes a token from its buckets; a
// successful one makes its client known.
func (a *LoginAttempt) Done(ok bool) {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	now := a.l.now()
	for _, b := range a.checked {
		b.pending--
		if !ok {
			b.tokens--
		}
	}
	switch {
	case ok:
		kb := a.l.get(a.l.known, a.known, pairFailEvery, pairFailBurst, now)
		kb.ok = now
	case a.ip != nil:
		a.ip.failed = now
		if a.charged != nil && a.charged.tokens >= 1 {
			a.charged.tokens--
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
