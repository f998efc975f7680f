package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hearth-home/hearth"
)

// server is hearth serve as a separate process, to be killed for real.
type server struct {
	t          *testing.T
	bin, cfg   string
	http, mqtt string
	metrics    string // metrics.addr
	cmd        *exec.Cmd
}

// startServer builds hearth and starts it as a separate process on the
// test users, with the room family (everyone a member, kitchen a reader)
// and no publish rate limit. It is killed when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	if testing.Short() {
		t.Skip("slow")
	}
	dir := t.TempDir()
	bin := buildHearth(t, dir)
	cfg := testConfig(t, filepath.Join(dir, "data"))
	s := &server{t: t, bin: bin, cfg: filepath.Join(dir, "config.yaml"), http: freePort(t), mqtt: freePort(t), metrics: freePort(t)}
	var y strings.Builder
	fmt.Fprintf(&y, "data_dir: %q\nhttp: {addr: %q}\nmqtt: {addr: %q, publish_rate: 0, connect_rate: {per_address: 0, per_user: 0}}\nmetrics: {addr: %q}\nusers:\n", cfg.DataDir, s.http, s.mqtt, s.metrics)
	for _, u := range cfg.Users {
		fmt.Fprintf(&y, "  - {name: %s, role: %s, password_hash: %q}\n", u.Name, u.Role, u.PasswordHash)
	}
	y.WriteString("rooms:\n  - {name: family, members: [\"*\"], readers: [kitchen]}\n")
	if err := os.WriteFile(s.cfg, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "serve", "-config", s.cfg, "-log-level", "warn")
	s.cmd.Stderr = testWriter{s.t}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitFor(s.t, "hearth ready", 20*time.Second, func() bool {
		c := &net.Dialer{Timeout: 200 * time.Millisecond}
		conn, err := c.Dial("tcp", s.http)
		if err != nil {
			return false
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /readyz HTTP/1.0\r\n\r\n")
		b := make([]byte, 12)
		n, _ := conn.Read(b)
		return strings.Contains(string(b[:n]), "200")
	})
}

func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// TestNothingLostAcrossKills is the end-to-end promise (README, "How it
// works") as a user meets it: a sender with an outbox publishes thousands
// of QoS 1 messages while hearth is killed with SIGKILL twice and
// restarted. In the end the
// history holds every message exactly once, and the sender has a receipt
// for each.
func TestNothingLostAcrossKills(t *testing.T) {
	s := startServer(t)

	const n = 3000
	o := newOutbox(n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	senderDone := make(chan struct{})
	go func() { defer close(senderDone); o.send(ctx, t, s.mqtt) }()

	for kill := 1; kill <= 2; kill++ {
		waitFor(t, fmt.Sprintf("receipts before kill %d", kill), 60*time.Second, func() bool { return o.receipted() >= kill*n/3 })
		s.kill()
		t.Logf("kill %d: SIGKILL with %d of %d receipted", kill, o.receipted(), n)
		s.start()
	}
	waitFor(t, "every receipt", 90*time.Second, func() bool { return o.receipted() == n })
	cancel()
	<-senderDone

	// The history, read back over HTTP from the restarted process.
	seen := map[string]int{}
	tok := httpLogin(t, s.http, "kid")
	var after uint64
	for {
		var p page
		httpGet(t, s.http, fmt.Sprintf("/api/rooms/family/messages?after=%d&limit=200", after), tok, &p)
		for _, m := range p.Messages {
			seen[m.ID]++
			after = m.Seq
		}
		if !p.HasMore {
			break
		}
	}
	doubled := 0
	for _, c := range seen {
		if c > 1 {
			doubled++
		}
	}
	t.Logf("%d messages, %d receipts, %d archived, %d doubled, %d publishes in all", n, o.receipted(), len(seen), doubled, o.publishes())
	if len(seen) != n || doubled != 0 || after != n {
		t.Fatalf("archived %d distinct of %d (last seq %d), %d doubled", len(seen), n, after, doubled)
	}
	for id, seq := range o.seqs() {
		if seq == 0 {
			t.Fatalf("no receipt seq for %s", id)
		}
	}
}

// outbox is a sender that keeps each message until its receipt, and
// publishes it again, with the same id, after a reconnect and every few
// seconds without one, as the web chat does.
type outbox struct {
	mu      sync.Mutex
	pending map[string]time.Time // id -> last publish
	receipt map[string]uint64
	pubs    int
}

func newOutbox(n int) *outbox {
	o := &outbox{pending: map[string]time.Time{}, receipt: map[string]uint64{}}
	for i := range n {
		o.pending[fmt.Sprintf("k%05d", i)] = time.Time{}
	}
	return o
}

func (o *outbox) receipted() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.receipt)
}

