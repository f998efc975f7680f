package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// raw is an MQTT 3.1.1 or 5 client written for the conformance tests:
// it sends exactly the packets a test asks for and shows every packet the
// broker sends, so that what a client library would hide (a packet id, a
// reason code, a property) can be asserted on the wire.
type raw struct {
	t       *testing.T
	c       net.Conn
	r       *bufio.Reader
	version byte
	pending []packet // publishes read while waiting for something else
}

// Packet types.
const (
	tConnect     = 1
	tConnack     = 2
	tPublish     = 3
	tPuback      = 4
	tPubrec      = 5
	tPubrel      = 6
	tPubcomp     = 7
	tSubscribe   = 8
	tSuback      = 9
	tUnsubscribe = 10
	tPingresp    = 13
	tDisconnect  = 14
)

// MQTT 5 property ids used here.
const (
	pPayloadFormat   = 0x01
	pMessageExpiry   = 0x02
	pContentType     = 0x03
	pResponseTopic   = 0x08
	pCorrelation     = 0x09
	pSubscriptionID  = 0x0B
	pSessionExpiry   = 0x11
	pAssignedID      = 0x12
	pServerKeepAlive = 0x13
	pWillDelay       = 0x18
	pReceiveMaximum  = 0x21
	pTopicAliasMax   = 0x22
	pTopicAlias      = 0x23
	pUser            = 0x26
	pMaxPacketSize   = 0x27
)

// props are MQTT 5 properties: each id with its values, in order.
type props map[byte][]any

type pair struct{ k, v string }

func (p props) add(id byte, v any) props {
	if p == nil {
		p = props{}
	}
	p[id] = append(p[id], v)
	return p
}

func (p props) u32(id byte) (uint32, bool) {
	if len(p[id]) == 0 {
		return 0, false
	}
	return p[id][0].(uint32), true
}

func (p props) u16(id byte) (uint16, bool) {
	if len(p[id]) == 0 {
		return 0, false
	}
	return p[id][0].(uint16), true
}

func (p props) str(id byte) string {
	if len(p[id]) == 0 {
		return ""
	}
	switch v := p[id][0].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (p props) ints(id byte) []int {
	var out []int
	for _, v := range p[id] {
		out = append(out, v.(int))
	}
	return out
}

func propKind(id byte) byte {
	switch id {
	case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
		return 'b'
	case 0x13, 0x21, 0x22, 0x23:
		return 'h'
	case 0x02, 0x11, 0x18, 0x27:
		return 'w'
	case 0x0B:
		return 'v'
	case 0x09, 0x16:
		return 'd'
	case 0x26:
		return 'p'
	}
	return 's'
}

func appendVBI(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func encodeProps(p props) []byte {
	var body []byte
	for id, vs := range p {
		for _, v := range vs {
			body = append(body, id)
			switch propKind(id) {
			case 'b':
				body = append(body, v.(byte))
			case 'h':
				body = binary.BigEndian.AppendUint16(body, v.(uint16))
			case 'w':
				body = binary.BigEndian.AppendUint32(body, v.(uint32))
			case 'v':
				body = appendVBI(body, v.(int))
			case 'd':
				body = appendStr(body, string(v.([]byte)))
			case 'p':
				body = appendStr(appendStr(body, v.(pair).k), v.(pair).v)
			default:
				body = appendStr(body, v.(string))
			}
		}
	}
	return append(appendVBI(nil, len(body)), body...)
}

// dec reads the fields of a packet body.
type dec struct {
	b   []byte
	err error
}

func (d *dec) n(k int) []byte {
	if d.err != nil || len(d.b) < k {
		d.err = io.ErrUnexpectedEOF
		return make([]byte, k)
	}
	out := d.b[:k]
	d.b = d.b[k:]
	return out
}

func (d *dec) u8() byte     { return d.n(1)[0] }
func (d *dec) u16() uint16  { return binary.BigEndian.Uint16(d.n(2)) }
func (d *dec) u32() uint32  { return binary.BigEndian.Uint32(d.n(4)) }
func (d *dec) str() string  { return string(d.n(int(d.u16()))) }
func (d *dec) data() []byte { return bytes.Clone(d.n(int(d.u16()))) }

func (d *dec) vbi() int {
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		c := d.u8()
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		mul *= 128
	}
	return n
}

func (d *dec) props() props {
	n := d.vbi()
	sub := &dec{b: d.n(n)}
	p := props{}
	for len(sub.b) > 0 && sub.err == nil {
		id := sub.u8()
		switch propKind(id) {
		case 'b':
			p = p.add(id, sub.u8())
		case 'h':
			p = p.add(id, sub.u16())
		case 'w':
			p = p.add(id, sub.u32())
		case 'v':
			p = p.add(id, sub.vbi())
		case 'd':
			p = p.add(id, sub.data())
		case 'p':
			p = p.add(id, pair{sub.str(), sub.str()})
		default:
			p = p.add(id, sub.str())
		}
	}
	if sub.err != nil {
		d.err = sub.err
	}
	return p
}

// packet is a packet the broker sent, decoded as far as the tests need.
type packet struct {
	typ, flags byte
	id         uint16
	code       byte // CONNACK, PUBACK..PUBCOMP, DISCONNECT; 0 when absent
	codes      []byte
	present    bool
	topic      string
	payload    []byte
	props      props
}

func (p packet) qos() byte    { return p.flags >> 1 & 3 }
func (p packet) retain() bool { return p.flags&1 == 1 }
func (p packet) dup() bool    { return p.flags&8 == 8 }

func (p packet) String() string {
	return fmt.Sprintf("{type %d id %d code %#x topic %q qos %d retain %v}", p.typ, p.id, p.code, p.topic, p.qos(), p.retain())
}

// dialRaw opens a TCP connection to addr.
func dialRaw(t *testing.T, addr string, version byte) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, r: bufio.NewReader(c), version: version}
}

