package history

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// openStore opens a store in a fresh temp dir and closes it at the end.
func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func msg(room, from, id string) hearth.Message {
	return hearth.Message{ID: id, Room: room, From: from, Text: "text of " + id, TS: 1700000000000}
}

func mustAppend(t *testing.T, s *Store, msgs ...hearth.Message) []hearth.Appended {
	t.Helper()
	got, err := s.Append(msgs)
	if err != nil {
		t.Fatalf("Append(%d messages): %v", len(msgs), err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("Append(%d messages) returned %d results", len(msgs), len(got))
	}
	return got
}

// fill appends n messages to room, in batches of 100, ids m1..mn from "mum".
func fill(t *testing.T, s *Store, room string, n int) {
	t.Helper()
	var batch []hearth.Message
	for i := 1; i <= n; i++ {
		batch = append(batch, msg(room, "mum", fmt.Sprintf("m%d", i)))
		if len(batch) == 100 || i == n {
			mustAppend(t, s, batch...)
			batch = batch[:0]
		}
	}
}

func lastSeq(t *testing.T, s *Store, room string) uint64 {
	t.Helper()
	seq, err := s.LastSeq(room)
	if err != nil {
		t.Fatalf("LastSeq(%s): %v", room, err)
	}
	return seq
}

func seqs(msgs []hearth.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// span returns from..to inclusive; empty (non-nil) if to < from.
func span(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to && to > 0; s++ {
		out = append(out, s)
	}
	return out
}

func after(seq uint64) Query { return Query{After: seq, HasAfter: true} }

func TestAppendSeqPerRoom(t *testing.T) {
	s, _ := openStore(t)
	got := mustAppend(t, s,
		msg("family", "mum", "a"),
		msg("kids", "tom", "a"),
		msg("family", "dad", "b"),
		msg("family", "mum", "c"),
	)
	got = append(got, mustAppend(t, s, msg("kids", "ann", "b"), msg("kids", "tom", "c"))...)
	want := []struct {
		room string
		seq  uint64
	}{{"family", 1}, {"kids", 1}, {"family", 2}, {"family", 3}, {"kids", 2}, {"kids", 3}}
	for i, w := range want {
		a := got[i]
		if a.Room != w.room || a.Seq != w.seq || a.Duplicate {
			t.Errorf("append %d: got room %s seq %d dup %v, want room %s seq %d dup false", i, a.Room, a.Seq, a.Duplicate, w.room, w.seq)
		}
		if a.At == 0 {
			t.Errorf("append %d: At is 0, want the archive's clock", i)
		}
	}
	for room, want := range map[string]uint64{"family": 3, "kids": 3, "empty": 0} {
		if got := lastSeq(t, s, room); got != want {
			t.Errorf("LastSeq(%s) = %d, want %d", room, got, want)
		}
	}
	page, _, err := s.Page("family", Query{})
	if err != nil {
		t.Fatal(err)
	}
	wantFamily := []string{"mum/a", "dad/b", "mum/c"}
	var gotFamily []string
	for _, m := range page {
		gotFamily = append(gotFamily, m.From+"/"+m.ID)
	}
	if !slices.Equal(gotFamily, wantFamily) {
		t.Errorf("family page = %v, want %v", gotFamily, wantFamily)
	}
}

func TestAppendKeepsFields(t *testing.T) {
	s, _ := openStore(t)
	in := hearth.Message{Seq: 99, ID: "x1", Room: "family", From: "mum", Text: "héllo", TS: 42, At: 1234, ReplyTo: "x0"}
	a := mustAppend(t, s, in)[0]
	want := in
	want.Seq = 1 // the caller's Seq is ignored
	if a.Seq != 1 || a.At != 1234 || a.ID != "x1" || a.From != "mum" || a.Room != "family" {
		t.Errorf("Appended = %+v, want seq 1 at 1234 id x1 from mum room family", a)
	}
	got, ok, err := s.Lookup("family", "mum", "x1")
	if err != nil || !ok {
		t.Fatalf("Lookup = %v, %v, want found", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup = %+v, want %+v", got, want)
	}

	before := time.Now().UnixMilli()
	a = mustAppend(t, s, msg("family", "mum", "x2"))[0]
	if a.At < before || a.At > time.Now().UnixMilli() {
		t.Errorf("At = %d, want the archive's clock (>= %d)", a.At, before)
	}
}

func TestAppendDuplicates(t *testing.T) {
	s, _ := openStore(t)
	first := mustAppend(t, s, msg("family", "mum", "a"), msg("family", "dad", "b"))

	tests := []struct {
		name    string
		batch   []hearth.Message
		wantSeq []uint64
		wantDup []bool
		wantAt  []int64 // 0: not checked
		last    uint64  // LastSeq of family afterwards
	}{
		{
			name:    "retry in a later call",
			batch:   []hearth.Message{{ID: "a", Room: "family", From: "mum", Text: "again", At: 999}},
			wantSeq: []uint64{1},
			wantDup: []bool{true},
			wantAt:  []int64{first[0].At},
			last:    2,
		},
		{
			name:    "same id from another sender is new",
			batch:   []hearth.Message{msg("family", "dad", "a")},
			wantSeq: []uint64{3},
			wantDup: []bool{false},
			last:    3,
		},
		{
			name:    "same id in another room is new",
			batch:   []hearth.Message{msg("kids", "mum", "a")},
			wantSeq: []uint64{1},
			wantDup: []bool{false},
			last:    3,
		},
		{
			name:    "duplicate inside one batch",
			batch:   []hearth.Message{msg("family", "mum", "c"), msg("family", "dad", "b"), msg("family", "mum", "c"), msg("family", "mum", "d")},
			wantSeq: []uint64{4, 2, 4, 5},
			wantDup: []bool{false, true, true, false},
			last:    5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustAppend(t, s, tt.batch...)
			for i, a := range got {
				if a.Seq != tt.wantSeq[i] || a.Duplicate != tt.wantDup[i] {
					t.Errorf("message %d: got seq %d dup %v, want seq %d dup %v", i, a.Seq, a.Duplicate, tt.wantSeq[i], tt.wantDup[i])
				}
				if a.From != tt.batch[i].From || a.ID != tt.batch[i].ID || a.Room != tt.batch[i].Room {
					t.Errorf("message %d: got %s/%s/%s, want %s/%s/%s", i, a.Room, a.From, a.ID, tt.batch[i].Room, tt.batch[i].From, tt.batch[i].ID)
				}
				if tt.wantAt != nil && tt.wantAt[i] != 0 && a.At != tt.wantAt[i] {
					t.Errorf("message %d: got at %d, want the stored %d", i, a.At, tt.wantAt[i])
				}
			}
			if got := lastSeq(t, s, "family"); got != tt.last {
				t.Errorf("LastSeq(family) = %d, want %d", got, tt.last)
			}
		})
	}

	// The retry did not overwrite the stored text.
	m, ok, err := s.Lookup("family", "mum", "a")
	if err != nil || !ok || m.Text != "text of a" || m.Seq != 1 {
		t.Errorf("Lookup(family, mum, a) = %+v, %v, %v; want the first copy, seq 1", m, ok, err)
	}
	page, _, err := s.Page("family", Query{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(page), span(1, 5); !slices.Equal(got, want) {
		t.Errorf("family seqs = %v, want %v", got, want)
	}
}

func TestAppendBadInput(t *testing.T) {
	tests := []struct {
		name     string
		batch    []hearth.Message
		wantName bool // error wraps hearth.ErrBadName
	}{
		{"bad room", []hearth.Message{msg("family", "mum", "ok"), msg("Family!", "mum", "x")}, true},
		{"empty room", []hearth.Message{msg("", "mum", "x")}, true},
		{"bad sender", []hearth.Message{msg("family", "mum", "ok"), msg("family", "a/b", "x")}, true},
		{"empty sender", []hearth.Message{msg("family", "", "x")}, true},
		{"empty id", []hearth.Message{msg("family", "mum", "ok"), msg("family", "mum", "")}, false},
		{"id with NUL", []hearth.Message{msg("family", "mum", "a\x00b")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openStore(t)
			got, err := s.Append(tt.batch)
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("Append error = %v, want ErrBadMessage", err)
			}
			if errors.Is(err, hearth.ErrBadName) != tt.wantName {
				t.Errorf("errors.Is(%v, hearth.ErrBadName) = %v, want %v", err, !tt.wantName, tt.wantName)
			}
			if got != nil {
				t.Errorf("Append returned %v with an error, want nil", got)
			}
			if seq := lastSeq(t, s, "family"); seq != 0 {
				t.Errorf("LastSeq(family) = %d after a refused batch, want 0", seq)
			}
			if _, ok, _ := s.Lookup("family", "mum", "ok"); ok {
				t.Errorf("the valid message of a refused batch was archived")
			}
		})
	}
}

func TestAppendEmpty(t *testing.T) {
	s, _ := openStore(t)
	got, err := s.Append(nil)
	if err != nil || len(got) != 0 {
		t.Errorf("Append(nil) = %v, %v, want empty, nil", got, err)
	}
}

func TestPage(t *testing.T) {
	s, _ := openStore(t)
	fill(t, s, "r3", 3)
	fill(t, s, "r50", DefaultLimit)
	fill(t, s, "r51", DefaultLimit+1)
	fill(t, s, "r7", 7)
	fill(t, s, "r250", 250)

	tests := []struct {
		name     string
		room     string
		q        Query
		want     []uint64
		wantMore bool
	}{
		// empty and unknown room
		{"empty default", "none", Query{}, nil, false},
		{"empty before", "none", Query{Before: 5}, nil, false},
		{"empty after 0", "none", after(0), nil, false},
		{"empty after 5", "none", after(5), nil, false},
		{"empty limit 1", "none", Query{Limit: 1}, nil, false},

		// default: newest page
		{"default fewer than limit", "r3", Query{}, span(1, 3), false},
		{"default exactly limit", "r50", Query{}, span(1, 50), false},
		{"default limit+1", "r51", Query{}, span(2, 51), true},
		{"default limit 1", "r7", Query{Limit: 1}, span(7, 7), true},
		{"default limit 7 of 7", "r7", Query{Limit: 7}, span(1, 7), false},
		{"default limit 6 of 7", "r7", Query{Limit: 6}, span(2, 7), true},

		// before
		{"before 1", "r7", Query{Before: 1}, nil, false},
		{"before 2", "r7", Query{Before: 2}, span(1, 1), false},
		{"before last", "r7", Query{Before: 7}, span(1, 6), false},
		{"before last+1", "r7", Query{Before: 8}, span(1, 7), false},
		{"before far beyond last", "r7", Query{Before: 1 << 40}, span(1, 7), false},
		{"before limit 1", "r7", Query{Before: 5, Limit: 1}, span(4, 4), true},
		{"before limit 2 reaches oldest", "r7", Query{Before: 3, Limit: 2}, span(1, 2), false},
		{"before exactly limit", "r51", Query{Before: 51}, span(1, 50), false},
		{"before limit+1", "r51", Query{Before: 52}, span(2, 51), true},

		// after
		{"after 0", "r7", after(0), span(1, 7), false},
		{"after 0 more than limit", "r51", after(0), span(1, 50), true},
		{"after 0 exactly limit", "r50", after(0), span(1, 50), false},
		{"after 1 of limit+1", "r51", after(1), span(2, 51), false},
		{"after last-1", "r7", after(6), span(7, 7), false},
		{"after last", "r7", after(7), nil, false},
		{"after beyond last", "r7", after(100), nil, false},
		{"after max uint64", "r7", after(^uint64(0)), nil, false},
		{"after limit 1", "r7", Query{After: 3, HasAfter: true, Limit: 1}, span(4, 4), true},
		{"after limit 1 at end", "r7", Query{After: 6, HasAfter: true, Limit: 1}, span(7, 7), false},

		// limit clamp
		{"limit 0 is default", "r250", Query{}, span(201, 250), true},
		{"limit negative is default", "r250", Query{Limit: -3}, span(201, 250), true},
		{"limit over max", "r250", Query{Limit: 1000}, span(51, 250), true},
		{"limit max", "r250", Query{Limit: MaxLimit}, span(51, 250), true},
		{"limit over max after", "r250", Query{Limit: 1000, After: 0, HasAfter: true}, span(1, 200), true},
		{"limit over max before", "r250", Query{Limit: 1000, Before: 250}, span(50, 249), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := s.Page(tt.room, tt.q)
			if err != nil {
				t.Fatalf("Page(%s, %+v): %v", tt.room, tt.q, err)
			}
			if got == nil {
				t.Fatalf("Page(%s, %+v) returned a nil slice, want non-nil", tt.room, tt.q)
			}
			want := tt.want
			if want == nil {
				want = []uint64{}
			}
			if !slices.Equal(seqs(got), want) || more != tt.wantMore {
				t.Errorf("Page(%s, %+v) = %v, more %v; want %v, more %v", tt.room, tt.q, seqs(got), more, want, tt.wantMore)
			}
			for _, m := range got {
				if m.Room != tt.room || m.ID != fmt.Sprintf("m%d", m.Seq) || m.From != "mum" {
					t.Errorf("message %d = %+v, want room %s id m%d from mum", m.Seq, m, tt.room, m.Seq)
				}
			}
		})
	}
}

func TestPageErrors(t *testing.T) {
	s, _ := openStore(t)
	fill(t, s, "family", 3)
	if _, _, err := s.Page("family", Query{Before: 2, After: 1, HasAfter: true}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("Page with before and after: error %v, want ErrBadQuery", err)
	}
	if _, _, err := s.Page("Bad Room", Query{}); !errors.Is(err, hearth.ErrBadName) {
		t.Errorf("Page with a bad room name: error %v, want hearth.ErrBadName", err)
	}
	if _, err := s.LastSeq("../x"); !errors.Is(err, hearth.ErrBadName) {
		t.Errorf("LastSeq with a bad room name: error %v, want hearth.ErrBadName", err)
	}
	if _, _, err := s.Lookup("family", "mum", ""); !errors.Is(err, ErrBadMessage) {
		t.Errorf("Lookup with an empty id: error %v, want ErrBadMessage", err)
	}
}

// TestPageWalk pages through 450 messages in both directions and sees every
// seq exactly once, in order.
func TestPageWalk(t *testing.T) {
	s, _ := openStore(t)
	const n = 450
	fill(t, s, "family", n)

	tests := []struct {
		name  string
		limit int
	}{{"limit default", 0}, {"limit 1", 1}, {"limit 7", 7}, {"limit max", MaxLimit}, {"limit 450", n}}
	for _, tt := range tests {
		t.Run(tt.name+" before", func(t *testing.T) {
			var all []uint64
			q := Query{Limit: tt.limit}
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatalf("walk does not end")
				}
				got, more, err := s.Page("family", q)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					t.Fatalf("empty page with query %+v, after %d seqs", q, len(all))
				}
				all = append(seqs(got), all...)
				if !more {
					break
				}
				q.Before = got[0].Seq
			}
			if want := span(1, n); !slices.Equal(all, want) {
				t.Errorf("walk with before= saw %d seqs %v..., want 1..%d once each", len(all), all[:min(len(all), 10)], n)
			}
		})
		t.Run(tt.name+" after", func(t *testing.T) {
			var all []uint64
			q := Query{Limit: tt.limit, HasAfter: true}
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatalf("walk does not end")
				}
				got, more, err := s.Page("family", q)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					t.Fatalf("empty page with query %+v, after %d seqs", q, len(all))
				}
				all = append(all, seqs(got)...)
				if !more {
					break
				}
				q.After = got[len(got)-1].Seq
			}
			if want := span(1, n); !slices.Equal(all, want) {
				t.Errorf("walk with after= saw %d seqs %v..., want 1..%d once each", len(all), all[:min(len(all), 10)], n)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	first := mustAppend(t, s, msg("family", "mum", "a"), msg("family", "dad", "b"), msg("kids", "tom", "c"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := s.LastSeq("family"); !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Errorf("LastSeq after Close: error %v, want bolt.ErrDatabaseNotOpen", err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s.Close() })

	for room, want := range map[string]uint64{"family": 2, "kids": 1} {
		if got := lastSeq(t, s, room); got != want {
			t.Errorf("LastSeq(%s) after reopen = %d, want %d", room, got, want)
		}
	}
	page, more, err := s.Page("family", Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || more || page[0].ID != "a" || page[1].ID != "b" || page[0].At != first[0].At {
		t.Errorf("family after reopen = %+v, more %v; want a, b", page, more)
	}
	got := mustAppend(t, s, msg("family", "mum", "a"), msg("family", "mum", "d"), msg("kids", "tom", "e"))
	want := []struct {
		seq uint64
		dup bool
	}{{1, true}, {3, false}, {2, false}}
	for i, w := range want {
		if got[i].Seq != w.seq || got[i].Duplicate != w.dup {
			t.Errorf("append %d after reopen: got seq %d dup %v, want seq %d dup %v", i, got[i].Seq, got[i].Duplicate, w.seq, w.dup)
		}
	}
	if got[0].At != first[0].At {
		t.Errorf("duplicate after reopen: at %d, want the stored %d", got[0].At, first[0].At)
	}
}

func TestOpenLocked(t *testing.T) {
	_, path := openStore(t)
	start := time.Now()
	s2, err := Open(path)
	took := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatalf("second Open of %s succeeded, want ErrLocked", path)
	}
	if !errors.Is(err, ErrLocked) || !errors.Is(err, bolt.ErrTimeout) {
		t.Errorf("second Open: error %v, want ErrLocked wrapping bolt.ErrTimeout", err)
	}
	if took > 3*time.Second {
		t.Errorf("second Open took %v, want about 1s", took)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not bolt"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path string }{
		{"missing directory", filepath.Join(dir, "no", "such", "history.db")},
		{"not a bolt file", junk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded, want an error", tt.path)
			}
			if errors.Is(err, ErrLocked) {
				t.Errorf("Open(%s): %v, want an error other than ErrLocked", tt.path, err)
			}
		})
	}
}

