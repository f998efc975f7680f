package history

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// Page sizes (README, "GET /api/rooms/{room}/messages").
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

var (
	// ErrLocked is returned (wrapped, together with bolt.ErrTimeout) by Open
	// when another Store, in this process or another, holds the file.
	ErrLocked = errors.New("history file is locked by another process")

	// ErrBadQuery is returned by Page when a query asks for both before and
	// after.
	ErrBadQuery = errors.New("bad history query: before and after are exclusive")

	// ErrBadMessage is wrapped by Append's errors for a message it refuses
	// (bad room or sender name, bad id); nothing of the batch is written.
	// Errors about a bad name also wrap hearth.ErrBadName.
	ErrBadMessage = errors.New("bad message")
)

// Store is the message archive in one bbolt file. Its methods are safe for
// concurrent use: reads run in parallel with each other and with one writer.
type Store struct {
	db *bolt.DB
}

// ReadTxs returns how many read transactions are open now.
func (s *Store) ReadTxs() int { return s.db.Stats().OpenTxN }

// Query selects one page of a room; see Store.Page.
type Query struct {
	Limit    int    // 1..MaxLimit; anything else is clamped
	Before   uint64 // >0: the page just older than this seq
	After    uint64 // with HasAfter: the page just newer than this seq
	HasAfter bool   // After is set (After 0 means "from the oldest")
}

// Open opens the store at path, creating the file if needed (not its
// directory). If another Store holds the file it gives up after a second
// with an error wrapping ErrLocked.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open history %s: %w: %w", path, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.buildSearch(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	return s, nil
}

// Close waits for the transactions in progress and closes the file. A second
// call does nothing and returns nil; other calls after Close fail with
// bolt.ErrDatabaseNotOpen.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close history: %w", err)
	}
	return nil
}

// Append archives msgs in one read-write transaction, so a batch is committed
// (and fsynced) once; it returns one Appended per message, in order.
//
// A message whose (Room, From, ID) is already archived, by an earlier call or
// earlier in this batch, is not written again: its Appended has Duplicate set
// and the stored copy's Seq and At. Any other message gets the room's next
// seq (1, 2, 3, ... per room); its At is kept if not 0, else set to now
// (Unix milliseconds); its Seq field is ignored.
//
// Every message is checked before anything is written: a bad room or sender
// name, or an id that is not hearth.ValidID, fails the whole call with an
// error wrapping ErrBadMessage. If the commit fails, nothing is written.
func (s *Store) Append(msgs []hearth.Message) ([]hearth.Appended, error) {
	for i, m := range msgs {
		if err := checkKey(m.Room, m.From, m.ID); err != nil {
			return nil, fmt.Errorf("append message %d: %w: %w", i, ErrBadMessage, err)
		}
	}
	out := make([]hearth.Appended, len(msgs))
	if len(msgs) == 0 {
		return out, nil
	}
	now := time.Now().UnixMilli()
	err := s.db.Update(func(tx *bolt.Tx) error {
		rooms := make(map[string]*roomBuckets)
		for i, m := range msgs {
			rb, ok := rooms[m.Room]
			if !ok {
				var err error
				if rb, err = createRoom(tx, m.Room); err != nil {
					return err
				}
				rooms[m.Room] = rb
			}
			a, err := rb.append(m, now)
			if err != nil {
				return fmt.Errorf("room %s: %w", m.Room, err)
			}
			if !a.Duplicate && len(m.Attachments) > 0 {
				if err := addRefs(tx, m.Room, a.Seq, m.Attachments); err != nil {
					return err
				}
			}
			out[i] = a
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append to history: %w", err)
	}
	return out, nil
}

// Page returns one page of room, oldest first, and whether more entries
// lie beyond it in the direction asked:
//
//   - Before > 0: the newest Limit messages with seq < Before; more means
//     older ones exist. Events are left out: messages carry their state.
//   - HasAfter: the oldest Limit entries, messages and events, with seq >
//     After (After 0 starts at the oldest); more means newer ones exist.
//   - neither: the newest Limit messages, no events; more means older
//     messages exist.
//
// Before together with HasAfter is ErrBadQuery. A Limit below 1 becomes
// DefaultLimit and one above MaxLimit becomes MaxLimit. An unknown room
// gives an empty page; a bad room name an error wrapping hearth.ErrBadName.
func (s *Store) Page(room string, q Query) ([]hearth.Message, bool, error) {
	if err := hearth.CheckName(room); err != nil {
		return nil, false, fmt.Errorf("read history: room %w", err)
	}
	if q.Before > 0 && q.HasAfter {
		return nil, false, ErrBadQuery
	}
	limit := q.Limit
	switch {
	case limit < 1:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}

	msgs := []hearth.Message{}
	var more bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(msgBucket(room))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var err error
		if q.HasAfter {
			msgs, more, err = pageForward(c, q.After, limit)
		} else {
			msgs, more, err = pageBackward(c, q.Before, limit)
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read history of room %s: %w", room, err)
	}
	return msgs, more, nil
}

// LastSeq returns the last seq assigned in room, 0 if none was. A bad room
// name is an error wrapping hearth.ErrBadName.
func (s *Store) LastSeq(room string) (uint64, error) {
	if err := hearth.CheckName(room); err != nil {
		return 0, fmt.Errorf("read history: room %w", err)
	}
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(msgBucket(room)); b != nil {
			seq = b.Sequence()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read history of room %s: %w", room, err)
	}
	return seq, nil
}

// Lookup returns the archived message with the dedupe key (room, from, id),
// and false if there is none. Bad names or id are an error wrapping
// ErrBadMessage.
func (s *Store) Lookup(room, from, id string) (hearth.Message, bool, error) {
	if err := checkKey(room, from, id); err != nil {
		return hearth.Message{}, false, fmt.Errorf("look up message: %w: %w", ErrBadMessage, err)
	}
	var (
		m     hearth.Message
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		mb, ib := tx.Bucket(msgBucket(room)), tx.Bucket(indexBucket(room))
		if mb == nil || ib == nil {
			return nil
		}
		var err error
		m, found, err = lookup(mb, ib, from, id)
		return err
	})
	if err != nil {
		return hearth.Message{}, false, fmt.Errorf("look up message in room %s: %w", room, err)
	}
	return m, found, nil
}

// WriteTo writes a consistent copy of the whole bbolt file to w, taken in a
// read transaction, so appends carry on meanwhile. The copy opens with Open.
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("back up history: %w", err)
	}
	return n, nil
}

