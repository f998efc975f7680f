package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sharedIDs guards against mochi-mqtt/server issue #545. mochi keeps the
// packet ids of a client's QoS 1 publishes and of the deliveries to it in
// one map, and a publish from the client deletes the unacknowledged
// delivery that holds the same id. The delivery is then never sent again
// if the connection drops: a browser that publishes and receives on one
// connection lost messages this way.
//
// Before mochi handles a publish from a client, sharedIDs notes the
// delivery under its id, if any; once mochi is done, it puts the record
// back under the same id (the client's PUBACK for it still finds it), or,
// if the id is taken by then, delivers the message again under a new one.
type sharedIDs struct {
	server   *mqtt.Server
	resend   func(*mqtt.Client, packets.Packet) // delivers under a new id
	orphaned func(*mqtt.Client, packets.Packet) // passes on what reached a taken-over connection
	changed  func(*mqtt.Client, uint16)         // the message queued under an id was set or removed
	mu       sync.Mutex
	stashed  map[*mqtt.Client]packets.Packet
}

func newSharedIDs(s *mqtt.Server, t *takeover) *sharedIDs {
	return &sharedIDs{server: s, resend: t.deliver, orphaned: t.queued, changed: t.changed, stashed: map[*mqtt.Client]packets.Packet{}}
}

// read runs before mochi handles a packet from cl (OnPacketRead).
func (g *sharedIDs) read(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.stashed, cl) // one left by a publish mochi refused before handling it
	if pk.FixedHeader.Qos > 0 && ok && held.FixedHeader.Type == packets.Publish {
		g.stashed[cl] = held
	}
}

// gone forgets a connection.
func (g *sharedIDs) gone(cl *mqtt.Client) {
	g.mu.Lock()
	delete(g.stashed, cl)
	g.mu.Unlock()
}

// acked runs when mochi has answered a QoS 1 publish from cl and dropped
// the id's record (OnQosComplete with the PUBACK it sent): the earliest
// moment to put the delivery back, before a delivery to cl can be given
// the same id.
func (g *sharedIDs) acked(cl *mqtt.Client, ack packets.Packet) {
	if ack.FixedHeader.Type != packets.Puback {
		return
	}
	g.mu.Lock()
	held, ok := g.stashed[cl]
	if ok && held.PacketID == ack.PacketID {
		delete(g.stashed, cl)
	}
	g.mu.Unlock()
	if ok && held.PacketID == ack.PacketID {
		g.putBack(cl, held)
	}
}

// processed runs after mochi handled a packet from cl (OnPacketProcessed),
// for publishes that were refused before an acknowledgement.
func (g *sharedIDs) processed(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	g.mu.Lock()
	held, ok := g.stashed[cl]
	delete(g.stashed, cl)
	g.mu.Unlock()
	if ok {
		g.putBack(cl, held)
	}
}

func (g *sharedIDs) putBack(cl *mqtt.Client, held packets.Packet) {
	if _, taken := cl.State.Inflight.Get(held.PacketID); !taken {
		if cl.State.Inflight.Set(held) {
			atomic.AddInt64(&g.server.Info.Inflight, 1)
		}
		g.changed(cl, held.PacketID)
		// Taken over meanwhile: the new connection's copy missed it.
		g.orphaned(cl, held)
		return
	}
	g.resend(cl, held) // a QoS 2 publish keeps its id for a while
}
