package hearth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hearth-home/hearth/internal/jsonscan"
)

// Limits of the message payload (README, "MQTT topics and payloads").
const (
	MaxIDLen    = 64
	MaxTextLen  = 4000 // characters (runes), not bytes
	maxJSONSize = 64 << 10

	// MaxAttachments is the most attachment ids one message carries.
	MaxAttachments = 10
	// AttachmentIDLen is the length of an attachment id: the SHA-256 of
	// the stored file in lower-case hex.
	AttachmentIDLen = 64
)

// Payload is what a client publishes on rooms/{room}/messages/{user}.
type Payload struct {
	ID      string `json:"id"`
	Text    string `json:"text"`
	TS      int64  `json:"ts,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"`
	// Attachments are ids of uploaded photos (POST
	// /api/rooms/{room}/attachments), 1 to MaxAttachments; with one or
	// more, Text may be empty.
	Attachments []string `json:"attachments,omitempty"`
}

// Message is an archived entry, as history returns it: a message (Type
// "" or "message") with its folded state (EditedAt, Deleted, Reactions),
// or an event (Type "reaction", "edit" or "delete", with Target, and
// Emoji or Text).
type Message struct {
	Seq         uint64              `json:"seq"`
	Type        string              `json:"type,omitempty"`
	ID          string              `json:"id"`
	Room        string              `json:"room"`
	From        string              `json:"from"`
	Text        string              `json:"text"`
	TS          int64               `json:"ts,omitempty"`
	At          int64               `json:"at"`
	ReplyTo     string              `json:"reply_to,omitempty"`
	Attachments []string            `json:"attachments,omitempty"`
	EditedAt    int64               `json:"edited_at,omitempty"` // Unix milliseconds of the last edit
	Deleted     bool                `json:"deleted,omitempty"`
	Reactions   map[string][]string `json:"reactions,omitempty"` // emoji: users, in the order they reacted
	Target      *EventTarget        `json:"target,omitempty"`    // events only
	Emoji       string              `json:"emoji,omitempty"`     // reactions only
}

// IsEvent reports whether m is an event rather than a message.
func (m *Message) IsEvent() bool { return m.Type != "" && m.Type != TypeMessage }

// Receipt is published to users/{sender}/receipts after each archive
// commit that held messages of that sender: one per room, listing each of
// them (a list longer than a message may be is split over several
// receipts). A duplicate is listed again, with the seq and time of the copy
// already stored.
type Receipt struct {
	Room  string        `json:"room"`
	Items []ReceiptItem `json:"items"`
}

// ReceiptItem is one archived message of a Receipt.
type ReceiptItem struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
	At  int64  `json:"at"`
}

// Appended is the outcome of archiving one message (the archive's
// Append): its item of the sender's receipt, its room and sender, and
// whether it had already been archived (then the item carries the stored
// copy's Seq and At).
type Appended struct {
	ReceiptItem
	Room      string
	From      string
	Duplicate bool
}

// Presence is what the server publishes, retained, on presence/{user}
// whenever the count of the user's connections changes.
type Presence struct {
	Online      bool  `json:"online"`
	Connections int   `json:"connections"`
	LastSeen    int64 `json:"last_seen"` // Unix milliseconds of the change
}

// Typing is what a member publishes on rooms/{room}/typing/{user}.
type Typing struct {
	Typing bool `json:"typing"`
}

// ParseTyping checks a typing event: {"typing":true} or {"typing":false},
// nothing else. Its errors wrap ErrBadPayload.
func ParseTyping(b []byte) (Typing, error) {
	var t struct {
		Typing *bool `json:"typing"`
	}
	if err := DecodeJSONObject(bytes.NewReader(b), &t, true); err != nil || t.Typing == nil {
		return Typing{}, fmt.Errorf(`%w: a typing event is {"typing":true} or {"typing":false}`, ErrBadPayload)
	}
	return Typing{Typing: *t.Typing}, nil
}

// ErrBadPayload is wrapped by every error of ParsePayload.
var ErrBadPayload = errors.New("bad message payload")