func (r *raw) send(typ, flags byte, body []byte) {
	r.t.Helper()
	b := append([]byte{typ<<4 | flags}, appendVBI(nil, len(body))...)
	if _, err := r.c.Write(append(b, body...)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// connectOpts for raw clients.
type rawConnect struct {
	id, user, pass string
	clean          bool
	keepalive      uint16
	props          props
	will           *rawWill
}

type rawWill struct {
	topic   string
	payload string
	qos     byte
	retain  bool
	props   props
}

// connect sends a CONNECT and returns the CONNACK (or what came instead).
func (r *raw) connect(o rawConnect) packet {
	r.t.Helper()
	flags := byte(0)
	if o.clean {
		flags |= 2
	}
	if o.will != nil {
		flags |= 4 | o.will.qos<<3
		if o.will.retain {
			flags |= 0x20
		}
	}
	if o.pass != "" || o.user != "" {
		flags |= 0x40
	}
	if o.user != "" {
		flags |= 0x80
	}
	if o.keepalive == 0 {
		o.keepalive = 30
	}
	b := appendStr(nil, "MQTT")
	b = append(b, r.version, flags)
	b = binary.BigEndian.AppendUint16(b, o.keepalive)
	if r.version == 5 {
		b = append(b, encodeProps(o.props)...)
	}
	b = appendStr(b, o.id)
	if o.will != nil {
		if r.version == 5 {
			b = append(b, encodeProps(o.will.props)...)
		}
		b = appendStr(appendStr(b, o.will.topic), o.will.payload)
	}
	if o.user != "" {
		b = appendStr(b, o.user)
	}
	if flags&0x40 != 0 {
		b = appendStr(b, o.pass)
	}
	r.send(tConnect, 0, b)
	return r.read()
}

// subscribe sends a SUBSCRIBE of one filter with options (QoS in the low
// bits; MQTT 5: No Local 4, Retain As Published 8, Retain Handling <<4)
// and returns the SUBACK's codes.
func (r *raw) subscribe(id uint16, filter string, options byte, p props) []byte {
	r.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, id)
	if r.version == 5 {
		b = append(b, encodeProps(p)...)
	}
	b = append(appendStr(b, filter), options)
	r.send(tSubscribe, 2, b)
	ack := r.expect(tSuback)
	return ack.codes
}

func (r *raw) publish(topic string, payload []byte, qos byte, retain bool, id uint16, p props) {
	r.t.Helper()
	flags := qos << 1
	if retain {
		flags |= 1
	}
	r.publishFlags(topic, payload, flags, id, p)
}

// publishFlags sends a PUBLISH with the fixed header's flags as given.
func (r *raw) publishFlags(topic string, payload []byte, flags byte, id uint16, p props) {
	r.t.Helper()
	b := appendStr(nil, topic)
	if flags>>1&3 > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if r.version == 5 {
		b = append(b, encodeProps(p)...)
	}
	r.send(tPublish, flags, append(b, payload...))
}

// ack sends a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (r *raw) ack(typ byte, id uint16) {
	r.t.Helper()
	flags := byte(0)
	if typ == tPubrel {
		flags = 2
	}
	r.send(typ, flags, binary.BigEndian.AppendUint16(nil, id))
}

