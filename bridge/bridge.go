// Package bridge archives every chat message and event (reaction, edit,
// delete) into history. It holds a persistent MQTT 5 session (paho
// autopaho) subscribed at QoS 1 to the messages and events of every
// room, commits them to the archive in batches, acknowledges each one
// only after its commit, and publishes a receipt to the sender, for
// events as for messages.
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/hearth-home/hearth"
)

// Archive is where the bridge commits messages: history.Store.
type Archive interface {
	Append(msgs []hearth.Message) ([]hearth.Appended, error)
}

// Config says where the broker is and how to batch.
type Config struct {
	URL      string // mqtt://host:port (ws:// and tls:// work too)
	Username string
	Password []byte
	ClientID string
	Rooms    []string

	SessionExpiry time.Duration // how long the broker keeps the session while the bridge is away; default 24h
	BatchMax      int           // most messages in one commit; default 256
	BatchWait     time.Duration // longest wait for more messages before a commit; default 2ms
	// MaxReceiptBytes is the largest receipt payload the broker takes
	// (hearth's mqtt.max_message_bytes); default 16384. A longer list of
	// items is split over several receipts.
	MaxReceiptBytes int

	// CommitTime, if set, observes the seconds each archive commit took
	// (the one that succeeded, when a commit is retried).
	CommitTime Observer

	// Archived, if set, is called after each commit, once its messages
	// are acknowledged, with those newly archived (not duplicates), their
	// Seq and At set. It runs on the archive's goroutine: it must not
	// block (push notifications queue them).
	Archived func([]hearth.Message)
}

// Observer takes one measurement (a prometheus.Histogram is one).
type Observer interface{ Observe(float64) }

// receiptWorkers publish receipts in parallel, each waiting for its PUBACK.
const receiptWorkers = 8

// Stats counts the bridge's work. Fields are updated atomically.
type Stats struct {
	Archived   atomic.Int64 // messages committed
	Duplicates atomic.Int64 // messages already archived (receipt sent again)
	Rejected   atomic.Int64 // deliveries that were not valid messages (acked and dropped)
	Commits    atomic.Int64 // archive transactions
	Receipts   atomic.Int64 // receipts published
	ReceiptErr atomic.Int64 // receipts that could not be published
}

// Bridge archives messages. Create it with New and call Run.
type Bridge struct {
	cfg     Config
	archive Archive
	log     *slog.Logger

	items      chan item
	receipts   chan receiptJob
	stop       chan struct{} // closed when Run ends, to release paho's delivery goroutine
	subscribed atomic.Bool

	mu    sync.Mutex
	main  *autopaho.ConnectionManager
	rooms []string // what it archives: cfg.Rooms, then SetRooms

	Stats Stats
}

type item struct {
	msg    hearth.Message
	pub    *paho.Publish
	client *paho.Client
}

type receiptJob struct {
	to      string
	payload []byte
}

// New returns a bridge; nothing connects until Run.
func New(cfg Config, archive Archive, log *slog.Logger) (*Bridge, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("bridge: client id is required")
	}
	if len(cfg.Rooms) == 0 {
		return nil, errors.New("bridge: no rooms")
	}
	if _, err := url.Parse(cfg.URL); err != nil {
		return nil, fmt.Errorf("bridge: broker url: %w", err)
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = 24 * time.Hour
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 256
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 2 * time.Millisecond
	}
	if cfg.MaxReceiptBytes <= 0 {
		cfg.MaxReceiptBytes = 16384
	}
	return &Bridge{
		cfg:      cfg,
		rooms:    slices.Clone(cfg.Rooms),
		archive:  archive,
		log:      log,
		items:    make(chan item, 4*cfg.BatchMax),
		receipts: make(chan receiptJob, 4096),
		stop:     make(chan struct{}),
	}, nil
}

// Ready reports whether the bridge is connected and subscribed to every
// room.
func (b *Bridge) Ready() bool { return b.subscribed.Load() }

