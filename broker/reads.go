package broker

import (
	"errors"
	"fmt"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hearth-home/hearth"
)

// Read marks (rooms/{room}/reads/{user}) are retained messages that only
// ever grow: a mark lower than the one retained is acknowledged but
// neither retained nor delivered. Focus (users/{user}/focus) is kept per
// connection and delivered to nobody.

var (
	errMarkDelete  = fmt.Errorf("%w: a read mark cannot be deleted", hearth.ErrBadPayload)
	errFocusQoS    = fmt.Errorf("%w: focus is published at QoS 0 or 1", hearth.ErrBadPayload)
	errFocusRetain = errors.New("focus must not be retained")
)

// validateRead checks a publish on a reads topic.
func validateRead(payload []byte) error {
	if len(payload) == 0 {
		return errMarkDelete // a retained delete: a mark is not taken back
	}
	_, err := hearth.ParseReadMark(payload)
	return err
}

// validateFocus checks a publish on a focus topic: a focus payload whose
// room, if any, is configured.
func (h *hook) validateFocus(payload []byte, retain bool) error {
	if retain {
		return errFocusRetain
	}
	f, err := hearth.ParseFocus(payload)
	if err == nil && f.Room != "" && !h.b.policy.HasRoom(f.Room) {
		err = fmt.Errorf("%w: focus room %q is not a room", hearth.ErrBadPayload, f.Room)
	}
	return err
}

// acceptRead retains and delivers a read mark unless a higher one is
// retained. The comparison, the store and the delivery are one step
// against other marks, so two devices of a user marking at once leave
// the higher mark, and subscribers get marks in the order retained. A
// payload that is no mark (a will checked before a reload) is dropped.
func (h *hook) acceptRead(pk packets.Packet, via *clientConn) {
	m, err := hearth.ParseReadMark(pk.Payload)
	if err != nil {
		return
	}
	// A mark is kept for good: retained whatever the publisher said, and
	// without an expiry.
	pk.FixedHeader.Retain = true
	pk.Properties.MessageExpiryInterval = 0
	pk.Expiry = 0
	h.readsMu.Lock()
	defer h.readsMu.Unlock()
	if cur, ok := h.retainedMessage(pk.TopicName); ok {
		if old, err := hearth.ParseReadMark(cur.Payload); err == nil && m.Seq < old.Seq {
			return
		}
	}
	h.retain(pk)
	h.router.publish(pk, via)
}

// ReadMark returns user's read mark of room: the seq of its retained
// rooms/{room}/reads/{user}, 0 if it has none.
func (b *Broker) ReadMark(room, user string) uint64 {
	pk, ok := b.hook.retainedMessage(hearth.ReadTopic(room, user))
	if !ok {
		return 0
	}
	m, err := hearth.ParseReadMark(pk.Payload)
	if err != nil {
		return 0
	}
	return m.Seq
}

// focus keeps the room each connection shows, by user.
type focus struct {
	mu sync.Mutex
	m  map[string]map[*mqtt.Client]string // user -> connection -> room
}

func newFocus() *focus { return &focus{m: map[string]map[*mqtt.Client]string{}} }

// set records the room cl shows; "" for none.
func (f *focus) set(cl *mqtt.Client, room string) {
	user := userOf(cl)
	f.mu.Lock()
	defer f.mu.Unlock()
	if room == "" {
		f.dropLocked(user, cl)
		return
	}
	if cl.Closed() {
		return // ended meanwhile: its OnDisconnect may have run already
	}
	conns := f.m[user]
	if conns == nil {
		conns = map[*mqtt.Client]string{}
		f.m[user] = conns
	}
	conns[cl] = room
}

// drop forgets cl's focus.
func (f *focus) drop(cl *mqtt.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(userOf(cl), cl)
}

// takenOver forgets the focus of every connection but cl with cl's client
// id: cl has taken their session.
func (f *focus) takenOver(cl *mqtt.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for other := range f.m[userOf(cl)] {
		if other != cl && other.ID == cl.ID {
			f.dropLocked(userOf(cl), other)
		}
	}
}

func (f *focus) dropLocked(user string, cl *mqtt.Client) {
	if conns := f.m[user]; conns != nil {
		delete(conns, cl)
		if len(conns) == 0 {
			delete(f.m, user)
		}
	}
}

// focused reports whether a connection of user shows room.
func (f *focus) focused(user, room string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.m[user] {
		if r == room {
			return true
		}
	}
	return false
}

// Focused reports whether a connection of user shows room now (its last
// users/{user}/focus named it, and it has not ended).
func (b *Broker) Focused(user, room string) bool { return b.hook.focus.focused(user, room) }