// read returns the next packet; it fails the test after 5 s.
func (r *raw) read() packet {
	r.t.Helper()
	p, err := r.readWithin(5 * time.Second)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p
}

// readWithin returns the next packet, or an error if none comes within d
// (os.ErrDeadlineExceeded) or the connection ends (io.EOF).
func (r *raw) readWithin(d time.Duration) (packet, error) {
	if len(r.pending) > 0 {
		p := r.pending[0]
		r.pending = r.pending[1:]
		return p, nil
	}
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	h, err := r.r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		c, err := r.r.ReadByte()
		if err != nil {
			return packet{}, err
		}
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return packet{}, err
	}
	p := packet{typ: h >> 4, flags: h & 0xf}
	d5 := &dec{b: body}
	v5 := r.version == 5
	switch p.typ {
	case tConnack:
		p.present = d5.u8()&1 == 1
		p.code = d5.u8()
		if v5 && len(d5.b) > 0 {
			p.props = d5.props()
		}
	case tPublish:
		p.topic = d5.str()
		if p.qos() > 0 {
			p.id = d5.u16()
		}
		if v5 {
			p.props = d5.props()
		}
		p.payload = bytes.Clone(d5.b)
	case tPuback, tPubrec, tPubrel, tPubcomp:
		p.id = d5.u16()
		if v5 && len(d5.b) > 0 {
			p.code = d5.u8()
			if len(d5.b) > 0 {
				p.props = d5.props()
			}
		}
	case tSuback:
		p.id = d5.u16()
		if v5 {
			p.props = d5.props()
		}
		p.codes = bytes.Clone(d5.b)
	case tDisconnect:
		if len(d5.b) > 0 {
			p.code = d5.u8()
		}
	}
	if d5.err != nil {
		return p, fmt.Errorf("malformed packet type %d: %w", p.typ, d5.err)
	}
	return p, nil
}

// expect reads until a packet of type typ, failing on anything else but
// publishes, which it keeps for the next read.
func (r *raw) expect(typ byte) packet {
	r.t.Helper()
	var kept []packet
	defer func() { r.pending = append(kept, r.pending...) }()
	for {
		p := r.read()
		switch {
		case p.typ == typ:
			return p
		case p.typ == tPublish && typ != tPublish:
			kept = append(kept, p)
		default:
			r.t.Fatalf("got %v, want a packet of type %d", p, typ)
		}
	}
}

// closed reports whether the broker ends the connection within d, and
// the DISCONNECT reason code if it sent one first (0 otherwise).
func (r *raw) closed(d time.Duration) (bool, byte) {
	deadline := time.Now().Add(d)
	var code byte
	for time.Now().Before(deadline) {
		p, err := r.readWithin(time.Until(deadline))
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (err != nil && !isTimeout(err)) {
			return true, code
		}
		if err != nil {
			return false, code
		}
		if p.typ == tDisconnect {
			code = p.code
		}
	}
	return false, code
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
