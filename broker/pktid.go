package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sharedIDs guards the deliveries to a client that also publishes at
// QoS 1. mochi keeps the packet ids of a client's publishes and of the
// deliveries to it in one map, which loses deliveries in two ways:
//
//   - A publish from the client deletes the unacknowledged delivery that
//     holds the same id (mochi-mqtt/server issue #545).
//   - While mochi handles a publish from the client, the id is free in the
//     map until mochi sets its own PUBACK record there. A delivery that
//     takes the id meanwhile is overwritten by that record, which mochi
//     deletes once the PUBACK is sent.
//
// Either way the delivery is gone from the client's queue: the client may
// have it, but if the connection drops first, it is never sent again. A
// browser that publishes and receives on one connection lost messages so.
// Likewise, a SUBSCRIBE or UNSUBSCRIBE whose id a delivery holds is
// refused with 0x91 (packet identifier in use), which MQTT does not ask.
//
// So mochi never sees the client's own ids: each publish at QoS 1 (hearth
// takes QoS 2 as QoS 1), subscribe and unsubscribe is handed to mochi
// under an id taken from the
// deliveries' allocator (which gives it to no delivery until it has gone
// round all 65,535), and the answer goes back with the client's id.
type sharedIDs struct {
	mu      sync.Mutex
	handled map[*mqtt.Client]standIn // the packet mochi handles now
}

// standIn is a packet from a client under the id mochi knows it by.
type standIn struct {
	answer      byte   // the packet type of mochi's answer
	id, clients uint16 // mochi's id, the client's
}

func newSharedIDs() *sharedIDs {
	return &sharedIDs{handled: map[*mqtt.Client]standIn{}}
}

// answers maps the packets whose ids are replaced to their answers.
var answers = map[byte]byte{packets.Publish: packets.Puback, packets.Subscribe: packets.Suback, packets.Unsubscribe: packets.Unsuback}

// read runs before mochi handles a packet from cl (OnPacketRead) and
// gives it its stand-in id.
func (g *sharedIDs) read(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	answer, ok := answers[pk.FixedHeader.Type]
	if !ok || (pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 0) || pk.PacketID == 0 || cl.Net.Inline {
		return pk // id 0 is a protocol error mochi answers itself
	}
	id, err := cl.NextPacketID()
	if err != nil {
		return pk // every id is taken: mochi refuses the packet itself
	}
	g.mu.Lock()
	g.handled[cl] = standIn{answer: answer, id: uint16(id), clients: pk.PacketID}
	g.mu.Unlock()
	pk.PacketID = uint16(id)
	return pk
}

// encode gives the answer to the packet being handled the client's id
// back (OnPacketEncode).
func (g *sharedIDs) encode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Suback, packets.Unsuback:
	default:
		return pk // deliveries and the rest: no lock on the way out
	}
	g.mu.Lock()
	in, ok := g.handled[cl]
	g.mu.Unlock()
	if ok && in.answer == pk.FixedHeader.Type && in.id == pk.PacketID {
		pk.PacketID = in.clients
	}
	return pk
}

// processed runs after mochi handled a packet from cl (OnPacketProcessed).
func (g *sharedIDs) processed(cl *mqtt.Client, pk packets.Packet) {
	if _, ok := answers[pk.FixedHeader.Type]; ok {
		g.gone(cl)
	}
}

// gone forgets a connection.
func (g *sharedIDs) gone(cl *mqtt.Client) {
	g.mu.Lock()
	delete(g.handled, cl)
	g.mu.Unlock()
}
