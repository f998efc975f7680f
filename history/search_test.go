package history

import (
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

func searchSeqs(t *testing.T, s *Store, q string) []uint64 {
	t.Helper()
	got, err := s.Search("family", q, 0)
	if err != nil {
		t.Fatalf("Search(%q): %v", q, err)
	}
	return seqs(got)
}

func say(from, id, text string) hearth.Message {
	return hearth.Message{ID: id, Room: "family", From: from, Text: text}
}

func TestSearch(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, say("dad", "m1", "Dinner is READY"), say("mum", "m2", "Dinnertime, kids!"),
		say("kid", "m3", "Is dinner vegan? Grüße"), say("kid", "m4", "pizza 42"))
	for q, want := range map[string][]uint64{
		"dinner":         {3, 2, 1}, // the last word is a prefix; newest first
		"dinner ":        {3, 2, 1},
		"DINNER is":      {3, 1},
		"is dinner":      {3, 1}, // any order
		"dinnertime":     {2},
		"din rea":        nil, // only the last word is a prefix
		"dinner rea":     {1},
		"grüße":          {3},
		"GRÜ":            {3},
		"42":             {4},
		"pizza, 4":       {4},
		"nothing":        nil,
		"!!":             nil,
		"vegan dinner z": nil,
	} {
		if got := searchSeqs(t, s, q); !slices.Equal(got, want) {
			t.Errorf("Search(%q) = %v, want %v", q, got, want)
		}
	}
	if got, _ := s.Search("family", "dinner", 2); !slices.Equal(seqs(got), []uint64{3, 2}) {
		t.Errorf("limit 2: %v", seqs(got))
	}
	if got, _ := s.Search("nosuch", "dinner", 2); len(got) != 0 || got == nil {
		t.Errorf("unknown room: %v", got)
	}
	if _, err := s.Search("Bad!", "x", 1); err == nil {
		t.Error("a bad room name: no error")
	}
}

func TestSearchFollowsEdits(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, say("dad", "m1", "pancakes tomorrow"), say("dad", "m2", "pancakes today"))
	mustAppend(t, s, event("dad", "e1", hearth.TypeEdit, "dad", "m1", "waffles tomorrow"))
	if got := searchSeqs(t, s, "pancakes"); !slices.Equal(got, []uint64{2}) {
		t.Errorf("after the edit, pancakes: %v", got)
	}
	got, _ := s.Search("family", "waffles", 0)
	if len(got) != 1 || got[0].Seq != 1 || got[0].Text != "waffles tomorrow" || got[0].EditedAt == 0 {
		t.Errorf("after the edit, waffles: %+v", got)
	}
	if got := searchSeqs(t, s, "tomorrow"); !slices.Equal(got, []uint64{1}) {
		t.Errorf("a word kept by the edit: %v", got)
	}
	mustAppend(t, s, event("dad", "d1", hearth.TypeDelete, "dad", "m2", ""))
	if got := searchSeqs(t, s, "pancakes"); len(got) != 0 {
		t.Errorf("after the delete, pancakes: %v", got)
	}
	if got := searchSeqs(t, s, "today"); len(got) != 0 {
		t.Errorf("after the delete, today: %v", got)
	}
}

// TestSearchOldFile: a file archived before there was a search index gets
// one when opened, once.
func TestSearchOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, say("dad", "m1", "old news"), say("kid", "m2", "older news"))
	// Make it a file of before: no search bucket at all.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(searchBucket("family")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := searchSeqs(t, s, "news"); !slices.Equal(got, []uint64{2, 1}) {
		t.Fatalf("old messages found: %v, want 2 1", got)
	}
	// New messages are indexed too, and the room goes on.
	mustAppend(t, s, say("dad", "m3", "new news"))
	if got := searchSeqs(t, s, "news"); !slices.Equal(got, []uint64{3, 2, 1}) {
		t.Fatalf("after an append: %v", got)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(searchBucket("family")).Get(searchBuiltKey) == nil {
			t.Error("no mark of the built index")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWords(t *testing.T) {
	got := Words("Hello, WORLD! hello-again; 3rd Ünïcödé 🎉 x")
	want := []string{"hello", "world", "again", "3rd", "ünïcödé", "x"}
	if !slices.Equal(got, want) {
		t.Errorf("Words = %q, want %q", got, want)
	}
}
