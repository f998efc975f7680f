package broker

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hearth delivers every message itself, not through mochi's
// publishToClient. mochi still reads and parses packets, answers the
// client's own publishes (PUBACK, PUBREC, PUBCOMP), and keeps the
// subscriptions; hearth keeps what goes out:
//
//   - Packet ids. mochi keeps the ids of a client's publishes and of the
//     deliveries to it in one map, so a publish from the client deleted an
//     unacknowledged delivery that had the same id (mochi-mqtt/server
//     issue #545) and a SUBSCRIBE got 0x91. hearth's deliveries use ids of
//     their own, which mochi never sees: the two directions have separate
//     id spaces, as MQTT says, for PUBLISH, PUBREL and every answer.
//   - Flow control. mochi's send quota leaks (a waiting message's record
//     is deleted when it is sent, so its PUBACK returns no quota) and is
//     read without a lock. hearth keeps at most the client's Receive
//     Maximum unacknowledged, and sends the next one on each PUBACK or
//     PUBCOMP.
//   - Queues. mochi drops a QoS 1 message when a client has 8,192
//     unacknowledged or 8,192 unwritten; hearth queues by bytes
//     (Config.MaxQueuedBytes per session, Config.MaxOfflineBytes for all
//     of one user's offline sessions), and counts every drop.
//   - Sessions. The queue belongs to the client id, not to a connection,
//     so a takeover loses nothing that was on its way to the old one.
//   - Order. A resumed session's queue is resent in publish order (mochi
//     sorts by the uint16 of the second a message came in).
//   - Message expiry, subscription identifiers, and the client's Maximum
//     Packet Size.

// delivery is one message on its way to a session. The publish itself
// is shared by every session it goes to; a delivery keeps only what is
// its own.
type delivery struct {
	msg    *packets.Packet // the publish; never written
	subIDs []int           // the identifiers of the subscriptions it matched (MQTT 5)
	seq    uint64          // order within the session; the key of its record
	at     int64           // when the broker accepted the publish (Broker.stamp); 0: not to be observed
	size   int32           // what it counts against the bounds
	id     uint16          // its packet id, once it is in flight
	qos    byte
	retain bool
	state  byte // 0: queued; packets.Publish: sent; packets.Pubrel: PUBREC received, PUBREL sent
	stored bool // a record of it was queued for the session file
	aged   bool // a sweep has seen it unstored (lazy sessions)
}

// packet is the PUBLISH of d, as it goes to the client.
func (d *delivery) packet() packets.Packet {
	pk := *d.msg
	pk.PacketID = d.id
	pk.FixedHeader.Dup = false
	pk.FixedHeader.Qos = d.qos
	pk.FixedHeader.Retain = d.retain
	pk.Properties.SubscriptionIdentifier = d.subIDs
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	return pk
}

// session is hearth's side of one MQTT session: what is queued for a
// client id and in flight to it. It outlives connections; the current
// one is cl (nil while offline).
type session struct {
	id   string
	user string
	r    *router
	off  *atomic.Int64 // what the user's offline sessions hold

	mu         sync.Mutex
	cl         *mqtt.Client
	persistent bool
	quota      int // the client's Receive Maximum
	nextID     uint16
	nextSeq    uint64
	inflight   map[uint16]*delivery
	queue      []*delivery // waiting for quota, in order
	resend     []*delivery // in flight from an earlier connection, not yet sent again on this one
	bytes      int         // held in queue and inflight
	progress   time.Time   // the last acknowledgement, or when sending started
	gone       bool        // ended: nothing more is queued
}

// router fans messages out to sessions.
type router struct {
	b *Broker

	// mu is never taken while a session's mu is held.
	mu       sync.RWMutex
	sessions map[string]*session

	offMu   sync.RWMutex
	offline map[string]*atomic.Int64 // bytes held by each user's offline sessions

	unbounded string // the bridge's client id: held back by the archive gate, not by queue bounds
	subs      subscribersCache

	inflight atomic.Int64 // in flight over every session
	queued   atomic.Int64 // queued over every session
	onAck    func(clientID string)
}

