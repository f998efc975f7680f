package history

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
)

func TestPrune(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	day := 24 * time.Hour
	for _, c := range []struct {
		name     string
		r        Retention
		wantSeqs [2]uint64 // first and last kept
		deleted  int
	}{
		{"nothing set", Retention{}, [2]uint64{1, 2500}, 0},
		{"by count", Retention{MaxMessages: 100}, [2]uint64{2401, 2500}, 2400},
		{"by age", Retention{MaxAge: 10 * day}, [2]uint64{1500, 2500}, 1499}, // exactly 10 days old is kept
		{"both, count wins", Retention{MaxAge: 10 * day, MaxMessages: 10}, [2]uint64{2491, 2500}, 2490},
		{"both, age wins", Retention{MaxAge: 1 * day, MaxMessages: 2000}, [2]uint64{2400, 2500}, 2399},
		{"count above size", Retention{MaxMessages: 5000}, [2]uint64{1, 2500}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "h.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// 2500 messages, 100 a day, the newest today.
			var msgs []hearth.Message
			for i := range 2500 {
				at := now.Add(-time.Duration(2499-i) * day / 100)
				msgs = append(msgs, hearth.Message{ID: fmt.Sprintf("m%d", i), Room: "family", From: "kid", Text: "x", At: at.UnixMilli()})
			}
			if _, err := s.Append(msgs); err != nil {
				t.Fatal(err)
			}
			st := s.db.Stats()
			writes := st.TxStats.GetWrite()
			n, err := s.Prune("family", c.r, now)
			if err != nil || n != c.deleted {
				t.Fatalf("Prune: %d, %v; want %d deleted", n, err, c.deleted)
			}
			st = s.db.Stats()
			if wrote := st.TxStats.GetWrite() - writes; (wrote > 0) != (c.deleted > 0) {
				t.Errorf("Prune deleting %d wrote %d pages: a pass with nothing to delete writes nothing", c.deleted, wrote)
			}
			all, _, _ := s.Page("family", Query{Limit: MaxLimit, HasAfter: true})
			newest, _, _ := s.Page("family", Query{Limit: 1})
			if all[0].Seq != c.wantSeqs[0] || newest[0].Seq != c.wantSeqs[1] {
				t.Fatalf("kept %d..%d, want %d..%d", all[0].Seq, newest[0].Seq, c.wantSeqs[0], c.wantSeqs[1])
			}
			if c.deleted > 0 {
				// The index entries went too: the first message's id is new again.
				if _, found, _ := s.Lookup("family", "kid", "m0"); found {
					t.Error("a deleted message is still found by its id")
				}
				// Seqs are not reused.
				res, _ := s.Append([]hearth.Message{{ID: "new", Room: "family", From: "kid", Text: "y"}})
				if res[0].Seq != 2501 {
					t.Errorf("next seq %d, want 2501", res[0].Seq)
				}
			}
		})
	}
}

func TestPruneUnknownRoom(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Prune("attic", Retention{MaxMessages: 1}, time.Now()); n != 0 || err != nil {
		t.Fatalf("Prune of an empty room: %d, %v", n, err)
	}
}
