package hearth

import (
	"errors"
	"strings"
	"testing"
)

func TestParseEvent(t *testing.T) {
	tgt := `"target":{"from":"dad","id":"m1"}`
	for _, tt := range []struct {
		in   string
		want Event // zero: an error
	}{
		{`{"id":"e1","type":"reaction",` + tgt + `,"emoji":"👍"}`, Event{ID: "e1", Type: TypeReaction, Target: EventTarget{"dad", "m1"}, Emoji: "👍"}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":"new text"}`, Event{ID: "e1", Type: TypeEdit, Target: EventTarget{"dad", "m1"}, Text: "new text"}},
		{`{"id":"e1","type":"delete",` + tgt + `}`, Event{ID: "e1", Type: TypeDelete, Target: EventTarget{"dad", "m1"}}},
		{`{"id":"e1","type":"delete",` + tgt + `,"later":1}`, Event{ID: "e1", Type: TypeDelete, Target: EventTarget{"dad", "m1"}}}, // unknown keys pass, as in messages
		{`{"id":"e1","type":"reaction",` + tgt + `,"emoji":"` + strings.Repeat("x", 32) + `"}`, Event{ID: "e1", Type: TypeReaction, Target: EventTarget{"dad", "m1"}, Emoji: strings.Repeat("x", 32)}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":"` + strings.Repeat("ü", MaxTextLen) + `"}`, Event{ID: "e1", Type: TypeEdit, Target: EventTarget{"dad", "m1"}, Text: strings.Repeat("ü", MaxTextLen)}},

		{``, Event{}},
		{`[]`, Event{}},
		{`{"id":"e1","type":"delete",` + tgt + `} {}`, Event{}},
		{`{"type":"delete",` + tgt + `}`, Event{}},
		{`{"id":"e 1","type":"delete",` + tgt + `}`, Event{}},
		{`{"id":"e1",` + tgt + `}`, Event{}},
		{`{"id":"e1","type":"message",` + tgt + `}`, Event{}},
		{`{"id":"e1","type":"Delete",` + tgt + `}`, Event{}},
		{`{"id":"e1","type":"delete"}`, Event{}},
		{`{"id":"e1","type":"delete","target":{"from":"Dad","id":"m1"}}`, Event{}},
		{`{"id":"e1","type":"delete","target":{"from":"dad","id":""}}`, Event{}},
		{`{"id":"e1","type":"delete","target":{"from":"dad"}}`, Event{}},
		{`{"id":"e1","type":"delete","target":"dad/m1"}`, Event{}},
		{`{"id":"e1","type":"delete",` + tgt + `,"text":""}`, Event{}},
		{`{"id":"e1","type":"delete",` + tgt + `,"emoji":"👍"}`, Event{}},
		{`{"id":"e1","type":"reaction",` + tgt + `}`, Event{}},
		{`{"id":"e1","type":"reaction",` + tgt + `,"emoji":""}`, Event{}},
		{`{"id":"e1","type":"reaction",` + tgt + `,"emoji":"` + strings.Repeat("x", 33) + `"}`, Event{}},
		{`{"id":"e1","type":"reaction",` + tgt + `,"emoji":"👍","text":"x"}`, Event{}},
		{`{"id":"e1","type":"edit",` + tgt + `}`, Event{}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":""}`, Event{}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":"` + strings.Repeat("ü", MaxTextLen+1) + `"}`, Event{}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":"x","emoji":"👍"}`, Event{}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":"x` + "\xff" + `"}`, Event{}},
		{`{"id":"e1","type":"edit",` + tgt + `,"text":7}`, Event{}},
	} {
		got, err := ParseEvent([]byte(tt.in))
		if tt.want == (Event{}) {
			if err == nil || !errors.Is(err, ErrBadPayload) {
				t.Errorf("ParseEvent(%.80s) = %+v, %v; want an error wrapping ErrBadPayload", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseEvent(%.80s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseEvent([]byte(`{"id":"e1","type":"edit",` + tgt + `,"text":"` + strings.Repeat("x", maxJSONSize) + `"}`)); !errors.Is(err, ErrBadPayload) {
		t.Errorf("a payload over %d bytes: %v", maxJSONSize, err)
	}
}

func TestEventTopic(t *testing.T) {
	if got, want := EventTopic("family", "kid"), "rooms/family/events/kid"; got != want {
		t.Errorf("EventTopic = %q, want %q", got, want)
	}
	if got, want := RoomEventsFilter("family"), "rooms/family/events/+"; got != want {
		t.Errorf("RoomEventsFilter = %q, want %q", got, want)
	}
	for topic, want := range map[string]Topic{
		"rooms/family/events/kid":   {Kind: TopicEvent, Room: "family", User: "kid"},
		"rooms/family/events/Kid":   {Kind: TopicInvalid},
		"rooms/family/events":       {Kind: TopicInvalid},
		"rooms/family/events/kid/x": {Kind: TopicInvalid},
		"rooms/family/events/+":     {Kind: TopicInvalid},
		"rooms/family/event/kid":    {Kind: TopicInvalid},
	} {
		if got := ParseTopic(topic); got != want {
			t.Errorf("ParseTopic(%q) = %+v, want %+v", topic, got, want)
		}
	}
}

// TestPolicyEvents: events go by the rules of messages: published only as
// oneself where one can write, received where one can read; the bridge
// receives those of every configured room and may subscribe to any room's.
func TestPolicyEvents(t *testing.T) {
	p := newTestPolicy(t)
	rooms := []string{"family", "parents", "porch"}
	for _, row := range []struct {
		user             string
		publish, receive string // rooms
	}{
		{"mum", "family parents porch", "family parents porch"},
		{"dad", "family parents", "family parents porch"},
		{"kid", "family", "family porch"},
		{"kitchen", "", "family"},
		{"doorbell", "porch", "porch"},
		{BridgeUser, "", "family parents porch"},
		{"zed", "", ""},
	} {
		var pub, recv, sub []string
		for _, room := range rooms {
			me := row.user
			if me == BridgeUser {
				me = "kid"
			}
			if p.CanPublish(row.user, EventTopic(room, me)) {
				pub = append(pub, room)
			}
			if p.CanPublish(row.user, EventTopic(room, "other")) {
				t.Errorf("%s may publish events as another user in %s", row.user, room)
			}
			if p.CanReceive(row.user, EventTopic(room, "other")) {
				recv = append(recv, room)
			}
			if p.CanSubscribe(row.user, RoomEventsFilter(room)) {
				sub = append(sub, room)
			}
		}
		for what, got := range map[string][]string{"publish": pub, "receive": recv} {
			want := row.publish
			if what == "receive" {
				want = row.receive
			}
			if g := strings.Join(got, " "); g != want {
				t.Errorf("%s may %s events in %q, want %q", row.user, what, g, want)
			}
		}
		if g := strings.Join(sub, " "); g != row.receive {
			t.Errorf("%s may subscribe to the events of %q, want %q", row.user, g, row.receive)
		}
		wantAny := row.receive != ""
		if got := p.CanSubscribe(row.user, "rooms/+/events/+"); got != wantAny {
			t.Errorf("CanSubscribe(%s, rooms/+/events/+) = %v, want %v", row.user, got, wantAny)
		}
	}
	// The bridge subscribes to a room before a reload adds it, and
	// receives nothing of it until then; nobody else may.
	for user, want := range map[string]bool{"mum": false, "dad": false, BridgeUser: true} {
		if got := p.CanSubscribe(user, RoomEventsFilter("nope")); got != want {
			t.Errorf("CanSubscribe(%s, rooms/nope/events/+) = %v, want %v", user, got, want)
		}
		if p.CanReceive(user, EventTopic("nope", "kid")) {
			t.Errorf("%s may receive events of an unknown room", user)
		}
	}
	if p.CanPublish(BridgeUser, EventTopic("family", "kid")) {
		t.Error("the bridge may publish events")
	}
}
