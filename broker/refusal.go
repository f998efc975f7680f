package broker

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Reason is why the broker refused a connection, a publish (or a will,
// which is a publish to be) or a subscription. Every reason is counted in
// hearth_mqtt_refused_total{reason="..."}; the names are its label values
// (README, "Health, readiness, metrics").
type Reason uint8

// The reasons, in the order of a connection's life.
const (
	OriginNotAllowed   Reason = iota // a browser's WebSocket to /mqtt from an origin hearth does not know
	BadCredentials                   // no user, an unknown user, a wrong password or token, an empty password
	LoginLimited                     // too many failed password logins for the user or address
	ConnectRate                      // over mqtt.connect_rate for the client address or the user
	HeldOff                          // the user is held off because their connections kept flooding
	TooManyConnections               // over mqtt.max_connections_per_user
	ServerFull                       // over mqtt.max_connections
	ClientIDTaken                    // another user's session holds the client id (or it is the bridge's)
	NotAuthorized                    // a publish or will the access rules refuse
	InvalidPublish                   // a publish or will that is not valid: payload, size, retained chat, wildcard topic
	RateLimited                      // a publish over mqtt.publish_rate
	ArchiveBusy                      // a chat message refused because the archive stayed behind
	SubscribeDenied                  // a subscription the access rules refuse
	numReasons
)

// reasons describes each reason: its label value, what it refuses (for
// the summary line) and what the first one of an interval logs.
var reasons = [numReasons]struct {
	name, noun, msg string
}{
	OriginNotAllowed:   {"origin_not_allowed", "WebSocket connections", "mqtt websocket refused: origin not allowed"},
	BadCredentials:     {"bad_credentials", "connections", "mqtt connection refused: bad credentials"},
	LoginLimited:       {"login_limited", "connections", "mqtt connection refused: too many failed logins"},
	ConnectRate:        {"connect_rate", "connections", "mqtt connection refused: connect rate"},
	HeldOff:            {"held_off", "connections", "mqtt connection refused: held off for flooding"},
	TooManyConnections: {"too_many_connections", "connections", "mqtt connection refused: too many connections"},
	ServerFull:         {"server_full", "connections", "mqtt connection refused: mqtt.max_connections reached"},
	ClientIDTaken:      {"client_id_taken", "connections", "mqtt connection refused: client id belongs to another user"},
	NotAuthorized:      {"not_authorized", "publishes", "mqtt publish denied"},
	InvalidPublish:     {"invalid_publish", "publishes", "mqtt publish refused: invalid"},
	RateLimited:        {"rate_limited", "publishes", "mqtt publish over the rate limit"},
	ArchiveBusy:        {"archive_busy", "publishes", "archive behind: publish refused"},
	SubscribeDenied:    {"subscribe_denied", "subscriptions", "mqtt subscription denied"},
}

// String is the reason's label value.
func (r Reason) String() string {
	if r < numReasons {
		return reasons[r].name
	}
	return "unknown"
}

// Reasons lists every reason.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// defaultRefusalInterval is how often repeated refusals are summed up in
// the log.
const defaultRefusalInterval = 10 * time.Second

// refusals counts every refusal and keeps the log short whatever a client
// sends: per reason and interval, the first refusal is logged at debug
// level with its details, and, when more followed, one line at the end of
// the interval says how many and gives the last one's details. A refusal
// that is the server's own trouble (ArchiveBusy) logs at warn level
// instead of debug and info. No goroutine runs while nothing is refused:
// the first refusal of an interval starts a timer.
type refusals struct {
	log      *slog.Logger
	interval time.Duration
	counts   [numReasons]atomic.Int64

	mu     sync.Mutex
	timer  *time.Timer // pending flush, nil when none
	win    [numReasons]refusalWindow
	closed bool
}

type refusalWindow struct {
	n    int64
	last []any // the details of the last refusal
}

func newRefusals(log *slog.Logger, interval time.Duration) *refusals {
	if interval <= 0 {
		interval = defaultRefusalInterval
	}
	return &refusals{log: log, interval: interval}
}

// refuse counts a refusal; details are slog key-value pairs (user,
// remote, topic, ...). It is safe for concurrent use.
func (f *refusals) refuse(r Reason, details ...any) {
	f.counts[r].Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &f.win[r]
	w.n++
	w.last = details
	if w.n == 1 {
		f.log.Log(context.Background(), f.level(r, slog.LevelDebug), reasons[r].msg, append([]any{"reason", r.String()}, details...)...)
	}
	if f.timer == nil && !f.closed {
		f.timer = time.AfterFunc(f.interval, f.flush)
	}
}

// level is what a refusal of r logs at: normal for what clients do, and
// warn for the server's own trouble.
func (f *refusals) level(r Reason, normal slog.Level) slog.Level {
	if r == ArchiveBusy {
		return slog.LevelWarn
	}
	return normal
}

// flush ends the interval: a reason refused more than once logs how many
// times.
func (f *refusals) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timer = nil
	for r := range numReasons {
		w := &f.win[r]
		if w.n > 1 {
			msg := "refused " + strconv.FormatInt(w.n, 10) + " " + reasons[r].noun + " in the last " + f.interval.String()
			f.log.Log(context.Background(), f.level(r, slog.LevelInfo), msg, "reason", r.String(), slog.Group("last", w.last...))
		}
		*w = refusalWindow{}
	}
}

// close logs what the pending interval holds; later refusals are still
// counted and their first ones logged, but no timer starts.
func (f *refusals) close() {
	f.mu.Lock()
	f.closed = true
	pending := f.timer != nil && f.timer.Stop()
	f.mu.Unlock()
	if pending {
		f.flush()
	}
}

// count is how many refusals of r there were.
func (f *refusals) count(r Reason) int64 { return f.counts[r].Load() }