func newRouter(b *Broker) *router {
	return &router{b: b, sessions: map[string]*session{}, offline: map[string]*atomic.Int64{}, subs: subscribersCache{m: map[string]cachedSubscribers{}}}
}

// subscribersCache keeps mochi's answer to who subscribes to a topic,
// which costs several allocations per publish, until a subscription
// changes anywhere. Every change to mochi's topic index is followed by a
// call of changed (a SUBSCRIBE or UNSUBSCRIBE, a session that ends or is
// taken over): an answer looked up before a change is stored under the
// generation read before the lookup, so it is never used after it.
type subscribersCache struct {
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[string]cachedSubscribers
}

type cachedSubscribers struct {
	gen  uint64
	subs *mqtt.Subscribers // never written: only answers without shared subscriptions are kept
}

// maxCachedTopics bounds the cache; past it, it starts again.
const maxCachedTopics = 1024

func (c *subscribersCache) changed() { c.gen.Add(1) }

// get returns the subscribers of topic from the cache or from index. One
// with shared subscriptions is the caller's to change (SelectShared).
func (c *subscribersCache) get(index *mqtt.TopicsIndex, topic string) *mqtt.Subscribers {
	gen := c.gen.Load()
	c.mu.RLock()
	e, ok := c.m[topic]
	c.mu.RUnlock()
	if ok && e.gen == gen {
		return e.subs
	}
	subs := index.Subscribers(topic)
	if len(subs.Shared) > 0 || len(subs.InlineSubscriptions) > 0 {
		return subs
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedTopics {
		clear(c.m)
	}
	c.m[topic] = cachedSubscribers{gen, subs}
	c.mu.Unlock()
	return subs
}

// maxInflight3 is how many messages an MQTT 3.1.1 client, which has no
// Receive Maximum, gets unacknowledged.
const maxInflight3 = 1024

// receiveMaximum is what cl may have unacknowledged.
func receiveMaximum(cl *mqtt.Client, limit int) int {
	n := maxInflight3
	if cl.Properties.ProtocolVersion == 5 {
		n = 65535
		if rm := int(cl.Properties.Props.ReceiveMaximum); rm > 0 {
			n = rm
		}
	}
	return min(n, limit)
}

// get returns the session of id, making one for user if there is none
// (or the one there has ended).
func (r *router) get(id, user string) *session {
	r.mu.RLock()
	s, ok := r.sessions[id]
	r.mu.RUnlock()
	if ok && !s.ended() {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok = r.sessions[id]; !ok || s.ended() {
		s = &session{id: id, user: user, r: r, off: r.offlineBytes(user), inflight: map[uint16]*delivery{}, quota: maxInflight3}
		r.sessions[id] = s
	}
	return s
}

func (s *session) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

// lookup returns the session of id, if any.
func (r *router) lookup(id string) (*session, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.sessions[id]
	return s, ok
}

// offlineBytes is what user's offline sessions hold.
func (r *router) offlineBytes(user string) *atomic.Int64 {
	return loadOrMake(&r.offMu, r.offline, user, func() *atomic.Int64 { return &atomic.Int64{} })
}

// loadOrMake returns m[k], making it under mu's write lock if it is not there.
func loadOrMake[K comparable, V any](mu *sync.RWMutex, m map[K]V, k K, mk func() V) V {
	mu.RLock()
	v, ok := m[k]
	mu.RUnlock()
	if ok {
		return v
	}
	mu.Lock()
	defer mu.Unlock()
	if v, ok = m[k]; !ok {
		v = mk()
		m[k] = v
	}
	return v
}

// end forgets a session and everything queued for it.
func (r *router) end(id string) { r.endIf(id, nil) }

// publish delivers pk to every subscriber of its topic that may receive
// it. via is the publisher's connection (nil for the server's own): its
// read loop holds each subscriber's writes until it flushes.
func (r *router) publish(pk packets.Packet, via *clientConn) {
	subs := r.subs.get(r.b.server.Topics, pk.TopicName)
	if len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 {
		return
	}
	msg, at := &pk, r.b.stamp()
	if len(subs.Shared) > 0 {
		subs.SelectShared()
		subs.MergeSharedSelected()
	}
	for id, sub := range subs.Subscriptions {
		cl, ok := r.b.server.Clients.Get(id)
		if !ok {
			continue
		}
		r.deliver(cl, sub, msg, false, via, at)
	}
}

// deliver gives msg to cl's session as sub asks. retained is set for a
// retained message sent because of a new subscription. via, if not nil,
// holds cl's writes (publish). at is when the publish was accepted
// (Broker.stamp), 0 for none.
func (r *router) deliver(cl *mqtt.Client, sub packets.Subscription, msg *packets.Packet, retained bool, via *clientConn, at int64) {
	if sub.NoLocal && msg.Origin == cl.ID {
		return // [MQTT-3.8.3-3]
	}
	user := userOf(cl)
	if !r.b.policy.CanReceiveAs(user, cl.ID, msg.TopicName) {
		return
	}
	if cl.Closed() && !persistent(cl) {
		return // its session ends with the connection
	}
	v5 := cl.Properties.ProtocolVersion == 5
	d := delivery{msg: msg, at: at, qos: min(msg.FixedHeader.Qos, sub.Qos),
		retain: retained || (v5 && sub.RetainAsPublished && msg.FixedHeader.Retain)}
	if v5 {
		d.subIDs = subscriptionIDs(sub)
	}
	if cc, ok := cl.Net.Conn.(*clientConn); ok && via != nil {
		via.hold(cc)
	}
	r.get(cl.ID, user).add(d)
}

// subscriptionIDs are the identifiers of every subscription that matched,
// sorted and once each (mochi's merge records a 0 for one without).
func subscriptionIDs(sub packets.Subscription) []int {
	var ids []int
	if sub.Identifier > 0 {
		ids = append(ids, sub.Identifier)
	}
	for _, id := range sub.Identifiers {
		if id > 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// size is what a message counts against the queue bounds.
func size(pk *packets.Packet) int { return len(pk.Payload) + len(pk.TopicName) + 64 }

// add queues a message for the session, or writes it at once (QoS 0).
func (s *session) add(out delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	st := &s.r.b.Stats
	if out.qos == 0 {
		if s.cl != nil && !s.cl.Closed() && !expired(out.msg) && s.write(out.packet()) == nil {
			s.observe(&out)
		}
		return
	}
	if s.cl == nil {
		out.at = 0 // its time offline is not the broker's
	}
	n := size(out.msg)
	bounded := s.id != s.r.unbounded
	lim := s.r.b.limits.Load()
	if bounded && s.bytes+n > lim.MaxQueuedBytes {
		st.QueueDropped.Add(1)
		s.r.b.log.Debug("mqtt message dropped: session queue full", "client", s.id, "bytes", s.bytes)
		return
	}
	if s.cl == nil {
		if s.off.Add(int64(n)) > int64(lim.MaxOfflineBytes) && bounded {
			s.off.Add(-int64(n))
			st.QueueDropped.Add(1)
			s.r.b.log.Debug("mqtt message dropped: the user's offline sessions are full", "client", s.id, "user", s.user)
			return
		}
	}
	s.nextSeq++
	d := new(delivery)
	*d = out
	d.seq, d.size = s.nextSeq, int32(n)
	s.bytes += n
	s.queue = append(s.queue, d)
	s.r.queued.Add(1)
	s.store(d)
	s.pump()
}

func expired(pk *packets.Packet) bool { return pk.Expiry > 0 && pk.Expiry <= time.Now().Unix() }

// sent is how many messages in flight were sent on this connection.
func (s *session) sent() int { return len(s.inflight) - len(s.resend) }

// pump sends what waits while the client has quota: first what was in
// flight on an earlier connection, then the queue; mu is held.
func (s *session) pump() {
	for s.cl != nil && !s.cl.Closed() && len(s.resend) > 0 && s.sent() < s.quota {
		d := s.resend[0]
		s.resend = s.resend[1:]
		if d.state == packets.Pubrel {
			_ = s.cl.WritePacket(pubrel(d.id))
			continue
		}
		pk := d.packet()
		pk.FixedHeader.Dup = true // [MQTT-3.3.1-1]
		s.send(d, pk)
	}
	for s.cl != nil && !s.cl.Closed() && len(s.queue) > 0 && len(s.resend) == 0 && s.sent() < s.quota {
		d := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.r.queued.Add(-1)
		if expired(d.msg) {
			s.r.b.Stats.Expired.Add(1)
			s.drop(d)
			continue
		}
		id, ok := s.allocID()
		if !ok {
			s.queue = append([]*delivery{d}, s.queue...) // every id is in flight
			s.r.queued.Add(1)
			return
		}
		if len(s.inflight) == 0 {
			s.progress = time.Now()
		}
		d.id = id
		d.state = packets.Publish
		s.inflight[id] = d
		s.r.inflight.Add(1)
		s.store(d)
		s.send(d, d.packet())
	}
}

// send writes pk, the PUBLISH of d in flight; one the client's Maximum
// Packet Size refuses is taken out of flight and dropped. mu is held.
func (s *session) send(d *delivery, pk packets.Packet) {
	switch err := s.write(pk); {
	case err == nil:
		s.observe(d)
	case errors.Is(err, packets.ErrPacketTooLarge):
		s.unflight(d)
		s.drop(d)
	}
}

// observe measures the time from accepting d's publish to its first
// write, once.
func (s *session) observe(d *delivery) {
	if d.at != 0 {
		s.r.b.cfg.DeliveryLatency.Observe(time.Duration(s.r.b.stamp() - d.at).Seconds())
		d.at = 0
	}
}

// write writes pk to the connection. A packet over the client's Maximum
// Packet Size is not sent [MQTT-3.1.2-24], and counted; ErrPacketTooLarge
// says so.
func (s *session) write(pk packets.Packet) error {
	err := s.cl.WritePacket(pk)
	if errors.Is(err, packets.ErrPacketTooLarge) {
		s.r.b.Stats.TooLargeForClient.Add(1)
	}
	return err
}

// unflight takes d out of flight; mu is held.
func (s *session) unflight(d *delivery) {
	delete(s.inflight, d.id)
	s.r.inflight.Add(-1)
	if i := slices.Index(s.resend, d); i >= 0 {
		s.resend = slices.Delete(s.resend, i, i+1)
	}
}

// allocID returns a packet id no message in flight holds.
func (s *session) allocID() (uint16, bool) {
	if len(s.inflight) >= 65535 {
		return 0, false
	}
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inflight[s.nextID]; !used {
			return s.nextID, true
		}
	}
}

// drop forgets a delivery that is not in flight; mu is held.
func (s *session) drop(d *delivery) {
	s.bytes -= int(d.size)
	if s.cl == nil {
		s.off.Add(-int64(d.size))
	}
	s.unstore(d)
}

// acked handles the client's answer to a delivery: PUBACK, PUBREC or
// PUBCOMP.
func (s *session) acked(cl *mqtt.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != cl {
		return
	}
	d, ok := s.inflight[pk.PacketID]
	switch pk.FixedHeader.Type {
	case packets.Puback:
		if !ok || d.state != packets.Publish || d.qos != 1 {
			return // not ours: a duplicate, or a client's mistake
		}
	case packets.Pubrec:
		if !ok || d.state != packets.Publish || d.qos != 2 {
			rel := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pk.PacketID}
			if cl.Properties.ProtocolVersion == 5 {
				rel.ReasonCode = packets.ErrPacketIdentifierNotFound.Code
			}
			_ = cl.WritePacket(rel)
			return
		}
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			d.state = packets.Pubrel
			s.store(d)
			s.progress = time.Now()
			_ = cl.WritePacket(pubrel(d.id))
			return
		}
		// An error code ends the flow [MQTT-4.3.3]: the message is not
		// sent again.
	case packets.Pubcomp:
		if !ok || d.state != packets.Pubrel {
			return
		}
	default:
		return
	}
	s.unflight(d)
	s.drop(d)
	s.progress = time.Now()
	if s.r.onAck != nil {
		s.r.onAck(s.id)
	}
	s.pump()
}

func pubrel(id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id}
}