// Run connects and archives until ctx is done. It returns after the last
// commit has finished, so the archive can be closed then. Messages that
// were received but not committed are not acknowledged; the broker
// delivers them again to the next session.
func (b *Bridge) Run(ctx context.Context) error {
	u, err := url.Parse(b.cfg.URL)
	if err != nil {
		return fmt.Errorf("bridge: broker url: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	rc, err := autopaho.NewConnection(ctx, b.clientConfig(u, hearth.BridgeReceiptsClientID(b.cfg.ClientID), false))
	if err != nil {
		return fmt.Errorf("bridge: receipts connection: %w", err)
	}
	mc, err := autopaho.NewConnection(ctx, b.clientConfig(u, b.cfg.ClientID, true))
	if err != nil {
		return fmt.Errorf("bridge: connection: %w", err)
	}
	b.mu.Lock()
	b.main = mc
	b.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.archiveLoop(ctx) }()
	// Receipts wait for their PUBACK one by one; enough of them in
	// parallel keep up with the archive.
	for range receiptWorkers {
		wg.Add(1)
		go func() { defer wg.Done(); b.receiptLoop(ctx, rc) }()
	}
	<-ctx.Done()
	wg.Wait()
	close(b.stop)
	b.subscribed.Store(false)
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer dcancel()
	_ = mc.Disconnect(dctx)
	_ = rc.Disconnect(dctx)
	<-mc.Done()
	<-rc.Done()
	return nil
}

// TerminateConnectionForTest drops the archiving connection, as a network
// failure would.
func (b *Bridge) TerminateConnectionForTest() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.main != nil {
		b.main.TerminateConnectionForTest()
	}
}

// clientConfig builds an autopaho config. The archiving connection keeps
// a session (clean start false, session expiry) and acknowledges by hand;
// the receipts connection is separate so that its packet ids never meet
// the deliveries' (mochi keeps both in one map, issue #545).
func (b *Bridge) clientConfig(u *url.URL, clientID string, archiving bool) autopaho.ClientConfig {
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: !archiving,
		ConnectTimeout:                5 * time.Second,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(50*time.Millisecond, 5*time.Second, time.Second, 2),
		ConnectUsername:               b.cfg.Username,
		ConnectPassword:               b.cfg.Password,
		OnConnectError: func(err error) {
			b.log.Warn("bridge connect", "client", clientID, "error", err)
		},
		ClientConfig: paho.ClientConfig{ClientID: clientID},
	}
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp", "":
		cfg.AttemptConnection = func(ctx context.Context, cc autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			return dialTCP(ctx, u.Host, cc.ConnectTimeout)
		}
	}
	if archiving {
		cfg.SessionExpiryInterval = uint32(b.cfg.SessionExpiry / time.Second)
		cfg.ClientConfig.EnableManualAcknowledgment = true
		cfg.ClientConfig.SendAcksInterval = 5 * time.Millisecond
		cfg.ClientConfig.OnPublishReceived = []func(paho.PublishReceived) (bool, error){b.received}
		cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go b.subscribe(cm)
		}
		cfg.OnConnectionDown = func() bool {
			b.subscribed.Store(false)
			b.log.Info("bridge connection down")
			return true
		}
	}
	return cfg
}

// subscribe subscribes to every room, on every connection-up. A SUBACK
// 0x91 (packet id in use) is mochi sharing client and server packet ids:
// it is retried, like any other failure, until the connection goes down.
func (b *Bridge) subscribe(cm *autopaho.ConnectionManager) {
	delay := 20 * time.Millisecond
	for {
		rooms := b.Rooms()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sa, err := cm.Subscribe(ctx, roomsSubscribe(rooms))
		cancel()
		if err == nil && subackOK(sa) {
			if !slices.Equal(rooms, b.Rooms()) {
				continue // SetRooms ran meanwhile, and left the subscribing to this
			}
			b.subscribed.Store(true)
			b.log.Info("bridge subscribed", "rooms", len(rooms))
			return
		}
		if errors.Is(err, autopaho.ConnectionDownError) {
			return // the next connection-up subscribes again
		}
		select {
		case <-cm.Done():
			return
		case <-time.After(delay):
		}
		b.log.Warn("bridge subscribe failed, retrying", "error", err, "reasons", reasons(sa))
		delay = min(2*delay, 2*time.Second)
	}
}

