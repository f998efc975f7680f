// Command hearthload measures a running hearth: publishers send chat
// messages at QoS 1 as fast as hearth takes them, a subscriber watches
// the room, and the receipts say when each message is archived. It
// reports throughput and latency, and counts what was lost or doubled.
//
//	hearthload -addr 127.0.0.1:1883 -user kid -password hearth-sample -publishers 10 -messages 1000
//
// Every message carries a fresh id, so a second run adds to the history.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hearth-home/hearth"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hearthload:", err)
		os.Exit(1)
	}
}

type config struct {
	addr, user, password, watcher, watcherPassword, room string
	publishers, messages, window                         int
	timeout                                              time.Duration
}

func run() error {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:1883", "hearth's MQTT over TCP address")
	flag.StringVar(&c.user, "user", "kid", "user the publishers log in as")
	flag.StringVar(&c.password, "password", "hearth-sample", "its password or token")
	flag.StringVar(&c.watcher, "watcher", "", "user of the watching subscriber (default: -user)")
	flag.StringVar(&c.watcherPassword, "watcher-password", "", "its password (default: -password)")
	flag.StringVar(&c.room, "room", "family", "room to publish in")
	flag.IntVar(&c.publishers, "publishers", 10, "publishing connections")
	flag.IntVar(&c.messages, "messages", 1000, "messages per publisher")
	flag.IntVar(&c.window, "window", 32, "publishes awaiting PUBACK per publisher")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up waiting for deliveries and receipts after this")
	flag.Parse()
	if c.watcher == "" {
		c.watcher, c.watcherPassword = c.user, c.password
	}
	if c.publishers < 1 || c.messages < 1 || c.window < 1 {
		return errors.New("-publishers, -messages and -window must be at least 1")
	}
	r, err := load(c)
	if err != nil {
		return err
	}
	r.print(c)
	if r.lostLive > 0 || r.lostArchive > 0 || r.refused > 0 || r.doubled > 0 {
		return fmt.Errorf("%d not delivered, %d not archived, %d refused, %d doubled", r.lostLive, r.lostArchive, r.refused, r.doubled)
	}
	return nil
}

type result struct {
	total                             int
	publishTime, liveTime, total_time time.Duration
	liveLat, receiptLat               []time.Duration
	lostLive, lostArchive             int
	refused, doubled                  int
}

// tracker records when each message was sent, delivered and archived.
type tracker struct {
	mu                    sync.Mutex
	sent                  map[string]time.Time
	live, receipt         map[string]time.Duration
	liveDone, receiptDone chan struct{}
	want                  int
	doubled               int
	lastLive, lastReceipt time.Time
}

func (t *tracker) see(m map[string]time.Duration, id string, done chan struct{}, last *time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sent[id]
	if !ok {
		return // another run's message
	}
	if _, dup := m[id]; dup {
		t.doubled++
		return
	}
	now := time.Now()
	m[id] = now.Sub(s)
	*last = now
	if len(m) == t.want {
		close(done)
	}
}

func dial(ctx context.Context, addr, user, password, id string, onPub func(*paho.Publish)) (*paho.Client, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{ClientID: id, Conn: conn}
	if onPub != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onPub(pr.Packet)
			return true, nil
		}}
	}
	cl := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cl.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", user, err)
	}
	return cl, nil
}