// attach makes cl the session's connection and reports whether it could:
// not if the session has ended meanwhile (get another). Unless the
// session is resumed (present), what it held is dropped first. What is in
// flight is sent again in order (PUBLISH with DUP, or PUBREL), as far as
// the client's Receive Maximum allows, then the queue.
func (s *session) attach(cl *mqtt.Client, present, persistent bool, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return false
	}
	if !present {
		s.reset()
	}
	if s.cl == nil {
		s.off.Add(-int64(s.bytes))
	}
	s.cl, s.persistent = cl, persistent
	s.quota = receiveMaximum(cl, limit)
	s.progress = time.Now()
	s.resend = s.resend[:0]
	for _, d := range s.inflight {
		s.resend = append(s.resend, d)
	}
	slices.SortFunc(s.resend, func(a, b *delivery) int { return cmp.Compare(a.seq, b.seq) })
	s.pump()
	return true
}

// detach notes that cl, the session's connection, has ended.
func (s *session) detach(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != cl {
		return
	}
	if s.lazy() {
		s.storeLazy(true)
	}
	s.cl = nil
	s.resend = nil
	s.off.Add(int64(s.bytes))
	// The user's offline sessions together keep to MaxOfflineBytes: the
	// newest queued messages go first.
	for s.id != s.r.unbounded && s.off.Load() > int64(s.r.b.limits.Load().MaxOfflineBytes) && len(s.queue) > 0 {
		d := s.queue[len(s.queue)-1]
		s.queue = s.queue[:len(s.queue)-1]
		s.r.queued.Add(-1)
		s.r.b.Stats.QueueDropped.Add(1)
		s.drop(d)
	}
}

