package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// Web Push subscriptions, in the bucket push keyed by user NUL endpoint,
// and the rooms each user has muted, in the bucket mutes keyed by user
// NUL room.

var (
	pushBucket  = []byte("push")
	mutesBucket = []byte("mutes")
)

// ErrTooManySubscriptions is returned by AddPushSubscription when the
// user already has the most subscriptions allowed.
var ErrTooManySubscriptions = errors.New("too many push subscriptions")

// PushSubscription is a browser's push subscription, as it gave it
// (PushSubscription.toJSON): keys base64url. CreatedAt is Unix
// milliseconds.
type PushSubscription struct {
	User      string `json:"user"`
	Endpoint  string `json:"endpoint"`
	P256dh    string `json:"p256dh"`
	Auth      string `json:"auth"`
	CreatedAt int64  `json:"created_at"`
}

func userKey(user, rest string) []byte {
	k := make([]byte, 0, len(user)+1+len(rest))
	k = append(k, user...)
	k = append(k, 0)
	return append(k, rest...)
}

// eachOf calls f for each key of user (user NUL ...) in b, which may be
// nil, until f fails.
func eachOf(b *bolt.Bucket, user string, f func(k, v []byte) error) error {
	if b == nil {
		return nil
	}
	prefix := userKey(user, "")
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

// AddPushSubscription stores sub for its user. The same endpoint again
// replaces the old one; a new endpoint of a user who has max already
// fails with ErrTooManySubscriptions.
func (s *Store) AddPushSubscription(sub PushSubscription, max int) error {
	if err := hearth.CheckName(sub.User); err != nil || sub.Endpoint == "" {
		return fmt.Errorf("add push subscription: %w: bad user or endpoint", ErrBadMessage)
	}
	v, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(pushBucket)
		if err != nil {
			return err
		}
		key := userKey(sub.User, sub.Endpoint)
		if b.Get(key) == nil {
			n := 0
			_ = eachOf(b, sub.User, func(_, _ []byte) error { n++; return nil })
			if n >= max {
				return ErrTooManySubscriptions
			}
		}
		return b.Put(key, v)
	})
}

// DeletePushSubscription removes user's subscription of endpoint and
// reports whether there was one.
func (s *Store) DeletePushSubscription(user, endpoint string) (bool, error) {
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(pushBucket)
		if b == nil {
			return nil
		}
		key := userKey(user, endpoint)
		if b.Get(key) == nil {
			return nil
		}
		found = true
		return b.Delete(key)
	})
	return found, err
}

// PushSubscriptions returns user's subscriptions, in endpoint order.
func (s *Store) PushSubscriptions(user string) ([]PushSubscription, error) {
	var out []PushSubscription
	err := s.db.View(func(tx *bolt.Tx) error {
		return eachOf(tx.Bucket(pushBucket), user, func(k, v []byte) error {
			var sub PushSubscription
			if err := json.Unmarshal(v, &sub); err != nil {
				return fmt.Errorf("push subscription %q: %w", k, err)
			}
			out = append(out, sub)
			return nil
		})
	})
	return out, err
}

// SetMuted mutes room for user, or unmutes it.
func (s *Store) SetMuted(user, room string, muted bool) error {
	if err := hearth.CheckName(user); err != nil {
		return fmt.Errorf("mute: %w: %w", ErrBadMessage, err)
	}
	if err := hearth.CheckName(room); err != nil {
		return fmt.Errorf("mute: %w: %w", ErrBadMessage, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if !muted {
			if b := tx.Bucket(mutesBucket); b != nil {
				return b.Delete(userKey(user, room))
			}
			return nil
		}
		b, err := tx.CreateBucketIfNotExists(mutesBucket)
		if err != nil {
			return err
		}
		return b.Put(userKey(user, room), []byte{1})
	})
}

// MutedRooms returns the rooms user has muted.
func (s *Store) MutedRooms(user string) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return eachOf(tx.Bucket(mutesBucket), user, func(k, _ []byte) error {
			out[string(k[len(user)+1:])] = true
			return nil
		})
	})
	return out, err
}

// Muted reports whether user has muted room.
func (s *Store) Muted(user, room string) (bool, error) {
	muted := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(mutesBucket); b != nil {
			muted = b.Get(userKey(user, room)) != nil
		}
		return nil
	})
	return muted, err
}
