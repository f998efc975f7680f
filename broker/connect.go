package broker

import (
	"crypto/subtle"
	"fmt"
	"math"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hearth-home/hearth"
)

// OnConnect runs before authentication, once mochi has read the CONNECT.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	// No outbound topic aliases: a queued message sent with one would be
	// resent without its topic, to a connection that does not know the
	// alias. Sending none is always allowed.
	cl.Properties.Props.TopicAliasMaximum = 0
	// Server Keep Alive [MQTT-3.2.2-21]: an MQTT 5 client that asks for
	// none, or for more than mqtt.max_keepalive, gets the maximum.
	lim := h.b.limits.Load()
	if max := lim.MaxKeepalive; max > 0 && cl.Properties.ProtocolVersion == 5 &&
		(cl.State.Keepalive == 0 || cl.State.Keepalive > max) {
		cl.State.Keepalive = max
		cl.State.ServerKeepalive = true
	}
	if c := connOf(cl); c != nil {
		c.setLimits(lim)
		if pk.Connect.WillFlag {
			c.will = willPacket(cl, pk)
		}
	}
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
			h.b.refusals.refuse(BadCredentials, "user", user, "remote", cl.Net.Remote, "listener", listenerInternal)
		}
		return ok
	}
	// New connections per address are limited before any password is
	// checked, those of a user once it has logged in: guesses with a
	// wrong password cannot use up the user's.
	if ok, wait := h.addrConnects.allow(hearth.HostOf(cl.Net.Remote)); !ok {
		return h.refuseRate(cl, "address", cl.Net.Remote, wait)
	}
	if user == "" || user == hearth.BridgeUser {
		h.b.refusals.refuse(BadCredentials, "user", user, "remote", cl.Net.Remote)
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
		if try, wait = h.b.cfg.Logins.BeginClient(user, cl.Net.Remote, cl.ID); try == nil {
			h.b.refusals.refuse(LoginLimited, "user", user, "remote", cl.Net.Remote, "retry_in", wait)
			return h.refuse(cl, retryCode("too many failed logins", wait))
		}
	}
	_, device, err := h.b.auth.LoginDevice(user, password)
	if try != nil {
		try.Done(err == nil)
	}
	if err != nil {
		h.b.refusals.refuse(BadCredentials, "user", user, "remote", cl.Net.Remote)
		return false
	}
	if ok, wait := h.userConnects.allow(user); !ok {
		return h.refuseRate(cl, "user", user, wait)
	}
	if left := h.flood.heldOff(user); left > 0 {
		h.b.refusals.refuse(HeldOff, "user", user, "remote", cl.Net.Remote, "retry_in", left)
		return h.refuse(cl, packets.ErrConnectionRateExceeded)
	}
	if lim := h.b.limits.Load().MaxPerUser; lim > 0 && h.presence.connections(user) >= lim && !h.resumes(cl.ID) {
		h.b.refusals.refuse(TooManyConnections, "user", user, "remote", cl.Net.Remote, "limit", lim)
		return h.refuse(cl, packets.ErrQuotaExceeded)
	}
	if !h.clientIDFree(cl.ID, user) {
		h.b.refusals.refuse(ClientIDTaken, "user", user, "remote", cl.Net.Remote, "client", cl.ID)
		return h.refuse(cl, packets.ErrClientIdentifierNotValid)
	}
	if pk.Connect.WillFlag {
		if !h.b.policy.CanPublishAs(user, cl.ID, pk.Connect.WillTopic) {
			h.b.refusals.refuse(NotAuthorized, "user", user, "remote", cl.Net.Remote, "client", cl.ID, "will", pk.Connect.WillTopic)
			return h.refuse(cl, packets.ErrNotAuthorized)
		}
		if _, err := h.validate(pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillRetain); err != nil {
			h.b.refusals.refuse(InvalidPublish, "user", user, "remote", cl.Net.Remote, "client", cl.ID, "will", pk.Connect.WillTopic, "error", err)
			return h.refuse(cl, codeOf(err))
		}
	}
	if c := connOf(cl); c != nil && device != "" {
		c.device.Store(&device)
	}
	return true
}

// refuseRate refuses a connection over the connect rate of its address
// or user (per: which).
func (h *hook) refuseRate(cl *mqtt.Client, per, key string, wait time.Duration) bool {
	h.b.refusals.refuse(ConnectRate, "per", per, "key", key, "remote", cl.Net.Remote, "retry_in", wait)
	return h.refuse(cl, retryCode("too many connections", wait))
}

// retryCode is 0x9F connection rate exceeded, with a reason string that
// tells an MQTT 5 client when to try again (3.1.1: 3, server unavailable).
func retryCode(what string, wait time.Duration) packets.Code {
	return packets.Code{Code: packets.ErrConnectionRateExceeded.Code,
		Reason: fmt.Sprintf("%s: try again in %d s", what, int(math.Ceil(wait.Seconds())))}
}

