package mqtttest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// NeedTool finds a command that the tests use as an independent peer.
// .ci/run installs it; a missing one fails the test with the package to
// install.
func NeedTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: apt-get install %s (.ci/run does)", name, pkg)
	}
	return p
}

// HostPort splits a host:port address.
func HostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// FreePort returns a loopback address with a port nobody listens on now.
func FreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitFor polls cond until it holds or d has passed.
func WaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Heap is the live heap after two garbage collections.
func Heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// MosquittoSub is Debian's mosquitto_sub, running.
type MosquittoSub struct {
	Cmd *exec.Cmd
	Out SafeBuffer // what it printed, its -d debug lines included
}

// StartMosquittoSub starts mosquitto_sub on addr with protocol version
// ("mqttv311" or "mqttv5") and args, and waits for its SUBACK. It is
// stopped when the test ends.
func StartMosquittoSub(t *testing.T, addr, version string, args []string) *MosquittoSub {
	t.Helper()
	bin := NeedTool(t, "mosquitto_sub", "mosquitto-clients")
	h, p := HostPort(t, addr)
	all := append([]string{"-h", h, "-p", p, "-V", version, "-v", "-d"}, args...)
	// stdbuf: mosquitto_sub's stdout is a pipe here, which libc buffers.
	s := &MosquittoSub{Cmd: exec.Command(NeedTool(t, "stdbuf", "coreutils"), append([]string{"-oL", bin}, all...)...)}
	s.Cmd.Stdout, s.Cmd.Stderr = &s.Out, &s.Out
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.Cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second): // it may be waiting for a broker that is gone
			s.Cmd.Process.Kill()
			<-done
		}
	})
	WaitFor(t, "mosquitto_sub's SUBACK", 5*time.Second, func() bool { return strings.Contains(s.Out.String(), "SUBACK") })
	return s
}

// Lines are the messages it printed so far ("topic payload").
func (s *MosquittoSub) Lines() []string {
	var lines []string
	for _, l := range strings.Split(s.Out.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "Client ") && !strings.HasPrefix(l, "Subscribed ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// SafeBuffer is a bytes.Buffer for several goroutines.
type SafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
