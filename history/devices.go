package history

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-home/hearth"
)

// Device logins ("stay logged in"), in the bucket devices, keyed by the
// device id.

var devicesBucket = []byte("devices")

// Device is one device login of a user. Times are Unix milliseconds.
type Device struct {
	ID        string `json:"id"`
	User      string `json:"user"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	LastUsed  int64  `json:"last_used"`
}

// AddDevice stores a new device login (or replaces the one of that id).
func (s *Store) AddDevice(d Device) error {
	if err := hearth.CheckName(d.User); err != nil || !hearth.ValidID(d.ID) {
		return fmt.Errorf("add device %q of %q: %w: bad user or id", d.ID, d.User, ErrBadMessage)
	}
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(devicesBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(d.ID), v)
	})
}

// Devices returns every device login, of every user, in id order.
func (s *Store) Devices() ([]Device, error) {
	var out []Device
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(devicesBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var d Device
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("device %q: %w", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// DeleteDevice removes the device login id of user. It reports whether
// there was one (a device of another user is left alone).
func (s *Store) DeleteDevice(user, id string) (bool, error) {
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, d, ok := device(tx, id)
		if !ok || d.User != user {
			return nil
		}
		found = true
		return b.Delete([]byte(id))
	})
	return found, err
}

// TouchDevice sets the last use of device id to at, if it still exists.
func (s *Store) TouchDevice(id string, at int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, d, ok := device(tx, id)
		if !ok {
			return nil
		}
		d.LastUsed = at
		nv, err := json.Marshal(d)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
}

// device reads device id in tx, and returns its bucket too.
func device(tx *bolt.Tx, id string) (*bolt.Bucket, Device, bool) {
	var d Device
	b := tx.Bucket(devicesBucket)
	if b == nil {
		return nil, d, false
	}
	v := b.Get([]byte(id))
	return b, d, v != nil && json.Unmarshal(v, &d) == nil
}
