package broker

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// stamps orders queued messages. mochi resends a resumed session's queue
// sorted by uint16(Created), where Created is the second the message came
// in: messages of the same second go out in random order, and the order
// wraps every 18 hours. hearth stamps every publish with a number from
// one counter instead (Created is not used as a time: hearth sets no
// message expiry limit), and before a session is resumed it renumbers the
// session's queue with consecutive numbers that do not wrap in uint16, in
// the order of their stamps. The stamps are stored with the queue, so the
// order survives a restart.
type stamps struct{ last atomic.Int64 }

func newStamps() *stamps {
	s := &stamps{}
	s.last.Store(time.Now().UnixNano())
	return s
}

// next returns a stamp greater than every stamp given out or seen.
func (s *stamps) next() int64 { return s.last.Add(1) }

// seen makes every later stamp greater than v (a stamp loaded from disk).
func (s *stamps) seen(v int64) {
	for {
		old := s.last.Load()
		if v <= old || s.last.CompareAndSwap(old, v) {
			return
		}
	}
}

// block reserves n consecutive stamps that lie within one run of 65,536
// (so that their uint16 values sort as they do) and returns the first.
func (s *stamps) block(n int) int64 {
	for {
		old := s.last.Load()
		first := old + 1
		if (first >> 16) != ((first + int64(n) - 1) >> 16) {
			first = ((first >> 16) + 1) << 16
		}
		if s.last.CompareAndSwap(old, first+int64(n)-1) {
			return first
		}
	}
}

// renumber gives the messages queued for cl consecutive stamps in the
// order of their current ones, so that mochi's resend sorts them right. It
// runs when the CONNACK of a resumed session is encoded: the connection
// reads nothing yet, so no acknowledgement removes a message meanwhile.
func (s *stamps) renumber(cl *mqtt.Client) {
	var queued []packets.Packet
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			queued = append(queued, pk)
		}
	}
	if len(queued) == 0 {
		return
	}
	slices.SortFunc(queued, func(a, b packets.Packet) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.PacketID, b.PacketID))
	})
	first := s.block(len(queued))
	for i, pk := range queued {
		pk.Created = first + int64(i)
		cl.State.Inflight.Set(pk)
	}
}
