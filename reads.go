package hearth

import (
	"bytes"
	"fmt"
)

// ReadMark is what a user publishes, retained, on
// rooms/{room}/reads/{user}: the highest seq of the room it has seen.
type ReadMark struct {
	Seq uint64 `json:"seq"`
}

// ParseReadMark checks a read mark: {"seq":N} with N a non-negative
// integer, nothing else. Its errors wrap ErrBadPayload.
func ParseReadMark(b []byte) (ReadMark, error) {
	var m struct {
		Seq *uint64 `json:"seq"`
	}
	if err := DecodeJSONObject(bytes.NewReader(b), &m, true); err != nil || m.Seq == nil {
		return ReadMark{}, fmt.Errorf(`%w: a read mark is {"seq":N}, N a non-negative integer`, ErrBadPayload)
	}
	return ReadMark{Seq: *m.Seq}, nil
}

// Focus is what a connection publishes on users/{user}/focus: the room it
// shows, visible and focused, or "" for none.
type Focus struct {
	Room string `json:"room"`
}

// ParseFocus checks a focus payload: {"room":"name"} with a valid room
// name, or {"room":""}. Whether the room is configured is the caller's to
// check. Its errors wrap ErrBadPayload.
func ParseFocus(b []byte) (Focus, error) {
	var f struct {
		Room *string `json:"room"`
	}
	if err := DecodeJSONObject(bytes.NewReader(b), &f, true); err != nil || f.Room == nil {
		return Focus{}, fmt.Errorf(`%w: a focus is {"room":"name"} or {"room":""}`, ErrBadPayload)
	}
	if *f.Room != "" && !ValidName(*f.Room) {
		return Focus{}, fmt.Errorf("%w: focus room %q is not a valid room name", ErrBadPayload, *f.Room)
	}
	return Focus{Room: *f.Room}, nil
}
