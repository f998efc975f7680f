package broker

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/hearth-home/hearth"
)

var errRetained = errors.New("chat messages, events and typing events must not be retained")

// willSink is the topic of what mochi publishes for a will once hearth
// has taken it (see OnWill). No client may receive it.
const willSink = "$hearth/will"

// OnACLCheck applies the policy to subscriptions (a filter) and to what
// mochi still delivers itself: $SYS at QoS 0. Publishes are checked in
// OnPublish, which can answer as each protocol version wants.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := userOf(cl)
	switch {
	case write:
		return true
	case topic == willSink:
		return false
	case strings.ContainsAny(topic, "+#") || strings.HasPrefix(topic, "$share/"):
		return h.b.policy.CanSubscribeAs(user, cl.ID, topic)
	}
	return h.b.policy.CanReceiveAs(user, cl.ID, topic)
}

// OnPublish checks what clients publish and delivers it. mochi answers
// the publisher (PUBACK, or PUBREC and later PUBCOMP) unless a refusal
// says otherwise; it never delivers: OnPublish returns CodeSuccessIgnore
// once hearth has.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		h.accept(pk, hearth.ParseTopic(pk.TopicName).Kind, nil) // the server's own: presence, HTTP posts
		return pk, packets.CodeSuccessIgnore
	}
	user := userOf(cl)
	if !h.b.policy.CanPublishAs(user, cl.ID, pk.TopicName) {
		h.b.refusals.refuse(NotAuthorized, "user", user, "client", cl.ID, "topic", pk.TopicName)
		return pk, h.refuseFor(cl, pk, packets.ErrNotAuthorized, false)
	}
	if cl.Net.Listener == listenerInternal {
		h.accept(pk, hearth.ParseTopic(pk.TopicName).Kind, viaOf(cl)) // the bridge's receipts
		return pk, packets.CodeSuccessIgnore
	}
	c := connOf(cl)
	if c != nil {
		if l := h.b.limits.Load(); l != c.limits {
			c.setLimits(l) // reloaded since this connection's last publish
		}
	}
	if c != nil && c.limiter != nil && !c.limiter.Allow() {
		h.b.refusals.refuse(RateLimited, "user", user, "client", cl.ID)
		if refused(&c.strikes) {
			h.disconnectFlooder(cl)
			return pk, packets.ErrRejectPacket
		}
		return pk, h.refuseFor(cl, pk, packets.ErrMessageRateTooHigh, true)
	}
	kind, err := h.validate(pk.TopicName, pk.Payload, pk.FixedHeader.Retain)
	if err == nil && kind == hearth.TopicFocus && pk.FixedHeader.Qos > 1 {
		err = errFocusQoS
	}
	if err != nil {
		h.b.refusals.refuse(InvalidPublish, "user", user, "client", cl.ID, "topic", pk.TopicName, "error", err)
		return pk, h.refuseFor(cl, pk, codeOf(err), false)
	}
	var flush func()
	if cc := viaOf(cl); cc != nil {
		flush = cc.flush
	}
	if forArchive(kind) && !h.archive.wait(archiveMaxWait, flush) {
		h.b.refusals.refuse(ArchiveBusy, "user", user, "client", cl.ID)
		return pk, h.refuseFor(cl, pk, packets.ErrQuotaExceeded, true)
	}
	if kind == hearth.TopicFocus {
		f, _ := hearth.ParseFocus(pk.Payload) // validated
		h.focus.set(cl, f.Room)
		return pk, packets.CodeSuccessIgnore // delivered to nobody
	}
	if forArchive(kind) {
		// A chat message (or event) is for the archive too: a publisher's
		// message expiry must not drop it from the bridge's queue.
		pk.Properties.MessageExpiryInterval = 0
		pk.Expiry = 0
	}
	h.accept(pk, kind, viaOf(cl))
	return pk, packets.CodeSuccessIgnore
}

