package broker

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeover mends a race in mochi's session takeover. When a client
// resumes its session, mochi clones the old connection's inflight
// messages, clears them, and only then registers the new connection;
// meanwhile publishes still find the old one. A QoS 1 message queued on
// the old connection after the clone is cleared or left there, and is
// lost: never delivered, never resent. The bridge, which resumes its
// session on every reconnect, lost such messages under load.
//
// takeover catches every message that reaches a taken-over connection
// (mochi marks it before cloning) and delivers it to the session's new
// connection once that is established, unless the clone already holds it.
type takeover struct {
	server  *mqtt.Server
	changed func(*mqtt.Client, uint16) // the message queued under an id was set or removed

	mu      sync.Mutex
	orphans map[string][]packets.Packet // by client id
	ready   map[*mqtt.Client]bool       // connections whose session is established
}

func newTakeover(s *mqtt.Server, changed func(*mqtt.Client, uint16)) *takeover {
	return &takeover{server: s, changed: changed, orphans: map[string][]packets.Packet{}, ready: map[*mqtt.Client]bool{}}
}

// queued is called for each QoS 1 or 2 message put in a connection's
// inflight store (OnQosPublish) or dropped from it (OnQosDropped).
func (t *takeover) queued(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || !cl.IsTakenOver() {
		return
	}
	t.mu.Lock()
	// A message set on the old connection and then cleared from it is
	// reported twice (OnQosPublish, then OnQosDropped): keep it once.
	dup := slices.ContainsFunc(t.orphans[cl.ID], func(o packets.Packet) bool {
		return o.PacketID == pk.PacketID && samePublish(o, pk)
	})
	if !dup {
		t.orphans[cl.ID] = append(t.orphans[cl.ID], pk)
	}
	t.mu.Unlock()
	t.flushCurrent(cl.ID)
}

// settle drops the orphans that cl, which resumes its session, holds
// already in the queue cloned from its predecessor (mochi reports them as
// the predecessor's queue is cleared). It runs before the session's queue
// is renumbered for the resend, while the clone and the orphans still
// carry the same stamps; orphans that come later are new messages.
func (t *takeover) settle(cl *mqtt.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var kept []packets.Packet
	for _, pk := range t.orphans[cl.ID] {
		if held, ok := cl.State.Inflight.Get(pk.PacketID); !ok || !samePublish(held, pk) {
			kept = append(kept, pk)
		}
	}
	if len(kept) == 0 {
		delete(t.orphans, cl.ID)
		return
	}
	t.orphans[cl.ID] = kept
}

// up is called when a connection's session is established.
func (t *takeover) up(cl *mqtt.Client) {
	t.mu.Lock()
	t.ready[cl] = true
	t.mu.Unlock()
	t.flushCurrent(cl.ID)
}

// down forgets a connection that ended; the orphans of a session that
// ends with it go too.
func (t *takeover) down(cl *mqtt.Client, expire bool) {
	t.mu.Lock()
	delete(t.ready, cl)
	if expire && !cl.IsTakenOver() {
		delete(t.orphans, cl.ID)
	}
	t.mu.Unlock()
}

// flushCurrent delivers a session's orphans to the connection that holds
// it now, once that connection's session is established. Until then they
// wait: up flushes them.
func (t *takeover) flushCurrent(id string) {
	cur, ok := t.server.Clients.Get(id)
	if !ok {
		return
	}
	t.mu.Lock()
	ready := t.ready[cur]
	t.mu.Unlock()
	if ready && !cur.IsTakenOver() {
		t.flush(cur)
	}
}

// flush delivers the orphans of cl's session to cl.
func (t *takeover) flush(cl *mqtt.Client) {
	t.mu.Lock()
	pks := t.orphans[cl.ID]
	delete(t.orphans, cl.ID)
	t.mu.Unlock()
	for _, pk := range pks {
		if held, ok := cl.State.Inflight.Get(pk.PacketID); ok && samePublish(held, pk) {
			continue // cloned with the session
		}
		t.deliver(cl, pk)
	}
}

// deliver queues pk on cl under a new packet id and writes it; if the
// connection is gone already it stays inflight, to be resent. If cl has
// been taken over in the meantime, the message goes on to its successor
// like any other that reaches a taken-over connection.
func (t *takeover) deliver(cl *mqtt.Client, pk packets.Packet) {
	id, err := cl.NextPacketID()
	if err != nil {
		atomic.AddInt64(&t.server.Info.InflightDropped, 1)
		t.server.Log.Warn("packet ids exhausted, message dropped", "client", cl.ID)
		return
	}
	out := pk.Copy(false)
	out.PacketID = uint16(id)
	out.FixedHeader.Dup = false
	if cl.State.Inflight.Set(out) {
		atomic.AddInt64(&t.server.Info.Inflight, 1)
		cl.State.Inflight.DecreaseSendQuota()
	}
	t.changed(cl, out.PacketID)
	if cl.IsTakenOver() {
		t.queued(cl, out)
		return
	}
	_ = cl.WritePacket(out)
}

func samePublish(a, b packets.Packet) bool {
	return a.TopicName == b.TopicName && a.Created == b.Created && a.Origin == b.Origin && bytes.Equal(a.Payload, b.Payload)
}
