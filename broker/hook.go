package broker

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"hearth"
)

var errRetained = errors.New("chat messages and typing events must not be retained")

// hook is hearth's single mochi hook: authentication, access control,
// publish validation, rate limits and presence.
type hook struct {
	mqtt.HookBase
	b        *Broker
	presence *presence
	takeover *takeover
	archive  *archiveGate
	ids      *sharedIDs
	flood    *floodGuard
	stamps   *stamps
	sessions *sessions // nil: sessions are kept in memory only
	stored   storedState

	capMu    sync.Mutex       // guards offline and resuming, and ends sessions one at a time
	offline  map[string]int64 // when each offline session went offline (unix ns)
	resuming map[string]bool  // client ids whose session a new connection is taking

	limiters sync.Map // *mqtt.Client -> *rate.Limiter
	userLims sync.Map // user -> *rate.Limiter, for publishes over HTTP (configured users only)
}

func newHook(b *Broker) *hook {
	h := &hook{b: b, offline: map[string]int64{}, resuming: map[string]bool{}}
	h.presence = newPresence(b)
	h.stamps = newStamps()
	h.flood = newFloodGuard(b.cfg.HoldOff)
	h.takeover = newTakeover(b.server, h.queueChanged)
	h.archive = newArchiveGate(b.server, b.cfg.BridgeClientID, b.cfg.MaxInflight/2, b.cfg.EmbeddedBridge)
	h.ids = newSharedIDs()
	return h
}

// storedState is what the session file held at start, for mochi to load.
type storedState struct {
	clients  []storage.Client
	subs     []storage.Subscription
	inflight []storage.Message
	retained []storage.Message
}

// queueChanged keeps the stored copy of the message queued for cl under
// packet id in step with the broker's (a no-op without a session file).
func (h *hook) queueChanged(cl *mqtt.Client, id uint16) {
	if h.sessions != nil {
		h.sessions.inflight(cl, id)
	}
}

func (h *hook) ID() string { return "hearth" }

func (h *hook) Provides(e byte) bool {
	switch e {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketEncode,
		mqtt.OnClientExpired, mqtt.OnQosPublish, mqtt.OnQosDropped, mqtt.OnQosComplete,
		mqtt.OnPacketRead, mqtt.OnPacketProcessed, mqtt.OnSubscribed:
		return true
	case mqtt.OnUnsubscribed, mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return h.sessions != nil
	}
	return false
}

// userOf is the authenticated user of a client. The username is checked
// at CONNECT, so it is trusted from then on.
func userOf(cl *mqtt.Client) string { return string(cl.Properties.Username) }

// OnConnect runs before authentication, once mochi has read the CONNECT.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	noSendQuota(cl)
	// No outbound topic aliases: a queued message sent with one would be
	// stored and resent without its topic, to a connection that does not
	// know the alias.
	cl.Properties.Props.TopicAliasMaximum = 0
	return nil
}

