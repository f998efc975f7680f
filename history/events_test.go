package history

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

func event(from, id, typ, targetFrom, targetID, arg string) hearth.Message {
	e := hearth.Message{Type: typ, ID: id, Room: "family", From: from, Target: &hearth.EventTarget{From: targetFrom, ID: targetID}}
	switch typ {
	case hearth.TypeReaction:
		e.Emoji = arg
	case hearth.TypeEdit:
		e.Text = arg
	}
	return e
}

func lookupMsg(t *testing.T, s *Store, from, id string) hearth.Message {
	t.Helper()
	m, ok, err := s.Lookup("family", from, id)
	if err != nil || !ok {
		t.Fatalf("Lookup(%s, %s) = %v, %v", from, id, ok, err)
	}
	return m
}

func TestFoldEdit(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "dad", "m1"))
	e := event("dad", "e1", hearth.TypeEdit, "dad", "m1", "dinner at seven")
	e.At = 5000
	got := mustAppend(t, s, e)
	if got[0].Seq != 2 || got[0].Duplicate {
		t.Fatalf("edit appended as %+v, want seq 2", got[0])
	}
	m := lookupMsg(t, s, "dad", "m1")
	if m.Text != "dinner at seven" || m.EditedAt != 5000 || m.Seq != 1 {
		t.Fatalf("edited message %+v", m)
	}
	// Someone else's edit folds nothing (the broker refuses it before).
	mustAppend(t, s, event("kid", "e2", hearth.TypeEdit, "dad", "m1", "hacked"))
	if m := lookupMsg(t, s, "dad", "m1"); m.Text != "dinner at seven" {
		t.Fatalf("kid's edit of dad's message folded: %+v", m)
	}
	ev := lookupMsg(t, s, "dad", "e1")
	if ev.Type != hearth.TypeEdit || ev.Text != "dinner at seven" || ev.Target.ID != "m1" {
		t.Fatalf("the edit event is archived as %+v", ev)
	}
}

func TestFoldDeleteScrubs(t *testing.T) {
	s, _ := openStore(t)
	m1 := msg("family", "dad", "m1")
	m1.Attachments = []string{"aa"}
	mustAppend(t, s, m1, msg("family", "dad", "m2"))
	mustAppend(t, s, event("dad", "e1", hearth.TypeEdit, "dad", "m1", "secret one"),
		event("dad", "e2", hearth.TypeEdit, "dad", "m1", "secret two"),
		event("dad", "e3", hearth.TypeEdit, "dad", "m2", "other message"),
		event("kid", "r1", hearth.TypeReaction, "dad", "m1", "👍"))
	mustAppend(t, s, event("dad", "d1", hearth.TypeDelete, "dad", "m1", ""))
	m := lookupMsg(t, s, "dad", "m1")
	if !m.Deleted || m.Text != "" || m.Attachments != nil || m.Reactions != nil {
		t.Fatalf("deleted message %+v", m)
	}
	for _, id := range []string{"e1", "e2"} {
		if e := lookupMsg(t, s, "dad", id); e.Text != "" {
			t.Errorf("edit %s of the deleted message keeps its text %q", id, e.Text)
		}
	}
	if e := lookupMsg(t, s, "dad", "e3"); e.Text != "other message" {
		t.Errorf("edit of another message lost its text: %+v", e)
	}
	// Nothing changes a deleted message; a later edit keeps no text.
	mustAppend(t, s, event("dad", "e4", hearth.TypeEdit, "dad", "m1", "back again"),
		event("kid", "r2", hearth.TypeReaction, "dad", "m1", "🎉"))
	if m := lookupMsg(t, s, "dad", "m1"); !m.Deleted || m.Text != "" || m.Reactions != nil {
		t.Fatalf("a deleted message changed: %+v", m)
	}
	if e := lookupMsg(t, s, "dad", "e4"); e.Text != "" {
		t.Errorf("an edit of a deleted message keeps its text %q", e.Text)
	}
	if got, _ := s.Search("family", "secret", 10); len(got) != 0 {
		t.Errorf("search finds a deleted message: %+v", got)
	}
	// Someone else's delete folds nothing.
	mustAppend(t, s, event("kid", "d2", hearth.TypeDelete, "dad", "m2", ""))
	if m := lookupMsg(t, s, "dad", "m2"); m.Deleted {
		t.Fatal("kid deleted dad's message")
	}
}

