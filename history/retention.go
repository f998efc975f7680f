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
// MaxMessages are deleted. Zero means no limit.
type Retention struct {
	MaxAge      time.Duration
	MaxMessages int
}

// pruneBatch is the most messages one transaction deletes, so that the
// archive's commits never wait long for retention.
const pruneBatch = 1000

// Prune deletes what room's retention no longer keeps, oldest first, with
// each message's index entry, in transactions of at most pruneBatch
// messages. It returns how many messages it deleted. Seqs are never
// reused: the room's counter keeps counting.
func (s *Store) Prune(room string, r Retention, now time.Time) (int, error) {
	if r.MaxAge <= 0 && r.MaxMessages <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-r.MaxAge).UnixMilli()
	// doomed lists the oldest messages to delete, at most pruneBatch.
	// Only the oldest are ever deleted, so seqs in the bucket are
	// contiguous and the count is their span.
	doomed := func(mb *bolt.Bucket, most int) ([]hearth.Message, error) {
		c := mb.Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if first == nil {
			return nil, nil
		}
		count := int(seqOf(last) - seqOf(first) + 1)
		var out []hearth.Message
		for k, v := c.First(); k != nil && len(out) < most; k, v = c.Next() {
			m, err := decode(k, v)
			if err != nil {
				return nil, err
			}
			tooMany := r.MaxMessages > 0 && count-len(out) > r.MaxMessages
			tooOld := r.MaxAge > 0 && m.At < cutoff
			if !tooMany && !tooOld {
				break
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
		first, err = doomed(mb, 1)
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
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			mb, ib := tx.Bucket(msgBucket(room)), tx.Bucket(indexBucket(room))
			if mb == nil {
				return nil
			}
			doomed, err := doomed(mb, pruneBatch)
			if err != nil {
				return err
			}
			for _, m := range doomed {
				if err := mb.Delete(seqKey(m.Seq)); err != nil {
					return fmt.Errorf("delete message %d: %w", m.Seq, err)
				}
				if ib != nil {
					if err := ib.Delete(indexKey(m.From, m.ID)); err != nil {
						return fmt.Errorf("delete index of message %d: %w", m.Seq, err)
					}
				}
				if err := dropRefs(tx, room, m.Seq, m.Attachments); err != nil {
					return err
				}
			}
			n = len(doomed)
			return nil
		})
		total += n
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