// accept retains and delivers an accepted publish of topic kind kind
// (the caller has parsed it); via is the publisher's connection
// (router.publish). A read mark is retained only if it is not lower than
// the last (acceptRead); focus is delivered to nobody.
func (h *hook) accept(pk packets.Packet, kind hearth.TopicKind, via *clientConn) {
	switch kind {
	case hearth.TopicRead:
		h.acceptRead(pk, via)
		return
	case hearth.TopicFocus:
		return
	}
	if pk.FixedHeader.Retain {
		h.retain(pk)
	}
	h.router.publish(pk, via)
}

// viaOf is cl's connection, nil for a client without one.
func viaOf(cl *mqtt.Client) *clientConn {
	cc, _ := cl.Net.Conn.(*clientConn)
	return cc
}

// refuseFor refuses a publish. An MQTT 5 publisher at QoS 1 or 2 gets
// code in its PUBACK or PUBREC. An MQTT 3.1.1 one, which has no codes,
// gets a plain acknowledgement and the message is dropped, as Mosquitto
// does: a device with a persistent session would otherwise reconnect and
// send it again forever. A refusal that passes (transient: rate, archive
// busy) disconnects it instead, so that it sends the message again after
// reconnecting. QoS 0 is dropped.
func (h *hook) refuseFor(cl *mqtt.Client, pk packets.Packet, code packets.Code, transient bool) error {
	switch {
	case pk.FixedHeader.Qos == 0:
		return packets.CodeSuccessIgnore
	case cl.Properties.ProtocolVersion == 5:
		_ = cl.WritePacket(ackWith(pk, code))
		return packets.ErrRejectPacket
	case transient:
		cl.Stop(code)
		return packets.ErrRejectPacket
	}
	return packets.CodeSuccessIgnore
}

// ackWith is the MQTT 5 answer to a QoS 1 or 2 publish with a reason code.
func ackWith(pk packets.Packet, code packets.Code) packets.Packet {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID, ReasonCode: code.Code}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if code.Code >= packets.ErrUnspecifiedError.Code {
		ack.Properties.ReasonString = code.Reason
	}
	return ack
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
	_ = h.b.disconnect(cl, packets.ErrMessageRateTooHigh)
}

// allowUser takes a token from the bucket of user's HTTP publishes.
func (h *hook) allowUser(user string) bool {
	lim := h.b.limits.Load()
	if lim.PublishRate <= 0 {
		return true
	}
	l, ok := h.userLims.Load(user)
	if !ok {
		l, _ = h.userLims.LoadOrStore(user, rate.NewLimiter(rate.Limit(lim.PublishRate), lim.PublishBurst))
	}
	return l.(*rate.Limiter).Allow()
}

// forArchive reports whether the bridge archives publishes of kind.
func forArchive(kind hearth.TopicKind) bool {
	return kind == hearth.TopicMessage || kind == hearth.TopicEvent
}

// validate checks a publish on a chat topic: messages must be valid
// message payloads, events valid events (an edit or delete only of the
// publisher's own message: ErrNotAllowed otherwise) and typing events
// {"typing":bool}; none may be retained. Read marks are {"seq":N} (never
// empty: a mark is not deleted); focus is {"room":...} naming a configured
// room or "", not retained. Other topics carry anything (the ACL decides
// who may use them). It returns the kind of topic.
func (h *hook) validate(topic string, payload []byte, retain bool) (hearth.TopicKind, error) {
	t := hearth.ParseTopic(topic)
	kind := t.Kind
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
	case hearth.TopicEvent:
		if retain {
			return kind, errRetained
		}
		ev, err := hearth.ParseEvent(payload)
		if err == nil && ev.Type != hearth.TypeReaction && ev.Target.From != t.User {
			err = fmt.Errorf("%w: only its sender may edit or delete a message", ErrNotAllowed)
		}
		return kind, err
	case hearth.TopicTyping:
		if retain {
			return kind, errRetained
		}
		_, err := hearth.ParseTyping(payload)
		return kind, err
	case hearth.TopicRead:
		return kind, validateRead(payload)
	case hearth.TopicFocus:
		return kind, h.validateFocus(payload, retain)
	}
	return kind, nil
}

