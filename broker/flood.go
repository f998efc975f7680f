package broker

import (
	"sync"
	"time"
)

// Escalation of the publish rate limit. A connection whose publishes the
// rate limit refuses floodStrikes times within floodWindow is
// disconnected. A user whose connections are disconnected for flooding
// floodFlaps times within flapWindow is held off: that user's MQTT
// connections are refused for Config.HoldOff (default defaultHoldOff),
// the way EMQX's flapping detection bans a client that keeps coming back.
const (
	floodStrikes   = 20
	floodWindow    = 10 * time.Second
	floodFlaps     = 3
	flapWindow     = 5 * time.Minute
	defaultHoldOff = time.Minute
)

type floodGuard struct {
	hold time.Duration

	mu    sync.Mutex
	flaps map[string][]time.Time // recent flood disconnects of a user
	held  map[string]time.Time   // users held off until then
}

func newFloodGuard(hold time.Duration) *floodGuard {
	if hold <= 0 {
		hold = defaultHoldOff
	}
	return &floodGuard{
		hold:  hold,
		flaps: map[string][]time.Time{},
		held:  map[string]time.Time{},
	}
}

// recent appends now to times, dropping what is older than window.
func recent(times []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(times) && now.Sub(times[i]) > window {
		i++
	}
	return append(times[i:], now)
}

// refused notes a publish of a connection refused for the rate limit
// (strikes are the connection's; only its read loop uses them) and
// reports whether it is to be disconnected for flooding.
func refused(strikes *[]time.Time) bool {
	*strikes = recent(*strikes, time.Now(), floodWindow)
	return len(*strikes) >= floodStrikes
}

// flooded notes that a connection of user was disconnected for flooding,
// and holds the user off after too many.
func (g *floodGuard) flooded(user string) (held bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	f := recent(g.flaps[user], now, flapWindow)
	if len(f) < floodFlaps {
		g.flaps[user] = f
		return false
	}
	delete(g.flaps, user)
	g.held[user] = now.Add(g.hold)
	return true
}

// heldOff returns how long user is still held off, or 0.
func (g *floodGuard) heldOff(user string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.held[user]
	if !ok {
		return 0
	}
	left := time.Until(until)
	if left <= 0 {
		delete(g.held, user)
		return 0
	}
	return left
}
