package broker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// logRecords is a log that keeps every record, as JSON lines.
type logRecords struct{ mt.SafeBuffer }

// records returns the records logged so far whose reason is reason.
func (l *logRecords) records(t *testing.T, reason string) []map[string]any {
	t.Helper()
	text := l.String()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if r["reason"] == reason {
			out = append(out, r)
		}
	}
	return out
}

// forgedToken has a token's shape and a signature of no one's key.
const forgedToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJraWQifQ.c2lnbmF0dXJlLW5vdC12YWxpZC1hdC1hbGw"

var summaryLine = regexp.MustCompile(`^refused (\d+) connections in the last 100ms$`)

// TestRefusalsLogBounded: a burst of bad CONNECTs (forged tokens, which
// the login limit does not slow down) is counted one by one, but the log,
// even at debug level, gets one line for the first refusal of each
// interval and one summary at its end, whose count and last details are
// right.
func TestRefusalsLogBounded(t *testing.T) {
	var logged logRecords
	log := slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const interval = 100 * time.Millisecond
	b := startBrokerLog(t, log, func(_ *hearth.Config, c *Config) { c.RefusalLogInterval = interval })

	const n = 400
	start := time.Now()
	for i := range n {
		c := mt.DialRaw(t, b.addr, 4+byte(i%2)) // MQTT 3.1.1 and 5
		if ack := c.Connect(mt.Connect{ID: "guess-" + strconv.Itoa(i), User: "kid", Pass: forgedToken, Clean: true}); ack.Type != mt.CONNACK || ack.Code == 0 {
			t.Fatalf("connect %d with a forged token: %v", i, ack)
		}
		c.Conn.Close()
	}
	if got := b.Refused(BadCredentials); got != n {
		t.Errorf("refused for bad credentials: %d, want %d", got, n)
	}

	// Each interval has a first line (debug) and, when more followed, a
	// summary (info) with their number. Wait for the last summary.
	var firsts, summaries int
	var summed int64
	var last map[string]any
	mt.WaitFor(t, "every refusal accounted for in the log", 5*time.Second, func() bool {
		firsts, summaries, summed = 0, 0, 0
		for _, r := range logged.records(t, "bad_credentials") {
			msg, _ := r["msg"].(string)
			switch m := summaryLine.FindStringSubmatch(msg); {
			case msg == "mqtt connection refused: bad credentials":
				if r["level"] != "DEBUG" {
					t.Fatalf("first refusal logged at %v, want DEBUG", r["level"])
				}
				firsts++
			case m != nil:
				if r["level"] != "INFO" {
					t.Fatalf("summary logged at %v, want INFO", r["level"])
				}
				k, _ := strconv.ParseInt(m[1], 10, 64)
				summed += k
				summaries++
				last = r
			default:
				t.Fatalf("unexpected log line %v", r)
			}
		}
		return summed+int64(firsts-summaries) == n
	})
	elapsed := time.Since(start)
	if max := 2 * (int(elapsed/interval) + 1); firsts+summaries > max {
		t.Errorf("%d log lines for %d refusals in %s, want at most %d", firsts+summaries, n, elapsed, max)
	}
	if summaries == 0 {
		t.Fatal("no summary line")
	}
	details, _ := last["last"].(map[string]any)
	if details["user"] != "kid" || !strings.HasPrefix(details["remote"].(string), "127.0.0.1:") {
		t.Errorf("summary's last refusal: %v, want user kid from 127.0.0.1", last)
	}
	t.Logf("%d refusals in %s: %d log lines (%d summaries)", n, elapsed.Round(time.Millisecond), firsts+summaries, summaries)
}

