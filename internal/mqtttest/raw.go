// Package mqtttest has what the MQTT tests of hearth's packages share: a
// raw MQTT client that shows every packet on the wire, and helpers that run
// Debian's mosquitto tools.
package mqtttest

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

// Raw is an MQTT 3.1.1 or 5 client written for the conformance tests:
// it sends exactly the packets a test asks for and shows every packet the
// broker sends, so that what a client library would hide (a packet id, a
// reason code, a property) can be asserted on the wire.
type Raw struct {
	t       *testing.T
	Conn    net.Conn
	r       *bufio.Reader
	version byte
	pending []Packet // publishes read while waiting for something else
}

// Packet types.
const (
	CONNECT     = 1
	CONNACK     = 2
	PUBLISH     = 3
	PUBACK      = 4
	PUBREC      = 5
	PUBREL      = 6
	PUBCOMP     = 7
	SUBSCRIBE   = 8
	SUBACK      = 9
	UNSUBSCRIBE = 10
	UNSUBACK    = 11
	PINGRESP    = 13
	DISCONNECT  = 14
)

// MQTT 5 property ids used here.
const (
	PropPayloadFormat   = 0x01
	PropMessageExpiry   = 0x02
	PropContentType     = 0x03
	PropResponseTopic   = 0x08
	PropCorrelation     = 0x09
	PropSubscriptionID  = 0x0B
	PropSessionExpiry   = 0x11
	PropAssignedID      = 0x12
	PropServerKeepAlive = 0x13
	PropWillDelay       = 0x18
	PropReceiveMaximum  = 0x21
	PropTopicAliasMax   = 0x22
	PropTopicAlias      = 0x23
	PropUser            = 0x26
	PropMaxPacketSize   = 0x27
)

// Props are MQTT 5 properties: each id with its values, in order.
type Props map[byte][]any

// Pair is a User Property.
type Pair struct{ K, V string }

func (p Props) Add(id byte, v any) Props {
	if p == nil {
		p = Props{}
	}
	p[id] = append(p[id], v)
	return p
}

func (p Props) U32(id byte) (uint32, bool) {
	if len(p[id]) == 0 {
		return 0, false
	}
	return p[id][0].(uint32), true
}

func (p Props) U16(id byte) (uint16, bool) {
	if len(p[id]) == 0 {
		return 0, false
	}
	return p[id][0].(uint16), true
}

func (p Props) Str(id byte) string {
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

func (p Props) Ints(id byte) []int {
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

func encodeProps(p Props) []byte {
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
				body = appendStr(appendStr(body, v.(Pair).K), v.(Pair).V)
			default:
				body = appendStr(body, v.(string))
			}
		}
	}
	return append(appendVBI(nil, len(body)), body...)
}

// dec reads the fields of a Packet body.
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
func (d *dec) U16() uint16  { return binary.BigEndian.Uint16(d.n(2)) }
func (d *dec) U32() uint32  { return binary.BigEndian.Uint32(d.n(4)) }
func (d *dec) Str() string  { return string(d.n(int(d.U16()))) }
func (d *dec) data() []byte { return bytes.Clone(d.n(int(d.U16()))) }

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

func (d *dec) Props() Props {
	n := d.vbi()
	sub := &dec{b: d.n(n)}
	p := Props{}
	for len(sub.b) > 0 && sub.err == nil {
		id := sub.u8()
		switch propKind(id) {
		case 'b':
			p = p.Add(id, sub.u8())
		case 'h':
			p = p.Add(id, sub.U16())
		case 'w':
			p = p.Add(id, sub.U32())
		case 'v':
			p = p.Add(id, sub.vbi())
		case 'd':
			p = p.Add(id, sub.data())
		case 'p':
			p = p.Add(id, Pair{sub.Str(), sub.Str()})
		default:
			p = p.Add(id, sub.Str())
		}
	}
	if sub.err != nil {
		d.err = sub.err
	}
	return p
}

// Packet is a packet the broker sent, decoded as far as the tests need.
type Packet struct {
	Type, Flags byte
	ID          uint16
	Code        byte // CONNACK, PUBACK..PUBCOMP, DISCONNECT; 0 when absent
	Codes       []byte
	Present     bool // CONNACK: session present
	Topic       string
	Payload     []byte
	Props       Props
}