// ValidID reports whether s is a valid message id: 1 to 64 characters of
// [A-Za-z0-9_-].
func ValidID(s string) bool {
	if len(s) < 1 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParsePayload decodes and validates a message payload. The error wraps
// ErrBadPayload and says which rule was broken.
func ParsePayload(b []byte) (Payload, error) {
	var p Payload
	if len(b) > maxJSONSize {
		return p, fmt.Errorf("%w: larger than %d bytes", ErrBadPayload, maxJSONSize)
	}
	if !utf8.Valid(b) {
		return p, fmt.Errorf("%w: not valid UTF-8", ErrBadPayload)
	}
	if p, ok := parseFast(b); ok {
		return p, p.Validate()
	}
	// json.Unmarshal takes exactly one JSON value, trailing data being a
	// syntax error, and is much cheaper than a Decoder for a slice.
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadPayload, jsonError(err))
	}
	if len(p.Attachments) == 0 {
		p.Attachments = nil // [] and null say what a missing key says
	}
	return p, p.Validate()
}

// parseFast reads a payload of the common shape without reflection, as
// the web chat and most devices write it: an object of id, text, ts and
// reply_to, each at most once and in any order, with no space, and
// strings without escapes. It reports false for anything else (a payload
// with attachments among them), which json.Unmarshal then reads; what it
// reads, it reads as json.Unmarshal does.
func parseFast(b []byte) (Payload, bool) {
	var p Payload
	var seen [4]bool
	r := jsonscan.New(b)
	if !r.Lit("{") {
		return p, false
	}
	for {
		k, ok := 0, false
		switch {
		case r.Lit(`"id":`):
			k, ok = 0, r.Str(&p.ID)
		case r.Lit(`"text":`):
			k, ok = 1, r.Str(&p.Text)
		case r.Lit(`"ts":`):
			k, ok = 2, r.Int(&p.TS)
		case r.Lit(`"reply_to":`):
			k, ok = 3, r.Str(&p.ReplyTo)
		}
		if !ok || seen[k] {
			return p, false
		}
		seen[k] = true
		if r.Lit("}") {
			return p, r.Done()
		}
		if !r.Lit(",") {
			return p, false
		}
	}
}

// Validate checks the rules of the message payload (README, "MQTT topics
// and payloads") on a decoded payload.
func (p Payload) Validate() error {
	switch {
	case p.ID == "":
		return fmt.Errorf("%w: id is required", ErrBadPayload)
	case !ValidID(p.ID):
		return fmt.Errorf("%w: id must be 1 to %d characters of A-Z, a-z, 0-9, _ and -", ErrBadPayload, MaxIDLen)
	case p.Text == "" && len(p.Attachments) == 0:
		return fmt.Errorf("%w: text is required (it may be empty only with attachments)", ErrBadPayload)
	case !utf8.ValidString(p.Text):
		return fmt.Errorf("%w: text is not valid UTF-8", ErrBadPayload)
	case utf8.RuneCountInString(p.Text) > MaxTextLen:
		return fmt.Errorf("%w: text is longer than %d characters", ErrBadPayload, MaxTextLen)
	case p.TS < 0:
		return fmt.Errorf("%w: ts must not be negative", ErrBadPayload)
	case p.ReplyTo != "" && !ValidID(p.ReplyTo):
		return fmt.Errorf("%w: reply_to is not a valid message id", ErrBadPayload)
	case len(p.Attachments) > MaxAttachments:
		return fmt.Errorf("%w: at most %d attachments, got %d", ErrBadPayload, MaxAttachments, len(p.Attachments))
	}
	for i, id := range p.Attachments {
		if !ValidAttachmentID(id) {
			return fmt.Errorf("%w: attachments[%d] is not an attachment id (%d lower-case hex digits)", ErrBadPayload, i, AttachmentIDLen)
		}
		for _, prev := range p.Attachments[:i] {
			if prev == id {
				return fmt.Errorf("%w: attachments[%d] repeats an earlier id", ErrBadPayload, i)
			}
		}
	}
	return nil
}

// ValidAttachmentID reports whether s is an attachment id: 64 lower-case
// hex digits.
func ValidAttachmentID(s string) bool {
	if len(s) != AttachmentIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// jsonError turns decoder errors into short messages that do not echo
// Go type names at users.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q has the wrong type", te.Field)
		}
		return "want a JSON object"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	if errors.Is(err, ErrTrailingData) {
		return err.Error()
	}
	return "invalid JSON"
}
