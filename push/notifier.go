package push

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// Store is what the notifier reads and changes of the archive:
// history.Store.
type Store interface {
	PushSubscriptions(user string) ([]history.PushSubscription, error)
	DeletePushSubscription(user, endpoint string) (bool, error)
	Muted(user, room string) (bool, error)
}

// Policy says who reads a room (hearth.Policy).
type Policy interface {
	Users() []string
	CanRead(user, room string) bool
	Title(room string) string
}

// Focus says whether some connection of user shows room now, visible
// and focused: that user needs no notification of it.
type Focus interface {
	Focused(user, room string) bool
}

// Config is what a Notifier needs.
type Config struct {
	Keys    Keys
	Subject string // the VAPID "sub": mailto:... or https://...
	Store   Store
	Policy  Policy
	Focus   Focus

	QueueSize int          // messages waiting to be notified; default 1024
	Workers   int          // notifications sent at once; default 4
	Client    *http.Client // default: the system's CA roots, 30 s timeout
}

// Stats counts push requests by their outcome; Dropped counts messages
// not notified because the queue was full. Fields are updated atomically.
type Stats struct {
	OK      atomic.Int64 // accepted by the push service
	Gone    atomic.Int64 // 404 or 410: the subscription was deleted
	Error   atomic.Int64 // any other answer, or no answer
	Dropped atomic.Int64
}

// Payload is what a notification carries (encrypted): the message's
// room and its title, sender, id and seq, and its text cut to
// MaxTextRunes characters ("📷 Photo" for a message of attachments only).
type Payload struct {
	Room  string `json:"room"`
	Title string `json:"title"`
	From  string `json:"from"`
	ID    string `json:"id"`
	Seq   uint64 `json:"seq"`
	Text  string `json:"text"`
}

// MaxTextRunes is the most characters of a message's text a notification
// carries.
const MaxTextRunes = 200

// TTL is how long a push service keeps a notification for a device that
// is offline.
const TTL = 24 * time.Hour

// Notifier sends a push for each message handed to Archived, in the
// background: to every user who may read the room, but the sender, who
// has not muted it and does not have it focused, on each of their
// subscriptions. Create it with New, then Start it; Close stops it.
type Notifier struct {
	cfg   Config
	log   *slog.Logger
	queue chan hearth.Message
	full  atomic.Bool // the queue was full: logged, not again until it has room

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	Stats Stats
}

// New returns a notifier; nothing is sent until Start.
func New(cfg Config, log *slog.Logger) *Notifier {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout: 30 * time.Second,
			// A push service answers; it does not send us elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Notifier{cfg: cfg, log: log, queue: make(chan hearth.Message, cfg.QueueSize), ctx: ctx, cancel: cancel}
}

// Start starts the senders.
func (n *Notifier) Start() {
	for range n.cfg.Workers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				select {
				case <-n.ctx.Done():
					return
				case m := <-n.queue:
					n.notify(m)
				}
			}
		}()
	}
}

// Close stops the senders, ending the requests under way; what waits in
// the queue is not sent. It is safe to call twice.
func (n *Notifier) Close() {
	n.once.Do(func() {
		n.cancel()
		n.wg.Wait()
	})
}

// Archived queues the messages just archived (not duplicates) for
// notifying. It never blocks: when the queue is full the message is
// dropped and counted, and logged once until the queue has room again.
// Events (reactions, edits, deletions) are not notified.
func (n *Notifier) Archived(msgs []hearth.Message) {
	for _, m := range msgs {
		if isEvent(m) {
			continue
		}
		select {
		case n.queue <- m:
			n.full.Store(false)
		default:
			n.Stats.Dropped.Add(1)
			if !n.full.Swap(true) {
				n.log.Warn("push queue full: notifications are dropped until it has room", "queue", n.cfg.QueueSize)
			}
		}
	}
}

