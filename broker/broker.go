package broker

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/hearth-home/hearth"
)

// Listener ids.
const (
	listenerTCP      = "tcp"
	listenerTLS      = "tls"
	listenerWS       = "ws"
	listenerInternal = "internal" // the bridge's private loopback listener
)

// maxInflight is the most QoS 1 and 2 messages in flight to one client
// (whatever Receive Maximum it asks for).
const maxInflight = 8192

// Defaults of the queue bounds (see outbound.go).
const (
	DefaultMaxQueuedBytes  = 64 << 20
	DefaultMaxOfflineBytes = 256 << 20
)

// Config is what the broker needs of hearth's configuration.
type Config struct {
	MQTTAddr        string // MQTT over TCP; "" for none
	TLSAddr         string // MQTT over TLS; "" for none
	TLSCertFile     string
	TLSKeyFile      string
	MaxMessageBytes int     // largest payload accepted
	PublishRate     float64 // messages per second per connection; 0 = no limit
	PublishBurst    int
	MaxConnections  int                  // all MQTT connections but the bridge's; 0 = no limit
	MaxPerUser      int                  // one user's MQTT connections; 0 = no limit
	Origins         hearth.Origins       // browser origins allowed on /mqtt; the zero value: none
	BridgeClientID  string               // reserved for the bridge
	EmbeddedBridge  bool                 // the bridge archives from this broker: hold chat messages until it has subscribed
	Logins          *hearth.LoginLimiter // failed logins, shared with the HTTP API; nil: the broker keeps its own

	// MaxInflight is the most QoS 1 and 2 messages in flight to one
	// client (default maxInflight); the archive gate holds publishers
	// while the bridge holds half of it. Tests lower it.
	MaxInflight int

	// MaxQueuedBytes bounds what one session holds queued and in flight
	// (default DefaultMaxQueuedBytes); MaxOfflineBytes what all of one
	// user's offline sessions hold together (default
	// DefaultMaxOfflineBytes). A message over either is dropped and
	// counted.
	MaxQueuedBytes  int
	MaxOfflineBytes int

	// MaxKeepalive is the longest keep alive an MQTT 5 client gets (Server
	// Keep Alive); 0 leaves clients theirs.
	MaxKeepalive uint16

	// HoldOff is how long a user whose connections keep flooding is
	// refused (default defaultHoldOff; see floodGuard).
	HoldOff time.Duration

	// WriteTimeout is how long a client may take to accept a write before
	// it is disconnected as stuck (default 30 s).
	WriteTimeout time.Duration

	// SessionFile is the bbolt file that keeps persistent sessions across
	// restarts; "" keeps them in memory only.
	SessionFile string

	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT (default 10 s).
	ConnectTimeout time.Duration

	// ConnectRatePerAddress and ConnectRatePerUser are the new connections
	// per second allowed from one client address and of one user, with
	// bursts of ConnectBurst; 0 = no limit.
	ConnectRatePerAddress, ConnectRatePerUser float64
	ConnectBurst                              int
	// ClientIDOwners reserves client ids for their user (config devices).
	ClientIDOwners map[string]string

	// RefusalLogInterval is how often repeated refusals are summed up in
	// one log line (default 10 s; see refusals).
	RefusalLogInterval time.Duration

	// DeliveryLatency, if set, observes the seconds from accepting a
	// PUBLISH to writing it to each subscriber's connection (see
	// session.write).
	DeliveryLatency Observer
}

// Observer takes one measurement (a prometheus.Histogram is one).
type Observer interface{ Observe(float64) }

// Limits are the limits of Config that SetLimits changes while the broker
// runs (the same fields, the same defaults).
type Limits struct {
	PublishRate     float64
	PublishBurst    int
	MaxPerUser      int
	MaxQueuedBytes  int
	MaxOfflineBytes int
	MaxKeepalive    uint16
}