// badTopic answers a publish on a topic mochi drops without a word ($SYS,
// or one with wildcards), so that a QoS 1 or 2 publisher does not wait
// for its answer forever. $SYS is refused like any topic the policy
// refuses. A wildcard in a topic name is malformed [MQTT-3.3.2-2]: the
// client is disconnected (MQTT 5: 0x90).
func (h *hook) badTopic(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Net.Inline || mqtt.IsValidFilter(pk.TopicName, true) || (pk.TopicName == "" && pk.Properties.TopicAlias > 0) {
		return nil
	}
	if strings.ContainsAny(pk.TopicName, "+#") {
		h.b.refusals.refuse(InvalidPublish, "user", userOf(cl), "client", cl.ID, "topic", pk.TopicName, "error", "wildcard in a topic name")
		_ = h.b.disconnect(cl, packets.ErrTopicNameInvalid)
		return nil
	}
	h.b.refusals.refuse(NotAuthorized, "user", userOf(cl), "client", cl.ID, "topic", pk.TopicName)
	switch {
	case pk.FixedHeader.Qos == 0:
	case cl.Properties.ProtocolVersion == 5:
		_ = cl.WritePacket(ackWith(pk, packets.ErrNotAuthorized))
	case pk.FixedHeader.Qos == 1:
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	default:
		// A PUBREC with no record: the client's PUBREL gets mochi's PUBCOMP.
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID})
	}
	return nil
}

// Retained messages. hearth keeps them in its own index, so that mochi,
// which would send them on a new subscription itself, has none to send.

// retain stores (or, with an empty payload, deletes) a retained message.
func (h *hook) retain(pk packets.Packet) {
	// One at a time, so that the session file is written in the order of
	// the index.
	h.retainMu.Lock()
	defer h.retainMu.Unlock()
	h.retainLocked(pk)
}

func (h *hook) retainLocked(pk packets.Packet) {
	out := pk.Copy(false)
	h.retained.RetainMessage(out)
	if h.sessions != nil {
		h.sessions.retained(pk.TopicName, out, len(pk.Payload) > 0)
	}
}

// retainedMessage returns the retained message of topic.
func (h *hook) retainedMessage(topic string) (packets.Packet, bool) {
	return h.retained.Retained.Get(topic)
}

// sendRetained sends the retained messages for the subscriptions cl was
// just granted, after the SUBACK, as their Retain Handling asks.
func (h *hook) sendRetained(cl *mqtt.Client) {
	c := connOf(cl)
	if c == nil {
		return
	}
	granted, existed := c.granted, c.subscribing
	c.granted, c.subscribing = nil, nil
	now := time.Now().Unix()
	for _, sub := range granted {
		if mqtt.IsSharedFilter(sub.Filter) || sub.RetainHandling == 2 || (sub.RetainHandling == 1 && existed[sub.Filter]) {
			continue // [MQTT-3.3.1-10] [MQTT-3.3.1-11]; none for shared subscriptions (4.8.2)
		}
		wild := sub.Filter[0] == '+' || sub.Filter[0] == '#'
		// mochi's index reads a topic's retained path without the lock
		// that RetainMessage writes it under: read between changes.
		h.retainMu.Lock()
		pks := h.retained.Messages(sub.Filter)
		h.retainMu.Unlock()
		for _, pk := range pks {
			if (wild && strings.HasPrefix(pk.TopicName, "$")) || (pk.Expiry > 0 && pk.Expiry <= now) {
				continue // [MQTT-4.7.1-1]; expired [MQTT-3.3.2-5]
			}
			h.router.deliver(cl, sub, &pk, true, nil, 0)
		}
	}
}

// expireRetained deletes the retained messages whose expiry has passed
// (not one that replaced such a message meanwhile).
func (h *hook) expireRetained(now int64) {
	for topic, pk := range h.retained.Retained.GetAll() {
		if pk.Expiry <= 0 || pk.Expiry > now {
			continue
		}
		h.retainMu.Lock()
		if cur, ok := h.retained.Retained.Get(topic); ok && cur.Expiry == pk.Expiry && cur.Created == pk.Created {
			h.retainLocked(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic})
		}
		h.retainMu.Unlock()
	}
}