// isEvent reports whether m is an event rather than a message: events are not notified.
func isEvent(m hearth.Message) bool { return m.IsEvent() }

// Recipients are the users to notify of m: every user who may read its
// room, but the sender, who has not muted the room and does not have it
// focused.
func (n *Notifier) Recipients(m hearth.Message) []string {
	var out []string
	for _, u := range n.cfg.Policy.Users() {
		if u == m.From || !n.cfg.Policy.CanRead(u, m.Room) {
			continue
		}
		muted, err := n.cfg.Store.Muted(u, m.Room)
		if err != nil {
			n.log.Warn("push: reading mutes", "user", u, "error", err)
			continue
		}
		if muted || (n.cfg.Focus != nil && n.cfg.Focus.Focused(u, m.Room)) {
			continue
		}
		out = append(out, u)
	}
	return out
}

// PayloadOf is what a notification of m carries.
func PayloadOf(m hearth.Message, title string) Payload {
	text := m.Text
	if text == "" {
		text = "📷 Photo" // only a message with attachments has no text
	} else if utf8.RuneCountInString(text) > MaxTextRunes {
		r := []rune(text)
		text = string(r[:MaxTextRunes])
	}
	return Payload{Room: m.Room, Title: title, From: m.From, ID: m.ID, Seq: m.Seq, Text: text}
}

func (n *Notifier) notify(m hearth.Message) {
	users := n.Recipients(m)
	if len(users) == 0 {
		return
	}
	title := n.cfg.Policy.Title(m.Room)
	if title == "" {
		title = m.Room
	}
	body, err := json.Marshal(PayloadOf(m, title))
	if err != nil {
		return
	}
	for _, u := range users {
		subs, err := n.cfg.Store.PushSubscriptions(u)
		if err != nil {
			n.log.Warn("push: reading subscriptions", "user", u, "error", err)
			continue
		}
		for _, s := range subs {
			if n.ctx.Err() != nil {
				return
			}
			n.send(s, body)
		}
	}
}

// send makes one push request and counts its outcome. A subscription
// the push service no longer knows (404, 410) is deleted.
func (n *Notifier) send(s history.PushSubscription, body []byte) {
	resp, err := webpush.SendNotificationWithContext(n.ctx, body,
		&webpush.Subscription{Endpoint: s.Endpoint, Keys: webpush.Keys{Auth: s.Auth, P256dh: s.P256dh}},
		&webpush.Options{
			HTTPClient: n.cfg.Client,
			// webpush-go puts "mailto:" before any subscriber that is not
			// an https: URL, so it is given without it.
			Subscriber:      strings.TrimPrefix(n.cfg.Subject, "mailto:"),
			TTL:             int(TTL / time.Second),
			Urgency:         webpush.UrgencyNormal,
			VAPIDPublicKey:  n.cfg.Keys.Public,
			VAPIDPrivateKey: n.cfg.Keys.Private,
		})
	if err != nil {
		n.Stats.Error.Add(1)
		if n.ctx.Err() == nil {
			n.log.Warn("push failed", "user", s.User, "push_service", origin(s.Endpoint), "error", err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		n.Stats.OK.Add(1)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		n.Stats.Gone.Add(1)
		if _, err := n.cfg.Store.DeletePushSubscription(s.User, s.Endpoint); err != nil {
			n.log.Warn("push: deleting an expired subscription", "user", s.User, "error", err)
		} else {
			n.log.Info("push subscription expired and deleted", "user", s.User, "push_service", origin(s.Endpoint), "status", resp.StatusCode)
		}
	default:
		n.Stats.Error.Add(1)
		n.log.Warn("push refused", "user", s.User, "push_service", origin(s.Endpoint), "status", resp.StatusCode)
	}
}

// origin is scheme://host of an endpoint, for logs: the rest of the URL
// identifies the subscription.
func origin(endpoint string) string {
	scheme, rest, _ := strings.Cut(endpoint, "://")
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}