func (l Limits) withDefaults() *Limits {
	if l.MaxQueuedBytes <= 0 {
		l.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if l.MaxOfflineBytes <= 0 {
		l.MaxOfflineBytes = DefaultMaxOfflineBytes
	}
	return &l
}

// Broker is hearth's MQTT broker. Create it with New, then Start it, and
// Close it when done.
type Broker struct {
	cfg    Config
	policy *hearth.Policy
	auth   *hearth.Authenticator
	log    *slog.Logger

	server       *mqtt.Server
	hook         *hook
	ws           *wsListener
	bridgeSecret []byte
	internal     listeners.Listener
	tcp, tlsl    listeners.Listener

	limits    atomic.Pointer[Limits] // what SetLimits changes; read where they apply
	started   atomic.Bool
	closeOnce sync.Once
	done      chan struct{} // closed by Close
	ready     chan struct{} // closed once Start has restored the sessions: connections wait for it

	refusals *refusals
	epoch    time.Time // monotonic origin of deliveries' publish stamps

	Stats Stats
}

// Stats counts what the broker dropped or closed; what it refused is
// counted by reason (Refused). The fields are updated atomically.
type Stats struct {
	FloodDisconnects  atomic.Int64 // connections closed for publishing over the rate limit
	UsersHeldOff      atomic.Int64 // times a user was held off for flooding
	HeldOff           atomic.Int64 // connections refused while their user was held off
	StuckClosed       atomic.Int64 // connections closed because the client stopped reading or acknowledging
	QueueDropped      atomic.Int64 // messages dropped because a session's queue bound was reached
	Expired           atomic.Int64 // queued messages dropped when their Message Expiry Interval passed
	TooLargeForClient atomic.Int64 // messages not sent because they exceed the client's Maximum Packet Size
	SessionsCapped    atomic.Int64 // offline sessions ended because their user had too many
}

// New builds a broker and binds its listeners, so that a port in use is an
// error here. Nothing is served until Start.
func New(cfg Config, policy *hearth.Policy, auth *hearth.Authenticator, log *slog.Logger) (_ *Broker, err error) {
	if cfg.MaxMessageBytes <= 0 {
		return nil, errors.New("broker: max message bytes must be positive")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.MaxInflight <= 0 || cfg.MaxInflight > maxInflight {
		cfg.MaxInflight = maxInflight
	}
	if cfg.Logins == nil {
		cfg.Logins = hearth.NewLoginLimiter()
	}
	b := &Broker{cfg: cfg, policy: policy, auth: auth, log: log, done: make(chan struct{}), ready: make(chan struct{}),
		refusals: newRefusals(log, cfg.RefusalLogInterval), epoch: time.Now()}
	b.limits.Store(Limits{PublishRate: cfg.PublishRate, PublishBurst: cfg.PublishBurst, MaxPerUser: cfg.MaxPerUser,
		MaxQueuedBytes: cfg.MaxQueuedBytes, MaxOfflineBytes: cfg.MaxOfflineBytes, MaxKeepalive: cfg.MaxKeepalive}.withDefaults())
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("broker: bridge secret: %w", err)
	}
	b.bridgeSecret = []byte(hex.EncodeToString(secret))

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = uint16(cfg.MaxInflight)
	caps.TopicAliasMaximum = topicAliasMaximum
	// An acknowledgement carries no properties of the publish it answers.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MaximumPacketSize = uint32(packetLimit(cfg.MaxMessageBytes))
	if cfg.MaxConnections > 0 {
		caps.MaximumClients = int64(cfg.MaxConnections) + 2 // and the bridge's two
	}
	// MQTT 5 clients of the browser keep sessions across reloads; a week
	// of absence is plenty, and bounds what a forgotten session keeps.
	caps.MaximumSessionExpiryInterval = 7 * 24 * 3600
	// No cap on a publisher's Message Expiry Interval: hearth applies it
	// as given (outbound.go), and chat messages have theirs removed.
	caps.MaximumMessageExpiryInterval = 0
	// mochi's queue of unwritten packets is a channel of this many per
	// client, made with the client. hearth writes its deliveries itself
	// (outbound.go), so the queue only carries what mochi publishes on
	// its own ($SYS): a few entries, where the default 8,192 cost 64 KB
	// for every connection.
	caps.MaximumClientWritesPending = 16
	b.server = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		Logger:       slog.New(mochiLog{log.Handler()}).With("source", "mochi"),
	})
	b.hook = newHook(b)
	defer func() {
		if err != nil {
			b.server.Close()
			b.closeSessions()
		}
	}()
	if cfg.SessionFile != "" {
		if b.hook.sessions, err = openSessions(cfg.SessionFile, b.server, log); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		if b.hook.stored, err = b.hook.sessions.load(caps.MaximumSessionExpiryInterval); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		b.hook.dropSquatted()
		for _, m := range b.hook.stored.retained {
			pk := m.ToPacket()
			pk.Expiry = m.Expiry
			b.hook.retained.RetainMessage(pk)
		}
	}
	if err := b.server.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}

	b.internal, err = b.addListener(listeners.NewTCP(listeners.Config{ID: listenerInternal, Address: "127.0.0.1:0"}))
	if err != nil {
		return nil, fmt.Errorf("broker: internal listener: %w", err)
	}
	if cfg.MQTTAddr != "" {
		b.tcp, err = b.addListener(listeners.NewTCP(listeners.Config{ID: listenerTCP, Address: cfg.MQTTAddr}))
		if err != nil {
			return nil, fmt.Errorf("broker: listen mqtt.addr %s: %w", cfg.MQTTAddr, err)
		}
	}
	if cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker: mqtt.tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		b.tlsl, err = b.addListener(listeners.NewTCP(listeners.Config{ID: listenerTLS, Address: cfg.TLSAddr, TLSConfig: tc}))
		if err != nil {
			return nil, fmt.Errorf("broker: listen mqtt.tls.addr %s: %w", cfg.TLSAddr, err)
		}
	}
	b.ws = newWSListener(listenerWS, cfg.Origins, int64(packetLimit(cfg.MaxMessageBytes)), log, b.refusals)
	if _, err := b.addListener(b.ws); err != nil {
		return nil, fmt.Errorf("broker: websocket listener: %w", err)
	}
	return b, nil
}

