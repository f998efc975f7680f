package hearth

import "strings"

// TopicKind says which part of hearth's topic tree a topic belongs to.
type TopicKind int

const (
	TopicOther    TopicKind = iota // outside the chat tree: admins' plain MQTT use, and the acl rules
	TopicMessage                   // rooms/{room}/messages/{user}
	TopicEvent                     // rooms/{room}/events/{user}: reactions, edits, deletes
	TopicTyping                    // rooms/{room}/typing/{user}
	TopicPresence                  // presence/{user}
	TopicReceipts                  // users/{user}/receipts
	TopicSys                       // $SYS/...
	TopicInvalid                   // inside the chat tree but not of its grammar
	TopicRead                      // rooms/{room}/reads/{user}
	TopicFocus                     // users/{user}/focus
)

// Topic is a parsed topic name (never a filter).
type Topic struct {
	Kind TopicKind
	Room string // for messages, events, typing and reads
	User string // the last level's user for messages, events, typing, reads and presence; the owner for receipts and focus
}

// Chat tree roots: a topic under one of these is either of hearth's grammar
// or invalid.
var chatRoots = []string{"rooms", "presence", "users"}

// ParseTopic classifies a topic name. Names inside the chat tree that break
// its grammar (a bad room or user name, a missing or extra level) are
// TopicInvalid.
func ParseTopic(topic string) Topic {
	if strings.HasPrefix(topic, "$") {
		first, _, _ := strings.Cut(topic, "/")
		switch {
		case first == "$SYS":
			return Topic{Kind: TopicSys}
		case strings.HasPrefix(strings.ToUpper(first), "$SYS"), strings.EqualFold(first, "$share"), first == "$hearth", first == "$":
			return Topic{Kind: TopicInvalid} // the broker's own, or malformed
		}
		return Topic{Kind: TopicOther} // an application's $ topic: admins' and the acl's
	}
	l := strings.Split(topic, "/")
	switch l[0] {
	case "rooms":
		if len(l) == 4 && ValidName(l[1]) && ValidName(l[3]) {
			switch l[2] {
			case "messages":
				return Topic{Kind: TopicMessage, Room: l[1], User: l[3]}
			case "typing":
				return Topic{Kind: TopicTyping, Room: l[1], User: l[3]}
			case "events":
				return Topic{Kind: TopicEvent, Room: l[1], User: l[3]}
			case "reads":
				return Topic{Kind: TopicRead, Room: l[1], User: l[3]}
			}
		}
	case "presence":
		if len(l) == 2 && ValidName(l[1]) {
			return Topic{Kind: TopicPresence, User: l[1]}
		}
	case "users":
		if len(l) == 3 && ValidName(l[1]) && l[2] == "receipts" {
			return Topic{Kind: TopicReceipts, User: l[1]}
		}
		if len(l) == 3 && ValidName(l[1]) && l[2] == "focus" {
			return Topic{Kind: TopicFocus, User: l[1]}
		}
	default:
		return Topic{Kind: TopicOther}
	}
	return Topic{Kind: TopicInvalid}
}

// MessageTopic returns rooms/{room}/messages/{user}.
func MessageTopic(room, user string) string { return "rooms/" + room + "/messages/" + user }

// TypingTopic returns rooms/{room}/typing/{user}.
func TypingTopic(room, user string) string { return "rooms/" + room + "/typing/" + user }

// EventTopic returns rooms/{room}/events/{user}.
func EventTopic(room, user string) string { return "rooms/" + room + "/events/" + user }

// RoomEventsFilter returns the filter of every event of a room.
func RoomEventsFilter(room string) string { return "rooms/" + room + "/events/+" }

// PresenceTopic returns presence/{user}.
func PresenceTopic(user string) string { return "presence/" + user }

// ReceiptsTopic returns users/{user}/receipts.
func ReceiptsTopic(user string) string { return "users/" + user + "/receipts" }

// RoomMessagesFilter returns the filter of every message of a room.
func RoomMessagesFilter(room string) string { return "rooms/" + room + "/messages/+" }

// ReadTopic returns rooms/{room}/reads/{user}, where user keeps its read
// mark of room.
func ReadTopic(room, user string) string { return "rooms/" + room + "/reads/" + user }

// FocusTopic returns users/{user}/focus.
func FocusTopic(user string) string { return "users/" + user + "/focus" }
