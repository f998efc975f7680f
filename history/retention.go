package history

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

func seqOf(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// Retention says how long a room keeps its messages: those older than
// MaxAge (by the archive's clock, At) and those beyond the newest
// MaxMessages are deleted. Zero means no limit. MaxMessages counts
// messages only; events go with what lies before the oldest message kept
// (an event always comes after its target, so the events left are of
// messages kept).
type Retention struct {
	MaxAge      time.Duration
	MaxMessages int
}

// pruneBatch is the most entries one transaction deletes, so that the
// archive's commits never wait long for retention.
const pruneBatch = 1000

// Prune deletes what room's retention no longer keeps, oldest first: each
// message too old or beyond the count, and every event before the oldest
// message kept, with their index entries and search words, in
// transactions of at most pruneBatch entries. It returns how many
// messages it deleted. Seqs are never reused: the room's counter keeps
// counting.
func (s *Store) Prune(room string, r Retention, now time.Time) (int, error) {
	if r.MaxAge <= 0 && r.MaxMessages <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-r.MaxAge).UnixMilli()
	// doomed lists the oldest entries to delete, at most most. Only the
	// oldest are ever deleted, so seqs in the bucket are contiguous and
	// their span, less the events, counts the messages.
	doomed := func(mb, sb *bolt.Bucket, most int) ([]hearth.Message, error) {
		c := mb.Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if first == nil {
			return nil, nil
		}
		count := int(seqOf(last) - seqOf(first) + 1)
		if sb != nil {
			count -= int(eventCount(sb))
		}
		var out []hearth.Message
		gone := 0 // messages in out
		for k, v := c.First(); k != nil && len(out) < most; k, v = c.Next() {
			m, err := decode(k, v)
			if err != nil {
				return nil, err
			}
			if !m.IsEvent() {
				tooMany := r.MaxMessages > 0 && count-gone > r.MaxMessages
				tooOld := r.MaxAge > 0 && m.At < cutoff
				if !tooMany && !tooOld {
					break
				}
				gone++
			}
			out = append(out, m)
		}
		return out, nil
	}
	// Most passes find nothing to delete: a read transaction says so
	// without a write (and its disk sync) beside the archive's.
	var first []hearth.Message
	err := s.db.View(func(tx *bolt.Tx) error {
		mb := tx.Bucket(msgBucket(room))
		if mb == nil {
			return nil
		}
		var err error
		first, err = doomed(mb, tx.Bucket(searchBucket(room)), 1)
		return err
	})
	if err != nil || len(first) == 0 {
		if err != nil {
			err = fmt.Errorf("prune room %s: %w", room, err)
		}
		return 0, err
	}
	total := 0
	for {
		n, msgs := 0, 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			mb, ib, sb := tx.Bucket(msgBucket(room)), tx.Bucket(indexBucket(room)), tx.Bucket(searchBucket(room))
			if mb == nil {
				return nil
			}
			doomed, err := doomed(mb, sb, pruneBatch)
			if err != nil {
				return err
			}
			events := 0
			for _, m := range doomed {
				if err := mb.Delete(seqKey(m.Seq)); err != nil {
					return fmt.Errorf("delete message %d: %w", m.Seq, err)
				}
				if ib != nil {
					if err := ib.Delete(indexKey(m.From, m.ID)); err != nil {
						return fmt.Errorf("delete index of message %d: %w", m.Seq, err)
					}
				}
				if m.IsEvent() {
					events++
					continue
				}
				msgs++
				if err := dropRefs(tx, room, m.Seq, m.Attachments); err != nil {
					return err
				}
				if sb != nil {
					if err := unindex(sb, m.Seq, m.Text); err != nil {
						return err
					}
					if err := forgetEdits(sb, m.Seq); err != nil {
						return fmt.Errorf("forget edits of message %d: %w", m.Seq, err)
					}
				}
			}
			if sb != nil && events > 0 {
				if err := addEvents(sb, -int64(events)); err != nil {
					return fmt.Errorf("count events: %w", err)
				}
			}
			n = len(doomed)
			return nil
		})
		total += msgs
		if err != nil {
			return total, fmt.Errorf("prune room %s: %w", room, err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// RunRetention prunes every room with a retention now and then every
// `every`, until ctx is done, and calls then (if not nil) after each pass:
// the attachments' sweep, which deletes the files whose last reference a
// pass dropped. It runs beside the archive: each pass is a few short
// transactions.
func (s *Store) RunRetention(ctx context.Context, rooms map[string]Retention, every time.Duration, log *slog.Logger, then func(now time.Time)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for room, r := range rooms {
			n, err := s.Prune(room, r, time.Now())
			if err != nil {
				log.Error("retention", "room", room, "error", err)
			} else if n > 0 {
				log.Info("retention deleted old messages", "room", room, "messages", n)
			}
		}
		if then != nil {
			then(time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
