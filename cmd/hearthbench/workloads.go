package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// tools are the independent clients the bench drives.
type tools struct {
	pub, sub, node, mqttJS string
}

const (
	room        = "family"
	publisher   = "kid"     // every publish is kid's
	device      = "kitchen" // the subscribing device (a reader of the room)
	roomFilter  = "rooms/family/messages/+"
	publishedTo = "rooms/family/messages/kid"
)

func (t tools) mqttArgs(b *broker, user string, extra ...string) []string {
	h, p, _ := net.SplitHostPort(b.mqtt)
	return append([]string{"-h", h, "-p", p, "-u", user, "-P", benchPassword, "-V", "mqttv5"}, extra...)
}

// tally counts the deliveries of messages by id: each one once, and when
// the last arrived.
type tally struct {
	mu      sync.Mutex
	want    map[string]bool
	seen    map[string]int
	got     int
	doubled int
	last    time.Time
	onSee   func(id string, at time.Time)
}

func newTally() *tally { return &tally{want: map[string]bool{}, seen: map[string]int{}} }

func (t *tally) expect(id string) {
	t.mu.Lock()
	t.want[id] = true
	t.mu.Unlock()
}

func (t *tally) see(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[id]++
	if !t.want[id] {
		return // a warm-up message
	}
	if t.seen[id] > 1 {
		t.doubled++
		return
	}
	t.got++
	t.last = at
	if t.onSee != nil {
		t.onSee(id, at)
	}
}

func (t *tally) count() (got, doubled int, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.got, t.doubled, t.last
}

func (t *tally) has(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen[id] > 0
}

// chatLine is one chat message as mosquitto_pub -l sends it.
func chatLine(id, text string) string { return fmt.Sprintf("{\"id\":%q,\"text\":%q}\n", id, text) }

// payloadID reads the id and text of a chat payload.
func payloadID(line string) (id, text string) {
	var p struct{ ID, Text string }
	if json.Unmarshal([]byte(line), &p) != nil {
		return "", ""
	}
	return p.ID, p.Text
}

// watchRoom starts a QoS 1 mosquitto_sub device on the room, whose
// deliveries go to t; see gets the text of each too.
func (tl tools) watchRoom(ctx context.Context, b *broker, t *tally) (*client, error) {
	return startClient(ctx, func(line string, at time.Time) {
		id, _ := payloadID(line)
		t.see(id, at)
	}, tl.sub, tl.mqttArgs(b, device, "-q", "1", "-t", roomFilter, "-F", "%p")...)
}

// watchReceipts starts a subscriber of the publisher's receipts (hearth
// only): t sees each archived id.
func (tl tools) watchReceipts(ctx context.Context, b *broker, t *tally) (*client, error) {
	return startClient(ctx, func(line string, at time.Time) {
		for _, id := range receiptIDs(line) {
			t.see(id, at)
		}
	}, tl.sub, tl.mqttArgs(b, publisher, "-q", "1", "-t", hearth.ReceiptsTopic(publisher), "-F", "%p")...)
}

// receiptIDs reads the message ids a receipt confirms.
func receiptIDs(line string) []string {
	var r hearth.Receipt
	if json.Unmarshal([]byte(line), &r) != nil {
		return nil
	}
	ids := make([]string, len(r.Items))
	for i, it := range r.Items {
		ids[i] = it.ID
	}
	return ids
}

// warmUp publishes a warm-up message through pub until every tally has
// seen one: then the subscribers are surely subscribed.
func warmUp(ctx context.Context, send func(id string) error, tallies ...*tally) error {
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprintf("warm-%d-%d", time.Now().UnixNano(), i)
		if err := send(id); err != nil {
			return err
		}
		for until := time.Now().Add(300 * time.Millisecond); time.Now().Before(until); time.Sleep(5 * time.Millisecond) {
			all := true
			for _, t := range tallies {
				all = all && t.has(id)
			}
			if all {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("subscribers never saw a warm-up message")
		}
	}
}

// oneShot publishes one message with mosquitto_pub.
func (tl tools) oneShot(ctx context.Context, b *broker) func(id string) error {
	return func(id string) error {
		out, err := exec.CommandContext(ctx, tl.pub, tl.mqttArgs(b, publisher, "-q", "1", "-t", publishedTo, "-m", strings.TrimSpace(chatLine(id, "warm up")))...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mosquitto_pub: %v: %s", err, out)
		}
		return nil
	}
}

type burstResult struct {
	n                 int
	delivered         float64 // msg/s, publishers' start to the last delivery
	archived          float64 // msg/s, publishers' start to the last receipt; 0 for mosquitto
	lost, doubled     int
	lostArch, dblArch int
	cpu               time.Duration // the broker's, from the publishers' start to the end
}

