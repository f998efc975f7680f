package hearth

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Types of archived entries: a message, or one of the events that change
// one (README, "MQTT topics and payloads").
const (
	TypeMessage  = "message"
	TypeReaction = "reaction"
	TypeEdit     = "edit"
	TypeDelete   = "delete"
)

// MaxEmojiLen is the longest reaction, in bytes.
const MaxEmojiLen = 32

// EventTarget names the message an event is about: its sender and id.
type EventTarget struct {
	From string `json:"from"`
	ID   string `json:"id"`
}

// Event is what a member publishes on rooms/{room}/events/{user}: a
// reaction (which toggles: the same emoji again takes it back), an edit
// of its own message, or a delete of its own message.
type Event struct {
	ID     string      `json:"id"`
	Type   string      `json:"type"`
	Target EventTarget `json:"target"`
	Emoji  string      `json:"emoji,omitempty"`
	Text   string      `json:"text,omitempty"`
}

// ParseEvent decodes and validates an event payload. The error wraps
// ErrBadPayload and says which rule was broken.
func ParseEvent(b []byte) (Event, error) {
	var e struct {
		Event
		Target *EventTarget `json:"target"`
		Emoji  *string      `json:"emoji"`
		Text   *string      `json:"text"`
	}
	if len(b) > maxJSONSize {
		return Event{}, fmt.Errorf("%w: larger than %d bytes", ErrBadPayload, maxJSONSize)
	}
	if !utf8.Valid(b) {
		return Event{}, fmt.Errorf("%w: not valid UTF-8", ErrBadPayload)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadPayload, jsonError(err))
	}
	ev := e.Event
	if e.Target != nil {
		ev.Target = *e.Target
	}
	if e.Emoji != nil {
		ev.Emoji = *e.Emoji
	}
	if e.Text != nil {
		ev.Text = *e.Text
	}
	switch {
	case ev.ID == "":
		return ev, fmt.Errorf("%w: id is required", ErrBadPayload)
	case !ValidID(ev.ID):
		return ev, fmt.Errorf("%w: id must be 1 to %d characters of A-Z, a-z, 0-9, _ and -", ErrBadPayload, MaxIDLen)
	case ev.Type != TypeReaction && ev.Type != TypeEdit && ev.Type != TypeDelete:
		return ev, fmt.Errorf(`%w: type must be "reaction", "edit" or "delete"`, ErrBadPayload)
	case e.Target == nil:
		return ev, fmt.Errorf("%w: target is required", ErrBadPayload)
	case !ValidName(ev.Target.From):
		return ev, fmt.Errorf("%w: target.from is not a valid user name", ErrBadPayload)
	case !ValidID(ev.Target.ID):
		return ev, fmt.Errorf("%w: target.id is not a valid message id", ErrBadPayload)
	}
	switch ev.Type {
	case TypeReaction:
		switch {
		case e.Text != nil:
			return ev, fmt.Errorf("%w: a reaction has no text", ErrBadPayload)
		case ev.Emoji == "" || len(ev.Emoji) > MaxEmojiLen:
			return ev, fmt.Errorf("%w: a reaction needs an emoji of 1 to %d bytes", ErrBadPayload, MaxEmojiLen)
		}
	case TypeEdit:
		switch {
		case e.Emoji != nil:
			return ev, fmt.Errorf("%w: an edit has no emoji", ErrBadPayload)
		case ev.Text == "":
			return ev, fmt.Errorf("%w: an edit needs text", ErrBadPayload)
		case utf8.RuneCountInString(ev.Text) > MaxTextLen:
			return ev, fmt.Errorf("%w: text is longer than %d characters", ErrBadPayload, MaxTextLen)
		}
	case TypeDelete:
		if e.Emoji != nil || e.Text != nil {
			return ev, fmt.Errorf("%w: a delete has neither emoji nor text", ErrBadPayload)
		}
	}
	return ev, nil
}
