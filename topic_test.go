package hearth

import (
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	name32 := "a" + strings.Repeat("b", 31)
	name33 := name32 + "c"
	tests := []struct {
		topic string
		want  Topic
	}{
		// The chat tree's grammar.
		{"rooms/family/messages/kid", Topic{Kind: TopicMessage, Room: "family", User: "kid"}},
		{"rooms/family/typing/kid", Topic{Kind: TopicTyping, Room: "family", User: "kid"}},
		{"presence/kid", Topic{Kind: TopicPresence, User: "kid"}},
		{"users/kid/receipts", Topic{Kind: TopicReceipts, User: "kid"}},
		{"rooms/0-a_b/messages/9z", Topic{Kind: TopicMessage, Room: "0-a_b", User: "9z"}},
		{"rooms/" + name32 + "/messages/" + name32, Topic{Kind: TopicMessage, Room: name32, User: name32}},

		// Broken names or levels inside the chat tree.
		{"rooms", Topic{Kind: TopicInvalid}},
		{"rooms/", Topic{Kind: TopicInvalid}},
		{"rooms/family", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/kid/", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/kid/x", Topic{Kind: TopicInvalid}},
		{"rooms//messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family//kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/other/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/Messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/Family/messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/Kid", Topic{Kind: TopicInvalid}},
		{"rooms/Bad/messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/" + name33 + "/messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/" + name33, Topic{Kind: TopicInvalid}},
		{"rooms/-family/messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/_kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/+", Topic{Kind: TopicInvalid}},
		{"rooms/+/messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/messages/#", Topic{Kind: TopicInvalid}},
		{"rooms/famïly/messages/kid", Topic{Kind: TopicInvalid}},
		{"rooms/family/typing/kid/", Topic{Kind: TopicInvalid}},
		{"presence", Topic{Kind: TopicInvalid}},
		{"presence/", Topic{Kind: TopicInvalid}},
		{"presence/a/b", Topic{Kind: TopicInvalid}},
		{"presence/kid/", Topic{Kind: TopicInvalid}},
		{"presence/Kid", Topic{Kind: TopicInvalid}},
		{"presence/" + name33, Topic{Kind: TopicInvalid}},
		{"users", Topic{Kind: TopicInvalid}},
		{"users/kid", Topic{Kind: TopicInvalid}},
		{"users/kid/receipts/", Topic{Kind: TopicInvalid}},
		{"users/kid/other", Topic{Kind: TopicInvalid}},
		{"users//receipts", Topic{Kind: TopicInvalid}},
		{"users/Kid/receipts", Topic{Kind: TopicInvalid}},

		// $ topics: $SYS is the broker's; others are applications'.
		{"$SYS", Topic{Kind: TopicSys}},
		{"$SYS/", Topic{Kind: TopicSys}},
		{"$SYS/broker/uptime", Topic{Kind: TopicSys}},
		{"$SYSX", Topic{Kind: TopicInvalid}},
		{"$sys/broker", Topic{Kind: TopicInvalid}},
		{"$other", Topic{Kind: TopicOther}},
		{"$app/x", Topic{Kind: TopicOther}},
		{"$hearth/will", Topic{Kind: TopicInvalid}},
		{"$share/g/rooms/family/messages/kid", Topic{Kind: TopicInvalid}},
		{"$", Topic{Kind: TopicInvalid}},

		// Outside the chat tree (MQTT topics are case-sensitive, and a
		// leading slash makes an empty first level).
		{"home/temp", Topic{Kind: TopicOther}},
		{"home", Topic{Kind: TopicOther}},
		{"Rooms/family/messages/kid", Topic{Kind: TopicOther}},
		{"/rooms/family/messages/kid", Topic{Kind: TopicOther}},
		{"roomsx/family/messages/kid", Topic{Kind: TopicOther}},
		{"room/family/messages/kid", Topic{Kind: TopicOther}},
		{"userz/kid/receipts", Topic{Kind: TopicOther}},
	}
	for _, tt := range tests {
		if got := ParseTopic(tt.topic); got != tt.want {
			t.Errorf("ParseTopic(%q) = %+v, want %+v", tt.topic, got, tt.want)
		}
	}
}

