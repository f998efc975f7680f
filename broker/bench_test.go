package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-home/hearth"
	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// Benchmarks of the publish path: a chat message from an MQTT client goes
// through OnPublish (access, rate limit, validation, archive gate) and the
// router to each subscriber's session and connection.
//
// The benchmarks start the broker as the tests do (startBroker), and speak
// MQTT 5 with benchClient rather than mt.Raw (which fails through a
// *testing.T, as a reading goroutine must not), a client that allocates
// nothing per message of its own:
// what ReportAllocs counts is the broker's (and, in BenchmarkPublish/http,
// the one payload per message that an HTTP request would bring).

const (
	benchTopic  = "rooms/family/messages/kid"
	benchFilter = "rooms/family/messages/+"
	benchText   = "a typical short chat message, about sixty bytes of text"
	benchWait   = 30 * time.Second // for anything a benchmark waits for: a hang fails it
)

// benchReaders are the test users who may read the family room; the
// subscribers take turns among them, each user's logins being limited
// (hearth.LoginLimiter) to a few at a time.
var benchReaders = []string{"mum", "dad", "kid", "kitchen"}

// benchClient is a minimal MQTT 5 client: one connection, one reader.
type benchClient struct {
	conn net.Conn
	r    *bufio.Reader
	body []byte       // of the last packet read
	msg  []byte       // the body of the PUBLISH being written
	out  []byte       // the packet being written
	got  atomic.Int64 // messages received, as a subscriber
}

