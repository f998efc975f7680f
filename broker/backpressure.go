package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Backpressure on publishers while the archive is behind.
//
// The bridge acknowledges only after its commits, so in a burst faster
// than the archive its session's queue would grow without end (it is not
// bounded by bytes, so that the archive loses nothing to a bound).
// Instead, a chat message is held before it is accepted, in the
// publisher's own read loop (so its PUBACK waits and its socket is not
// read), while the bridge's session holds high or more messages (half of
// Config.MaxInflight). If the archive does not catch up within
// archiveMaxWait, the publish is refused (MQTT 5 QoS 1: 0x97 quota exceeded, and the sender's
// outbox retries it); an MQTT 3.1.1 publisher at QoS 1 is disconnected
// instead, so that it sends the message again after reconnecting.
const archiveMaxWait = 10 * time.Second

// archiveGate tracks the bridge's inflight store and wakes held
// publishers when the bridge acknowledges.
type archiveGate struct {
	router   *router
	clientID string
	high     int

	// subscribed is set once the embedded bridge has subscribed; until
	// then chat messages would reach no archive, so they wait. It stays
	// false, and is not waited for, when the bridge archives from an
	// external broker.
	local      bool
	subscribed atomic.Bool

	mu      sync.Mutex
	wake    chan struct{} // closed and replaced on every acknowledgement while someone waits
	waiters atomic.Int32
}

func newArchiveGate(r *router, clientID string, high int, local bool) *archiveGate {
	return &archiveGate{router: r, clientID: clientID, high: high, local: local, wake: make(chan struct{})}
}

// behind reports whether the embedded bridge has not subscribed yet, or
// its session holds high or more unacknowledged messages.
func (g *archiveGate) behind() bool {
	if g.local && !g.subscribed.Load() {
		return true
	}
	s, ok := g.router.lookup(g.clientID)
	return ok && s.unacked() >= g.high
}

// bridgeSubscribed is called when the bridge's subscription is in place.
func (g *archiveGate) bridgeSubscribed() {
	g.subscribed.Store(true)
	g.acked()
}

// wait holds the caller while the archive is behind, for at most max. It
// reports whether the archive has room. Before it holds the caller, it
// calls blocking (if not nil): a read loop lets go of the connections
// whose writes it gathers, the bridge's among them.
func (g *archiveGate) wait(max time.Duration, blocking func()) bool {
	if !g.behind() {
		return true
	}
	if blocking != nil {
		blocking()
	}
	g.waiters.Add(1)
	defer g.waiters.Add(-1)
	timeout := time.NewTimer(max)
	defer timeout.Stop()
	for {
		g.mu.Lock()
		wake := g.wake
		g.mu.Unlock()
		if !g.behind() {
			return true
		}
		select {
		case <-wake:
		case <-time.After(50 * time.Millisecond): // the bridge may also have gone or come back
		case <-timeout.C:
			return !g.behind()
		}
	}
}

// acked is called on every completed QoS flow of the bridge.
func (g *archiveGate) acked() {
	if g.waiters.Load() == 0 {
		return // a waiter checks behind() after it has taken wake, so it misses nothing
	}
	g.mu.Lock()
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
}