// Snapshot writes a consistent copy of the store (as WriteTo) to a
// temporary file next to it, and returns that file, unlinked and at its
// start: the read transaction lasts only as long as the local copy, not as
// long as whoever reads the file takes. Close the file when done.
func (s *Store) Snapshot() (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(s.db.Path()), ".backup-*")
	if err != nil {
		return nil, fmt.Errorf("back up history: %w", err)
	}
	os.Remove(f.Name()) // the open file stays readable; nothing is left behind
	if _, err := s.WriteTo(f); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("back up history: %w", err)
	}
	return f, nil
}

// checkKey validates a dedupe key. The checks also keep the index key
// unambiguous: names and ids never contain the NUL separator.
func checkKey(room, from, id string) error {
	if err := hearth.CheckName(room); err != nil {
		return fmt.Errorf("room %w", err)
	}
	if err := hearth.CheckName(from); err != nil {
		return fmt.Errorf("sender %w", err)
	}
	if !hearth.ValidID(id) {
		return fmt.Errorf("id %q: want 1 to %d characters of A-Z, a-z, 0-9, _ and -", id, hearth.MaxIDLen)
	}
	return nil
}

func msgBucket(room string) []byte   { return []byte("m/" + room) }
func indexBucket(room string) []byte { return []byte("i/" + room) }

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

func indexKey(from, id string) []byte {
	k := make([]byte, 0, len(from)+1+len(id))
	k = append(k, from...)
	k = append(k, 0)
	return append(k, id...)
}

// roomBuckets are a room's buckets inside one read-write transaction.
type roomBuckets struct {
	tx                  *bolt.Tx
	room                string
	msgs, index, search *bolt.Bucket
}

func createRoom(tx *bolt.Tx, room string) (*roomBuckets, error) {
	mb, err := tx.CreateBucketIfNotExists(msgBucket(room))
	if err != nil {
		return nil, fmt.Errorf("create bucket for room %s: %w", room, err)
	}
	ib, err := tx.CreateBucketIfNotExists(indexBucket(room))
	if err != nil {
		return nil, fmt.Errorf("create index for room %s: %w", room, err)
	}
	sb, err := createSearch(tx, room)
	if err != nil {
		return nil, err
	}
	return &roomBuckets{tx: tx, room: room, msgs: mb, index: ib, search: sb}, nil
}