func TestFoldReactionToggle(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "dad", "m1"))
	mustAppend(t, s, event("kid", "r1", hearth.TypeReaction, "dad", "m1", "👍"),
		event("mum", "r2", hearth.TypeReaction, "dad", "m1", "👍"),
		event("mum", "r3", hearth.TypeReaction, "dad", "m1", "❤️"))
	want := map[string][]string{"👍": {"kid", "mum"}, "❤️": {"mum"}}
	if m := lookupMsg(t, s, "dad", "m1"); !reflect.DeepEqual(m.Reactions, want) {
		t.Fatalf("reactions %v, want %v", m.Reactions, want)
	}
	// The same again takes it back; an emptied list goes.
	mustAppend(t, s, event("kid", "r4", hearth.TypeReaction, "dad", "m1", "👍"),
		event("mum", "r5", hearth.TypeReaction, "dad", "m1", "❤️"))
	want = map[string][]string{"👍": {"mum"}}
	if m := lookupMsg(t, s, "dad", "m1"); !reflect.DeepEqual(m.Reactions, want) {
		t.Fatalf("after taking back: reactions %v, want %v", m.Reactions, want)
	}
}

// TestFoldDedup: an event sent again (the bridge's redelivery, a client's
// retry) is a duplicate and folds once.
func TestFoldDedup(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "dad", "m1"))
	r := event("kid", "r1", hearth.TypeReaction, "dad", "m1", "👍")
	first := mustAppend(t, s, r)
	again := mustAppend(t, s, r, r)
	for _, a := range again {
		if !a.Duplicate || a.Seq != first[0].Seq {
			t.Fatalf("retried reaction %+v, want a duplicate of seq %d", a, first[0].Seq)
		}
	}
	if m := lookupMsg(t, s, "dad", "m1"); !reflect.DeepEqual(m.Reactions, map[string][]string{"👍": {"kid"}}) {
		t.Fatalf("a retried reaction toggled again: %v", m.Reactions)
	}
	if lastSeq(t, s, "family") != 2 {
		t.Fatalf("last seq %d, want 2", lastSeq(t, s, "family"))
	}
}

func TestFoldUnknownTarget(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "dad", "m1"))
	before := lookupMsg(t, s, "dad", "m1")
	got := mustAppend(t, s, event("kid", "r1", hearth.TypeReaction, "dad", "nope", "👍"),
		event("dad", "e1", hearth.TypeEdit, "dad", "nope", "x"),
		event("dad", "r2", hearth.TypeReaction, "kid", "r1", "👍")) // an event is no target
	if got[0].Seq != 2 || got[2].Seq != 4 {
		t.Fatalf("events with unknown targets: %+v", got)
	}
	if m := lookupMsg(t, s, "dad", "m1"); !reflect.DeepEqual(m, before) {
		t.Fatalf("message changed: %+v", m)
	}
	if e := lookupMsg(t, s, "kid", "r1"); e.Reactions != nil {
		t.Fatalf("a reaction folded into an event: %+v", e)
	}
}

