package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// broker is one of the two brokers under test, running as its own
// process.
type broker struct {
	name   string
	mqtt   string // host:port of MQTT over TCP
	ws     string // ws:// URL of MQTT over WebSocket
	http   string // hearth's HTTP address; "" for mosquitto
	dir    string
	cmd    *exec.Cmd
	done   chan error
	wsPass func(user string) string // the password of user's WebSocket clients (a token for hearth's)
	start  time.Duration            // exec to ready
}

// benchPassword is the password of every bench user on hearth.
const benchPassword = "bench-password"

// startHearth writes a config into dir and starts `hearth serve`. The users
// have bcrypt hashes of the default cost, as `hearth passwd` makes them.
func startHearth(ctx context.Context, bin, dir string, historyFill int) (*broker, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	mqttPort, httpPort := freePort(), freePort()
	cfg := fmt.Sprintf(`data_dir: %q
http: {addr: "127.0.0.1:%d"}
mqtt: {addr: "127.0.0.1:%d", publish_rate: 0, max_connections: 0, max_connections_per_user: 0, connect_rate: {per_address: 0, per_user: 0}}
users:
  - {name: mum, role: admin, password_hash: %q}
  - {name: kid, password_hash: %q}
  - {name: kitchen, role: device, password_hash: %q}
rooms:
  - {name: family, title: Family, members: ["*"], readers: [kitchen]}
`, dir, httpPort, mqttPort, hash, hash, hash)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if historyFill > 0 {
		if err := fillHistory(filepath.Join(dir, "history.db"), "family", historyFill); err != nil {
			return nil, err
		}
	}
	b := &broker{name: "hearth", dir: dir,
		mqtt: fmt.Sprintf("127.0.0.1:%d", mqttPort),
		ws:   fmt.Sprintf("ws://127.0.0.1:%d/mqtt", httpPort),
		http: fmt.Sprintf("127.0.0.1:%d", httpPort),
	}
	tokens := map[string]string{}
	b.wsPass = func(user string) string {
		if t, ok := tokens[user]; ok {
			return t
		}
		out, err := exec.CommandContext(ctx, bin, "token", "-config", path, "-user", user, "-ttl", "24h").Output()
		if err != nil {
			return "no token: " + err.Error()
		}
		tokens[user] = strings.TrimSpace(string(out))
		return tokens[user]
	}
	begin := time.Now()
	if err := b.exec(ctx, bin, "serve", "-config", path); err != nil {
		return nil, err
	}
	ready := func() bool {
		resp, err := http.Get("http://" + b.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if err := b.waitUntil(10*time.Second, ready); err != nil {
		return nil, err
	}
	b.start = time.Since(begin)
	return b, nil
}

// startMosquitto starts Debian's mosquitto with a TCP and a WebSocket
// listener, anonymous access, and no limit on queued messages.
func startMosquitto(ctx context.Context, bin, dir string) (*broker, error) {
	mqttPort, wsPort := freePort(), freePort()
	cfg := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nlistener %d 127.0.0.1\nprotocol websockets\n", mqttPort, wsPort)
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	b := &broker{name: "mosquitto", dir: dir,
		mqtt: fmt.Sprintf("127.0.0.1:%d", mqttPort),
		ws:   fmt.Sprintf("ws://127.0.0.1:%d", wsPort),
	}
	b.wsPass = func(string) string { return benchPassword }
	begin := time.Now()
	if err := b.exec(ctx, bin, "-c", path); err != nil {
		return nil, err
	}
	listening := func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", wsPort))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	if err := b.waitUntil(10*time.Second, listening); err != nil {
		return nil, err
	}
	b.start = time.Since(begin)
	return b, nil
}

func (b *broker) exec(ctx context.Context, bin string, args ...string) error {
	b.cmd = exec.CommandContext(ctx, bin, args...)
	log, err := os.Create(filepath.Join(b.dir, b.name+".log"))
	if err != nil {
		return err
	}
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", b.name, err)
	}
	b.done = make(chan error, 1)
	go func() { b.done <- b.cmd.Wait(); log.Close() }()
	return nil
}

func (b *broker) waitUntil(limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		select {
		case err := <-b.done:
			return fmt.Errorf("%s exited: %v (log: %s)", b.name, err, b.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (log: %s)", b.name, limit, b.logTail())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

func (b *broker) logTail() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, b.name+".log"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// stop ends the broker with SIGTERM, and SIGKILL if it lingers.
func (b *broker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// rss is the broker's resident memory in bytes.
func (b *broker) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpu is the CPU time the broker has used so far.
func (b *broker) cpu() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces) start
	// with the state, field 3; utime and stime are fields 14 and 15, in
	// clock ticks (100 a second on Linux).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// client is an independent client process whose output lines are handed,
// with the time each arrived, to see.
type client struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	err   strings.Builder
}

func startClient(ctx context.Context, see func(line string, at time.Time), bin string, args ...string) (*client, error) {
	c := &client{cmd: exec.CommandContext(ctx, bin, args...), done: make(chan struct{})}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	c.cmd.Stderr = &c.err
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			see(sc.Text(), time.Now())
		}
	}()
	return c, nil
}

// stop closes the client's stdin, then kills it if it has not ended.
func (c *client) stop() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	_ = c.cmd.Wait()
}
