package main

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hearth-home/hearth"
)

func eventPayload(id, typ, targetFrom, targetID, arg string) string {
	e := hearth.Event{ID: id, Type: typ, Target: hearth.EventTarget{From: targetFrom, ID: targetID}}
	switch typ {
	case hearth.TypeReaction:
		e.Emoji = arg
	case hearth.TypeEdit:
		e.Text = arg
	}
	b, _ := json.Marshal(e)
	return string(b)
}

// TestEventsEndToEnd: a message, then a reaction, an edit and a delete
// over MQTT with real clients; each event gets its receipt, and the HTTP
// API shows the folded message, the events (after= only) and search
// following the text.
func TestEventsEndToEnd(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	dad := mustDial(t, app.MQTTAddr(), "dad", connectOpts{})
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	dad.subscribe("users/dad/receipts")
	kid.subscribe("users/kid/receipts")

	if rc := dad.publish("rooms/family/messages/dad", 1, false, msg("m1", "pancakes for breakfast")); rc != 0 {
		t.Fatalf("message: %#x", rc)
	}
	m1 := dad.receipts("dad", "family", 1)["m1"]
	if rc := kid.publish("rooms/family/events/kid", 1, false, eventPayload("r1", "reaction", "dad", "m1", "👍")); rc != 0 {
		t.Fatalf("reaction: %#x", rc)
	}
	r1 := kid.receipts("kid", "family", 1)["r1"]
	if rc := dad.publish("rooms/family/events/dad", 1, false, eventPayload("e1", "edit", "dad", "m1", "waffles for breakfast")); rc != 0 {
		t.Fatalf("edit: %#x", rc)
	}
	e1 := dad.receipts("dad", "family", 1)["e1"]
	if r1.Seq != m1.Seq+1 || e1.Seq != m1.Seq+2 {
		t.Fatalf("receipts: message %+v, reaction %+v, edit %+v; want seqs one after the other", m1, r1, e1)
	}
	// kid may not edit dad's message.
	if rc := kid.publish("rooms/family/events/kid", 1, false, eventPayload("e2", "edit", "dad", "m1", "kid was here")); rc != 0x87 {
		t.Fatalf("kid editing dad's message: %#x, want 0x87", rc)
	}

	p := readHistory(t, app, "mum", "family", "")
	if len(p.Messages) != 1 {
		t.Fatalf("newest page: %+v, want the one message", p.Messages)
	}
	m := p.Messages[0]
	if m.Text != "waffles for breakfast" || m.EditedAt != e1.At || !reflect.DeepEqual(m.Reactions, map[string][]string{"👍": {"kid"}}) {
		t.Fatalf("folded message %+v", m)
	}
	var found struct {
		Messages []hearth.Message `json:"messages"`
	}
	if code := api(t, app, "GET", "/api/rooms/family/search?q=waff", login(t, app, "kid"), nil, &found); code != 200 || len(found.Messages) != 1 || found.Messages[0].ID != "m1" {
		t.Fatalf("search waff: %d %+v", code, found.Messages)
	}

	if rc := dad.publish("rooms/family/events/dad", 1, false, eventPayload("d1", "delete", "dad", "m1", "")); rc != 0 {
		t.Fatalf("delete: %#x", rc)
	}
	d1 := dad.receipts("dad", "family", 1)["d1"]
	p = readHistory(t, app, "kid", "family", "")
	if len(p.Messages) != 1 || !p.Messages[0].Deleted || p.Messages[0].Text != "" {
		t.Fatalf("after the delete: %+v", p.Messages)
	}
	all := readHistory(t, app, "kid", "family", "?after=0")
	var types []string
	for _, e := range all.Messages {
		types = append(types, e.Type)
	}
	if !reflect.DeepEqual(types, []string{"", "reaction", "edit", "delete"}) || all.Messages[3].Seq != d1.Seq {
		t.Fatalf("after=0 entries of types %q: %+v", types, all.Messages)
	}
	if ed := all.Messages[2]; ed.Text != "" || ed.Target == nil || ed.Target.ID != "m1" || ed.From != "dad" {
		t.Fatalf("the edit of a deleted message: %+v, want its text gone", ed)
	}
	if code := api(t, app, "GET", "/api/rooms/family/search?q=waffles", login(t, app, "kid"), nil, &found); code != 200 || len(found.Messages) != 0 {
		t.Fatalf("search after the delete: %d %+v", code, found.Messages)
	}
}
