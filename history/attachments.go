package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// Attachments (photos) are kept in two buckets:
//
//	"attachments"  key: id (64 hex)                          value: JSON of attRecord
//	"attrefs"      key: id, room, NUL, seq as 8 bytes BE     value: empty
//
// Append records a reference for each attachment of each message it
// archives, in its transaction; Prune (and a deleted message) drops them
// with dropRefs. Store.SweepAttachments then deletes what no message
// refers to any more.

var (
	attBucket  = []byte("attachments")
	attRefsKey = []byte("attrefs")
)

// attRecord is the stored metadata of an attachment.
type attRecord struct {
	hearth.Attachment
	// Also are the users besides Uploader who uploaded the same image.
	Also []string `json:"also_uploaded_by,omitempty"`
	// Orphaned is when the last message referring to it went (Unix ms);
	// 0 while messages refer to it or none ever did.
	Orphaned int64 `json:"orphaned_at,omitempty"`
}

func refKey(id, room string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+len(room)+9)
	k = append(k, id...)
	k = append(k, room...)
	k = append(k, 0)
	return append(k, seqKey(seq)...)
}

// hasRefs reports whether any message refers to id.
func hasRefs(refs *bolt.Bucket, id string) bool {
	if refs == nil {
		return false
	}
	k, _ := refs.Cursor().Seek([]byte(id))
	return k != nil && bytes.HasPrefix(k, []byte(id))
}

// addRefs records that message seq of room refers to ids.
func addRefs(tx *bolt.Tx, room string, seq uint64, ids []string) error {
	refs, err := tx.CreateBucketIfNotExists(attRefsKey)
	if err != nil {
		return fmt.Errorf("create attachment references: %w", err)
	}
	for _, id := range ids {
		if err := refs.Put(refKey(id, room, seq), []byte{}); err != nil {
			return fmt.Errorf("reference attachment %s: %w", id, err)
		}
	}
	return nil
}

// dropRefs forgets that message seq of room refers to ids, in tx: call
// it whenever a message's attachments leave the archive (retention, a
// deleted message). An attachment left with no reference is marked, and
// the next SweepAttachments deletes it.
func dropRefs(tx *bolt.Tx, room string, seq uint64, ids []string) error {
	refs := tx.Bucket(attRefsKey)
	if refs == nil {
		return nil
	}
	now := time.Now().UnixMilli()
	for _, id := range ids {
		if err := refs.Delete(refKey(id, room, seq)); err != nil {
			return fmt.Errorf("drop reference to attachment %s: %w", id, err)
		}
		if hasRefs(refs, id) {
			continue
		}
		b := tx.Bucket(attBucket)
		if b == nil {
			continue
		}
		v := b.Get([]byte(id))
		if v == nil {
			continue
		}
		var r attRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode attachment %s: %w", id, err)
		}
		r.Orphaned = now
		if err := putRecord(b, r); err != nil {
			return err
		}
	}
	return nil
}

func putRecord(b *bolt.Bucket, r attRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode attachment %s: %w", r.ID, err)
	}
	if err := b.Put([]byte(r.ID), v); err != nil {
		return fmt.Errorf("put attachment %s: %w", r.ID, err)
	}
	return nil
}

// PutAttachment records an upload. The same image uploaded again (the
// same id) keeps its first metadata, adds the user to those who may see
// it, and starts its time to be sent anew.
func (s *Store) PutAttachment(a hearth.Attachment) error {
	if !hearth.ValidAttachmentID(a.ID) {
		return fmt.Errorf("put attachment: %w: id %q", ErrBadMessage, a.ID)
	}
	if err := hearth.CheckName(a.Uploader); err != nil {
		return fmt.Errorf("put attachment: uploader %w", err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(attBucket)
		if err != nil {
			return fmt.Errorf("create attachments: %w", err)
		}
		r := attRecord{Attachment: a}
		if v := b.Get([]byte(a.ID)); v != nil {
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode attachment %s: %w", a.ID, err)
			}
			if a.Uploader != r.Uploader && !slices.Contains(r.Also, a.Uploader) {
				r.Also = append(r.Also, a.Uploader)
			}
			r.CreatedAt, r.Orphaned = a.CreatedAt, 0
		}
		return putRecord(b, r)
	})
}

// Attachment returns the metadata of id if user may see it: one of its
// uploaders, or a reader (canRead) of a room with a message referring to
// it. Unknown and not allowed are both false.
func (s *Store) Attachment(id, user string, canRead func(room string) bool) (hearth.Attachment, bool, error) {
	var (
		r  attRecord
		ok bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(attBucket)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode attachment %s: %w", id, err)
		}
		if r.Uploader == user || slices.Contains(r.Also, user) {
			ok = true
			return nil
		}
		refs := tx.Bucket(attRefsKey)
		if refs == nil {
			return nil
		}
		c := refs.Cursor()
		seen := map[string]bool{}
		for k, _ := c.Seek([]byte(id)); k != nil && bytes.HasPrefix(k, []byte(id)); k, _ = c.Next() {
			rest := k[len(id):]
			if len(rest) < 9 {
				continue
			}
			room := string(rest[:len(rest)-9])
			if !seen[room] {
				seen[room] = true
				if canRead(room) {
					ok = true
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return hearth.Attachment{}, false, fmt.Errorf("read attachment: %w", err)
	}
	if !ok {
		return hearth.Attachment{}, false, nil
	}
	return r.Attachment, true, nil
}

// HasAttachment reports whether id has metadata.
func (s *Store) HasAttachment(id string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(attBucket); b != nil {
			ok = b.Get([]byte(id)) != nil
		}
		return nil
	})
	return ok, err
}

// SweepAttachments deletes, in one transaction, the metadata of every
// attachment no message refers to that either was referred to before
// (its messages were pruned or deleted) or was uploaded before
// now-unsent and never sent. It returns their ids once committed: their
// files may go then.
func (s *Store) SweepAttachments(now time.Time, unsent time.Duration) ([]string, error) {
	cutoff := now.Add(-unsent).UnixMilli()
	doomed := func(tx *bolt.Tx) ([]string, error) {
		b := tx.Bucket(attBucket)
		if b == nil {
			return nil, nil
		}
		refs := tx.Bucket(attRefsKey)
		var out []string
		err := b.ForEach(func(k, v []byte) error {
			var r attRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode attachment %s: %w", k, err)
			}
			if !hasRefs(refs, r.ID) && (r.Orphaned != 0 || r.CreatedAt < cutoff) {
				out = append(out, r.ID)
			}
			return nil
		})
		return out, err
	}
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ids, err = doomed(tx)
		return err
	})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if ids, err = doomed(tx); err != nil {
			return err
		}
		b := tx.Bucket(attBucket)
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweep attachments: %w", err)
	}
	return ids, nil
}

// AttachmentIDs lists the ids of every attachment with metadata, in
// order (hearth backup copies their files).
func (s *Store) AttachmentIDs() ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(attBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list attachments: %w", err)
	}
	return ids, nil
}
