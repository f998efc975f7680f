package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"
)

// sessions keeps the persistent sessions (MQTT 5 with a session expiry,
// MQTT 3.1.1 without clean session) in a bbolt file of their own: the
// client, its subscriptions, the messages queued and in flight to it
// (hearth's deliveries, with their packet ids, state and order), the
// client's own QoS 2 publishes that await their PUBREL, and the retained
// messages. mochi reads clients, subscriptions and the client's QoS 2
// state back at start (its Stored* hooks); hearth the rest.
//
// mochi's own bolt hook is not used: it stores no packet id, so a restored
// queue comes back as one message with id 0 and the client can never
// resume, and it deletes a resumed session's queue on every takeover.
//
// Writes go through one queue, committed by one goroutine in batches, so
// a burst costs one fsync per batch and not one per message. Each record
// is written as the broker holds it when its event is queued (read under
// mu, so the last write queued for a record is the newest state). A
// record is committed a few milliseconds after the event; Pending says
// how many writes wait. A crash loses at most the writes not yet
// committed.
type sessions struct {
	db     *bolt.DB
	server *mqtt.Server
	log    *slog.Logger

	mu        sync.Mutex
	cond      *sync.Cond // on mu: wakes the writer, and writers held by a full queue
	ops       []sessionOp
	pending   map[string]pendingWrite // the delivery records in ops, by key
	queued    uint64                  // writes queued so far
	committed uint64                  // writes committed so far
	owner     map[string]*mqtt.Client // the connection that established each stored session last
	draining  bool                    // the broker is closing: writes no longer wait for room
	closing   bool
	done      chan struct{}
}

// maxPendingWrites bounds the queue: past it, events wait for the disk.
const maxPendingWrites = 1 << 16

var (
	bucketClients  = []byte("clients")
	bucketSubs     = []byte("subscriptions")
	bucketInflight = []byte("inflight")
	bucketRetained = []byte("retained")
	bucketDeliver  = []byte("deliveries")
	sessionBuckets = [][]byte{bucketClients, bucketSubs, bucketInflight, bucketRetained, bucketDeliver}
	clientBuckets  = [][]byte{bucketSubs, bucketInflight, bucketDeliver} // keyed by client first
)

type sessionOp struct {
	bucket []byte
	key    []byte
	val    any  // a record to encode as JSON; nil deletes key
	client bool // delete the client under key with all its records
}

// clientRecord is a stored session.
type clientRecord struct {
	storage.Client
	Disconnected int64 `json:"disconnected,omitempty"` // unix seconds; 0 while connected
}

// openSessions opens (or creates) the session file at path.
func openSessions(path string, server *mqtt.Server, log *slog.Logger) (*sessions, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open sessions %s: locked by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open sessions %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range sessionBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return dropStrays(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sessions %s: %w", path, err)
	}
	s := &sessions{db: db, server: server, log: log, owner: map[string]*mqtt.Client{}, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s, nil
}

// clientKey is the key prefix of everything stored for a client id.
func clientKey(id string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(id))), id...)
}

func subKey(id, filter string) []byte { return append(clientKey(id), filter...) }

func inflightKey(id string, packetID uint16) []byte {
	return binary.BigEndian.AppendUint16(clientKey(id), packetID)
}

func deliveryKey(id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(clientKey(id), seq)
}

// deliveryRecord is a message queued or in flight to a session.
type deliveryRecord struct {
	storage.Message
	Seq    uint64 `json:"seq"`
	State  byte   `json:"state,omitempty"`  // see delivery
	Expiry int64  `json:"expiry,omitempty"` // unix seconds
}

// queuedDelivery is a delivery record still in the write queue: the
// delivery as it was when it was stored. It is encoded when it is
// written, so one that is replaced or deleted first costs no encoding.
type queuedDelivery struct {
	client string
	d      delivery
}

func (q *queuedDelivery) record() deliveryRecord {
	return deliveryRecord{Message: messageOf(q.d.packet(), q.client), Seq: q.d.seq, State: q.d.state, Expiry: q.d.msg.Expiry}
}

// clientOf returns the client id a subscription or inflight key starts with.
func clientOf(key []byte) (string, bool) {
	n, w := binary.Uvarint(key)
	if w <= 0 || uint64(len(key)-w) < n {
		return "", false
	}
	return string(key[w : w+int(n)]), true
}