// OnConnectAuthenticate checks credentials, the ownership of the client id
// and the will. The bridge identity is accepted only on the internal
// listener, and only with this run's secret.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if cl.Net.Listener == listenerInternal {
		ok := user == hearth.BridgeUser && subtle.ConstantTimeCompare(pk.Connect.Password, h.b.bridgeSecret) == 1
		if !ok {
			h.b.Stats.AuthFailures.Add(1)
		}
		return ok
	}
	if user == "" || user == hearth.BridgeUser {
		h.b.Stats.AuthFailures.Add(1)
		h.b.log.Debug("mqtt connection refused: no user", "remote", cl.Net.Remote)
		return false
	}
	password := string(pk.Connect.Password)
	// Failed password logins are limited, here and at POST /api/login
	// alike. A token costs no bcrypt and cannot be guessed: a browser's
	// token login goes through even while someone guesses its user's
	// password.
	var try *hearth.LoginAttempt
	if !hearth.LooksLikeToken(password) {
		var wait time.Duration
		if try, wait = h.b.cfg.Logins.Begin(user, cl.Net.Remote); try == nil {
			h.b.Stats.AuthFailures.Add(1)
			h.b.log.Debug("mqtt connection refused: too many failed logins", "user", user, "remote", cl.Net.Remote, "retry_in", wait)
			return h.refuse(cl, packets.ErrConnectionRateExceeded)
		}
	}
	_, err := h.b.auth.Login(user, password)
	if try != nil {
		try.Done(err == nil)
	}
	if err != nil {
		h.b.Stats.AuthFailures.Add(1)
		h.b.log.Debug("mqtt connection refused: bad credentials", "user", user, "remote", cl.Net.Remote)
		return false
	}
	if left := h.flood.heldOff(user); left > 0 {
		h.b.Stats.HeldOff.Add(1)
		h.b.log.Debug("mqtt connection refused: held off for flooding", "user", user, "remote", cl.Net.Remote, "retry_in", left)
		return h.refuse(cl, packets.ErrConnectionRateExceeded)
	}
	if lim := h.b.cfg.MaxPerUser; lim > 0 && h.presence.connections(user) >= lim && !h.resumes(cl.ID) {
		h.b.Stats.TooMany.Add(1)
		h.b.log.Info("mqtt connection refused: too many connections", "user", user, "limit", lim)
		return h.refuse(cl, packets.ErrQuotaExceeded)
	}
	if !h.clientIDFree(cl.ID, user) {
		h.b.Stats.ClientIDRefused.Add(1)
		h.b.log.Info("mqtt connection refused: client id belongs to another user", "user", user, "client", cl.ID)
		return h.refuse(cl, packets.ErrClientIdentifierNotValid)
	}
	if pk.Connect.WillFlag {
		if !h.b.policy.CanPublish(user, pk.Connect.WillTopic) {
			h.b.Stats.ACLDenied.Add(1)
			return h.refuse(cl, packets.ErrNotAuthorized)
		}
		if _, err := h.validate(pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillRetain); err != nil {
			h.b.Stats.InvalidPublishes.Add(1)
			return h.refuse(cl, codeOf(err))
		}
	}
	return true
}

// clientIDFree reports whether user may use the client id: it is not the
// bridge's, and no session of another user holds it.
func (h *hook) clientIDFree(id, user string) bool {
	if id == h.b.cfg.BridgeClientID || id == hearth.BridgeReceiptsClientID(h.b.cfg.BridgeClientID) {
		return false
	}
	existing, ok := h.b.server.Clients.Get(id)
	return !ok || userOf(existing) == user
}

// resumes reports whether a connection with this client id is open now:
// the new one takes it over, so it does not add to the user's count.
func (h *hook) resumes(id string) bool {
	existing, ok := h.b.server.Clients.Get(id)
	return ok && !existing.Closed()
}

// refuse answers a CONNECT with code and closes the connection; mochi's
// own CONNACK that follows finds it closed.
func (h *hook) refuse(cl *mqtt.Client, code packets.Code) bool {
	if _, ok := packets.V5CodesToV3[code]; !ok && cl.Properties.ProtocolVersion < 5 {
		// 3.1.1 has few codes: "server unavailable" for a limit, "not
		// authorized" for the rest.
		if code == packets.ErrQuotaExceeded || code == packets.ErrConnectionRateExceeded {
			code = packets.Err3ServerUnavailable
		} else {
			code = packets.Err3NotAuthorized
		}
	}
	_ = h.b.server.SendConnack(cl, code, false, nil)
	cl.Stop(code)
	return false
}

// OnACLCheck applies the policy to publishes (write), to subscriptions
// (a filter) and to every single delivery (a topic name).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := userOf(cl)
	var ok bool
	switch {
	case write:
		ok = h.b.policy.CanPublish(user, topic)
	case strings.ContainsAny(topic, "+#") || strings.HasPrefix(topic, "$share/"):
		ok = h.b.policy.CanSubscribe(user, topic)
	default:
		ok = h.b.policy.CanReceive(user, topic)
	}
	if !ok && write {
		h.b.Stats.ACLDenied.Add(1)
		h.b.log.Debug("mqtt publish denied", "user", user, "client", cl.ID, "topic", topic)
	}
	return ok
}