// packetLimit is the largest MQTT packet accepted: a payload of the
// configured size, plus room for the topic and properties.
func packetLimit(maxPayload int) int { return maxPayload + 1024 }

func (b *Broker) addListener(l listeners.Listener) (listeners.Listener, error) {
	// A client's backlog may hold what may be in flight to it (a resumed
	// session resends all of it at once), and some QoS 0 traffic.
	backlog := packetLimit(b.cfg.MaxMessageBytes) * (b.cfg.MaxInflight + 2048)
	q := &quietListener{Listener: l, server: b.server, log: b.log, ready: b.ready, timeout: b.cfg.ConnectTimeout, writeTimeout: b.cfg.WriteTimeout, maxBacklog: backlog,
		stuck: func() { b.Stats.StuckClosed.Add(1) }}
	if err := b.server.AddListener(q); err != nil {
		return nil, err
	}
	return l, nil
}

// Start serves every listener and publishes every configured user as
// offline. It returns at once.
func (b *Broker) Start() error {
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.restoreDeliveries()
	b.hook.stored = storedState{}
	b.hook.router.subs.changed() // the stored subscriptions are loaded
	close(b.ready)
	go b.hook.router.run(b.done, b.cfg.WriteTimeout)
	b.hook.presence.publishAllOffline()
	b.started.Store(true)
	return nil
}

// Ready reports whether the broker is serving.
func (b *Broker) Ready() bool { return b.started.Load() }

// Close disconnects every client and stops the listeners. It is safe to
// call more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.started.Store(false)
		close(b.done)
		if s := b.hook.sessions; s != nil {
			s.Drain()
		}
		b.server.Close()
		b.hook.router.storeLazy()
		b.closeSessions()
		b.refusals.close()
	})
	return nil
}

// stamp is now on the monotonic clock, for measuring deliveries; 0 when
// they are not measured.
func (b *Broker) stamp() int64 {
	if b.cfg.DeliveryLatency == nil {
		return 0
	}
	return int64(time.Since(b.epoch)) + 1
}

// Refused returns how many times the broker refused something for reason r.
func (b *Broker) Refused(r Reason) int64 { return b.refusals.count(r) }

func (b *Broker) closeSessions() {
	if s := b.hook.sessions; s != nil {
		if err := s.Close(); err != nil {
			b.log.Error("close session store", "error", err)
		}
	}
}

// SessionWritesPending returns how many changes to persistent sessions
// wait to be committed to the session file.
func (b *Broker) SessionWritesPending() int {
	if s := b.hook.sessions; s != nil {
		return s.Pending()
	}
	return 0
}

// MQTTAddr is the bound address of the MQTT over TCP listener, or "".
func (b *Broker) MQTTAddr() string { return addrOf(b.tcp) }

// TLSAddr is the bound address of the MQTT over TLS listener, or "".
func (b *Broker) TLSAddr() string { return addrOf(b.tlsl) }

func addrOf(l listeners.Listener) string {
	if l == nil {
		return ""
	}
	return l.Address()
}

// WebSocketHandler serves MQTT over WebSocket; mount it at /mqtt.
func (b *Broker) WebSocketHandler() http.Handler { return b.ws }

