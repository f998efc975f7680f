package broker

import (
	"encoding/json"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/hearth-home/hearth"
)

// presence counts each user's connections and publishes presence/{user}
// (retained, QoS 1) when the count changes, so several tabs and devices of
// one person count once as online. It publishes at most once per
// presenceEvery per user: a change within that time waits for its end,
// and then the last state is published, so a client that connects and
// disconnects in a loop cannot flood every open chat.
type presence struct {
	b     *Broker
	mu    sync.Mutex
	count map[string]int
	sent  map[string]time.Time        // when each user's presence was last published
	due   map[string]*hearth.Presence // a change waiting for the end of its second
}

// presenceEvery is the shortest time between two presence publishes of
// one user.
const presenceEvery = time.Second

func newPresence(b *Broker) *presence {
	return &presence{b: b, count: map[string]int{}, sent: map[string]time.Time{}, due: map[string]*hearth.Presence{}}
}

// publishAllOffline runs at start. A user's last_seen is kept from the
// presence restored from the session file, if any.
func (p *presence) publishAllOffline() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.b.policy.Users() {
		p.publishOffline(u)
	}
}

// publishOffline publishes user as offline unless connected, keeping the
// last_seen of its retained presence; mu is held.
func (p *presence) publishOffline(u string) {
	if p.count[u] > 0 {
		return
	}
	var m hearth.Presence
	if pk, ok := p.b.hook.retainedMessage(hearth.PresenceTopic(u)); ok {
		var old hearth.Presence
		if json.Unmarshal(pk.Payload, &old) == nil {
			m.LastSeen = old.LastSeen
		}
	}
	p.publish(u, m)
}

// reloaded publishes the users a reload added as offline, and clears the
// retained presence of those it removed (an empty payload: the web chat
// takes them off its list).
func (p *presence) reloaded(added, removed []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range added {
		p.publishOffline(u)
	}
	for _, u := range removed {
		delete(p.due, u) // a change waiting for its second is not published
		if err := p.b.server.Publish(hearth.PresenceTopic(u), nil, true, 1); err != nil {
			p.b.log.Warn("clear presence", "user", u, "error", err)
		}
	}
}

func (p *presence) up(cl *mqtt.Client) {
	user := userOf(cl)
	if cl.Net.Inline || cl.Net.Listener == listenerInternal || user == "" {
		return
	}
	c := connOf(cl)
	if c == nil {
		return // a restored session: no connection
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.counted {
		return
	}
	c.counted = true
	p.count[user]++
	p.changed(user, hearth.Presence{Online: true, Connections: p.count[user], LastSeen: time.Now().UnixMilli()})
}

func (p *presence) down(cl *mqtt.Client) {
	c := connOf(cl)
	if c == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.counted { // restored or refused: never counted in
		return
	}
	c.counted = false
	user := userOf(cl)
	p.count[user]--
	n := p.count[user]
	if n <= 0 {
		delete(p.count, user)
		n = 0
	}
	if _, ok := p.b.policy.Role(user); !ok {
		return // removed by a reload, which cleared its presence
	}
	p.changed(user, hearth.Presence{Online: n > 0, Connections: n, LastSeen: time.Now().UnixMilli()})
}

// changed publishes user's new presence m now, or at the end of the
// second since the last publish; mu is held.
func (p *presence) changed(user string, m hearth.Presence) {
	if p.due[user] != nil {
		p.due[user] = &m // the timer publishes the latest
		return
	}
	since := time.Since(p.sent[user])
	if since >= presenceEvery {
		p.sent[user] = time.Now()
		p.publish(user, m)
		return
	}
	p.due[user] = &m
	time.AfterFunc(presenceEvery-since, func() { p.flush(user) })
}

// flush publishes user's presence that waited, unless the broker closed.
func (p *presence) flush(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.due[user]
	delete(p.due, user)
	select {
	case <-p.b.done:
		return // the next start publishes everyone offline
	default:
	}
	if m != nil {
		p.sent[user] = time.Now()
		p.publish(user, *m)
	}
}

// publish is called with mu held, so that retained presence is published
// in the order of the changes.
func (p *presence) publish(user string, m hearth.Presence) {
	b, _ := json.Marshal(m)
	if err := p.b.server.Publish(hearth.PresenceTopic(user), b, true, 1); err != nil {
		p.b.log.Warn("publish presence", "user", user, "error", err)
	}
}

// connections returns how many connections user has now.
func (p *presence) connections(user string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count[user]
}
