package attachments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearth-home/hearth"
)

// Meta is where the metadata and the references of attachments live
// (history.Store).
type Meta interface {
	// PutAttachment records a (maybe repeated) upload of a.
	PutAttachment(a hearth.Attachment) error
	// Attachment returns a's metadata if user may see it: the uploader,
	// or anyone who can read (canRead) a room with a message that refers
	// to it.
	Attachment(id, user string, canRead func(room string) bool) (hearth.Attachment, bool, error)
	// SweepAttachments deletes the metadata of attachments no message
	// refers to any more, and of those never sent and uploaded before
	// now-unsent; it returns their ids, once committed.
	SweepAttachments(now time.Time, unsent time.Duration) ([]string, error)
	// HasAttachment reports whether id has metadata.
	HasAttachment(id string) (bool, error)
}

// ErrNotFound is returned by Open for an attachment that is unknown or
// not the user's to see.
var ErrNotFound = errors.New("no such attachment")

// Unsent is how long an upload no message refers to is kept.
const Unsent = 24 * time.Hour

// strayAge is how old a file without metadata (an upload cut short, a
// sweep cut short) must be before a sweep removes it.
const strayAge = time.Hour

// Store keeps attachments under a directory: dir/ab/abcdef… (the id) and
// dir/ab/abcdef…-thumb, each written to a temporary file and renamed.
type Store struct {
	dir  string
	meta Meta
	// mu orders an upload's files and metadata against a sweep's: a
	// sweep never removes the file of an upload it did not see.
	mu        sync.Mutex
	work      chan struct{} // uploads decoding at once
	lastStray time.Time
}

// New opens (creating it) the directory dir.
func New(dir string, meta Meta) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("attachments: %w", err)
	}
	return &Store{dir: dir, meta: meta, work: make(chan struct{}, 2)}, nil
}

// Dir is the directory of the files.
func (s *Store) Dir() string { return s.dir }

// Path is where the file of id is (the thumbnail with thumb).
func (s *Store) Path(id string, thumb bool) string {
	p := filepath.Join(s.dir, id[:2], id)
	if thumb {
		p += "-thumb"
	}
	return p
}

// Save processes an upload of user to room and stores it; the same image
// twice is stored once. Errors wrap ErrBadImage or ErrImageTooLarge for
// the bytes; nothing is left behind on any error.
func (s *Store) Save(ctx context.Context, user, room string, body []byte) (hearth.Attachment, error) {
	select {
	case s.work <- struct{}{}:
		defer func() { <-s.work }()
	case <-ctx.Done():
		return hearth.Attachment{}, hearth.KindError(hearth.ErrBusy, "too many uploads at once")
	}
	img, err := Process(body)
	if err != nil {
		return hearth.Attachment{}, err
	}
	sum := sha256.Sum256(img.Data)
	a := hearth.Attachment{
		ID: hex.EncodeToString(sum[:]), ContentType: img.ContentType, Bytes: int64(len(img.Data)),
		Width: img.Width, Height: img.Height, ThumbType: img.ThumbType,
		Uploader: user, Room: room, CreatedAt: time.Now().UnixMilli(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var made []string
	for _, f := range []struct {
		path string
		data []byte
	}{{s.Path(a.ID, false), img.Data}, {s.Path(a.ID, true), img.Thumb}} {
		fresh, err := writeFile(f.path, f.data)
		if fresh {
			made = append(made, f.path)
		}
		if err != nil {
			removeAll(made)
			return hearth.Attachment{}, fmt.Errorf("store attachment: %w", err)
		}
	}
	if err := s.meta.PutAttachment(a); err != nil {
		removeAll(made)
		return hearth.Attachment{}, err
	}
	return a, nil
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// writeFile writes data to path through a temporary file and a rename,
// unless path exists already (files are named by their content). fresh
// says it was written now.
func writeFile(path string, data []byte) (fresh bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return false, err
	}
	return true, nil
}

// Open returns the file of id (or its thumbnail) and its metadata, if
// user may see it (Meta.Attachment); ErrNotFound otherwise.
func (s *Store) Open(id, user string, canRead func(room string) bool, thumb bool) (*os.File, hearth.Attachment, error) {
	if !hearth.ValidAttachmentID(id) {
		return nil, hearth.Attachment{}, ErrNotFound
	}
	a, ok, err := s.meta.Attachment(id, user, canRead)
	if err != nil {
		return nil, a, err
	}
	if !ok {
		return nil, a, ErrNotFound
	}
	f, err := os.Open(s.Path(id, thumb))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, a, ErrNotFound
	}
	return f, a, err
}

// Sweep deletes the attachments no archived message refers to any more,
// and uploads never sent within Unsent: first their metadata (one
// commit), then their files. Now and then it also removes files without
// metadata older than an hour. It returns how many attachments it
// deleted.
func (s *Store) Sweep(now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, err := s.meta.SweepAttachments(now, Unsent)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, id := range ids {
		for _, thumb := range []bool{false, true} {
			if err := os.Remove(s.Path(id, thumb)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if now.Sub(s.lastStray) >= strayAge {
		s.lastStray = now
		errs = append(errs, s.removeStrays(now))
	}
	return len(ids), errors.Join(errs...)
}

// removeStrays removes files that have no metadata and are older than
// strayAge: temporary files of an upload cut short, and files whose
// metadata a sweep deleted before it was cut short.
func (s *Store) removeStrays(now time.Time) error {
	return filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil || now.Sub(info.ModTime()) < strayAge {
			return nil
		}
		name := d.Name()
		if !strings.HasPrefix(name, ".upload-") {
			id := strings.TrimSuffix(name, "-thumb")
			if !hearth.ValidAttachmentID(id) {
				return nil
			}
			if known, err := s.meta.HasAttachment(id); err != nil || known {
				return err
			}
		}
		return os.Remove(path)
	})
}
