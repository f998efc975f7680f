package history

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// The search index of a room is the bucket "s/<room>": for each word of
// each message's current text, a key <word> NUL <seq as 8 bytes>, with an
// empty value. A word is a run of Unicode letters and digits, lowercased,
// cut at maxWordRunes. Appends index a message, edits swap its words,
// deletes and retention take them out.

// Search page sizes (README, "GET /api/rooms/{room}/search").
const (
	SearchDefaultLimit = 20
	SearchMaxLimit     = 50
	maxWordRunes       = 64
)

func searchBucket(room string) []byte { return []byte("s/" + room) }

// Words returns the distinct words of text, in order: its runs of letters
// and digits, lowercased, each cut at 64 characters.
func Words(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		w = strings.ToLower(w)
		if r := []rune(w); len(r) > maxWordRunes {
			w = string(r[:maxWordRunes])
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func wordKey(w string, seq uint64) []byte {
	k := make([]byte, 0, len(w)+9)
	k = append(k, w...)
	k = append(k, 0)
	return append(k, seqKey(seq)...)
}

func (rb *roomBuckets) indexWords(seq uint64, text string) error {
	for _, w := range Words(text) {
		if err := rb.search.Put(wordKey(w, seq), []byte{}); err != nil {
			return fmt.Errorf("index message %d: %w", seq, err)
		}
	}
	return nil
}

func (rb *roomBuckets) unindexWords(seq uint64, text string) error {
	return unindex(rb.search, seq, text)
}

func unindex(sb *bolt.Bucket, seq uint64, text string) error {
	for _, w := range Words(text) {
		if err := sb.Delete(wordKey(w, seq)); err != nil {
			return fmt.Errorf("unindex message %d: %w", seq, err)
		}
	}
	return nil
}

// createSearch returns a room's search bucket, creating it marked as
// complete: Open has built the index of every room that had messages.
func createSearch(tx *bolt.Tx, room string) (*bolt.Bucket, error) {
	sb, err := tx.CreateBucketIfNotExists(searchBucket(room))
	if err != nil {
		return nil, fmt.Errorf("create search index for room %s: %w", room, err)
	}
	if sb.Get(searchBuiltKey) == nil {
		if err := sb.Put(searchBuiltKey, []byte{}); err != nil {
			return nil, fmt.Errorf("create search index for room %s: %w", room, err)
		}
	}
	return sb, nil
}

// buildSearch builds, once, the search index of each room archived
// before there was one (no "s/<room>" marked built), and counts its
// events.
func (s *Store) buildSearch() error {
	var rooms []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			room, ok := bytes.CutPrefix(name, []byte("m/"))
			if !ok {
				return nil
			}
			if sb := tx.Bucket(searchBucket(string(room))); sb == nil || sb.Get(searchBuiltKey) == nil {
				rooms = append(rooms, string(room))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	for _, room := range rooms {
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(searchBucket(room)); err != nil && err != bolt.ErrBucketNotFound {
				return err
			}
			rb, err := createRoom(tx, room)
			if err != nil {
				return err
			}
			var events int64
			c := rb.msgs.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				m, err := decode(k, v)
				if err != nil {
					return err
				}
				switch {
				case m.IsEvent():
					events++
					if m.Type == hearth.TypeEdit && m.Target != nil {
						if tk := rb.index.Get(indexKey(m.Target.From, m.Target.ID)); tk != nil {
							if err := rb.search.Put(editKey(seqOf(tk), m.Seq), []byte{}); err != nil {
								return err
							}
						}
					}
				case !m.Deleted:
					if err := rb.indexWords(m.Seq, m.Text); err != nil {
						return err
					}
				}
			}
			return addEvents(rb.search, events)
		})
		if err != nil {
			return fmt.Errorf("build search index of room %s: %w", room, err)
		}
	}
	return nil
}

// Search returns the messages of room whose text has every word of q,
// the last one as a prefix (so a query typed so far finds), newest first,
// at most limit (below 1: SearchDefaultLimit; at most SearchMaxLimit).
// Deleted messages are never found. A q without words finds nothing. A
// bad room name is an error wrapping hearth.ErrBadName.
func (s *Store) Search(room, q string, limit int) ([]hearth.Message, error) {
	if err := hearth.CheckName(room); err != nil {
		return nil, fmt.Errorf("search history: room %w", err)
	}
	switch {
	case limit < 1:
		limit = SearchDefaultLimit
	case limit > SearchMaxLimit:
		limit = SearchMaxLimit
	}
	words := Words(q)
	out := []hearth.Message{}
	if len(words) == 0 {
		return out, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		sb, mb := tx.Bucket(searchBucket(room)), tx.Bucket(msgBucket(room))
		if sb == nil || mb == nil {
			return nil
		}
		var hits map[uint64]bool
		for i, w := range words {
			found := matches(sb, w, i == len(words)-1)
			if hits != nil {
				for seq := range hits {
					if !found[seq] {
						delete(hits, seq)
					}
				}
			} else {
				hits = found
			}
			if len(hits) == 0 {
				return nil
			}
		}
		seqs := make([]uint64, 0, len(hits))
		for seq := range hits {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		slices.Reverse(seqs)
		for _, seq := range seqs {
			if len(out) == limit {
				break
			}
			k := seqKey(seq)
			v := mb.Get(k)
			if v == nil {
				continue
			}
			m, err := decode(k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search room %s: %w", room, err)
	}
	return out, nil
}

// matches returns the seqs of the messages with word w (or, with prefix,
// a word that starts with w).
func matches(sb *bolt.Bucket, w string, prefix bool) map[uint64]bool {
	found := map[uint64]bool{}
	start := []byte(w)
	if !prefix {
		start = append(start, 0)
	}
	c := sb.Cursor()
	for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, start); k, _ = c.Next() {
		if len(k) < len(w)+9 || k[len(k)-9] != 0 {
			continue
		}
		found[seqOf(k[len(k)-8:])] = true
	}
	return found
}