// TestPageEvents: after= pages return messages and events in seq order;
// the default and before= pages only messages, and has_more counts
// messages.
func TestPageEvents(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "dad", "m1"), msg("family", "dad", "m2")) // 1, 2
	mustAppend(t, s, event("kid", "r1", hearth.TypeReaction, "dad", "m2", "👍"),
		event("kid", "r2", hearth.TypeReaction, "dad", "m1", "👍")) // 3, 4
	mustAppend(t, s, msg("family", "dad", "m3"))                              // 5
	mustAppend(t, s, event("dad", "e1", hearth.TypeEdit, "dad", "m3", "new")) // 6

	all, more, err := s.Page("family", after(0))
	if err != nil || more || !slices.Equal(seqs(all), []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("after=0: %v, more %v, %v", seqs(all), more, err)
	}
	if all[2].Type != hearth.TypeReaction || all[2].Emoji != "👍" || all[2].Target.ID != "m2" || all[5].Text != "new" {
		t.Fatalf("events in the page: %+v %+v", all[2], all[5])
	}
	if p, more, _ := s.Page("family", Query{After: 2, HasAfter: true, Limit: 2}); !slices.Equal(seqs(p), []uint64{3, 4}) || !more {
		t.Fatalf("after=2 limit 2: %v more %v", seqs(p), more)
	}
	p, more, _ := s.Page("family", Query{})
	if !slices.Equal(seqs(p), []uint64{1, 2, 5}) || more {
		t.Fatalf("newest page: %v more %v, want messages 1 2 5", seqs(p), more)
	}
	if p[2].Text != "new" || p[2].EditedAt == 0 || len(p[0].Reactions["👍"]) != 1 {
		t.Fatalf("folded state missing: %+v", p)
	}
	if p, more, _ := s.Page("family", Query{Limit: 2}); !slices.Equal(seqs(p), []uint64{2, 5}) || !more {
		t.Fatalf("newest 2: %v more %v", seqs(p), more)
	}
	if p, more, _ := s.Page("family", Query{Before: 5, Limit: 1}); !slices.Equal(seqs(p), []uint64{2}) || !more {
		t.Fatalf("before=5 limit 1: %v more %v", seqs(p), more)
	}
	// Only events are older than seq 5's page of two: no more messages.
	mustAppend(t, s, msg("family", "dad", "m4"))
	if p, more, _ := s.Page("family", Query{Before: 7, Limit: 3}); !slices.Equal(seqs(p), []uint64{1, 2, 5}) || more {
		t.Fatalf("before=7 limit 3: %v more %v", seqs(p), more)
	}
	if p, more, _ := s.Page("family", Query{Before: 3, Limit: 2}); !slices.Equal(seqs(p), []uint64{1, 2}) || more {
		t.Fatalf("before=3 limit 2: %v more %v", seqs(p), more)
	}
}

