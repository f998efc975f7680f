package hearth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// ErrBadCredentials is returned for an unknown user, a wrong password or a
// token that is invalid, expired or not the user's. It never says which,
// so a caller cannot probe for user names.
var ErrBadCredentials = errors.New("bad username or password")

// Authenticator checks passwords against the bcrypt hashes in config and
// issues and verifies signed tokens (JWT, HS256). SetUsers replaces the
// users while it is in use. It is safe for concurrent use.
type Authenticator struct {
	users  atomic.Pointer[map[string]User]
	secret []byte
	now    func() time.Time
	// dummy is compared against for unknown users, so that they take as
	// long as known ones.
	dummy []byte
	// bcrypt limits how many password checks run at once: each costs tens
	// of milliseconds of CPU, and a flood of them must not starve the rest.
	bcrypt chan struct{}
	// devices says which device logins still exist (SetDevices); a
	// device token of no device is refused.
	devices atomic.Pointer[DeviceChecker]
}

// DeviceChecker says whether a device login (POST /api/login with
// "remember") still exists: revoked devices are gone. It is asked at
// every token check, so it must not touch the disk each time.
type DeviceChecker interface {
	DeviceActive(user, id string) bool
}

// SetDevices makes d the judge of device tokens. Until it is called,
// every device token is refused.
func (a *Authenticator) SetDevices(d DeviceChecker) { a.devices.Store(&d) }

// NewAuthenticator returns an Authenticator for users, signing tokens with
// secret (at least 32 bytes).
func NewAuthenticator(users []User, secret []byte) (*Authenticator, error) {
	if len(secret) < 32 {
		return nil, errors.New("token secret: want at least 32 bytes")
	}
	a := &Authenticator{secret: secret, now: time.Now, bcrypt: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))}
	a.SetUsers(users)
	a.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)
	return a, nil
}

// SetUsers makes users the only ones known from now on. A user no longer
// among them cannot log in, and their tokens fail; so do the tokens of a
// user whose password hash changed (see tokenClaims). A check in
// progress finishes with the users it began with.
func (a *Authenticator) SetUsers(users []User) {
	m := make(map[string]User, len(users))
	for _, u := range users {
		m[u.Name] = u
	}
	a.users.Store(&m)
}

func (a *Authenticator) user(name string) (User, bool) {
	u, ok := (*a.users.Load())[name]
	return u, ok
}

// tokenClaims are a token's claims. HV binds the token to the user's
// password hash: changing the hash in config invalidates old tokens.
type tokenClaims struct {
	HV string `json:"hv"`
	// Dev is the device id of a device login ("stay logged in"): the
	// token is good only while that device exists.
	Dev string `json:"dev,omitempty"`
	jwt.RegisteredClaims
}

const tokenIssuer = "hearth"

// hashVersion fingerprints a password hash.
func hashVersion(hash string) string {
	sum := sha256.Sum256([]byte(hash))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// CheckPassword verifies a user's password against its bcrypt hash.
func (a *Authenticator) CheckPassword(name, password string) (User, error) {
	a.bcrypt <- struct{}{}
	defer func() { <-a.bcrypt }()
	u, ok := a.user(name)
	if !ok {
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		return User{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// Issue returns a token for user valid for ttl, and its expiry.
func (a *Authenticator) Issue(name string, ttl time.Duration) (string, time.Time, error) {
	return a.IssueDevice(name, "", ttl)
}

// IssueDevice returns a token of the device login device (an id the
// DeviceChecker knows) for user, valid for ttl, and its expiry; "" is
// an ordinary token.
func (a *Authenticator) IssueDevice(name, device string, ttl time.Duration) (string, time.Time, error) {
	u, ok := a.user(name)
	if !ok {
		return "", time.Time{}, fmt.Errorf("issue token: unknown user %q", name)
	}
	if ttl <= 0 {
		return "", time.Time{}, errors.New("issue token: ttl must be positive")
	}
	now := a.now()
	exp := now.Add(ttl).Truncate(time.Second)
	claims := tokenClaims{
		HV:  hashVersion(u.PasswordHash),
		Dev: device,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   u.Name,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return tok, exp, nil
}

// Verify checks a token and returns its user. Expired, forged, other
// algorithms, unknown users and tokens issued before a password change
// all fail with ErrBadCredentials.
func (a *Authenticator) Verify(token string) (User, error) {
	u, _, err := a.VerifyDevice(token)
	return u, err
}

// VerifyDevice is Verify that also returns the token's device id ("" for
// a token of no device login). The token of a device that no longer
// exists fails with ErrBadCredentials.
func (a *Authenticator) VerifyDevice(token string) (User, string, error) {
	var c tokenClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithTimeFunc(a.now),
	)
	if err != nil {
		return User{}, "", ErrBadCredentials
	}
	u, ok := a.user(c.Subject)
	if !ok || c.HV != hashVersion(u.PasswordHash) {
		return User{}, "", ErrBadCredentials
	}
	if c.Dev != "" {
		d := a.devices.Load()
		if d == nil || !(*d).DeviceActive(u.Name, c.Dev) {
			return User{}, "", ErrBadCredentials
		}
	}
	return u, c.Dev, nil
}

// Login accepts either the user's password or a token of that user, as
// MQTT CONNECT does. Something shaped like a token is only tried as one,
// so a token never costs a bcrypt comparison.
func (a *Authenticator) Login(name, secret string) (User, error) {
	u, _, err := a.LoginDevice(name, secret)
	return u, err
}

// LoginDevice is Login that also returns the device id of a device
// login's token ("" for a password or another token).
func (a *Authenticator) LoginDevice(name, secret string) (User, string, error) {
	if LooksLikeToken(secret) {
		u, dev, err := a.VerifyDevice(secret)
		if err != nil || u.Name != name {
			return User{}, "", ErrBadCredentials
		}
		return u, dev, nil
	}
	u, err := a.CheckPassword(name, secret)
	return u, "", err
}

// LooksLikeToken reports whether s has a JWT's shape: three base64url
// parts, the first of which decodes to a JSON header.
func LooksLikeToken(s string) bool {
	if len(s) < 40 || len(s) > 4096 || s[:3] != "eyJ" {
		return false
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			dots++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// LoadOrCreateSecret reads the token secret at path, or creates it with 32
// random bytes (mode 0600) when it does not exist yet.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("token secret %s: want at least 32 bytes, have %d", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("token secret %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("token secret %s: %w", path, err)
	}
	return b, f.Close()
}

// BearerToken is the token of an "Authorization: Bearer TOKEN" header
// value, and whether there is one.
func BearerToken(header string) (string, bool) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	tok = strings.TrimSpace(tok)
	return tok, ok && tok != ""
}