// BridgeEndpoint returns the URL of the private loopback listener and the
// credentials of the bridge identity, which only that listener accepts.
// The secret is made anew at every start.
func (b *Broker) BridgeEndpoint() (url, username string, password []byte) {
	return "mqtt://" + b.internal.Address(), hearth.BridgeUser, b.bridgeSecret
}

// Publish publishes a chat message or typing event on behalf of user, as
// the HTTP API does: the same access rules, validation and archive
// backpressure as an MQTT publish, and the publish rate per user (as for
// one connection), with the same errors (ErrNotAllowed, ErrRateLimited,
// ErrBusy, or one wrapping hearth.ErrBadPayload or ErrTooLarge).
func (b *Broker) Publish(user, topic string, payload []byte) error {
	if !b.policy.CanPublish(user, topic) {
		b.refusals.refuse(NotAuthorized, "user", user, "topic", topic, "via", "http")
		return ErrNotAllowed
	}
	if !b.hook.allowUser(user) {
		b.refusals.refuse(RateLimited, "user", user, "via", "http")
		return ErrRateLimited
	}
	kind, err := b.hook.validate(topic, payload, false)
	if err != nil {
		b.refusals.refuse(InvalidPublish, "user", user, "topic", topic, "via", "http", "error", err)
		return err
	}
	if forArchive(kind) && !b.hook.archive.wait(archiveMaxWait, nil) {
		b.refusals.refuse(ArchiveBusy, "user", user, "via", "http")
		return ErrBusy
	}
	if err := b.server.Publish(topic, payload, false, 1); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// SetLimits applies new limits from now on. A connection takes a new
// publish rate at its next publish; the connection limits and keep alive
// apply to new connections; the queue bounds to the next message queued.
func (b *Broker) SetLimits(l Limits) {
	old := b.limits.Swap(l.withDefaults())
	if old.PublishRate != l.PublishRate || old.PublishBurst != l.PublishBurst {
		b.hook.userLims.Clear() // the HTTP publishers' buckets start again at the new rate
	}
}

// Reloaded brings the broker in line with users and a policy that have
// just been replaced (hearth.Policy.Replace, hearth.Authenticator.SetUsers):
// every connection of the users in revoked (removed, or their password
// changed) is closed (MQTT 5: DISCONNECT 0x87 not authorized), what waits
// in any session's queue that its user may no longer receive is dropped,
// and presence is published for users added and cleared for those
// removed. It returns how many connections it closed and how many queued
// messages it dropped.
func (b *Broker) Reloaded(revoked, added, removed []string) (closed, dropped int) {
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Closed() && !cl.Net.Inline && cl.Net.Listener != listenerInternal && slices.Contains(revoked, userOf(cl)) {
			b.log.Info("mqtt connection closed: credentials changed", "user", userOf(cl), "client", cl.ID)
			_ = b.disconnect(cl, packets.ErrNotAuthorized)
			closed++
		}
	}
	dropped = b.hook.router.dropUnreadable()
	b.hook.presence.reloaded(added, removed)
	return closed, dropped
}

// CloseDevice closes every connection that logged in with a token of
// device login id (MQTT 5: DISCONNECT 0x87 not authorized), and returns
// how many. Call it once the device's tokens are refused: a connection
// that got past its CONNECT just before is closed as soon as its session
// is established.
func (b *Broker) CloseDevice(id string) (closed int) {
	b.hook.revoked.Store(id, true)
	for _, cl := range b.server.Clients.GetAll() {
		c := connOf(cl)
		if cl.Closed() || c == nil {
			continue
		}
		if dev := c.device.Load(); dev != nil && *dev == id {
			b.log.Info("mqtt connection closed: its device login was revoked", "user", userOf(cl), "client", cl.ID)
			_ = b.disconnect(cl, packets.ErrNotAuthorized)
			closed++
		}
	}
	return closed
}

// Errors of Publish, each of the hearth error kind of its name
// (errors.Is(ErrBusy, hearth.ErrBusy); hearth.HTTPStatus maps them).
var (
	ErrNotAllowed  = hearth.KindError(hearth.ErrNotAllowed, "not allowed")
	ErrTooLarge    = hearth.KindError(hearth.ErrTooLarge, "message too large")
	ErrBusy        = hearth.KindError(hearth.ErrBusy, "the archive is behind: try again shortly")
	ErrRateLimited = hearth.KindError(hearth.ErrRateLimited, "too many messages: slow down")
)