// OnPublish validates what clients publish and applies the rate limit.
// mochi's processPublish decides what a returned error does: a reason
// code reaches an MQTT 5 publisher at QoS 1 or 2 and stops the message;
// for QoS 0 and MQTT 3.1.1 the message would still be delivered, so those
// get CodeSuccessIgnore, which acknowledges and drops it.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	pk.Created = h.stamps.next() // see stamps
	if cl.Net.Inline || cl.Net.Listener == listenerInternal {
		return pk, nil
	}
	if !h.allow(cl) {
		h.b.Stats.RateLimited.Add(1)
		h.b.log.Debug("mqtt publish over the rate limit", "user", userOf(cl), "client", cl.ID)
		if h.flood.refused(cl) {
			h.disconnectFlooder(cl)
			return pk, packets.ErrRejectPacket
		}
		return pk, h.refusePublish(cl, pk, packets.ErrMessageRateTooHigh)
	}
	kind, err := h.validate(pk.TopicName, pk.Payload, pk.FixedHeader.Retain)
	if err != nil {
		h.b.Stats.InvalidPublishes.Add(1)
		h.b.log.Debug("mqtt publish refused", "user", userOf(cl), "client", cl.ID, "topic", pk.TopicName, "error", err)
		return pk, h.reject(cl, pk, codeOf(err))
	}
	if kind == hearth.TopicMessage && !h.archive.wait(archiveMaxWait) {
		h.b.Stats.ArchiveBusy.Add(1)
		h.b.log.Warn("archive behind: publish refused", "user", userOf(cl), "client", cl.ID)
		return pk, h.refusePublish(cl, pk, packets.ErrQuotaExceeded)
	}
	if kind == hearth.TopicMessage {
		// A chat message is for the archive too: a publisher's message
		// expiry must not let mochi drop it from the bridge's queue.
		pk.Properties.MessageExpiryInterval = 0
		pk.Expiry = 0
	}
	return pk, nil
}

// flooded counts a connection disconnected for flooding against its user,
// who is held off after too many.
func (h *hook) flooded(cl *mqtt.Client) {
	h.b.Stats.FloodDisconnects.Add(1)
	if h.flood.flooded(userOf(cl)) {
		h.b.Stats.UsersHeldOff.Add(1)
		h.b.log.Warn("mqtt user held off: connections keep flooding", "user", userOf(cl), "for", h.flood.hold)
	}
}

// disconnectFlooder disconnects a connection that keeps publishing over
// the rate limit (MQTT 5: DISCONNECT 0x96).
func (h *hook) disconnectFlooder(cl *mqtt.Client) {
	h.b.log.Info("mqtt connection closed: publishing over the rate limit", "user", userOf(cl), "client", cl.ID)
	h.flooded(cl)
	_ = h.b.server.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
}

// refusePublish refuses a publish for a passing reason (rate, archive
// busy) so that it is sent again: an MQTT 5 client at QoS 1 gets code; an
// MQTT 3.1.1 one at QoS 1 is disconnected without a PUBACK, so it re-sends
// after reconnecting; QoS 0 is dropped.
func (h *hook) refusePublish(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	if cl.Properties.ProtocolVersion < 5 && pk.FixedHeader.Qos > 0 {
		cl.Stop(code)
		return packets.ErrRejectPacket
	}
	return h.reject(cl, pk, code)
}

func (h *hook) reject(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return code
	}
	return packets.CodeSuccessIgnore
}

// allowUser takes a token from the bucket of user's HTTP publishes.
func (h *hook) allowUser(user string) bool { return h.take(&h.userLims, user) }

// allow takes a token from the client's bucket.
func (h *hook) allow(cl *mqtt.Client) bool { return h.take(&h.limiters, cl) }

// take takes a token from the publish-rate bucket stored under key in m,
// making the bucket on first use.
func (h *hook) take(m *sync.Map, key any) bool {
	if h.b.cfg.PublishRate <= 0 {
		return true
	}
	l, ok := m.Load(key)
	if !ok {
		l, _ = m.LoadOrStore(key, rate.NewLimiter(rate.Limit(h.b.cfg.PublishRate), h.b.cfg.PublishBurst))
	}
	return l.(*rate.Limiter).Allow()
}