func roomsSubscribe(rooms []string) *paho.Subscribe {
	sub := &paho.Subscribe{}
	for _, r := range rooms {
		sub.Subscriptions = append(sub.Subscriptions,
			paho.SubscribeOptions{Topic: hearth.RoomMessagesFilter(r), QoS: 1},
			paho.SubscribeOptions{Topic: hearth.RoomEventsFilter(r), QoS: 1})
	}
	return sub
}

// Rooms returns the rooms the bridge archives.
func (b *Bridge) Rooms() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.rooms)
}

// SetRooms changes the rooms the bridge archives. While it is subscribed,
// it subscribes to the rooms added and waits for the SUBACK (until ctx
// ends), and unsubscribes from the rooms removed; otherwise the next
// subscription takes the new rooms. An error says the rooms added are
// not subscribed yet (the next connection subscribes to them).
func (b *Bridge) SetRooms(ctx context.Context, rooms []string) error {
	b.mu.Lock()
	var added, removed []string
	for _, r := range rooms {
		if !slices.Contains(b.rooms, r) {
			added = append(added, r)
		}
	}
	for _, r := range b.rooms {
		if !slices.Contains(rooms, r) {
			removed = append(removed, hearth.RoomMessagesFilter(r), hearth.RoomEventsFilter(r))
		}
	}
	b.rooms = slices.Clone(rooms)
	cm := b.main
	b.mu.Unlock()
	if cm == nil || !b.subscribed.Load() {
		return nil
	}
	for delay := 20 * time.Millisecond; len(added) > 0; delay = min(2*delay, time.Second) {
		sa, err := cm.Subscribe(ctx, roomsSubscribe(added))
		if err == nil && subackOK(sa) {
			break
		}
		if err == nil {
			err = fmt.Errorf("reasons %x", reasons(sa)) // 0x91 is mochi's packet ids: again
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bridge: subscribe to %v: %w", added, err)
		case <-time.After(delay):
		}
	}
	if len(removed) > 0 {
		if _, err := cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: removed}); err != nil {
			b.log.Warn("bridge unsubscribe", "topics", removed, "error", err)
		}
	}
	return nil
}

func subackOK(sa *paho.Suback) bool {
	if sa == nil {
		return false
	}
	for _, r := range sa.Reasons {
		if r >= 0x80 {
			return false
		}
	}
	return true
}

func reasons(sa *paho.Suback) []byte {
	if sa == nil {
		return nil
	}
	return sa.Reasons
}

// received turns a delivery into an archive item. It runs on paho's
// delivery goroutine; when the archive falls behind it blocks there, TCP
// holds further deliveries, and the embedded broker holds publishers while
// the bridge's unacknowledged messages pile up (broker/backpressure.go).
func (b *Bridge) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	m, err := entryOf(p.Topic, p.Payload)
	if err != nil {
		b.Stats.Rejected.Add(1)
		b.log.Warn("bridge dropped an invalid message", "topic", p.Topic, "error", err)
		_ = pr.Client.Ack(p)
		return true, nil
	}
	m.At = time.Now().UnixMilli()
	it := item{msg: m, pub: p, client: pr.Client}
	select {
	case b.items <- it:
	case <-b.stop: // not acknowledged: the broker keeps it for the next session
	}
	return true, nil
}

// entryOf makes the archive entry of a message or event publish.
func entryOf(topic string, payload []byte) (hearth.Message, error) {
	t := hearth.ParseTopic(topic)
	switch t.Kind {
	case hearth.TopicMessage:
		p, err := hearth.ParsePayload(payload)
		if err != nil {
			return hearth.Message{}, err
		}
		return hearth.Message{ID: p.ID, Room: t.Room, From: t.User, Text: p.Text, TS: p.TS, ReplyTo: p.ReplyTo, Attachments: p.Attachments}, nil
	case hearth.TopicEvent:
		e, err := hearth.ParseEvent(payload)
		if err != nil {
			return hearth.Message{}, err
		}
		target := e.Target
		return hearth.Message{Type: e.Type, ID: e.ID, Room: t.Room, From: t.User, Target: &target, Emoji: e.Emoji, Text: e.Text}, nil
	}
	return hearth.Message{}, fmt.Errorf("not a message or event topic")
}