// burst: pubs mosquitto_pub -q 1 -M 100 processes send each chat
// messages as fast as the broker takes them; one QoS 1 device gets them.
func (tl tools) burst(ctx context.Context, b *broker, tag string, pubs, each int) (burstResult, error) {
	live, arch := newTally(), newTally()
	sub, err := tl.watchRoom(ctx, b, live)
	if err != nil {
		return burstResult{}, err
	}
	defer sub.stop()
	watch := []*tally{live}
	if b.http != "" {
		rc, err := tl.watchReceipts(ctx, b, arch)
		if err != nil {
			return burstResult{}, err
		}
		defer rc.stop()
		watch = append(watch, arch)
	}
	if err := warmUp(ctx, tl.oneShot(ctx, b), watch...); err != nil {
		return burstResult{}, err
	}
	inputs := make([]string, pubs)
	for i := range pubs {
		var lines strings.Builder
		for j := range each {
			id := fmt.Sprintf("%s-p%d-%d", tag, i, j)
			live.expect(id)
			arch.expect(id)
			lines.WriteString(chatLine(id, fmt.Sprintf("burst message %d of publisher %d", j, i)))
		}
		inputs[i] = lines.String()
	}
	n := pubs * each
	cpu0, err := b.cpu()
	if err != nil {
		return burstResult{}, err
	}
	start := time.Now()
	errs := make(chan error, pubs)
	for i := range pubs {
		go func() {
			cmd := exec.CommandContext(ctx, tl.pub, tl.mqttArgs(b, publisher, "-q", "1", "-M", "100", "-l", "-t", publishedTo)...)
			cmd.Stdin = strings.NewReader(inputs[i])
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("mosquitto_pub: %v: %s", err, out)
				return
			}
			errs <- nil
		}()
	}
	for range pubs {
		if err := <-errs; err != nil {
			return burstResult{}, err
		}
	}
	deadline := time.Now().Add(30*time.Second + time.Duration(n)*100*time.Microsecond)
	for _, t := range watch {
		for got, _, _ := t.count(); got < n && time.Now().Before(deadline); got, _, _ = t.count() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	cpu1, err := b.cpu()
	if err != nil {
		return burstResult{}, err
	}
	time.Sleep(100 * time.Millisecond) // time for a doubled delivery to show
	r := burstResult{n: n, cpu: cpu1 - cpu0}
	got, dbl, last := live.count()
	r.lost, r.doubled = n-got, dbl
	r.delivered = float64(got) / last.Sub(start).Seconds()
	if b.http != "" {
		got, dbl, last = arch.count()
		r.lostArch, r.dblArch = n-got, dbl
		r.archived = float64(got) / last.Sub(start).Seconds()
	}
	return r, nil
}

type latencyResult struct {
	n, lost, doubled int
	p50, p99         time.Duration
}