// dropStrays deletes subscriptions and queued messages whose client is
// not stored: a crash can come between their writes and the client's.
func dropStrays(tx *bolt.Tx) error {
	clients := tx.Bucket(bucketClients)
	for _, name := range clientBuckets {
		b := tx.Bucket(name)
		var stray [][]byte
		err := b.ForEach(func(k, _ []byte) error {
			id, ok := clientOf(k)
			if !ok || clients.Get(clientKey(id)) == nil {
				stray = append(stray, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stray {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// current reports whether cl holds its session now. A connection that has
// been taken over no longer does: its successor has the session (mochi
// still reports the old one's queue being cleared).
func (s *sessions) current(cl *mqtt.Client) bool {
	if cl.IsTakenOver() {
		return false
	}
	cur, ok := s.server.Clients.Get(cl.ID)
	return ok && cur == cl
}

// enqueue adds writes to the queue; mu is held.
func (s *sessions) enqueue(ops ...sessionOp) {
	for len(s.ops) >= maxPendingWrites && !s.closing && !s.draining {
		s.cond.Wait()
	}
	if s.closing {
		return
	}
	for _, op := range ops {
		if op.client {
			// Records queued before a client's delete stay before it: a
			// later record of that client must not replace them in place.
			for k := range s.pending {
				if strings.HasPrefix(k, string(op.key)) {
					delete(s.pending, k)
				}
			}
		}
	}
	s.ops = append(s.ops, ops...)
	s.queued += uint64(len(ops))
	s.cond.Broadcast()
}

// established stores a persistent session as connected, and forgets any
// stored session under the id of a connection that is not persistent.
func (s *sessions) established(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !persistent(cl) {
		delete(s.owner, cl.ID)
		s.enqueue(sessionOp{key: clientKey(cl.ID), client: true})
		return
	}
	s.owner[cl.ID] = cl
	s.enqueue(sessionOp{bucket: bucketClients, key: clientKey(cl.ID), val: recordOf(cl, 0)})
}

// disconnected stores when a persistent session lost its connection, or
// forgets a session that ends with it. Only the connection that holds the
// session counts: not one taken over (mochi marks it so only after it is
// disconnected, so the owner decides), nor a restored session (no
// connection).
func (s *sessions) disconnected(cl *mqtt.Client, expire bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner[cl.ID] != cl {
		return
	}
	switch {
	case expire:
		delete(s.owner, cl.ID)
		s.enqueue(sessionOp{key: clientKey(cl.ID), client: true})
	case persistent(cl):
		s.enqueue(sessionOp{bucket: bucketClients, key: clientKey(cl.ID), val: recordOf(cl, time.Now().Unix())})
	}
}

// expired forgets a session that mochi expired.
func (s *sessions) expired(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owner, id)
	s.enqueue(sessionOp{key: clientKey(id), client: true})
}

// subscriptions stores or deletes cl's subscriptions to filters, as cl
// holds them now.
func (s *sessions) subscriptions(cl *mqtt.Client, filters packets.Subscriptions) {
	if !persistent(cl) {
		return // before the lock: most deliveries are to sessions that end with their connection
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(cl) {
		return
	}
	for _, f := range filters {
		op := sessionOp{bucket: bucketSubs, key: subKey(cl.ID, f.Filter)}
		if sub, ok := cl.State.Subscriptions.Get(f.Filter); ok {
			op.val = storage.Subscription{
				Client:            cl.ID,
				Filter:            sub.Filter,
				Identifier:        sub.Identifier,
				RetainHandling:    sub.RetainHandling,
				Qos:               sub.Qos,
				RetainAsPublished: sub.RetainAsPublished,
				NoLocal:           sub.NoLocal,
			}
		}
		s.enqueue(op)
	}
}

// inflight stores or deletes mochi's record of a QoS 2 publish from cl
// under packet id (a PUBREC sent, its PUBREL awaited), as cl holds it now,
// so that a restart does not deliver the message twice.
func (s *sessions) inflight(cl *mqtt.Client, id uint16) {
	if !persistent(cl) {
		return // before the lock: most deliveries are to sessions that end with their connection
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(cl) {
		return
	}
	op := sessionOp{bucket: bucketInflight, key: inflightKey(cl.ID, id)}
	if pk, ok := cl.State.Inflight.Get(id); ok && pk.FixedHeader.Type == packets.Pubrec {
		op.val = messageOf(pk, cl.ID)
	}
	s.enqueue(op)
}

// delivery stores a message queued or in flight to the session id, as d
// is now. The session's lock is held, so writes of one session are queued
// in order.
//
// A record not yet committed is replaced in the queue, and a delivery that
// ends before its record is committed (the bridge's, in a burst) takes
// its write out of the queue, or turns it into a delete if an earlier
// version may be on disk.
func (s *sessions) delivery(id string, d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := deliveryKey(id, d.seq)
	rec := &queuedDelivery{client: id, d: *d}
	if p, ok := s.pending[string(key)]; ok {
		s.ops[p.i].val = rec
		return
	}
	fresh := !d.stored
	d.stored = true
	s.enqueue(sessionOp{bucket: bucketDeliver, key: key, val: rec})
	if s.closing {
		return // not queued
	}
	if s.pending == nil {
		s.pending = map[string]pendingWrite{}
	}
	s.pending[string(key)] = pendingWrite{len(s.ops) - 1, fresh}
}

// pendingWrite is a delivery record's place in the write queue. fresh:
// no earlier version of the record was queued before, so none is on disk.
type pendingWrite struct {
	i     int
	fresh bool
}

// delivered deletes the record of a message the session id no longer holds.
func (s *sessions) delivered(id string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := deliveryKey(id, seq)
	if p, ok := s.pending[string(key)]; ok {
		if p.fresh {
			s.ops[p.i] = sessionOp{} // nothing to write
		} else {
			s.ops[p.i].val = nil // an earlier version may be on disk: delete it
		}
		delete(s.pending, string(key))
		return
	}
	s.enqueue(sessionOp{bucket: bucketDeliver, key: key})
}

// retained stores the retained message of topic, or deletes it (ok false).
func (s *sessions) retained(topic string, pk packets.Packet, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op := sessionOp{bucket: bucketRetained, key: []byte(topic)}
	if ok {
		op.val = deliveryRecord{Message: messageOf(pk, ""), Expiry: pk.Expiry}
	}
	s.enqueue(op)
}

func recordOf(cl *mqtt.Client, disconnected int64) clientRecord {
	p := cl.Properties.Props
	return clientRecord{
		Client: storage.Client{
			ID:              cl.ID,
			Remote:          cl.Net.Remote,
			Listener:        cl.Net.Listener,
			Username:        cl.Properties.Username,
			Clean:           cl.Properties.Clean,
			ProtocolVersion: cl.Properties.ProtocolVersion,
			Properties: storage.ClientProperties{
				SessionExpiryInterval:     p.SessionExpiryInterval,
				SessionExpiryIntervalFlag: p.SessionExpiryIntervalFlag,
				ReceiveMaximum:            p.ReceiveMaximum,
				TopicAliasMaximum:         p.TopicAliasMaximum,
				MaximumPacketSize:         p.MaximumPacketSize,
				RequestProblemInfo:        p.RequestProblemInfo,
				RequestProblemInfoFlag:    p.RequestProblemInfoFlag,
				RequestResponseInfo:       p.RequestResponseInfo,
				User:                      p.User,
			},
			// The will is not kept: it belongs to a connection, and a
			// restart ends none that a will would report.
		},
		Disconnected: disconnected,
	}
}

func messageOf(pk packets.Packet, client string) storage.Message {
	return storage.Message{
		Client:      client,
		Origin:      pk.Origin,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		FixedHeader: pk.FixedHeader,
		PacketID:    pk.PacketID,
		Created:     pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat:          pk.Properties.PayloadFormat,
			PayloadFormatFlag:      pk.Properties.PayloadFormatFlag,
			MessageExpiryInterval:  pk.Properties.MessageExpiryInterval,
			ContentType:            pk.Properties.ContentType,
			ResponseTopic:          pk.Properties.ResponseTopic,
			CorrelationData:        pk.Properties.CorrelationData,
			SubscriptionIdentifier: pk.Properties.SubscriptionIdentifier,
			User:                   pk.Properties.User,
		},
	}
}

// run commits the queue in batches until Close.
func (s *sessions) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.ops) == 0 && !s.closing {
			s.cond.Wait()
		}
		if len(s.ops) == 0 {
			s.mu.Unlock()
			return
		}
		ops, upto := s.ops, s.queued
		s.ops = nil
		clear(s.pending)
		s.mu.Unlock()

		for slices.ContainsFunc(ops, func(op sessionOp) bool { return op.client || op.bucket != nil }) {
			err := s.db.Update(func(tx *bolt.Tx) error { return s.apply(tx, ops) })
			if err == nil {
				break
			}
			// The disk is full or failing: keep the writes and try again;
			// once the queue is full, the broker waits with it. Closing,
			// they are given up.
			s.log.Error("session store: write failed; retrying", "writes", len(ops), "error", err)
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				break
			}
			time.Sleep(time.Second)
		}

		s.mu.Lock()
		s.committed = upto
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// apply writes ops in tx. A record bbolt refuses (a key or value too
// large: a subscription filter longer than 32 KiB, say) is left out, with
// a warning, rather than failing the batch for good.
func (s *sessions) apply(tx *bolt.Tx, ops []sessionOp) error {
	for _, op := range ops {
		if op.client {
			if err := deleteClient(tx, op.key); err != nil {
				return err
			}
			continue
		}
		if op.bucket == nil {
			continue // taken out of the queue
		}
		b := tx.Bucket(op.bucket)
		var err error
		val := op.val
		if q, ok := val.(*queuedDelivery); ok {
			val = q.record()
		}
		if val == nil {
			err = b.Delete(op.key)
		} else {
			var v []byte
			if v, err = json.Marshal(val); err == nil {
				err = b.Put(op.key, v)
			}
		}
		var je *json.UnsupportedValueError
		if errors.Is(err, bolt.ErrKeyTooLarge) || errors.Is(err, bolt.ErrValueTooLarge) || errors.Is(err, bolt.ErrKeyRequired) || errors.As(err, &je) {
			s.log.Warn("session store: record left out", "bucket", string(op.bucket), "error", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteClient deletes a client and everything stored under its key.
func deleteClient(tx *bolt.Tx, key []byte) error {
	if err := tx.Bucket(bucketClients).Delete(key); err != nil {
		return err
	}
	for _, name := range clientBuckets {
		b := tx.Bucket(name)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(key); k != nil && bytes.HasPrefix(k, key); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pending returns how many writes wait to be committed.
func (s *sessions) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.queued - s.committed)
}

// Drain lets writes queue without waiting for room while the broker
// closes, so that a failing disk cannot hold up its shutdown.
func (s *sessions) Drain() {
	s.mu.Lock()
	s.draining = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Close commits what is queued and closes the file.
func (s *sessions) Close() error {
	s.mu.Lock()
	s.closing = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}

// load reads the stored sessions for mochi: clients whose session has not
// expired, and the subscriptions and queued messages of those.
func (s *sessions) load(maxExpiry uint32) (st storedState, err error) {
	now := time.Now().Unix()
	var gone [][]byte
	err = s.db.View(func(tx *bolt.Tx) error {
		live := map[string]bool{}
		err := eachRecord(tx.Bucket(bucketClients), "client", func(r clientRecord) {
			expiry := maxExpiry
			if r.ProtocolVersion == 5 && r.Properties.SessionExpiryIntervalFlag {
				expiry = min(r.Properties.SessionExpiryInterval, maxExpiry)
			}
			if r.Disconnected > 0 && r.Disconnected+int64(expiry) < now {
				gone = append(gone, clientKey(r.ID))
				return
			}
			live[r.ID] = true
			st.clients = append(st.clients, r.Client)
		})
		if err != nil {
			return err
		}
		err = eachRecord(tx.Bucket(bucketSubs), "subscription", func(sub storage.Subscription) {
			if live[sub.Client] {
				st.subs = append(st.subs, sub)
			}
		})
		if err != nil {
			return err
		}
		err = eachRecord(tx.Bucket(bucketInflight), "qos 2 publish", func(m storage.Message) {
			if live[m.Client] && m.FixedHeader.Type == packets.Pubrec {
				st.inflight = append(st.inflight, m)
			}
		})
		if err != nil {
			return err
		}
		err = eachRecord(tx.Bucket(bucketDeliver), "queued message", func(m deliveryRecord) {
			if live[m.Client] {
				st.deliveries = append(st.deliveries, m) // in key order: by client, then seq
			}
		})
		if err != nil {
			return err
		}
		return eachRecord(tx.Bucket(bucketRetained), "retained message", func(m deliveryRecord) {
			st.retained = append(st.retained, m)
		})
	})
	if err != nil {
		return storedState{}, fmt.Errorf("read sessions: %w", err)
	}
	if len(gone) > 0 {
		s.mu.Lock()
		for _, k := range gone {
			s.enqueue(sessionOp{key: k, client: true})
		}
		s.mu.Unlock()
	}
	return st, nil
}

// eachRecord decodes every record of b and passes it to visit.
func eachRecord[T any](b *bolt.Bucket, what string, visit func(T)) error {
	return b.ForEach(func(k, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%s %q: %w", what, k, err)
		}
		visit(r)
		return nil
	})
}