// clientIDFree reports whether user may use the client id: it is not the
// bridge's, not reserved for another user, and no session of another user
// holds it. Each refusal is the same (0x85), so it does not tell which.
func (h *hook) clientIDFree(id, user string) bool {
	if id == h.b.cfg.BridgeClientID || id == hearth.BridgeReceiptsClientID(h.b.cfg.BridgeClientID) {
		return false
	}
	if owner, ok := h.b.cfg.ClientIDOwners[id]; ok && owner != user {
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
// own CONNACK that follows finds it closed. connack gives a 3.1.1 client
// a code of its version.
func (h *hook) refuse(cl *mqtt.Client, code packets.Code) bool {
	_ = h.b.server.SendConnack(cl, code, false, nil)
	cl.Stop(code)
	return false
}

// connack mends the CONNACK mochi writes.
func (h *hook) connack(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.ReasonCode == packets.ErrProtocolViolationFlagNoPassword.Code && pk.Properties.ReasonString == packets.ErrProtocolViolationFlagNoPassword.Reason {
		// mochi refuses an empty password as a protocol error; MQTT
		// allows it, and hearth never accepts one: a bad password.
		pk.ReasonCode = packets.ErrBadUsernameOrPassword.Code
		pk.Properties.ReasonString = packets.ErrBadUsernameOrPassword.Reason
		h.b.refusals.refuse(BadCredentials, "user", userOf(cl), "remote", cl.Net.Remote, "password", "empty")
	}
	if (pk.ReasonCode == packets.ErrServerBusy.Code || pk.ReasonCode == packets.ErrServerUnavailable.Code) && !cl.Net.Inline {
		// Only mochi sends these, for a CONNECT over its MaximumClients.
		h.b.refusals.refuse(ServerFull, "user", userOf(cl), "remote", cl.Net.Remote)
	}
	if c := connOf(cl); c != nil && pk.ReasonCode == 0 {
		c.present = pk.SessionPresent
	}
	if cl.Properties.ProtocolVersion < 5 {
		if pk.ReasonCode > 5 {
			pk.ReasonCode = connackCode3(cl, pk.ReasonCode)
		}
		return pk
	}
	if pk.ReasonCode == 0 {
		pk.Properties.MaximumPacketSize = uint32(packetLimit(h.b.cfg.MaxMessageBytes)) // mochi leaves it out
		pk.Properties.TopicAliasMaximum = topicAliasMaximum
	}
	return pk
}

// topicAliasMaximum is the highest topic alias a client may use, as
// Mosquitto's default.
const topicAliasMaximum = 10

// connackCode3 turns an MQTT 5 CONNACK reason code into one of the six
// return codes of MQTT 3.1.1.
func connackCode3(cl *mqtt.Client, code byte) byte {
	const (
		badVersion  = 0x01
		idRejected  = 0x02
		unavailable = 0x03
		notAllowed  = 0x05 // also for a bad user name or password, as mochi maps it
	)
	switch code {
	case packets.ErrUnsupportedProtocolVersion.Code:
		return badVersion
	case packets.ErrClientIdentifierNotValid.Code:
		return idRejected
	case packets.ErrUnspecifiedError.Code:
		if cl.Properties.Props.AssignedClientID != "" {
			return idRejected // an empty client id without clean session [MQTT-3.1.3-8]
		}
		return unavailable
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code, packets.ErrQuotaExceeded.Code,
		packets.ErrConnectionRateExceeded.Code, packets.ErrServerShuttingDown.Code:
		return unavailable
	}
	return notAllowed
}

// dropSquatted drops the stored sessions held under a reserved client id
// by another user than its owner (made before the id was reserved), so
// that the owner gets the id, with a new session.
func (h *hook) dropSquatted() {
	st := &h.stored
	gone := map[string]bool{}
	st.clients = slices.DeleteFunc(st.clients, func(c storage.Client) bool {
		owner, ok := h.b.cfg.ClientIDOwners[c.ID]
		if ok && owner != string(c.Username) {
			gone[c.ID] = true
			h.b.log.Info("mqtt session dropped: its client id is reserved for another user", "client", c.ID, "user", string(c.Username), "owner", owner)
			h.sessions.expired(c.ID)
		}
		return gone[c.ID]
	})
	if len(gone) == 0 {
		return
	}
	st.subs = slices.DeleteFunc(st.subs, func(s storage.Subscription) bool { return gone[s.Client] })
	st.inflight = slices.DeleteFunc(st.inflight, func(m storage.Message) bool { return gone[m.Client] })
	st.deliveries = slices.DeleteFunc(st.deliveries, func(m deliveryRecord) bool { return gone[m.Client] })
}