// latency: one publisher sends rate chat messages a second at QoS 1
// (mosquitto_pub --nodelay), and a QoS 1 device receives them; each
// latency is from the line written to mosquitto_pub to the line read
// from mosquitto_sub.
func (tl tools) latency(ctx context.Context, b *broker, tag string, rate int, d time.Duration) (latencyResult, error) {
	live := newTally()
	var mu sync.Mutex
	var lats []time.Duration
	sub, err := startClient(ctx, func(line string, at time.Time) {
		id, text := payloadID(line)
		live.see(id, at)
		if sent, err := strconv.ParseInt(text, 10, 64); err == nil && strings.HasPrefix(id, tag) {
			mu.Lock()
			lats = append(lats, at.Sub(time.Unix(0, sent)))
			mu.Unlock()
		}
	}, tl.sub, tl.mqttArgs(b, device, "-q", "1", "-t", roomFilter, "-F", "%p")...)
	if err != nil {
		return latencyResult{}, err
	}
	defer sub.stop()
	pub, err := startClient(ctx, func(string, time.Time) {}, tl.pub, tl.mqttArgs(b, publisher, "-q", "1", "--nodelay", "-l", "-t", publishedTo)...)
	if err != nil {
		return latencyResult{}, err
	}
	defer pub.stop()
	write := func(id, text string) error {
		_, err := io.WriteString(pub.stdin, chatLine(id, text))
		return err
	}
	if err := warmUp(ctx, func(id string) error { return write(id, "warm up") }, live); err != nil {
		return latencyResult{}, err
	}
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for k := range n {
		if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		id := fmt.Sprintf("%s-%d", tag, k)
		live.expect(id)
		if err := write(id, strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			return latencyResult{}, fmt.Errorf("mosquitto_pub: %v: %s", err, pub.err.String())
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, _, _ := live.count(); got >= n {
			break
		}
	}
	got, dbl, _ := live.count()
	mu.Lock()
	defer mu.Unlock()
	r := latencyResult{n: n, lost: n - got, doubled: dbl}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.p50, r.p99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	return r, nil
}

//go:embed idle.js
var idleJS string

type idleResult struct {
	clients   int
	perClient int64         // RSS bytes each
	reachAll  time.Duration // a publish to the last of them
	missed    int           // clients that did not get it
}

// idle connects n MQTT.js clients over WebSocket (in Node processes of
// at most perProc each), each subscribed to the room at QoS 1, measures
// the broker's RSS per client, then publishes one message and times its
// arrival at the last of them.
func (tl tools) idle(ctx context.Context, b *broker, tag string, n, perProc int) (idleResult, error) {
	script := filepath.Join(b.dir, "idle.js")
	if err := os.WriteFile(script, []byte(idleJS), 0o600); err != nil {
		return idleResult{}, err
	}
	base, err := b.rss()
	if err != nil {
		return idleResult{}, err
	}
	type procMsg struct {
		line string
		at   time.Time
	}
	msgs := make(chan procMsg, 64)
	var procs []*client
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i := 0; i < n; i += perProc {
		m := min(perProc, n-i)
		p, err := startClient(ctx, func(line string, at time.Time) { msgs <- procMsg{line, at} },
			tl.node, script, tl.mqttJS, b.ws, "kid", b.wsPass(publisher), roomFilter, strconv.Itoa(m), fmt.Sprintf("%s-%d-", tag, i))
		if err != nil {
			return idleResult{}, err
		}
		procs = append(procs, p)
	}
	wait := func(prefix string, limit time.Duration) ([]procMsg, error) {
		var got []procMsg
		deadline := time.After(limit)
		for len(got) < len(procs) {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m.line, "ERROR") {
					return nil, fmt.Errorf("MQTT.js: %s", m.line)
				}
				if strings.HasPrefix(m.line, prefix) {
					got = append(got, m)
				}
			case <-deadline:
				var errs []string
				for _, p := range procs {
					errs = append(errs, p.err.String())
				}
				return nil, fmt.Errorf("%d of %d Node processes said %s within %s: %s", len(got), len(procs), prefix, limit, strings.Join(errs, "; "))
			}
		}
		return got, nil
	}
	if _, err := wait("READY", 60*time.Second+time.Duration(n)*5*time.Millisecond); err != nil {
		return idleResult{}, err
	}
	time.Sleep(time.Second) // let the broker settle
	rss, err := b.rss()
	if err != nil {
		return idleResult{}, err
	}
	r := idleResult{clients: n, perClient: (rss - base) / int64(n)}

	pub, err := startClient(ctx, func(string, time.Time) {}, tl.pub, tl.mqttArgs(b, publisher, "-q", "1", "--nodelay", "-l", "-t", publishedTo)...)
	if err != nil {
		return idleResult{}, err
	}
	defer pub.stop()
	id := tag + "-all"
	time.Sleep(500 * time.Millisecond) // mosquitto_pub connects
	sent := time.Now()
	if _, err := io.WriteString(pub.stdin, chatLine(id, "to everyone")); err != nil {
		return idleResult{}, err
	}
	got, err := wait("ALL", 30*time.Second)
	if err != nil {
		return idleResult{}, err
	}
	for _, m := range got {
		f := strings.Fields(m.line) // ALL <missed> <unix ms of the last arrival>
		if len(f) != 3 {
			return idleResult{}, fmt.Errorf("MQTT.js said %q", m.line)
		}
		missed, _ := strconv.Atoi(f[1])
		ms, _ := strconv.ParseInt(f[2], 10, 64)
		r.missed += missed
		r.reachAll = max(r.reachAll, time.UnixMilli(ms).Sub(sent))
	}
	return r, nil
}

// fillHistory writes n messages into room of a new history file.
func fillHistory(path, room string, n int) error {
	s, err := history.Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	batch := make([]hearth.Message, 0, 10000)
	for i := range n {
		batch = append(batch, hearth.Message{ID: fmt.Sprintf("h%d", i), Room: room, From: "mum",
			Text: "a typical short chat message, about sixty bytes of text", TS: 1700000000000 + int64(i), At: 1700000000000 + int64(i)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.Append(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

type pageResult struct {
	n        int
	p50, p99 time.Duration
}

// pages asks hearth's HTTP API for n pages of 50, one after another, and
// checks each.
func pages(ctx context.Context, b *broker, n, fill int) (pageResult, error) {
	token := b.wsPass(publisher)
	lats := make([]time.Duration, 0, n)
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range n {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/api/rooms/%s/messages?limit=50&before=%d", b.http, room, 51+i*7919%(fill-50)), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return pageResult{}, err
		}
		var page struct {
			Messages []json.RawMessage `json:"messages"`
		}
		err = json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&page)
		resp.Body.Close()
		lats = append(lats, time.Since(start))
		if err != nil || resp.StatusCode != 200 || len(page.Messages) != 50 {
			return pageResult{}, fmt.Errorf("history page: %d, %d messages, %v", resp.StatusCode, len(page.Messages), err)
		}
	}
	slices.Sort(lats)
	return pageResult{n: n, p50: lats[n/2], p99: lats[n*99/100]}, nil
}