// reset drops everything the session holds; mu is held.
func (s *session) reset() {
	for _, d := range s.inflight {
		s.unflight(d)
		s.drop(d)
	}
	for _, d := range s.queue {
		s.r.queued.Add(-1)
		s.drop(d)
	}
	s.queue = nil
	s.resend = nil
}

// sweep drops expired messages from the queue, and reports a connected
// client that has acknowledged nothing for stall while it had messages in
// flight.
func (s *session) sweep(now time.Time, stall time.Duration) (stuck *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.b.Stats.Expired.Add(int64(s.dropQueued(func(d *delivery) bool { return expired(d.msg) })))
	if s.lazy() {
		s.storeLazy(false)
	}
	if s.cl != nil && len(s.inflight) > 0 && now.Sub(s.progress) > stall {
		return s.cl
	}
	return nil
}

// dropQueued drops the queued deliveries (not those in flight) for which
// drop is true, and returns how many; mu is held.
func (s *session) dropQueued(drop func(*delivery) bool) int {
	kept := s.queue[:0]
	for _, d := range s.queue {
		if drop(d) {
			s.r.queued.Add(-1)
			s.drop(d)
			continue
		}
		kept = append(kept, d)
	}
	n := len(s.queue) - len(kept)
	clear(s.queue[len(kept):])
	s.queue = kept
	return n
}