// validate checks a publish on a chat topic: messages must be valid
// message payloads and typing events {"typing":bool}; neither may be
// retained. Other topics carry anything (the ACL decides who may use them).
// It returns the kind of topic.
func (h *hook) validate(topic string, payload []byte, retain bool) (hearth.TopicKind, error) {
	kind := hearth.ParseTopic(topic).Kind
	if len(payload) > h.b.cfg.MaxMessageBytes {
		return kind, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(payload), h.b.cfg.MaxMessageBytes)
	}
	switch kind {
	case hearth.TopicMessage:
		if retain {
			return kind, errRetained
		}
		_, err := hearth.ParsePayload(payload)
		return kind, err
	case hearth.TopicTyping:
		if retain {
			return kind, errRetained
		}
		return kind, validateTyping(payload)
	}
	return kind, nil
}

func validateTyping(b []byte) error {
	var t struct {
		Typing *bool `json:"typing"`
	}
	if err := hearth.DecodeJSONObject(bytes.NewReader(b), &t, true); err != nil || t.Typing == nil {
		return fmt.Errorf(`%w: a typing event is {"typing":true} or {"typing":false}`, hearth.ErrBadPayload)
	}
	return nil
}

// OnPacketEncode tells MQTT 5 clients the largest packet hearth accepts,
// which mochi leaves out of the CONNACK.
// It also gives a PUBACK the client's packet id back (see sharedIDs), and
// on the CONNACK of a resumed session, before mochi resends its queue, it
// puts the queue in order (see stamps).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	pk = h.ids.encode(cl, pk)
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == 0 {
		pk.Properties.MaximumPacketSize = uint32(packetLimit(h.b.cfg.MaxMessageBytes))
		if pk.SessionPresent {
			h.dropAcks(cl)
			h.takeover.settle(cl)
			h.stamps.renumber(cl)
		}
	}
	return pk
}

// OnSessionEstablish runs before mochi hands an existing session to a new
// connection: the session is not to be ended meanwhile (wentOffline).
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.capMu.Lock()
	h.resuming[cl.ID] = true
	h.capMu.Unlock()
}

// dropAcks removes acknowledgement records from a resumed session's
// queue before mochi resends it. mochi keeps one while it answers a QoS 1
// publish, and leaves it behind if the connection failed first; resent,
// it would acknowledge a publish of the client's under the stand-in id
// (see sharedIDs), which may be another of the client's own ids.
func (h *hook) dropAcks(cl *mqtt.Client) {
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Puback && cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&h.b.server.Info.Inflight, -1)
		}
	}
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.capMu.Lock()
	delete(h.offline, cl.ID)
	delete(h.resuming, cl.ID)
	h.capMu.Unlock()
	if h.sessions != nil && !cl.Net.Inline {
		h.sessions.established(cl)
	}
	h.takeover.up(cl)
	h.presence.up(cl)
}

// OnSubscribed notes when the embedded bridge's subscription is in place
// (on the internal listener, which only the bridge can use).
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Listener == listenerInternal && len(reasonCodes) > 0 && reasonCodes[0] < 0x80 {
		h.archive.bridgeSubscribed()
	}
	if h.sessions != nil {
		h.sessions.subscriptions(cl, pk.Filters)
	}
}

func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.sessions.subscriptions(cl, pk.Filters)
}

func (h *hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	h.sessions.retained(pk.TopicName)
}

func (h *hook) OnRetainedExpired(topic string) { h.sessions.retained(topic) }

func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := h.badTopic(cl, pk); err != nil {
		return pk, err
	}
	return h.ids.read(cl, pk), nil
}