// TestRefusalReasons: each kind of refusal is counted under its own
// reason, and a single refusal logs one debug line and no summary.
func TestRefusalReasons(t *testing.T) {
	var logged logRecords
	log := slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := startBrokerLog(t, log, func(_ *hearth.Config, c *Config) {
		c.RefusalLogInterval = 50 * time.Millisecond
		c.MaxPerUser = 1
	})
	refused := func() map[Reason]int64 {
		m := map[Reason]int64{}
		for _, r := range Reasons() {
			if n := b.Refused(r); n > 0 {
				m[r] = n
			}
		}
		return m
	}
	connect := func(o mt.Connect) mt.Packet {
		return mt.DialRaw(t, b.addr, 5).Connect(o)
	}

	connect(mt.Connect{ID: "a", User: "", Clean: true}) // bad_credentials
	kid := mt.DialRaw(t, b.addr, 5)
	if ack := kid.Connect(mt.Connect{ID: "kid-1", User: "kid", Pass: password("kid"), Clean: true}); ack.Code != 0 {
		t.Fatalf("kid: %v", ack)
	}
	connect(mt.Connect{ID: "kid-2", User: "kid", Pass: password("kid"), Clean: true}) // too_many_connections
	connect(mt.Connect{ID: "kid-1", User: "dad", Pass: password("dad"), Clean: true}) // client_id_taken
	kid.Publish("rooms/parents/messages/kid", []byte(`{"id":"x1","text":"hi"}`), 1, false, 1, nil)
	kid.Expect(mt.PUBACK) // not_authorized
	kid.Publish("rooms/family/messages/kid", []byte(`not json`), 1, false, 2, nil)
	kid.Expect(mt.PUBACK) // invalid_publish
	if codes := kid.Subscribe(3, "rooms/parents/messages/+", 1, nil); codes[0] != 0x87 {
		t.Fatalf("kid subscribing to parents: %x", codes)
	}
	if err := b.Publish("kid", "rooms/parents/messages/kid", []byte(`{"id":"x2","text":"hi"}`)); err != ErrNotAllowed {
		t.Fatalf("HTTP publish to parents: %v", err)
	}

	want := map[Reason]int64{BadCredentials: 1, TooManyConnections: 1, ClientIDTaken: 1, NotAuthorized: 2, InvalidPublish: 1, SubscribeDenied: 1}
	mt.WaitFor(t, "the refusals counted", 5*time.Second, func() bool { return len(refused()) == len(want) })
	for r, n := range want {
		if got := b.Refused(r); got != n {
			t.Errorf("%s: %d, want %d", r, got, n)
		}
	}
	b.Close() // ends the interval: a single refusal has no summary
	for r, n := range want {
		recs := logged.records(t, r.String())
		if int64(len(recs)) != min(n, 2) || recs[0]["level"] != "DEBUG" {
			t.Errorf("%s logged %v, want %d lines, the first at DEBUG", r, recs, min(n, 2))
		}
	}
}

// TestRefusedServerFull: a CONNECT over mqtt.max_connections, which mochi
// refuses itself, is counted as server_full.
func TestRefusedServerFull(t *testing.T) {
	b := startBroker(t, func(_ *hearth.Config, c *Config) { c.MaxConnections = 1 }) // and the bridge's two, which this broker has not
	var codes []byte
	for _, u := range []string{"mum", "dad", "kitchen", "homeassistant"} {
		codes = append(codes, mt.DialRaw(t, b.addr, 5).Connect(mt.Connect{ID: u, User: u, Pass: password(u), Clean: true}).Code)
	}
	if string(codes) != "\x00\x00\x00\x89" {
		t.Fatalf("CONNACK codes %x, want 00 00 00 89", codes)
	}
	if n := b.Refused(ServerFull); n != 1 {
		t.Errorf("server_full: %d, want 1", n)
	}
}

// TestPublishErrorKinds: Publish's errors are of the shared kinds, so the
// HTTP API answers them by hearth.HTTPStatus.
func TestPublishErrorKinds(t *testing.T) {
	for _, tt := range []struct {
		err, kind error
		status    int
	}{
		{ErrNotAllowed, hearth.ErrNotAllowed, 403},
		{fmt.Errorf("%w: 9 bytes, the limit is 8", ErrTooLarge), hearth.ErrTooLarge, 413},
		{ErrRateLimited, hearth.ErrRateLimited, 429},
		{ErrBusy, hearth.ErrBusy, 503},
	} {
		if !errors.Is(tt.err, tt.kind) || hearth.HTTPStatus(tt.err) != tt.status {
			t.Errorf("%v: is %v %v, status %d; want true, %d", tt.err, tt.kind, errors.Is(tt.err, tt.kind), hearth.HTTPStatus(tt.err), tt.status)
		}
	}
}
