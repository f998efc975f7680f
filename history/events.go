package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// Events (reactions, edits, deletes) are archived in "m/<room>" with
// their own seq, deduplicated by (room, sender, id) like messages. In the
// transaction that archives an event, it is folded into its target, the
// message it names (see fold).

// isEventRecord tells an event's record from a message's without decoding
// it: json.Marshal of hearth.Message writes "type" right after "seq", and
// only for events (a message's Type is empty).
func isEventRecord(v []byte) bool {
	i := bytes.IndexByte(v, ',')
	return i > 0 && bytes.HasPrefix(v[i:], []byte(`,"type":"`)) && !bytes.HasPrefix(v[i:], []byte(`,"type":"message"`))
}

// Keys of the "s/<room>" bucket beside the words: they start with NUL,
// which no word does.
var (
	searchBuiltKey = []byte("\x00built")  // the index holds every message
	eventCountKey  = []byte("\x00events") // how many events "m/<room>" holds, 8 bytes
	editKeyPrefix  = []byte("\x00edit/")  // + target seq + edit seq: the edits of a message
)

func editKey(target, edit uint64) []byte {
	k := append(slices.Clip(editKeyPrefix), seqKey(target)...)
	return append(k, seqKey(edit)...)
}

// eventCount returns the number of events in the room.
func eventCount(sb *bolt.Bucket) uint64 {
	if v := sb.Get(eventCountKey); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func addEvents(sb *bolt.Bucket, n int64) error {
	return sb.Put(eventCountKey, seqKey(uint64(int64(eventCount(sb))+n)))
}

// fold applies the event ev (its Seq and At set) to its target message:
//
//   - edit: the text is replaced and EditedAt set to the event's At;
//   - delete: Deleted, no text, attachments or reactions, and the text of
//     the earlier edits of the target is removed; its attachments lose
//     their reference, so SweepAttachments deletes those no other message
//     refers to;
//   - reaction: the sender is added to Reactions[emoji], or taken out if
//     there already (an emptied list goes).
//
// An event whose target is unknown (or is itself an event) changes
// nothing; neither does an edit or delete by anyone but the target's
// sender, nor any event on a deleted message (an edit of one loses its
// text). The search index follows the target's text.
func (rb *roomBuckets) fold(ev *hearth.Message) error {
	if err := addEvents(rb.search, 1); err != nil {
		return fmt.Errorf("count event %d: %w", ev.Seq, err)
	}
	if ev.Target == nil {
		return nil
	}
	k := rb.index.Get(indexKey(ev.Target.From, ev.Target.ID))
	if k == nil {
		return nil
	}
	v := rb.msgs.Get(k)
	if v == nil || isEventRecord(v) {
		return nil
	}
	m, err := decode(k, v)
	if err != nil {
		return err
	}
	if m.Deleted {
		ev.Text = ""
		return nil
	}
	switch ev.Type {
	case hearth.TypeEdit:
		if ev.From != m.From {
			return nil
		}
		if err := rb.unindexWords(m.Seq, m.Text); err != nil {
			return err
		}
		m.Text, m.EditedAt = ev.Text, ev.At
		if err := rb.indexWords(m.Seq, m.Text); err != nil {
			return err
		}
		if err := rb.search.Put(editKey(m.Seq, ev.Seq), []byte{}); err != nil {
			return fmt.Errorf("note edit %d: %w", ev.Seq, err)
		}
	case hearth.TypeDelete:
		if ev.From != m.From {
			return nil
		}
		if err := rb.unindexWords(m.Seq, m.Text); err != nil {
			return err
		}
		if err := rb.scrubEdits(m.Seq); err != nil {
			return err
		}
		if err := dropRefs(rb.tx, rb.room, m.Seq, m.Attachments); err != nil {
			return err
		}
		m.Deleted, m.Text, m.Attachments, m.Reactions = true, "", nil, nil
	case hearth.TypeReaction:
		users := m.Reactions[ev.Emoji]
		if i := slices.Index(users, ev.From); i >= 0 {
			users = slices.Delete(users, i, i+1)
		} else {
			users = append(users, ev.From)
		}
		if m.Reactions == nil {
			m.Reactions = map[string][]string{}
		}
		m.Reactions[ev.Emoji] = users
		if len(users) == 0 {
			delete(m.Reactions, ev.Emoji)
		}
	default:
		return nil
	}
	nv, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message %d: %w", m.Seq, err)
	}
	if err := rb.msgs.Put(seqKey(m.Seq), nv); err != nil {
		return fmt.Errorf("fold event %d into message %d: %w", ev.Seq, m.Seq, err)
	}
	return nil
}

// scrubEdits removes the text of every edit of the message at seq, and
// forgets them.
func (rb *roomBuckets) scrubEdits(seq uint64) error {
	for _, k := range editsOf(rb.search, seq) {
		ek := k[len(editKeyPrefix)+8:]
		if v := rb.msgs.Get(ek); v != nil {
			e, err := decode(ek, v)
			if err != nil {
				return err
			}
			e.Text = ""
			nv, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode event %d: %w", e.Seq, err)
			}
			if err := rb.msgs.Put(slices.Clone(ek), nv); err != nil {
				return fmt.Errorf("scrub edit %d: %w", e.Seq, err)
			}
		}
		if err := rb.search.Delete(k); err != nil {
			return fmt.Errorf("forget edit: %w", err)
		}
	}
	return nil
}

// forgetEdits drops the notes of the edits of the message at seq (when
// retention deletes it).
func forgetEdits(sb *bolt.Bucket, seq uint64) error {
	for _, k := range editsOf(sb, seq) {
		if err := sb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// editsOf returns the keys of the notes of the edits of the message at
// seq (copies: they outlive the cursor).
func editsOf(sb *bolt.Bucket, seq uint64) [][]byte {
	prefix := append(slices.Clip(editKeyPrefix), seqKey(seq)...)
	var keys [][]byte
	c := sb.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	return keys
}