// badTopic answers a publish on a topic no client may publish on ($SYS
// and other "$" topics, or one with wildcards). mochi drops such a
// publish without a word, so a QoS 1 publisher would wait for its PUBACK
// forever. An MQTT 5 client gets 0x87 (for "$") or 0x90; an MQTT 3.1.1
// client, which has no such code, is disconnected as mochi does when the
// ACL refuses its publish (a plain close would have it reconnect and
// send the publish again, forever).
func (h *hook) badTopic(cl *mqtt.Client, pk packets.Packet) error {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline || mqtt.IsValidFilter(pk.TopicName, true) ||
		(pk.TopicName == "" && pk.Properties.TopicAlias > 0) {
		return nil
	}
	code := packets.ErrTopicNameInvalid
	if strings.HasPrefix(pk.TopicName, "$") {
		code = packets.ErrNotAuthorized
		h.b.Stats.ACLDenied.Add(1)
	} else {
		h.b.Stats.InvalidPublishes.Add(1)
	}
	h.b.log.Debug("mqtt publish refused: topic", "user", userOf(cl), "client", cl.ID, "topic", pk.TopicName)
	if pk.FixedHeader.Qos == 0 {
		return nil // mochi drops it
	}
	if cl.Properties.ProtocolVersion < 5 {
		return h.b.server.DisconnectClient(cl, code)
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID, ReasonCode: code.Code}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	return cl.WritePacket(ack)
}

func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	h.ids.processed(cl, pk)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.ids.gone(cl)
	h.flood.gone(cl)
	h.limiters.Delete(cl)
	h.takeover.down(cl, expire)
	h.presence.down(cl)
	if h.sessions != nil {
		h.sessions.disconnected(cl, expire)
	}
	if cl.Net.Conn != nil && !cl.IsTakenOver() {
		h.wentOffline(cl, expire)
	}
}

// maxOfflineSessions is how many persistent sessions without a connection
// one user keeps. Each may hold thousands of queued messages, and a client
// that makes up a new client id at every start (a reinstalled app, a
// browser tab) would leave one behind each time.
const maxOfflineSessions = 20

// wentOffline runs when cl's connection ends. If its session goes on, the
// oldest other offline sessions of its user beyond maxOfflineSessions end
// as if they had expired (not while the broker closes).
func (h *hook) wentOffline(cl *mqtt.Client, expire bool) {
	h.capMu.Lock()
	defer h.capMu.Unlock()
	if h.resuming[cl.ID] && !cl.IsTakenOver() {
		delete(h.resuming, cl.ID) // it never got its session
	}
	if expire {
		delete(h.offline, cl.ID)
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
			!h.resuming[c.ID] && (seen || c.Net.Conn == nil) {
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

func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	h.takeover.queued(cl, pk)
	h.queueChanged(cl, pk.PacketID)
}

func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID == h.b.cfg.BridgeClientID {
		h.archive.acked()
	}
	h.queueChanged(cl, pk.PacketID)
}

func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.takeover.queued(cl, pk)
	h.queueChanged(cl, pk.PacketID)
}

// OnClientExpired removes the subscriptions of an expired session, which
// mochi leaves in its topic index, and the stored session.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.capMu.Lock()
	defer h.capMu.Unlock()
	if cur, ok := h.b.server.Clients.Get(cl.ID); cl.IsTakenOver() || h.resuming[cl.ID] || !ok || cur != cl {
		return // a new connection has the session now
	}
	h.endSession(cl)
}

// endSession forgets an offline session; capMu is held.
func (h *hook) endSession(cl *mqtt.Client) {
	delete(h.offline, cl.ID)
	for filter := range cl.State.Subscriptions.GetAll() {
		h.b.server.Topics.Unsubscribe(filter, cl.ID)
		cl.State.Subscriptions.Delete(filter)
	}
	if h.sessions != nil {
		h.sessions.expired(cl.ID)
	}
}

// The stored sessions, for mochi to load at start.

func (h *hook) StoredClients() ([]storage.Client, error) { return h.stored.clients, nil }

func (h *hook) StoredSubscriptions() ([]storage.Subscription, error) { return h.stored.subs, nil }

func (h *hook) StoredInflightMessages() ([]storage.Message, error) { return h.stored.inflight, nil }

func (h *hook) StoredRetainedMessages() ([]storage.Message, error) { return h.stored.retained, nil }