// TestPruneEvents: max_messages counts messages; events before the
// oldest message kept go with it, and the index forgets them.
func TestPruneEvents(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "dad", "m1"), msg("family", "dad", "m2")) // 1, 2
	mustAppend(t, s, event("dad", "e1", hearth.TypeEdit, "dad", "m1", "alpha"),
		event("kid", "r1", hearth.TypeReaction, "dad", "m2", "👍")) // 3, 4
	mustAppend(t, s, msg("family", "dad", "m3"), msg("family", "dad", "m4"))    // 5, 6
	mustAppend(t, s, event("kid", "r2", hearth.TypeReaction, "dad", "m4", "👍")) // 7
	n, err := s.Prune("family", Retention{MaxMessages: 3}, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v; want 1 message", n, err)
	}
	if p, _, _ := s.Page("family", after(0)); !slices.Equal(seqs(p), []uint64{2, 3, 4, 5, 6, 7}) {
		t.Fatalf("kept %v", seqs(p))
	}
	if got, _ := s.Search("family", "alpha", 10); len(got) != 0 {
		t.Fatalf("search finds a pruned message: %+v", got)
	}
	n, err = s.Prune("family", Retention{MaxMessages: 2}, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Prune to 2: %d, %v", n, err)
	}
	if p, _, _ := s.Page("family", after(0)); !slices.Equal(seqs(p), []uint64{5, 6, 7}) {
		t.Fatalf("kept %v, want the events before message 5 gone", seqs(p))
	}
	if n, err := s.Prune("family", Retention{MaxMessages: 2}, time.Now()); err != nil || n != 0 {
		t.Fatalf("Prune again: %d, %v", n, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if c := eventCount(tx.Bucket(searchBucket("family"))); c != 1 {
			t.Errorf("event count %d, want 1", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDecodeFolded: the records of events and folded messages are read
// as json.Unmarshal reads them (decodeFast leaves them to it).
func TestDecodeFolded(t *testing.T) {
	for _, m := range []hearth.Message{
		{Seq: 1, ID: "m1", Room: "family", From: "dad", Text: "hi", At: 5, EditedAt: 9},
		{Seq: 1, ID: "m1", Room: "family", From: "dad", At: 5, Deleted: true},
		{Seq: 1, ID: "m1", Room: "family", From: "dad", Text: "hi", At: 5, Reactions: map[string][]string{"👍": {"kid"}}},
		{Seq: 1, ID: "m1", Room: "family", From: "dad", Text: "hi", At: 5, Attachments: []string{"ab"}},
		{Seq: 2, Type: hearth.TypeReaction, ID: "r1", Room: "family", From: "kid", At: 6, Target: &hearth.EventTarget{From: "dad", ID: "m1"}, Emoji: "👍"},
		{Seq: 3, Type: hearth.TypeEdit, ID: "e1", Room: "family", From: "dad", Text: "new", At: 7, Target: &hearth.EventTarget{From: "dad", ID: "m1"}},
	} {
		v, _ := json.Marshal(m)
		got, err := decode(seqKey(m.Seq), v)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("decode(%s) = %+v, %v", v, got, err)
		}
		if isEventRecord(v) != m.IsEvent() {
			t.Errorf("isEventRecord(%s) = %v", v, !m.IsEvent())
		}
	}
}

// TestDeleteDropsAttachmentRefs: deleting a message takes back its
// photos' references in the same transaction, so the sweep deletes a
// photo no message refers to any more and keeps one another message
// still shows.
func TestDeleteDropsAttachmentRefs(t *testing.T) {
	s, _ := openStore(t)
	gone, shared := strings.Repeat("a", 64), strings.Repeat("b", 64)
	now := time.Now()
	for _, id := range []string{gone, shared} {
		if err := s.PutAttachment(hearth.Attachment{ID: id, ContentType: "image/jpeg", Uploader: "dad", Room: "family", CreatedAt: now.UnixMilli()}); err != nil {
			t.Fatal(err)
		}
	}
	m1, m2 := msg("family", "dad", "m1"), msg("family", "mum", "m2")
	m1.Attachments = []string{gone, shared}
	m2.Attachments = []string{shared}
	mustAppend(t, s, m1, m2)
	canRead := func(room string) bool { return room == "family" }
	for _, id := range []string{gone, shared} {
		if _, ok, err := s.Attachment(id, "kid", canRead); err != nil || !ok {
			t.Fatalf("before the delete, a reader cannot see %s: %v %v", id[:1], ok, err)
		}
	}
	mustAppend(t, s, event("dad", "d1", hearth.TypeDelete, "dad", "m1", ""))
	if _, ok, err := s.Attachment(gone, "kid", canRead); err != nil || ok {
		t.Errorf("the deleted message's photo is still referred to: %v %v", ok, err)
	}
	if _, ok, err := s.Attachment(shared, "kid", canRead); err != nil || !ok {
		t.Errorf("the photo another message shows lost its reference: %v %v", ok, err)
	}
	// Well within the day an unsent upload is kept: only the orphan goes.
	ids, err := s.SweepAttachments(now, 24*time.Hour)
	if err != nil || !slices.Equal(ids, []string{gone}) {
		t.Fatalf("sweep after the delete: %v %v, want [%s]", ids, err, gone)
	}
	if ok, _ := s.HasAttachment(gone); ok {
		t.Error("the orphaned photo's metadata is still there")
	}
	if ok, _ := s.HasAttachment(shared); !ok {
		t.Error("the shared photo's metadata is gone")
	}
}
