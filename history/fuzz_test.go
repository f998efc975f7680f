package history

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
)

// FuzzPage checks Page against a model: a room holds seqs first..last
// (retention may have removed the older ones) and every query answers the
// page the README describes (GET /api/rooms/{room}/messages).
func FuzzPage(f *testing.F) {
	s, err := Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	const n = 300
	var msgs []hearth.Message
	for i := range n {
		msgs = append(msgs, hearth.Message{ID: fmt.Sprint("m", i), Room: "family", From: "kid", Text: "x", At: int64(i)})
	}
	if _, err := s.Append(msgs); err != nil {
		f.Fatal(err)
	}
	if _, err := s.Prune("family", Retention{MaxMessages: n - 40}, time.Unix(0, 0)); err != nil {
		f.Fatal(err)
	}
	const first, last = 41, n

	f.Add(50, uint64(0), uint64(0), false)
	f.Add(1, uint64(1), uint64(0), false)
	f.Add(200, uint64(0), uint64(0), true)
	f.Add(7, uint64(0), uint64(299), true)
	f.Add(50, uint64(45), uint64(0), false)
	f.Fuzz(func(t *testing.T, limit int, before, after uint64, hasAfter bool) {
		q := Query{Limit: limit, Before: before, After: after, HasAfter: hasAfter}
		got, more, err := s.Page("family", q)
		if before > 0 && hasAfter {
			if err == nil {
				t.Fatal("before with after: no error")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		l := limit
		if l < 1 {
			l = DefaultLimit
		}
		l = min(l, MaxLimit)
		// The model.
		var want []uint64
		switch {
		case hasAfter:
			for seq := max(after+1, first); seq <= last && len(want) < l; seq++ {
				want = append(want, seq)
			}
		default:
			top := uint64(last)
			if before > 0 {
				top = min(before-1, last)
			}
			for seq := top; seq >= first && seq > 0 && len(want) < l; seq-- {
				want = append([]uint64{seq}, want...)
			}
		}
		var wantMore bool
		if len(want) > 0 {
			if hasAfter {
				wantMore = want[len(want)-1] < last
			} else {
				wantMore = want[0] > first
			}
		}
		if len(got) != len(want) || more != wantMore {
			t.Fatalf("%+v: got %d messages, more %v; want %d, more %v", q, len(got), more, len(want), wantMore)
		}
		for i := range got {
			if got[i].Seq != want[i] {
				t.Fatalf("%+v: message %d has seq %d, want %d", q, i, got[i].Seq, want[i])
			}
		}
	})
}