// dropUnreadable drops, from every session's queue, what its user may no
// longer receive since the policy changed, and returns how many. What
// was sent already is left to its acknowledgement.
// The archive's queue is left alone: what was accepted is archived.
func (r *router) dropUnreadable() int {
	n := 0
	for _, s := range r.all() {
		if s.id == r.unbounded {
			continue
		}
		s.mu.Lock()
		n += s.dropQueued(func(d *delivery) bool { return !r.b.policy.CanReceiveAs(s.user, s.id, d.msg.TopicName) })
		s.mu.Unlock()
	}
	return n
}

// unacked is how many messages the session holds.
func (s *session) unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight) + len(s.queue)
}

// store and unstore keep the session's record of d in step; mu is held.
func (s *session) store(d *delivery) {
	if s.lazy() && !d.stored {
		return
	}
	s.record(d)
}

// record queues d's record for the session file of a persistent session.
func (s *session) record(d *delivery) {
	if st := s.r.b.hook.sessions; st != nil && s.persistent {
		st.delivery(s.id, d)
	}
}

func (s *session) unstore(d *delivery) {
	if !d.stored {
		return // nothing was written
	}
	if st := s.r.b.hook.sessions; st != nil && s.persistent {
		st.delivered(s.id, d.seq)
	}
}

