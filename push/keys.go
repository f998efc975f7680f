// Package push sends Web Push notifications (RFC 8030) of new chat
// messages: payloads encrypted per RFC 8291 (aes128gcm), requests signed
// with the server's VAPID key (RFC 8292), which is made once and kept in
// data_dir/vapid.json.
package push

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Keys is the server's VAPID key pair, base64url without padding: the
// public key an uncompressed P-256 point (65 bytes), the private key its
// 32-byte scalar.
type Keys struct {
	Public  string `json:"public_key"`
	Private string `json:"private_key"`
}

// NewKeys makes a new VAPID key pair.
func NewKeys() (Keys, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return Keys{}, err
	}
	return Keys{
		Public:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
		Private: base64.RawURLEncoding.EncodeToString(k.Bytes()),
	}, nil
}

// check reports whether the private key is a P-256 scalar whose public
// key is Public.
func (k Keys) check() error {
	priv, err := base64.RawURLEncoding.DecodeString(k.Private)
	if err != nil {
		return fmt.Errorf("private_key: not base64url: %w", err)
	}
	pk, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("private_key: %w", err)
	}
	if base64.RawURLEncoding.EncodeToString(pk.PublicKey().Bytes()) != k.Public {
		return errors.New("public_key is not the private key's")
	}
	return nil
}

// LoadOrCreateKeys reads the VAPID keys at path, or makes them and writes
// them there (mode 0600) when the file does not exist. A file that is
// there but broken is an error: new keys would end every subscription.
func LoadOrCreateKeys(path string) (Keys, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		var k Keys
		if err := json.Unmarshal(b, &k); err != nil {
			return Keys{}, fmt.Errorf("vapid keys %s: %w (delete the file to make new keys; browsers then subscribe again)", path, err)
		}
		if err := k.check(); err != nil {
			return Keys{}, fmt.Errorf("vapid keys %s: %w (delete the file to make new keys; browsers then subscribe again)", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Keys{}, fmt.Errorf("vapid keys: %w", err)
	}
	k, err := NewKeys()
	if err != nil {
		return Keys{}, fmt.Errorf("vapid keys: %w", err)
	}
	b, _ = json.MarshalIndent(k, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Keys{}, fmt.Errorf("vapid keys: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Keys{}, fmt.Errorf("vapid keys: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return Keys{}, fmt.Errorf("vapid keys %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Keys{}, fmt.Errorf("vapid keys %s: %w", path, err)
	}
	return k, f.Close()
}

// CheckSubscription checks what a browser gave as its subscription: an
// https:// endpoint with a host, p256dh an uncompressed P-256 point (65
// bytes) and auth 16 bytes, both base64url (padded or not).
func CheckSubscription(endpoint, p256dh, auth string) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	p, err := decodeKey(p256dh)
	if err != nil || len(p) != 65 || p[0] != 4 {
		return errors.New("keys.p256dh: want an uncompressed P-256 point (65 bytes), base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(p); err != nil {
		return errors.New("keys.p256dh: not a point on P-256")
	}
	a, err := decodeKey(auth)
	if err != nil || len(a) != 16 {
		return errors.New("keys.auth: want 16 bytes, base64url")
	}
	return nil
}

// decodeKey decodes base64url, with or without padding.
func decodeKey(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

// checkEndpoint wants an https:// URL with a host and no user info.
func checkEndpoint(endpoint string) error {
	if len(endpoint) > 2048 {
		return errors.New("endpoint: longer than 2048 bytes")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
		return errors.New("endpoint: want an https:// URL with a host")
	}
	return nil
}
