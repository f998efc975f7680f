package broker

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"
)

// hook is hearth's single mochi hook. It only dispatches: each concern
// lives in a file of its own.
//
//	connect.go   authentication, client ids, CONNACK codes, keep alive
//	publish.go   access, validation, rate limits, retained messages, wills
//	outbound.go  every delivery: packet ids, flow control, queues, expiry
//	offline.go   offline sessions: caps and expiry
//	sessions.go  the session file
//	presence.go  presence/{user}
//	reads.go     read marks and focus
type hook struct {
	mqtt.HookBase
	b        *Broker
	router   *router
	presence *presence
	archive  *archiveGate
	flood    *floodGuard
	retained *mqtt.TopicsIndex // retained messages; mochi's own index keeps only $SYS
	retainMu sync.Mutex        // orders changes to retained
	readsMu  sync.Mutex        // makes a read mark's check, store and delivery one step (reads.go)
	focus    *focus            // the room each connection shows (reads.go)
	wills    *wills
	sessions *sessions // nil: sessions are kept in memory only
	stored   storedState

	capMu    sync.Mutex              // guards offline and resuming, and ends sessions one at a time
	offline  map[string]int64        // when each offline session went offline (unix ns)
	resuming map[string]*mqtt.Client // by client id: the connection taking its session now

	userLims sync.Map // user -> *rate.Limiter, for publishes over HTTP (configured users only)
	revoked  sync.Map // device ids revoked (CloseDevice): a connection that logged in with one just before is closed once established

	addrConnects, userConnects *connectRate // new connections per address and per user
}

func newHook(b *Broker) *hook {
	h := &hook{b: b, offline: map[string]int64{}, resuming: map[string]*mqtt.Client{}}
	h.router = newRouter(b)
	h.presence = newPresence(b)
	h.flood = newFloodGuard(b.cfg.HoldOff)
	h.addrConnects = newConnectRate(b.cfg.ConnectRatePerAddress, b.cfg.ConnectBurst)
	h.userConnects = newConnectRate(b.cfg.ConnectRatePerUser, b.cfg.ConnectBurst)
	h.archive = newArchiveGate(h.router, b.cfg.BridgeClientID, b.cfg.MaxInflight/2, b.cfg.EmbeddedBridge)
	h.router.unbounded = b.cfg.BridgeClientID
	h.router.onAck = func(id string) {
		if id == b.cfg.BridgeClientID {
			h.archive.acked()
		}
	}
	h.retained = mqtt.NewTopicsIndex()
	h.wills = newWills(h)
	h.focus = newFocus()
	return h
}

// storedState is what the session file held at start.
type storedState struct {
	clients    []storage.Client
	subs       []storage.Subscription
	inflight   []storage.Message // the clients' QoS 2 publishes awaiting PUBREL
	deliveries []deliveryRecord
	retained   []deliveryRecord
}

// conn is what hearth keeps of one connection. It lives in the
// connection's clientConn, so it is made and freed with the connection.
type conn struct {
	limits  *Limits         // the limits limiter was made for
	limiter *rate.Limiter   // publish rate; nil: no limit
	strikes []time.Time     // recent refusals by the rate limit (floodGuard)
	present bool            // the CONNACK said the session was resumed
	counted bool            // in its user's presence count (presence.mu)
	will    *packets.Packet // the will as a publish, with its properties, from the CONNECT

	// device is the device login whose token the connection logged in
	// with (nil: none), for CloseDevice, which reads it from elsewhere.
	device atomic.Pointer[string]

	// The SUBSCRIBE being handled (only the connection's read loop
	// handles one): did each filter exist before, and what was granted.
	subscribing map[string]bool
	granted     []packets.Subscription
}

// setLimits makes the connection's publish rate that of l. It runs on
// the connection's read loop, as every use of limiter does.
func (c *conn) setLimits(l *Limits) {
	c.limits = l
	switch {
	case l.PublishRate <= 0:
		c.limiter = nil
	case c.limiter == nil:
		c.limiter = rate.NewLimiter(rate.Limit(l.PublishRate), l.PublishBurst)
	default:
		c.limiter.SetLimit(rate.Limit(l.PublishRate))
		c.limiter.SetBurst(l.PublishBurst)
	}
}

// connOf returns hearth's state of cl's connection; nil for the inline
// client and restored sessions, which have none.
func connOf(cl *mqtt.Client) *conn {
	if cc, ok := cl.Net.Conn.(*clientConn); ok {
		return &cc.state
	}
	return nil
}

func (h *hook) ID() string { return "hearth" }

func (h *hook) Provides(e byte) bool {
	switch e {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnWill,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketEncode,
		mqtt.OnClientExpired, mqtt.OnPacketRead, mqtt.OnPacketProcessed, mqtt.OnSubscribe, mqtt.OnSubscribed:
		return true
	case mqtt.OnUnsubscribed:
		return true
	case mqtt.OnQosPublish, mqtt.OnQosDropped, mqtt.OnQosComplete,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages:
		return h.sessions != nil
	}
	return false
}

// userOf is the authenticated user of a client. The username is checked
// at CONNECT, so it is trusted from then on.
func userOf(cl *mqtt.Client) string { return string(cl.Properties.Username) }

// OnPacketRead sees every packet from a client before mochi does. The
// answers to hearth's deliveries (PUBACK, PUBREC, PUBCOMP) are hearth's
// alone: mochi gets a PUBACK for packet id 0, which it ignores.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		if s, ok := h.router.lookup(cl.ID); ok {
			s.acked(cl, pk)
		}
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: pk.ProtocolVersion}, nil
	case packets.Publish:
		return pk, h.badTopic(cl, pk)
	}
	return pk, nil
}