// dialBench connects user with client id id (clean start, no session
// expiry) and returns the client, or an error for a refused CONNECT.
func dialBench(addr, user, id string) (*benchClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &benchClient{conn: conn, r: bufio.NewReader(conn)}
	b := appendMQTTStr(nil, "MQTT")
	b = append(b, 5, 0xC2)                    // version 5; user name, password, clean start
	b = binary.BigEndian.AppendUint16(b, 600) // keep alive: longer than any benchmark
	b = append(b, 0)                          // no properties
	b = appendMQTTStr(appendMQTTStr(appendMQTTStr(b, id), user), password(user))
	if err := c.send(mt.CONNECT<<4, b); err != nil {
		conn.Close()
		return nil, err
	}
	typ, _, err := c.read()
	if err == nil && (typ != mt.CONNACK || len(c.body) < 2 || c.body[1] != 0) {
		err = fmt.Errorf("CONNACK of %s: type %d, body %x", id, typ, c.body)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func appendMQTTStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// send writes one packet: the fixed header's first byte, then body.
func (c *benchClient) send(first byte, body []byte) error {
	c.out = append(c.out[:0], first)
	for n := len(body); ; { // Remaining Length
		d := byte(n % 128)
		if n /= 128; n > 0 {
			d |= 0x80
		}
		c.out = append(c.out, d)
		if n == 0 {
			break
		}
	}
	c.out = append(c.out, body...)
	_, err := c.conn.Write(c.out)
	return err
}

// read reads one packet into c.body and returns its type and flags.
func (c *benchClient) read() (typ, flags byte, err error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(benchWait))
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n, mul := 0, 1
	for range 4 {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		n += int(d&0x7f) * mul
		if d&0x80 == 0 {
			break
		}
		mul *= 128
	}
	if cap(c.body) < n {
		c.body = make([]byte, n)
	}
	c.body = c.body[:n]
	if _, err := io.ReadFull(c.r, c.body); err != nil {
		return 0, 0, err
	}
	return h >> 4, h & 0xf, nil
}

// subscribe subscribes to filter at QoS 1 and waits for the SUBACK.
func (c *benchClient) subscribe(filter string) error {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = append(b, 0) // no properties
	b = append(appendMQTTStr(b, filter), 1)
	if err := c.send(mt.SUBSCRIBE<<4|2, b); err != nil {
		return err
	}
	typ, _, err := c.read()
	if err != nil {
		return err
	}
	// SUBACK: packet id, properties (their length is under 128 here), codes.
	if typ != mt.SUBACK || len(c.body) < 4 || c.body[len(c.body)-1] != 1 {
		return fmt.Errorf("SUBACK: type %d, body %x", typ, c.body)
	}
	return nil
}

// publish sends a QoS 1 PUBLISH with no properties.
func (c *benchClient) publish(topic string, id uint16, payload []byte) error {
	c.msg = appendMQTTStr(c.msg[:0], topic)
	c.msg = binary.BigEndian.AppendUint16(c.msg, id)
	c.msg = append(c.msg, 0)
	c.msg = append(c.msg, payload...)
	return c.send(mt.PUBLISH<<4|2, c.msg)
}

// awaitPuback reads the PUBACK of packet id; its reason code must be a
// success (the broker refused nothing).
func (c *benchClient) awaitPuback(id uint16) error {
	typ, _, err := c.read()
	switch {
	case err != nil:
		return err
	case typ != mt.PUBACK || len(c.body) < 2 || binary.BigEndian.Uint16(c.body) != id:
		return fmt.Errorf("got type %d body %x, want the PUBACK of %d", typ, c.body, id)
	case len(c.body) > 2 && c.body[2] >= 0x80:
		return fmt.Errorf("publish refused: PUBACK code %#x", c.body[2])
	}
	return nil
}

// benchSubs are subscribers that count, over all of them, the messages
// they receive on benchTopic and acknowledge each one.
type benchSubs struct {
	got     atomic.Int64
	want    atomic.Int64  // got reaching it signals reached
	reached chan struct{} // one slot
	errs    chan error
	closing atomic.Bool
	clients []*benchClient
}

// subscribeBench connects n subscribers to benchFilter, a few at a time.
// They are closed when the benchmark ends.
func subscribeBench(b *testing.B, addr string, n int) *benchSubs {
	b.Helper()
	s := &benchSubs{reached: make(chan struct{}, 1), errs: make(chan error, 1), clients: make([]*benchClient, n)}
	b.Cleanup(func() {
		s.closing.Store(true)
		for _, c := range s.clients {
			if c != nil {
				c.conn.Close()
			}
		}
	})
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(n, 16) { // within hearth.LoginLimiter's attempts at once: 5 per user, 20 per address
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				user := benchReaders[i%len(benchReaders)]
				c, err := dialBench(addr, user, fmt.Sprintf("bench-sub-%d", i))
				if err == nil {
					err = c.subscribe(benchFilter)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("subscriber %d (%s): %w", i, user, err)
					}
					mu.Unlock()
					if c != nil {
						c.conn.Close()
					}
					return
				}
				s.clients[i] = c
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	for _, c := range s.clients {
		go s.run(c)
	}
	return s
}

// run reads c's packets until its connection ends, acknowledging every
// PUBLISH.
func (s *benchSubs) run(c *benchClient) {
	ack := []byte{mt.PUBACK << 4, 2, 0, 0}
	for {
		typ, flags, err := c.read()
		if err == nil && typ == mt.PUBLISH {
			err = s.received(c, flags, ack)
		}
		if err != nil {
			if !s.closing.Load() {
				select {
				case s.errs <- err:
				default:
				}
			}
			return
		}
	}
}

func (s *benchSubs) received(c *benchClient, flags byte, ack []byte) error {
	body := c.body
	if len(body) < 2 {
		return errors.New("short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+tl+2 || string(body[2:2+tl]) != benchTopic {
		return fmt.Errorf("PUBLISH %x, want one on %s", body, benchTopic)
	}
	if flags>>1&3 != 1 {
		return fmt.Errorf("PUBLISH at QoS %d, want 1", flags>>1&3)
	}
	copy(ack[2:], body[2+tl:2+tl+2])
	if _, err := c.conn.Write(ack); err != nil {
		return err
	}
	c.got.Add(1)
	if s.got.Add(1) == s.want.Load() {
		select {
		case s.reached <- struct{}{}:
		default:
		}
	}
	return nil
}

// await waits until the subscribers have received n messages in all.
func (s *benchSubs) await(b *testing.B, n int64) {
	s.want.Store(n)
	var timeout <-chan time.Time
	for s.got.Load() < n {
		if timeout == nil {
			timeout = time.After(benchWait)
		}
		select {
		case <-s.reached:
		case err := <-s.errs:
			b.Fatalf("subscriber: %v", err)
		case <-timeout:
			b.Fatalf("subscribers got %d messages, want %d", s.got.Load(), n)
		}
	}
}

// benchPayload appends a chat message payload with id m<n> to buf[:0].
func benchPayload(buf []byte, n uint64) []byte {
	buf = append(buf[:0], `{"id":"m`...)
	buf = strconv.AppendUint(buf, n, 10)
	buf = append(buf, `","text":"`...)
	buf = append(buf, benchText...)
	return append(buf, `"}`...)
}

// checkEach fails b unless every subscriber has received n messages.
func (s *benchSubs) checkEach(b *testing.B, n int64) {
	b.Helper()
	for i, c := range s.clients {
		if got := c.got.Load(); got != n {
			b.Fatalf("subscriber %d got %d messages, want %d", i, got, n)
		}
	}
}

// checkNothingRefused fails b if the broker refused or dropped anything.
func checkNothingRefused(b *testing.B, br *Broker) {
	b.Helper()
	n := br.Stats.QueueDropped.Load()
	for _, r := range Reasons() {
		n += br.Refused(r)
	}
	if n > 0 {
		b.Fatalf("%d publishes refused or deliveries dropped", n)
	}
}

// BenchmarkPublish measures one chat message published by kid on
// rooms/family/messages/kid, with one QoS 1 subscriber (dad, over TCP)
// receiving and acknowledging it:
//
//   - mqtt: a QoS 1 PUBLISH over TCP, until its PUBACK. mochi answers
//     once OnPublish has returned: access check, rate limit, payload
//     validation, archive gate, and the router's delivery (queued and
//     written to the subscriber's connection).
//   - http: Broker.Publish, the HTTP API's path: the same checks and
//     delivery, in process. It returns as soon as the delivery is written,
//     so the subscriber may lag by at most publishWindow messages.
//
// Every message must reach the subscriber before the clock stops.
func BenchmarkPublish(b *testing.B) {
	b.Run("mqtt", func(b *testing.B) {
		br := startBroker(b, measured).Broker
		subs := subscribeBench(b, br.MQTTAddr(), 1)
		n := publishLoop(b, br, nil)
		subs.await(b, int64(n))
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		subs.checkEach(b, int64(n))
		checkNothingRefused(b, br)
	})
	b.Run("http", func(b *testing.B) {
		const publishWindow = 256 // well under what may be in flight to the subscriber: nothing waits in its queue
		br := startBroker(b, measured).Broker
		subs := subscribeBench(b, br.MQTTAddr(), 1)
		var n uint64
		b.ReportAllocs()
		for b.Loop() {
			n++
			// A fresh payload, as the HTTP handler's: the broker keeps it
			// until the subscriber acknowledges.
			if err := br.Publish("kid", benchTopic, benchPayload(nil, n)); err != nil {
				b.Fatal(err)
			}
			if n > publishWindow && subs.got.Load() < int64(n-publishWindow) {
				subs.await(b, int64(n-publishWindow))
			}
		}
		subs.await(b, int64(n))
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		subs.checkEach(b, int64(n))
		checkNothingRefused(b, br)
	})
}

// publishLoop publishes a chat message from kid at QoS 1 over TCP for each
// benchmark iteration, waiting for its PUBACK and then for each (when not
// nil) with the number sent so far; it returns that number.
func publishLoop(b *testing.B, br *Broker, each func(n uint64)) uint64 {
	pub, err := dialBench(br.MQTTAddr(), "kid", "bench-pub")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.conn.Close() })
	var payload []byte
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		n++
		payload = benchPayload(payload, n)
		id := uint16(n%65535 + 1)
		if err := pub.publish(benchTopic, id, payload); err != nil {
			b.Fatal(err)
		}
		if err := pub.awaitPuback(id); err != nil {
			b.Fatal(err)
		}
		if each != nil {
			each(n)
		}
	}
	return n
}

// BenchmarkFanOut measures one chat message (a QoS 1 publish from kid,
// over TCP) fanned out to N QoS 1 subscribers, from the PUBLISH until
// every subscriber has received it; they acknowledge each delivery. The
// subscribers are spread over four users who may read the room.
func BenchmarkFanOut(b *testing.B) {
	for _, subscribers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", subscribers), func(b *testing.B) {
			br := startBroker(b, measured).Broker
			subs := subscribeBench(b, br.MQTTAddr(), subscribers)
			n := publishLoop(b, br, func(n uint64) { subs.await(b, int64(n)*int64(subscribers)) })
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(n)*float64(subscribers)/sec, "deliveries/s")
			b.ReportMetric(sec*1e9/(float64(n)*float64(subscribers)), "ns/delivery")
			subs.checkEach(b, int64(n))
			checkNothingRefused(b, br)
		})
	}
}

// measured has the broker time its deliveries into a histogram, as hearth
// serve does.
func measured(_ *hearth.Config, c *Config) {
	c.DeliveryLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bench_delivery_seconds", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)})
}
