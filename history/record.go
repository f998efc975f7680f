package history

import (
	"unicode/utf8"

	"hearth"
)

// decodeFast reads a stored message without reflection. Records are
// written by json.Marshal of hearth.Message, so they have its keys, in its
// order; decodeFast reads exactly that shape, with strings that hold no
// escape, and reports false for anything else (a text with a quote or a
// "<", say), which decode then reads with json.Unmarshal. A page of 50
// costs about half as much this way.
func decodeFast(v []byte) (hearth.Message, bool) {
	var m hearth.Message
	r := recordReader{b: v}
	ok := r.lit(`{"seq":`) && r.uint(&m.Seq) &&
		r.lit(`,"id":`) && r.str(&m.ID) &&
		r.lit(`,"room":`) && r.str(&m.Room) &&
		r.lit(`,"from":`) && r.str(&m.From) &&
		r.lit(`,"text":`) && r.str(&m.Text)
	if !ok {
		return m, false
	}
	if r.has(`,"ts":`) && !(r.lit(`,"ts":`) && r.int(&m.TS)) {
		return m, false
	}
	if !r.lit(`,"at":`) || !r.int(&m.At) {
		return m, false
	}
	if r.has(`,"reply_to":`) && !(r.lit(`,"reply_to":`) && r.str(&m.ReplyTo)) {
		return m, false
	}
	return m, r.lit(`}`) && r.i == len(r.b)
}

type recordReader struct {
	b []byte
	i int
}

func (r *recordReader) has(s string) bool {
	return len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s
}

func (r *recordReader) lit(s string) bool {
	if !r.has(s) {
		return false
	}
	r.i += len(s)
	return true
}

// str reads a JSON string without escapes.
func (r *recordReader) str(dst *string) bool {
	if !r.lit(`"`) {
		return false
	}
	start := r.i
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			s := r.b[start:r.i]
			if !utf8.Valid(s) {
				return false
			}
			*dst = string(s)
			r.i++
			return true
		case c == '\\' || c < 0x20:
			return false
		}
	}
	return false
}

// uint reads up to 18 digits (no overflow), with no leading zero but "0".
func (r *recordReader) uint(dst *uint64) bool {
	start := r.i
	var n uint64
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		n = n*10 + uint64(r.b[r.i]-'0')
		r.i++
	}
	digits := r.i - start
	if digits == 0 || digits > 18 || (digits > 1 && r.b[start] == '0') {
		return false
	}
	*dst = n
	return true
}

func (r *recordReader) int(dst *int64) bool {
	neg := r.lit("-")
	var n uint64
	if !r.uint(&n) {
		return false
	}
	*dst = int64(n)
	if neg {
		*dst = -*dst
	}
	return true
}