func TestWriteTo(t *testing.T) {
	s, _ := openStore(t)
	fill(t, s, "family", 120)
	mustAppend(t, s, msg("kids", "tom", "a"))

	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Errorf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	// Writes after the snapshot do not show in it.
	mustAppend(t, s, msg("family", "mum", "late"))

	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := Open(path)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	t.Cleanup(func() { cp.Close() })

	for room, want := range map[string]uint64{"family": 120, "kids": 1} {
		if got := lastSeq(t, cp, room); got != want {
			t.Errorf("copy LastSeq(%s) = %d, want %d", room, got, want)
		}
		orig, _, err := s.Page(room, Query{Limit: MaxLimit, HasAfter: true})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := cp.Page(room, Query{Limit: MaxLimit, HasAfter: true})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, orig[:want]) {
			t.Errorf("copy of room %s holds %d messages that differ from the original's first %d", room, len(got), want)
		}
	}
	// The copy's dedupe index works and its counter continues.
	got := mustAppend(t, cp, msg("family", "mum", "m5"), msg("family", "mum", "new"))
	if !got[0].Duplicate || got[0].Seq != 5 || got[1].Duplicate || got[1].Seq != 121 {
		t.Errorf("append to the copy = %+v, want m5 duplicate seq 5, new seq 121", got)
	}
}

// TestConcurrent runs appends and pages at once, for the race detector.
func TestConcurrent(t *testing.T) {
	s, _ := openStore(t)
	const writers, batches = 4, 20
	done := make(chan error, writers+1)
	for w := range writers {
		go func() {
			for b := range batches {
				_, err := s.Append([]hearth.Message{
					msg("family", "mum", fmt.Sprintf("w%d-%d", w, b)),
					msg("family", "mum", fmt.Sprintf("w%d-%d", w, b)),
				})
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	go func() {
		for range 50 {
			if _, _, err := s.Page("family", Query{Limit: 10}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range writers + 1 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := lastSeq(t, s, "family"), uint64(writers*batches); got != want {
		t.Errorf("LastSeq = %d, want %d", got, want)
	}
}