func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	if pk.FixedHeader.Type == packets.Subscribe {
		h.sendRetained(cl)
	}
}

// OnPacketEncode mends what mochi writes; see connect.go and publish.go.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		return h.connack(cl, pk)
	case packets.Puback:
		if pk.ReasonCode == packets.CodeGrantedQos1.Code {
			pk.ReasonCode = packets.CodeSuccess.Code // mochi's "granted QoS 1" is no PUBACK code
		}
	case packets.Pubrec:
		if pk.ReasonCode == packets.ErrPacketIdentifierInUse.Code {
			// A QoS 2 publish sent again before its PUBREL: mochi does not
			// deliver it twice, but answers 0x91, which ends the flow for
			// an MQTT 5 client [MQTT-4.3.3-10]. It is received.
			pk.ReasonCode = packets.CodeSuccess.Code
			pk.Properties.ReasonString = ""
		}
	case packets.Disconnect:
		if cl.Properties.ProtocolVersion < 5 {
			// MQTT 3.1.1 has no DISCONNECT from the server: the
			// connection just closes. A PINGRESP is harmless in its place.
			return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}, ProtocolVersion: pk.ProtocolVersion}
		}
	}
	return pk
}

// OnSessionEstablish runs before mochi hands an existing session to a new
// connection: the session is not to be ended meanwhile (wentOffline).
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.capMu.Lock()
	h.resuming[cl.ID] = cl
	h.capMu.Unlock()
}

// OnSessionEstablished runs once the CONNACK is written: the session's
// deliveries go to this connection from now on.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.router.subs.changed() // a takeover has copied the old connection's subscriptions
	h.capMu.Lock()
	delete(h.offline, cl.ID)
	delete(h.resuming, cl.ID)
	h.capMu.Unlock()
	if h.sessions != nil && !cl.Net.Inline {
		h.sessions.established(cl)
	}
	present := false
	if c := connOf(cl); c != nil {
		present = c.present
	}
	for !h.router.get(cl.ID, userOf(cl)).attach(cl, present, persistent(cl), h.b.cfg.MaxInflight) {
	}
	if present {
		h.wills.cancel(cl.ID) // back within the will's delay [MQTT-3.1.3-9]
	} else {
		h.wills.flush(cl.ID) // the old session ended: its will is due now
	}
	h.focus.takenOver(cl)
	h.presence.up(cl)
	if c := connOf(cl); c != nil {
		if dev := c.device.Load(); dev != nil {
			if _, gone := h.revoked.Load(*dev); gone {
				h.b.log.Info("mqtt connection closed: its device login was revoked", "user", userOf(cl), "client", cl.ID)
				_ = h.b.disconnect(cl, packets.ErrNotAuthorized)
			}
		}
	}
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if s, ok := h.router.lookup(cl.ID); ok {
		s.detach(cl)
	}
	h.presence.down(cl)
	h.focus.drop(cl)
	if h.sessions != nil {
		h.sessions.disconnected(cl, expire)
	}
	if cl.Net.Conn != nil && !cl.IsTakenOver() {
		h.wentOffline(cl, expire)
	}
}

// OnSubscribe notes which of the filters existed before, for Retain
// Handling 1.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if c := connOf(cl); c != nil {
		c.subscribing = map[string]bool{}
		for _, f := range pk.Filters {
			_, existed := cl.State.Subscriptions.Get(f.Filter)
			c.subscribing[f.Filter] = existed
		}
	}
	return pk
}

// OnSubscribed counts the filters the access rules refused, notes when
// the embedded bridge's subscription is in place
// (on the internal listener, which only the bridge can use), and what was
// granted, for the retained messages that follow the SUBACK.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	h.router.subs.changed()
	for i, code := range reasonCodes {
		if code == packets.ErrNotAuthorized.Code && i < len(pk.Filters) {
			h.b.refusals.refuse(SubscribeDenied, "user", userOf(cl), "client", cl.ID, "filter", pk.Filters[i].Filter)
		}
	}
	if cl.Net.Listener == listenerInternal && len(reasonCodes) > 0 && reasonCodes[0] < 0x80 {
		h.archive.bridgeSubscribed()
	}
	if c := connOf(cl); c != nil {
		c.granted = c.granted[:0]
		for i, f := range pk.Filters {
			if i < len(reasonCodes) && reasonCodes[i] < 0x80 {
				f.Qos = min(f.Qos, reasonCodes[i])
				c.granted = append(c.granted, f)
			}
		}
	}
	if h.sessions != nil {
		h.sessions.subscriptions(cl, pk.Filters)
	}
}

func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.router.subs.changed()
	if h.sessions != nil {
		h.sessions.subscriptions(cl, pk.Filters)
	}
}

// mochi's own records are of the clients' publishes: the session file
// keeps those of QoS 2 (a PUBREC sent, its PUBREL awaited).

func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	h.sessions.inflight(cl, pk.PacketID)
}

func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.sessions.inflight(cl, pk.PacketID)
}

func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.sessions.inflight(cl, pk.PacketID)
}

// The stored sessions, for mochi to load at start.

func (h *hook) StoredClients() ([]storage.Client, error) { return h.stored.clients, nil }

func (h *hook) StoredSubscriptions() ([]storage.Subscription, error) { return h.stored.subs, nil }

func (h *hook) StoredInflightMessages() ([]storage.Message, error) { return h.stored.inflight, nil }