func load(c config) (*result, error) {
	ctx := context.Background()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	tr := &tracker{sent: map[string]time.Time{}, live: map[string]time.Duration{}, receipt: map[string]time.Duration{},
		liveDone: make(chan struct{}), receiptDone: make(chan struct{}), want: c.publishers * c.messages}

	watcher, err := dial(ctx, c.addr, c.watcher, c.watcherPassword, "load-watch-"+run, func(p *paho.Publish) {
		var m struct{ ID string }
		if json.Unmarshal(p.Payload, &m) == nil {
			tr.see(tr.live, m.ID, tr.liveDone, &tr.lastLive)
		}
	})
	if err != nil {
		return nil, err
	}
	defer watcher.Disconnect(&paho.Disconnect{})
	receipts, err := dial(ctx, c.addr, c.user, c.password, "load-receipts-"+run, func(p *paho.Publish) {
		var r hearth.Receipt
		if json.Unmarshal(p.Payload, &r) == nil {
			for _, it := range r.Items {
				tr.see(tr.receipt, it.ID, tr.receiptDone, &tr.lastReceipt)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer receipts.Disconnect(&paho.Disconnect{})
	for cl, filter := range map[*paho.Client]string{
		watcher:  "rooms/" + c.room + "/messages/+",
		receipts: "users/" + c.user + "/receipts",
	} {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sa, err := cl.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		cancel()
		if err != nil || sa.Reasons[0] >= 0x80 {
			return nil, fmt.Errorf("subscribe %s: %v %v", filter, err, sa)
		}
	}

	pubs := make([]*paho.Client, c.publishers)
	for i := range pubs {
		if pubs[i], err = dial(ctx, c.addr, c.user, c.password, fmt.Sprintf("load-pub-%s-%d", run, i), nil); err != nil {
			return nil, err
		}
		defer pubs[i].Disconnect(&paho.Disconnect{})
	}

	var refused atomic.Int64
	topic := "rooms/" + c.room + "/messages/" + c.user
	start := time.Now()
	var wg sync.WaitGroup
	for p, cl := range pubs {
		ids := make(chan int)
		for range c.window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ids {
					id := fmt.Sprintf("load-%s-%d-%d", run, p, i)
					payload, _ := json.Marshal(map[string]any{"id": id, "text": fmt.Sprintf("load message %d of publisher %d", i, p), "ts": time.Now().UnixMilli()})
					tr.mu.Lock()
					tr.sent[id] = time.Now()
					tr.mu.Unlock()
					pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					_, err := cl.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
					cancel()
					if err != nil {
						refused.Add(1)
					}
				}
			}()
		}
		go func() {
			for i := range c.messages {
				ids <- i
			}
			close(ids)
		}()
	}
	wg.Wait()
	r := &result{total: tr.want, publishTime: time.Since(start), refused: int(refused.Load())}

	timeout := time.After(c.timeout)
	for _, done := range []chan struct{}{tr.liveDone, tr.receiptDone} {
		select {
		case <-done:
		case <-timeout:
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r.liveTime, r.total_time = tr.lastLive.Sub(start), tr.lastReceipt.Sub(start)
	r.lostLive, r.lostArchive, r.doubled = tr.want-len(tr.live), tr.want-len(tr.receipt), tr.doubled
	for _, d := range tr.live {
		r.liveLat = append(r.liveLat, d)
	}
	for _, d := range tr.receipt {
		r.receiptLat = append(r.receiptLat, d)
	}
	return r, nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))].Round(10 * time.Microsecond)
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (r *result) print(c config) {
	fmt.Printf("messages:   %d (%d publishers x %d, window %d)\n", r.total, c.publishers, c.messages, c.window)
	fmt.Printf("published:  %.0f msg/s (all PUBACKs in %s)\n", rate(r.total, r.publishTime), r.publishTime.Round(time.Millisecond))
	fmt.Printf("delivered:  %d, %.0f msg/s; latency p50 %s p99 %s max %s\n", len(r.liveLat), rate(len(r.liveLat), r.liveTime), pct(r.liveLat, .5), pct(r.liveLat, .99), pct(r.liveLat, 1))
	fmt.Printf("archived:   %d, %.0f msg/s; publish to receipt p50 %s p99 %s max %s\n", len(r.receiptLat), rate(len(r.receiptLat), r.total_time), pct(r.receiptLat, .5), pct(r.receiptLat, .99), pct(r.receiptLat, 1))
	fmt.Printf("lost live:  %d   lost archive: %d   refused: %d   doubled: %d\n", r.lostLive, r.lostArchive, r.refused, r.doubled)
}