// quietListener logs refused and failed connections at debug level (mochi
// logs each one as a warning, which lets anyone flood the log), and closes
// connections that do not send their CONNECT in time.
//
// Closing it disconnects its clients without mochi's closeListenerClients,
// which can deadlock: it takes the client list's read lock twice
// (Clients.GetByListener calls Len), and a connection ending meanwhile
// waits for the write lock between the two, so neither gets it and
// Close hangs.
type quietListener struct {
	listeners.Listener
	server       *mqtt.Server
	log          *slog.Logger
	ready        <-chan struct{}
	timeout      time.Duration // for the CONNECT
	writeTimeout time.Duration
	maxBacklog   int
	stuck        func()
}

func (q *quietListener) Serve(establish listeners.EstablishFn) {
	q.Listener.Serve(func(id string, c net.Conn) error {
		// mochi serves as soon as its listeners run; hearth puts the
		// stored sessions' queues back first.
		select {
		case <-q.ready:
		case <-time.After(q.timeout):
			c.Close()
			return nil
		}
		// mochi waits for the CONNECT packet without a deadline, so a socket
		// that never speaks would be held forever; after the CONNECT, mochi
		// sets its own deadline from the keepalive.
		_ = c.SetDeadline(time.Now().Add(q.timeout))
		cc := newClientConn(c, q.writeTimeout, q.maxBacklog, q.stuck)
		err := establish(id, cc)
		if err != nil {
			q.log.Debug("mqtt connection ended", "listener", id, "remote", c.RemoteAddr().String(), "error", err)
		}
		// The last packets (a refusing CONNACK, a DISCONNECT) are written
		// out before the listener (the WebSocket one) closes the socket.
		cc.Close()
		cc.wait()
		return nil
	})
}

func (q *quietListener) Close(listeners.CloseFn) {
	q.Listener.Close(func(id string) {
		for _, cl := range q.server.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = disconnect(q.server, cl, packets.ErrServerShuttingDown)
			}
		}
	})
}

// codeOf maps a validation error to the MQTT 5 reason code sent back.
func codeOf(err error) packets.Code {
	switch {
	case errors.Is(err, ErrTooLarge):
		return packets.ErrQuotaExceeded // 0x95 is not a PUBACK reason code
	case errors.Is(err, errRetained), errors.Is(err, errFocusRetain):
		return packets.ErrImplementationSpecificError // neither is 0x9A
	case errors.Is(err, ErrNotAllowed):
		return packets.ErrNotAuthorized
	}
	return packets.ErrPayloadFormatInvalid
}

// Info returns a snapshot of mochi's counters.
func (b *Broker) Info() *system.Info { return b.server.Info.Clone() }

// Inflight returns how many QoS 1 and 2 messages are in flight to
// clients, and how many wait in their queues.
func (b *Broker) Inflight() (inflight, queued int64) {
	return b.hook.router.inflight.Load(), b.hook.router.queued.Load()
}

// disconnect ends a client's connection with code: an MQTT 5 client gets
// a DISCONNECT first.
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) error {
	return disconnect(b.server, cl, code)
}

func disconnect(s *mqtt.Server, cl *mqtt.Client, code packets.Code) error {
	if cl.Properties.ProtocolVersion == 5 {
		return s.DisconnectClient(cl, code)
	}
	cl.Stop(code) // 3.1.1 has no DISCONNECT from the server
	return nil
}

// restoreDeliveries makes a session for every client mochi restored, and
// gives them their queues back.
func (b *Broker) restoreDeliveries() {
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Net.Inline {
			s := b.hook.router.get(cl.ID, userOf(cl))
			s.mu.Lock()
			s.persistent = true
			s.mu.Unlock()
		}
	}
	for _, m := range b.hook.stored.deliveries {
		cl, ok := b.server.Clients.Get(m.Client)
		if !ok {
			continue
		}
		if !b.policy.CanReceiveAs(userOf(cl), cl.ID, m.TopicName) {
			b.hook.sessions.delivered(m.Client, m.Seq) // the rules changed since it was queued
			continue
		}
		pk := m.ToPacket()
		pk.Expiry = m.Expiry
		b.hook.router.get(m.Client, userOf(cl)).restore(&delivery{msg: &pk, seq: m.Seq, state: m.State, stored: true,
			id: m.PacketID, qos: pk.FixedHeader.Qos, retain: pk.FixedHeader.Retain, subIDs: pk.Properties.SubscriptionIdentifier})
	}
}