func (o *outbox) publishes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pubs
}

func (o *outbox) seqs() map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range o.receipt {
		out[k] = v
	}
	return out
}

// due lists messages without a receipt not published in the last 3 s.
func (o *outbox) due() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for id, at := range o.pending {
		if time.Since(at) > 3*time.Second {
			ids = append(ids, id)
		}
	}
	return ids
}

func (o *outbox) send(ctx context.Context, t *testing.T, addr string) {
	for ctx.Err() == nil {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c := paho.NewClient(paho.ClientConfig{ClientID: "kid-outbox", Conn: conn,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				var r hearth.Receipt
				if json.Unmarshal(pr.Packet.Payload, &r) == nil {
					o.mu.Lock()
					for _, it := range r.Items {
						if _, ok := o.pending[it.ID]; ok {
							delete(o.pending, it.ID)
							o.receipt[it.ID] = it.Seq
						}
					}
					o.mu.Unlock()
				}
				return true, nil
			}}})
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.Connect(cctx, &paho.Connect{ClientID: "kid-outbox", CleanStart: true, KeepAlive: 5,
			Username: "kid", UsernameFlag: true, Password: []byte(password("kid")), PasswordFlag: true})
		ccancel()
		if err == nil {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "users/kid/receipts", QoS: 1}}})
			scancel()
		}
		if err != nil {
			conn.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		o.pump(ctx, c)
		c.Disconnect(&paho.Disconnect{})
	}
}

// pump publishes what is due, 32 at a time, until the connection fails
// or ctx ends.
func (o *outbox) pump(ctx context.Context, c *paho.Client) {
	for ctx.Err() == nil {
		ids := o.due()
		if len(ids) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-c.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		sem := make(chan struct{}, 32)
		var failed sync.Once
		bad := make(chan struct{})
		var wg sync.WaitGroup
		for _, id := range ids {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				o.mu.Lock()
				if _, ok := o.pending[id]; !ok {
					o.mu.Unlock()
					return
				}
				o.pending[id] = time.Now()
				o.pubs++
				o.mu.Unlock()
				payload, _ := json.Marshal(hearth.Payload{ID: id, Text: "survives kills"})
				pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				if _, err := c.Publish(pctx, &paho.Publish{Topic: "rooms/family/messages/kid", QoS: 1, Payload: payload}); err != nil {
					failed.Do(func() { close(bad) })
				}
			}()
			select {
			case <-bad:
				wg.Wait()
				return
			default:
			}
		}
		wg.Wait()
		select {
		case <-bad:
			return
		default:
		}
	}
}

func httpLogin(t *testing.T, addr, user string) string {
	t.Helper()
	var r struct{ Token string }
	if code := httpDo(t, "POST", "http://"+addr+"/api/login", "", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password(user)), &r); code != 200 {
		t.Fatalf("login %s: status %d", user, code)
	}
	return r.Token
}

func httpGet(t *testing.T, addr, path, tok string, out any) {
	t.Helper()
	if code := httpDo(t, "GET", "http://"+addr+path, tok, "", out); code != 200 {
		t.Fatalf("GET %s: status %d", path, code)
	}
}
