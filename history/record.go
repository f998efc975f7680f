package history

import (
	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/internal/jsonscan"
)

// decodeFast reads a stored message without reflection. Records are
// written by json.Marshal of hearth.Message, so they have its keys, in its
// order; decodeFast reads exactly that shape, with strings that hold no
// escape, and reports false for anything else (a text with a quote or a
// "<", say), which decode then reads with json.Unmarshal. A page of 50
// costs about half as much this way.
func decodeFast(v []byte) (hearth.Message, bool) {
	var m hearth.Message
	r := jsonscan.New(v)
	ok := r.Lit(`{"seq":`) && r.Uint(&m.Seq) &&
		r.Lit(`,"id":`) && r.Str(&m.ID) &&
		r.Lit(`,"room":`) && r.Str(&m.Room) &&
		r.Lit(`,"from":`) && r.Str(&m.From) &&
		r.Lit(`,"text":`) && r.Str(&m.Text)
	if !ok {
		return m, false
	}
	if r.Has(`,"ts":`) && !(r.Lit(`,"ts":`) && r.Int(&m.TS)) {
		return m, false
	}
	if !r.Lit(`,"at":`) || !r.Int(&m.At) {
		return m, false
	}
	if r.Has(`,"reply_to":`) && !(r.Lit(`,"reply_to":`) && r.Str(&m.ReplyTo)) {
		return m, false
	}
	return m, r.Lit(`}`) && r.Done()
}