// archiveLoop commits batches: it waits for one message, gathers what
// arrives within BatchWait (up to BatchMax), commits them in one
// transaction, then acknowledges each and queues its receipt.
func (b *Bridge) archiveLoop(ctx context.Context) {
	batch := make([]item, 0, b.cfg.BatchMax)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case it := <-b.items:
			batch = append(batch, it)
		}
		timer := time.NewTimer(b.cfg.BatchWait)
	gather:
		for len(batch) < b.cfg.BatchMax {
			select {
			case it := <-b.items:
				batch = append(batch, it)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		if !b.commit(ctx, batch) {
			return
		}
	}
}

// commit archives a batch, retrying while the archive fails (a full disk,
// say), and acknowledges only what was committed. It returns false when
// ctx ended first.
func (b *Bridge) commit(ctx context.Context, batch []item) bool {
	msgs := make([]hearth.Message, len(batch))
	for i, it := range batch {
		msgs[i] = it.msg
	}
	delay := 50 * time.Millisecond
	var res []hearth.Appended
	for {
		start := time.Now()
		var err error
		if res, err = b.archive.Append(msgs); err == nil {
			if b.cfg.CommitTime != nil {
				b.cfg.CommitTime.Observe(time.Since(start).Seconds())
			}
			break
		}
		b.log.Error("archive commit failed, retrying", "messages", len(msgs), "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	b.Stats.Commits.Add(1)
	var fresh []hearth.Message
	for i, it := range batch {
		// An ack after the connection dropped is lost; the broker then
		// delivers the message again and it is found as a duplicate.
		_ = it.client.Ack(it.pub)
		if res[i].Duplicate {
			b.Stats.Duplicates.Add(1)
		} else {
			b.Stats.Archived.Add(1)
			if b.cfg.Archived != nil {
				m := msgs[i]
				m.Seq, m.At = res[i].Seq, res[i].At
				fresh = append(fresh, m)
			}
		}
	}
	if len(fresh) > 0 {
		b.cfg.Archived(fresh)
	}
	for _, job := range receiptsOf(res, b.cfg.MaxReceiptBytes) {
		select {
		case b.receipts <- job:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// receiptsOf groups one commit's results into receipts: one for each
// sender and room, in the order of their first message, each payload at
// most limit bytes (a longer list is split).
func receiptsOf(res []hearth.Appended, limit int) []receiptJob {
	type key struct{ from, room string }
	var order []key
	groups := map[key][]hearth.ReceiptItem{}
	for _, r := range res {
		k := key{r.From, r.Room}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r.ReceiptItem)
	}
	var jobs []receiptJob
	for _, k := range order {
		items := groups[k]
		for len(items) > 0 {
			// The largest prefix that fits; one item always goes, whatever
			// its size (limit is far above one item's).
			n := len(items)
			payload := receiptPayload(k.room, items[:n])
			for n > 1 && len(payload) > limit {
				n = max(1, n*limit/len(payload)) // fewer, by the ratio
				payload = receiptPayload(k.room, items[:n])
			}
			jobs = append(jobs, receiptJob{to: k.from, payload: payload})
			items = items[n:]
		}
	}
	return jobs
}

func receiptPayload(room string, items []hearth.ReceiptItem) []byte {
	payload, _ := json.Marshal(hearth.Receipt{Room: room, Items: items})
	return payload
}

// receiptLoop publishes receipts at QoS 1 on the receipts connection. A
// receipt that cannot be published is dropped: the sender re-publishes
// the message, and its duplicate brings the receipt again.
func (b *Bridge) receiptLoop(ctx context.Context, cm *autopaho.ConnectionManager) {
	for {
		var job receiptJob
		select {
		case <-ctx.Done():
			return
		case job = <-b.receipts:
		}
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = cm.AwaitConnection(ctx); err != nil {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = cm.Publish(pctx, &paho.Publish{Topic: hearth.ReceiptsTopic(job.to), QoS: 1, Payload: job.payload})
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			b.Stats.ReceiptErr.Add(1)
			b.log.Warn("receipt not published", "to", job.to, "error", err)
			continue
		}
		b.Stats.Receipts.Add(1)
	}
}