// lazy says whether the session's deliveries are written to the session
// file only once they have waited a sweep or two: the archive's, while it
// is connected. It acknowledges a message once the history holds it,
// within milliseconds, so its records would be written and deleted again
// for every message. mu is held.
func (s *session) lazy() bool { return s.id == s.r.unbounded && s.cl != nil }

// storeLazy writes the records of the deliveries that a lazy session has
// not written yet: those a sweep has seen before, or all of them. mu is
// held.
func (s *session) storeLazy(all bool) {
	store := func(d *delivery) {
		if d.stored {
			return
		}
		if all || d.aged {
			s.record(d)
			return
		}
		d.aged = true
	}
	for _, d := range s.inflight {
		store(d)
	}
	for _, d := range s.queue {
		store(d)
	}
}

// restore puts a delivery read from the session file back.
func (s *session) restore(d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.persistent = true
	d.size = int32(size(d.msg))
	s.bytes += int(d.size)
	s.off.Add(int64(d.size))
	s.nextSeq = max(s.nextSeq, d.seq)
	if d.state == 0 {
		s.queue = append(s.queue, d)
		s.r.queued.Add(1)
		return
	}
	s.inflight[d.id] = d
	s.r.inflight.Add(1)
}

// run sweeps every session each second until done is closed.
func (r *router) run(done <-chan struct{}, stall time.Duration) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			for _, s := range r.all() {
				if r.endForgotten(s) {
					continue
				}
				if cl := s.sweep(now, stall); cl != nil {
					r.b.Stats.StuckClosed.Add(1)
					r.b.log.Info("mqtt connection closed: no acknowledgement", "client", s.id, "for", stall)
					_ = r.b.disconnect(cl, packets.ErrMaxConnectTime)
				}
			}
			r.b.hook.expireRetained(now.Unix())
		}
	}
}

// all returns every session.
func (r *router) all() []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	all := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	return all
}

// endIf ends the session of id, unless a connection other than cl has it
// (nil: whatever has it).
func (r *router) endIf(id string, cl *mqtt.Client) {
	r.mu.Lock()
	s, ok := r.sessions[id]
	if ok && cl != nil {
		s.mu.Lock()
		ok = s.cl == nil || s.cl == cl
		s.mu.Unlock()
	}
	if ok {
		delete(r.sessions, id)
	}
	r.mu.Unlock()
	if ok {
		s.mu.Lock()
		s.finish()
		s.mu.Unlock()
	}
}

// finish ends the session: it holds nothing, and takes nothing more; mu
// is held.
func (s *session) finish() {
	s.reset()
	s.gone = true
}

// connected reports whether a connection other than old has the session.
func (s *session) connected(old *mqtt.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl != nil && s.cl != old && !s.cl.Closed()
}

// endForgotten ends s if it is offline and mochi no longer knows its
// client (the session expired while a message was on its way to it), and
// reports whether it did.
func (r *router) endForgotten(s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil || s.gone || r.sessions[s.id] != s {
		return false
	}
	if _, ok := r.b.server.Clients.Get(s.id); ok {
		return false
	}
	delete(r.sessions, s.id)
	s.finish()
	return true
}

// storeLazy writes every record that lazy sessions have not written yet,
// before the session file closes.
func (r *router) storeLazy() {
	if s, ok := r.lookup(r.unbounded); ok {
		s.mu.Lock()
		s.storeLazy(true)
		s.mu.Unlock()
	}
}