func (p Packet) QoS() byte    { return p.Flags >> 1 & 3 }
func (p Packet) Retain() bool { return p.Flags&1 == 1 }
func (p Packet) Dup() bool    { return p.Flags&8 == 8 }

func (p Packet) String() string {
	return fmt.Sprintf("{type %d id %d code %#x topic %q qos %d retain %v}", p.Type, p.ID, p.Code, p.Topic, p.QoS(), p.Retain())
}

// DialRaw opens a TCP connection to addr.
func DialRaw(t *testing.T, addr string, version byte) *Raw {
	t.Helper()
	return DialRawFrom(t, "", addr, version)
}

// DialRawFrom opens a TCP connection to addr from the local IP address
// local (any loopback address, 127.0.0.2 say, to stand for another
// machine); "" lets the system choose.
func DialRawFrom(t *testing.T, local, addr string, version byte) *Raw {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Raw{t: t, Conn: c, r: bufio.NewReader(c), version: version}
}

func (r *Raw) Send(typ, flags byte, body []byte) {
	r.t.Helper()
	b := append([]byte{typ<<4 | flags}, appendVBI(nil, len(body))...)
	if _, err := r.Conn.Write(append(b, body...)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// connectOpts for Raw clients.
type Connect struct {
	ID, User, Pass string
	Clean          bool   // clean session (3.1.1), clean start (5)
	Keepalive      uint16 // 0: 30 s
	Props          Props
	Will           *Will
}

type Will struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
	Props   Props
}

// connect sends a CONNECT and returns the CONNACK (or what came instead).
func (r *Raw) Connect(o Connect) Packet {
	r.t.Helper()
	flags := byte(0)
	if o.Clean {
		flags |= 2
	}
	if o.Will != nil {
		flags |= 4 | o.Will.QoS<<3
		if o.Will.Retain {
			flags |= 0x20
		}
	}
	if o.Pass != "" || o.User != "" {
		flags |= 0x40
	}
	if o.User != "" {
		flags |= 0x80
	}
	if o.Keepalive == 0 {
		o.Keepalive = 30
	}
	b := appendStr(nil, "MQTT")
	b = append(b, r.version, flags)
	b = binary.BigEndian.AppendUint16(b, o.Keepalive)
	if r.version == 5 {
		b = append(b, encodeProps(o.Props)...)
	}
	b = appendStr(b, o.ID)
	if o.Will != nil {
		if r.version == 5 {
			b = append(b, encodeProps(o.Will.Props)...)
		}
		b = appendStr(appendStr(b, o.Will.Topic), o.Will.Payload)
	}
	if o.User != "" {
		b = appendStr(b, o.User)
	}
	if flags&0x40 != 0 {
		b = appendStr(b, o.Pass)
	}
	r.Send(CONNECT, 0, b)
	return r.Read()
}

// subscribe sends a SUBSCRIBE of one filter with options (QoS in the low
// bits; MQTT 5: No Local 4, Retain As Published 8, Retain Handling <<4)
// and returns the SUBACK's codes.
func (r *Raw) Subscribe(id uint16, filter string, options byte, p Props) []byte {
	r.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, id)
	if r.version == 5 {
		b = append(b, encodeProps(p)...)
	}
	b = append(appendStr(b, filter), options)
	r.Send(SUBSCRIBE, 2, b)
	ack := r.Expect(SUBACK)
	return ack.Codes
}

// Unsubscribe sends an UNSUBSCRIBE of filter and returns the UNSUBACK.
func (r *Raw) Unsubscribe(id uint16, filter string) Packet {
	r.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, id)
	if r.version == 5 {
		b = append(b, 0) // no properties
	}
	r.Send(UNSUBSCRIBE, 2, appendStr(b, filter))
	return r.Expect(UNSUBACK)
}

func (r *Raw) Publish(topic string, payload []byte, qos byte, retain bool, id uint16, p Props) {
	r.t.Helper()
	flags := qos << 1
	if retain {
		flags |= 1
	}
	r.PublishFlags(topic, payload, flags, id, p)
}

