package broker

import (
	"cmp"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// maxOfflineSessions is how many persistent sessions without a connection
// one user keeps. A client that makes up a new client id at every start
// (a reinstalled app, a browser tab) would leave one behind each time.
// What they may hold together is bounded by Config.MaxOfflineBytes.
const maxOfflineSessions = 20

// wentOffline runs when cl's connection ends. If its session goes on, the
// oldest other offline sessions of its user beyond maxOfflineSessions end
// as if they had expired (not while the broker closes). A session that
// ends with its connection ends here.
func (h *hook) wentOffline(cl *mqtt.Client, expire bool) {
	h.capMu.Lock()
	defer h.capMu.Unlock()
	if h.resuming[cl.ID] == cl {
		delete(h.resuming, cl.ID) // it never got its session
	}
	if expire {
		delete(h.offline, cl.ID)
		if h.resuming[cl.ID] == nil { // no new connection is taking the session
			h.router.endIf(cl.ID, cl)
		}
		return
	}
	h.offline[cl.ID] = time.Now().UnixNano()
	if !h.b.started.Load() {
		return
	}
	user := userOf(cl)
	var offline []*mqtt.Client
	for _, c := range h.b.server.Clients.GetAll() {
		// Not a session being resumed, nor one whose connection has just
		// ended (no time yet); restored ones (no connection) count.
		_, seen := h.offline[c.ID]
		if c != cl && userOf(c) == user && c.Closed() && !c.IsTakenOver() && !c.Net.Inline &&
			h.resuming[c.ID] == nil && (seen || c.Net.Conn == nil) {
			offline = append(offline, c)
		}
	}
	if len(offline) < maxOfflineSessions {
		return
	}
	// Sessions restored at start have no time here (0): they go first.
	slices.SortFunc(offline, func(a, b *mqtt.Client) int {
		return cmp.Or(cmp.Compare(h.offline[a.ID], h.offline[b.ID]), cmp.Compare(a.StopTime(), b.StopTime()))
	})
	for _, c := range offline[:len(offline)-maxOfflineSessions+1] {
		if cur, ok := h.b.server.Clients.Get(c.ID); !ok || cur != c {
			continue
		}
		h.b.log.Info("mqtt session ended: too many offline sessions", "user", user, "client", c.ID, "limit", maxOfflineSessions)
		h.b.Stats.SessionsCapped.Add(1)
		c.ClearInflights()
		h.endSession(c)
		h.b.server.Clients.Delete(c.ID)
	}
}

// OnClientExpired removes the subscriptions of an expired session, which
// mochi leaves in its topic index, and the session itself.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.capMu.Lock()
	defer h.capMu.Unlock()
	if cur, ok := h.b.server.Clients.Get(cl.ID); cl.IsTakenOver() || h.resuming[cl.ID] != nil || !ok || cur != cl {
		return // a new connection has the session now
	}
	h.endSession(cl)
}

// endSession forgets an offline session; capMu is held. A will still
// waiting for its delay is sent now.
func (h *hook) endSession(cl *mqtt.Client) {
	delete(h.offline, cl.ID)
	for filter := range cl.State.Subscriptions.GetAll() {
		h.b.server.Topics.Unsubscribe(filter, cl.ID)
		cl.State.Subscriptions.Delete(filter)
	}
	h.router.subs.changed()
	h.router.end(cl.ID)
	h.wills.flush(cl.ID)
	if h.sessions != nil {
		h.sessions.expired(cl.ID)
	}
}