// Wills. mochi keeps only part of a will (no expiry, content type,
// response topic or correlation data), would deliver it itself, and sends
// a delayed will even after the client has resumed its session. hearth
// takes each will from the CONNECT (willPacket), publishes it when mochi
// reports it due (OnWill), after its Will Delay Interval unless the
// session resumes first, and at once when the session ends first.

// wills holds the delayed wills by client id.
type wills struct {
	h       *hook
	mu      sync.Mutex
	pending map[string]*time.Timer
	packets map[string]packets.Packet
}

func newWills(h *hook) *wills {
	return &wills{h: h, pending: map[string]*time.Timer{}, packets: map[string]packets.Packet{}}
}

// willPacket makes the publish of cl's will from its CONNECT.
func willPacket(cl *mqtt.Client, pk packets.Packet) *packets.Packet {
	wp := pk.Connect.WillProperties
	will := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: pk.Connect.WillQos, Retain: pk.Connect.WillRetain},
		TopicName:   pk.Connect.WillTopic,
		Payload:     pk.Connect.WillPayload,
		Properties: packets.Properties{
			PayloadFormat:         wp.PayloadFormat,
			PayloadFormatFlag:     wp.PayloadFormatFlag,
			MessageExpiryInterval: wp.MessageExpiryInterval,
			ContentType:           wp.ContentType,
			ResponseTopic:         wp.ResponseTopic,
			CorrelationData:       wp.CorrelationData,
			User:                  wp.User,
		},
		Origin:          cl.ID,
		ProtocolVersion: pk.ProtocolVersion,
	}
	return &will
}

// OnWill runs when mochi would publish cl's will. hearth publishes it (or
// schedules it) and leaves mochi a will that reaches nobody.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	c := connOf(cl)
	if c != nil && c.will != nil && !h.b.policy.CanPublishAs(userOf(cl), cl.ID, c.will.TopicName) {
		// The will was allowed at CONNECT; a reload has taken the right,
		// or the user, away since.
		h.b.log.Debug("mqtt will dropped: no longer allowed", "user", userOf(cl), "client", cl.ID)
		return mqtt.Will{TopicName: willSink}, nil
	}
	if c != nil && c.will != nil {
		pk := *c.will
		delay := time.Duration(will.WillDelayInterval) * time.Second
		if !persistent(cl) {
			delay = 0 // the session ends now [MQTT-3.1.3-9]
		}
		if delay > 0 {
			if s, ok := h.router.lookup(cl.ID); ok && s.connected(cl) {
				return mqtt.Will{TopicName: willSink}, nil // the client is back already
			}
			h.wills.schedule(cl.ID, pk, delay)
		} else {
			h.wills.publish(pk)
		}
	}
	return mqtt.Will{TopicName: willSink}, nil
}

func (w *wills) publish(pk packets.Packet) {
	pk.Created = time.Now().Unix()
	kind := hearth.ParseTopic(pk.TopicName).Kind
	if forArchive(kind) {
		pk.Properties.MessageExpiryInterval = 0 // kept for the archive, as any chat message
	}
	if e := pk.Properties.MessageExpiryInterval; e > 0 {
		pk.Expiry = pk.Created + int64(e)
	}
	w.h.accept(pk, kind, nil)
}

func (w *wills) schedule(id string, pk packets.Packet, delay time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.pending[id]; ok {
		t.Stop()
	}
	w.packets[id] = pk
	w.pending[id] = time.AfterFunc(delay, func() { w.flush(id) })
}

// cancel drops the delayed will of a session that a connection resumed.
func (w *wills) cancel(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.pending[id]; ok {
		t.Stop()
		delete(w.pending, id)
		delete(w.packets, id)
	}
}

// flush publishes the delayed will of id now, if there is one: its delay
// has passed, or its session ends.
func (w *wills) flush(id string) {
	w.mu.Lock()
	pk, ok := w.packets[id]
	if t := w.pending[id]; t != nil {
		t.Stop()
	}
	delete(w.pending, id)
	delete(w.packets, id)
	w.mu.Unlock()
	if ok {
		w.publish(pk)
	}
}