func TestTopicBuilders(t *testing.T) {
	tests := []struct {
		got, want string
		parsed    Topic
	}{
		{MessageTopic("family", "kid"), "rooms/family/messages/kid", Topic{Kind: TopicMessage, Room: "family", User: "kid"}},
		{TypingTopic("family", "kid"), "rooms/family/typing/kid", Topic{Kind: TopicTyping, Room: "family", User: "kid"}},
		{PresenceTopic("kid"), "presence/kid", Topic{Kind: TopicPresence, User: "kid"}},
		{ReceiptsTopic("kid"), "users/kid/receipts", Topic{Kind: TopicReceipts, User: "kid"}},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("builder gave %q, want %q", tt.got, tt.want)
		}
		if got := ParseTopic(tt.got); got != tt.parsed {
			t.Errorf("ParseTopic(%q) = %+v, want %+v", tt.got, got, tt.parsed)
		}
	}
	if got, want := RoomMessagesFilter("family"), "rooms/family/messages/+"; got != want {
		t.Errorf("RoomMessagesFilter(family) = %q, want %q", got, want)
	}
}

// FuzzParseTopic: any string parses without panic; a chat topic's parts
// are valid names and build the topic back.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"rooms/family/messages/kid", "rooms/family/typing/kid", "presence/kid", "users/kid/receipts", "$SYS/broker/uptime", "home/x", "rooms//messages/", "rooms/a/b/c/d", "#", "+/+", "/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp := ParseTopic(s)
		var back string
		switch tp.Kind {
		case TopicMessage:
			back = MessageTopic(tp.Room, tp.User)
		case TopicTyping:
			back = TypingTopic(tp.Room, tp.User)
		case TopicPresence:
			back = PresenceTopic(tp.User)
		case TopicReceipts:
			back = ReceiptsTopic(tp.User)
		default:
			return
		}
		if back != s || (tp.Room != "" && !ValidName(tp.Room)) || !ValidName(tp.User) {
			t.Fatalf("ParseTopic(%q) = %+v, which builds %q", s, tp, back)
		}
	})
}

// FuzzCanSubscribe: no filter panics the policy, and a filter a member may
// subscribe to never lets them receive the parents' room.
func FuzzCanSubscribe(f *testing.F) {
	c, err := ParseConfig(strings.NewReader(fuzzPolicyConfig))
	if err != nil {
		f.Fatal(err)
	}
	p := NewPolicy(&c)
	for _, s := range []string{"#", "+/#", "rooms/+/messages/+", "rooms/parents/#", "$share/g/rooms/#", "$share/g", "presence/+", "users/kid/receipts"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		p.CanSubscribe("kid", filter)
		p.CanSubscribe("mum", filter)
		p.CanSubscribe(BridgeUser, filter)
		if p.CanReceive("kid", filter) && ParseTopic(filter).Room == "parents" {
			t.Fatalf("kid may receive %q", filter)
		}
		// A filter that names the parents' room matches nothing else, so
		// kid may not subscribe to it.
		if lv := strings.Split(filter, "/"); len(lv) > 2 && lv[0] == "rooms" && lv[1] == "parents" && p.CanSubscribe("kid", filter) {
			t.Fatalf("kid may subscribe to %q", filter)
		}
	})
}

const fuzzPolicyConfig = `
users:
  - {name: mum, role: admin, password_hash: "$2a$04$Fh9ATxUZtj.yvJhbyq93vuhb.GtcDzz9O5IuJ/b/qT0jJEfQx5RPG"}
  - {name: kid, password_hash: "$2a$04$Fh9ATxUZtj.yvJhbyq93vuhb.GtcDzz9O5IuJ/b/qT0jJEfQx5RPG"}
rooms:
  - {name: family, members: ["*"]}
  - {name: parents, members: [mum]}
`
