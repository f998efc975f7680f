package history

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// Unread counts the archived messages of room with seq > after that are
// not from except, and stops counting at limit (limit < 1: no limit).
// Entries that are not messages (events: a "type" other than "" or
// "message") do not count. An unknown room has none; a bad room name is an
// error wrapping hearth.ErrBadName.
func (s *Store) Unread(room string, after uint64, except string, limit int) (int, error) {
	if err := hearth.CheckName(room); err != nil {
		return 0, fmt.Errorf("count unread: room %w", err)
	}
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(msgBucket(room))
		if b == nil || after == ^uint64(0) {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && (limit < 1 || n < limit); k, v = c.Next() {
			var e struct {
				From string `json:"from"`
				Type string `json:"type"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode entry %x: %w", k, err)
			}
			if (e.Type == "" || e.Type == "message") && e.From != except {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count unread in room %s: %w", room, err)
	}
	return n, nil
}