// append stores m unless its key is indexed already. Buffers passed to Put
// are fresh for every message: bbolt keeps values until the commit.
func (rb *roomBuckets) append(m hearth.Message, now int64) (hearth.Appended, error) {
	stored, dup, err := lookup(rb.msgs, rb.index, m.From, m.ID)
	if err != nil {
		return hearth.Appended{}, err
	}
	if dup {
		return appended(stored, true), nil
	}
	seq, err := rb.msgs.NextSequence()
	if err != nil {
		return hearth.Appended{}, fmt.Errorf("next seq: %w", err)
	}
	m.Seq = seq
	if m.At == 0 {
		m.At = now
	}
	if m.IsEvent() {
		if err := rb.fold(&m); err != nil {
			return hearth.Appended{}, err
		}
	} else if !m.Deleted {
		if err := rb.indexWords(m.Seq, m.Text); err != nil {
			return hearth.Appended{}, err
		}
	}
	v, err := json.Marshal(m)
	if err != nil {
		return hearth.Appended{}, fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	k := seqKey(seq)
	if err := rb.msgs.Put(k, v); err != nil {
		return hearth.Appended{}, fmt.Errorf("put message %d: %w", seq, err)
	}
	if err := rb.index.Put(indexKey(m.From, m.ID), k); err != nil {
		return hearth.Appended{}, fmt.Errorf("index message %d: %w", seq, err)
	}
	return appended(m, false), nil
}

func appended(m hearth.Message, dup bool) hearth.Appended {
	return hearth.Appended{
		ReceiptItem: hearth.ReceiptItem{ID: m.ID, Seq: m.Seq, At: m.At},
		Room:        m.Room,
		From:        m.From,
		Duplicate:   dup,
	}
}

// lookup finds a message by its dedupe key. An index entry whose message is
// gone counts as absent (see the package doc).
func lookup(mb, ib *bolt.Bucket, from, id string) (hearth.Message, bool, error) {
	k := ib.Get(indexKey(from, id))
	if k == nil {
		return hearth.Message{}, false, nil
	}
	v := mb.Get(k)
	if v == nil {
		return hearth.Message{}, false, nil
	}
	m, err := decode(k, v)
	if err != nil {
		return hearth.Message{}, false, err
	}
	return m, true, nil
}

// decode copies a stored message out of the transaction's memory
// (json.Unmarshal allocates its strings).
func decode(k, v []byte) (hearth.Message, error) {
	var m hearth.Message
	if len(k) != 8 || v == nil {
		return m, fmt.Errorf("corrupt entry %x in message bucket", k)
	}
	if m, ok := decodeFast(v); ok {
		return m, nil
	}
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("decode message %d: %w", binary.BigEndian.Uint64(k), err)
	}
	return m, nil
}

// pageForward reads the oldest limit entries, messages and events, with
// seq > after.
func pageForward(c *bolt.Cursor, after uint64, limit int) ([]hearth.Message, bool, error) {
	msgs := make([]hearth.Message, 0, limit)
	if after == math.MaxUint64 {
		return msgs, false, nil
	}
	k, v := c.Seek(seqKey(after + 1))
	for ; k != nil && len(msgs) < limit; k, v = c.Next() {
		m, err := decode(k, v)
		if err != nil {
			return nil, false, err
		}
		msgs = append(msgs, m)
	}
	return msgs, k != nil, nil
}

// pageBackward reads the newest limit messages (not events) with seq <
// before, or the newest of all if before is 0, and returns them oldest
// first; more says whether an older message is left.
func pageBackward(c *bolt.Cursor, before uint64, limit int) ([]hearth.Message, bool, error) {
	msgs := make([]hearth.Message, 0, limit)
	var k, v []byte
	if before == 0 {
		k, v = c.Last()
	} else if k, _ = c.Seek(seqKey(before)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && len(msgs) < limit; k, v = c.Prev() {
		if isEventRecord(v) {
			continue
		}
		m, err := decode(k, v)
		if err != nil {
			return nil, false, err
		}
		msgs = append(msgs, m)
	}
	for ; k != nil && isEventRecord(v); k, v = c.Prev() {
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, k != nil, nil
}

// Check reads the whole file and reports the first inconsistency bbolt
// finds in it, for a backup that was just written.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drained: the checker reads the transaction until it closes the channel
			if first == nil {
				first = fmt.Errorf("check history: %w", err)
			}
		}
		return first
	})
}