// publishFlags sends a PUBLISH with the fixed header's flags as given.
func (r *Raw) PublishFlags(topic string, payload []byte, flags byte, id uint16, p Props) {
	r.t.Helper()
	b := appendStr(nil, topic)
	if flags>>1&3 > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if r.version == 5 {
		b = append(b, encodeProps(p)...)
	}
	r.Send(PUBLISH, flags, append(b, payload...))
}

// ack sends a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (r *Raw) Ack(typ byte, id uint16) {
	r.t.Helper()
	flags := byte(0)
	if typ == PUBREL {
		flags = 2
	}
	r.Send(typ, flags, binary.BigEndian.AppendUint16(nil, id))
}

// read returns the next Packet; it fails the test after 5 s.
func (r *Raw) Read() Packet {
	r.t.Helper()
	p, err := r.ReadWithin(5 * time.Second)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p
}

// readWithin returns the next Packet, or an error if none comes within d
// (os.ErrDeadlineExceeded) or the connection ends (io.EOF).
func (r *Raw) ReadWithin(d time.Duration) (Packet, error) {
	if len(r.pending) > 0 {
		p := r.pending[0]
		r.pending = r.pending[1:]
		return p, nil
	}
	_ = r.Conn.SetReadDeadline(time.Now().Add(d))
	h, err := r.r.ReadByte()
	if err != nil {
		return Packet{}, err
	}
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		c, err := r.r.ReadByte()
		if err != nil {
			return Packet{}, err
		}
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return Packet{}, err
	}
	p := Packet{Type: h >> 4, Flags: h & 0xf}
	d5 := &dec{b: body}
	v5 := r.version == 5
	switch p.Type {
	case CONNACK:
		p.Present = d5.u8()&1 == 1
		p.Code = d5.u8()
		if v5 && len(d5.b) > 0 {
			p.Props = d5.Props()
		}
	case PUBLISH:
		p.Topic = d5.Str()
		if p.QoS() > 0 {
			p.ID = d5.U16()
		}
		if v5 {
			p.Props = d5.Props()
		}
		p.Payload = bytes.Clone(d5.b)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p.ID = d5.U16()
		if v5 && len(d5.b) > 0 {
			p.Code = d5.u8()
			if len(d5.b) > 0 {
				p.Props = d5.Props()
			}
		}
	case SUBACK:
		p.ID = d5.U16()
		if v5 {
			p.Props = d5.Props()
		}
		p.Codes = bytes.Clone(d5.b)
	case DISCONNECT:
		if len(d5.b) > 0 {
			p.Code = d5.u8()
		}
	}
	if d5.err != nil {
		return p, fmt.Errorf("malformed Packet type %d: %w", p.Type, d5.err)
	}
	return p, nil
}

// expect reads until a Packet of type typ, failing on anything else but
// publishes, which it keeps for the next read.
func (r *Raw) Expect(typ byte) Packet {
	r.t.Helper()
	var kept []Packet
	defer func() { r.pending = append(kept, r.pending...) }()
	for {
		p := r.Read()
		switch {
		case p.Type == typ:
			return p
		case p.Type == PUBLISH && typ != PUBLISH:
			kept = append(kept, p)
		default:
			r.t.Fatalf("got %v, want a Packet of type %d", p, typ)
		}
	}
}

// closed reports whether the broker ends the connection within d, and
// the DISCONNECT reason code if it sent one first (0 otherwise).
func (r *Raw) Closed(d time.Duration) (bool, byte) {
	deadline := time.Now().Add(d)
	var code byte
	for time.Now().Before(deadline) {
		p, err := r.ReadWithin(time.Until(deadline))
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (err != nil && !isTimeout(err)) {
			return true, code
		}
		if err != nil {
			return false, code
		}
		if p.Type == DISCONNECT {
			code = p.Code
		}
	}
	return false, code
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// NextPublish reads the next PUBLISH, answering nothing.
func (r *Raw) NextPublish() Packet {
	r.t.Helper()
	for {
		p := r.Read()
		if p.Type == PUBLISH {
			return p
		}
		if p.Type != PINGRESP {
			r.t.Fatalf("got %v, want a PUBLISH", p)
		}
	}
}

// NoPacket fails if a packet comes within d.
func (r *Raw) NoPacket(d time.Duration, what string) {
	r.t.Helper()
	if p, err := r.ReadWithin(d); err == nil {
		r.t.Fatalf("%s: got %v", what, p)
	}
}
