package history

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// TestUnread: Unread counts the messages after a seq that are not the
// caller's, skips events (entries with a type other than "message"), and
// stops at the cap.
func TestUnread(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, msg("family", "mum", "a"), msg("family", "kid", "b"), msg("family", "mum", "c"), msg("family", "dad", "d"))
	// Events share the room's log and its seq: seq 5 is a reaction, seq 6
	// a message written with its type.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(msgBucket("family"))
		for _, v := range []string{
			`{"seq":5,"type":"reaction","id":"e1","room":"family","from":"mum","text":"","at":1,"emoji":"👍"}`,
			`{"seq":6,"type":"message","id":"f","room":"family","from":"mum","text":"typed","at":2}`,
		} {
			seq, _ := b.NextSequence()
			if err := b.Put(seqKey(seq), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after  uint64
		except string
		limit  int
		want   int
	}{
		{0, "kid", 999, 4}, // a, c, d, f
		{0, "mum", 999, 2}, // b, d
		{0, "", 999, 5},
		{2, "kid", 999, 3},
		{6, "kid", 999, 0},
		{100, "kid", 999, 0},
		{0, "kid", 2, 2},
		{0, "kid", 0, 4},
		{^uint64(0), "kid", 999, 0},
	} {
		got, err := s.Unread("family", c.after, c.except, c.limit)
		if err != nil || got != c.want {
			t.Errorf("Unread(after %d, except %q, cap %d) = %d, %v; want %d", c.after, c.except, c.limit, got, err, c.want)
		}
	}
	if n, err := s.Unread("empty", 0, "kid", 999); n != 0 || err != nil {
		t.Errorf("an unknown room: %d, %v", n, err)
	}
	if _, err := s.Unread("Bad Room", 0, "kid", 999); !errors.Is(err, hearth.ErrBadName) {
		t.Errorf("a bad room name: %v", err)
	}
}
