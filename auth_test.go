package hearth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// authHashes are MinCost bcrypt hashes of "pw-<name>" (and a second one
// for kid, as after a password change).
var authHashes = sync.OnceValue(func() map[string]string {
	h := map[string]string{}
	for _, pw := range []string{"pw-mum", "pw-dad", "pw-kid", "pw-kid-2"} {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		h[pw] = string(b)
	}
	return h
})

func authUsers() []User {
	h := authHashes()
	return []User{
		{Name: "mum", PasswordHash: h["pw-mum"], Role: RoleAdmin},
		{Name: "dad", PasswordHash: h["pw-dad"], Role: RoleMember},
		{Name: "kid", PasswordHash: h["pw-kid"], Role: RoleMember},
	}
}

var (
	authSecret  = bytes.Repeat([]byte("s"), 32)
	authSecret2 = bytes.Repeat([]byte("t"), 32)
	authEpoch   = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

// baseAuth is one Authenticator made by NewAuthenticator. Its constructor
// spends a DefaultCost bcrypt on the dummy hash (a second under -race), so
// the tests derive theirs from it instead of calling it each time.
var baseAuth = sync.OnceValues(func() (*Authenticator, error) {
	return NewAuthenticator(nil, authSecret)
})

// newTestAuth returns an Authenticator for users and secret, as
// NewAuthenticator would make it, whose clock reads *now.
func newTestAuth(t *testing.T, users []User, secret []byte, now *time.Time) *Authenticator {
	t.Helper()
	base, err := baseAuth()
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	a := &Authenticator{secret: secret, now: func() time.Time { return *now }, dummy: base.dummy, bcrypt: base.bcrypt}
	a.SetUsers(users)
	return a
}

func issue(t *testing.T, a *Authenticator, user string, ttl time.Duration) string {
	t.Helper()
	tok, _, err := a.Issue(user, ttl)
	if err != nil {
		t.Fatalf("Issue(%q, %s): %v", user, ttl, err)
	}
	return tok
}

// signClaims signs a token of our claims shape, as an attacker or a buggy
// client could.
func signClaims(t *testing.T, method jwt.SigningMethod, key any, c tokenClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// goodClaims are the claims Issue would make for user at authEpoch.
func goodClaims(user string) tokenClaims {
	var hash string
	for _, u := range authUsers() {
		if u.Name == user {
			hash = u.PasswordHash
		}
	}
	return tokenClaims{
		HV: hashVersion(hash),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(authEpoch),
			ExpiresAt: jwt.NewNumericDate(authEpoch.Add(time.Hour)),
		},
	}
}

func TestNewAuthenticator(t *testing.T) {
	for _, n := range []int{0, 16, 31} {
		if _, err := NewAuthenticator(authUsers(), make([]byte, n)); err == nil {
			t.Errorf("NewAuthenticator with a %d-byte secret: got nil error, want one", n)
		}
	}
	// The real constructor, end to end: password, then token.
	a, err := NewAuthenticator(authUsers(), authSecret)
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	if _, err := a.CheckPassword("dad", "pw-dad"); err != nil {
		t.Errorf("CheckPassword(dad, right password): %v", err)
	}
	if _, err := a.CheckPassword("zed", "pw-dad"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("CheckPassword(unknown user) = %v, want ErrBadCredentials", err)
	}
	tok, exp, err := a.Issue("dad", time.Minute)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if d := time.Until(exp); d <= 0 || d > time.Minute {
		t.Errorf("Issue(dad, 1m) expires in %s, want within (0, 1m]", d)
	}
	if u, err := a.Verify(tok); err != nil || u.Name != "dad" {
		t.Errorf("Verify(dad's token) = %+v, %v; want dad", u, err)
	}
}

func TestCheckPassword(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	tests := []struct {
		user, password string
		ok             bool
	}{
		{"kid", "pw-kid", true},
		{"mum", "pw-mum", true},
		{"kid", "pw-dad", false},
		{"kid", "", false},
		{"kid", "PW-KID", false},
		{"zed", "pw-kid", false},
		{"", "", false},
	}
	for _, tt := range tests {
		u, err := a.CheckPassword(tt.user, tt.password)
		switch {
		case tt.ok && err != nil:
			t.Errorf("CheckPassword(%q, %q): got error %v, want ok", tt.user, tt.password, err)
		case tt.ok && u.Name != tt.user:
			t.Errorf("CheckPassword(%q, %q): got user %q, want %q", tt.user, tt.password, u.Name, tt.user)
		case !tt.ok && !errors.Is(err, ErrBadCredentials):
			t.Errorf("CheckPassword(%q, %q): got %+v, %v; want ErrBadCredentials", tt.user, tt.password, u, err)
		}
	}
}

func TestIssueVerify(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	tok, exp, err := a.Issue("kid", time.Hour)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if want := authEpoch.Add(time.Hour); !exp.Equal(want) {
		t.Errorf("Issue expiry = %v, want %v", exp, want)
	}
	if !LooksLikeToken(tok) {
		t.Errorf("LooksLikeToken(issued token %q) = false", tok)
	}
	u, err := a.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(fresh token): %v", err)
	}
	if u.Name != "kid" || u.Role != RoleMember {
		t.Errorf("Verify(fresh token) = %+v, want kid (member)", u)
	}

	// Valid until the second before expiry, refused from then on.
	for _, tt := range []struct {
		at time.Time
		ok bool
	}{
		{exp.Add(-time.Second), true},
		{exp, false},
		{exp.Add(time.Hour), false},
	} {
		now = tt.at
		_, err := a.Verify(tok)
		if (err == nil) != tt.ok {
			t.Errorf("Verify at expiry%+v: got %v, want ok=%v", tt.at.Sub(exp), err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify at expiry%+v: error %v does not wrap ErrBadCredentials", tt.at.Sub(exp), err)
		}
	}
}

func TestIssueErrors(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	for _, tt := range []struct {
		user string
		ttl  time.Duration
	}{
		{"zed", time.Hour},
		{"kid", 0},
		{"kid", -time.Second},
	} {
		if tok, _, err := a.Issue(tt.user, tt.ttl); err == nil {
			t.Errorf("Issue(%q, %s) = %q, nil; want an error", tt.user, tt.ttl, tok)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	other := newTestAuth(t, authUsers(), authSecret2, &now)
	kidTok := issue(t, a, "kid", time.Hour)

	noExp := goodClaims("kid")
	noExp.ExpiresAt = nil
	badIss := goodClaims("kid")
	badIss.Issuer = "someone-else"
	noHV := goodClaims("kid")
	noHV.HV = ""
	unknown := goodClaims("kid")
	unknown.Subject = "zed"
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, goodClaims("kid")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("sign alg none: %v", err)
	}

	tests := []struct {
		name, token string
	}{
		{"other secret", issue(t, other, "kid", time.Hour)},
		{"alg none", none},
		{"signature stripped", strings.Join(strings.Split(kidTok, ".")[:2], ".") + "."},
		{"HS512 with the right secret", signClaims(t, jwt.SigningMethodHS512, authSecret, goodClaims("kid"))},
		{"HS384 with the right secret", signClaims(t, jwt.SigningMethodHS384, authSecret, goodClaims("kid"))},
		{"no expiry", signClaims(t, jwt.SigningMethodHS256, authSecret, noExp)},
		{"other issuer", signClaims(t, jwt.SigningMethodHS256, authSecret, badIss)},
		{"no hash version", signClaims(t, jwt.SigningMethodHS256, authSecret, noHV)},
		{"unknown subject", signClaims(t, jwt.SigningMethodHS256, authSecret, unknown)},
		{"tampered payload", tamper(t, kidTok)},
		{"empty", ""},
		{"garbage", "not.a.token"},
	}
	// A control: the same construction with nothing wrong is accepted, so
	// each refusal above is down to its one change.
	if _, err := a.Verify(signClaims(t, jwt.SigningMethodHS256, authSecret, goodClaims("kid"))); err != nil {
		t.Fatalf("Verify(well-formed hand-made token): %v", err)
	}
	for _, tt := range tests {
		u, err := a.Verify(tt.token)
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%s) = %+v, %v; want ErrBadCredentials", tt.name, u, err)
		}
	}
}

// tamper swaps the subject of a token for "mum" and keeps the signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode token payload: %v", err)
	}
	changed := bytes.Replace(payload, []byte(`"sub":"kid"`), []byte(`"sub":"mum"`), 1)
	if bytes.Equal(changed, payload) {
		t.Fatalf("test bug: no sub kid in %s", payload)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(changed)
	return strings.Join(parts, ".")
}

func TestVerifyAfterConfigChange(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	kidTok := issue(t, a, "kid", time.Hour)
	dadTok := issue(t, a, "dad", time.Hour)

	t.Run("user removed", func(t *testing.T) {
		b := newTestAuth(t, authUsers()[:2], authSecret, &now) // mum and dad
		if u, err := b.Verify(kidTok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(token of removed user) = %+v, %v; want ErrBadCredentials", u, err)
		}
		if _, err := b.Verify(dadTok); err != nil {
			t.Errorf("Verify(token of dad, still configured) = %v, want ok", err)
		}
	})
	t.Run("password changed", func(t *testing.T) {
		users := authUsers()
		users[2].PasswordHash = authHashes()["pw-kid-2"]
		b := newTestAuth(t, users, authSecret, &now)
		if u, err := b.Verify(kidTok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(token issued before the password change) = %+v, %v; want ErrBadCredentials", u, err)
		}
		if _, err := b.Verify(issue(t, b, "kid", time.Hour)); err != nil {
			t.Errorf("Verify(token issued after the password change) = %v, want ok", err)
		}
		if _, err := b.Verify(dadTok); err != nil {
			t.Errorf("Verify(token of dad, unchanged) = %v, want ok", err)
		}
	})
	t.Run("role changed", func(t *testing.T) {
		// The role is not in the token: a new role applies at once.
		users := authUsers()
		users[2].Role = RoleDevice
		b := newTestAuth(t, users, authSecret, &now)
		u, err := b.Verify(kidTok)
		if err != nil || u.Role != RoleDevice {
			t.Errorf("Verify(kid's token after a role change) = %+v, %v; want role device", u, err)
		}
	})
}

func TestLogin(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	kidTok := issue(t, a, "kid", time.Hour)
	tests := []struct {
		name, user, secret string
		ok                 bool
	}{
		{"password", "kid", "pw-kid", true},
		{"wrong password", "kid", "pw-dad", false},
		{"unknown user", "zed", "pw-kid", false},
		{"own token", "kid", kidTok, true},
		{"own token, padded", "kid", " " + kidTok, false},
		{"someone else's token", "dad", kidTok, false},
		{"token for unknown user name", "zed", kidTok, false},
		{"token of another secret", "kid", issue(t, newTestAuth(t, authUsers(), authSecret2, &now), "kid", time.Hour), false},
	}
	for _, tt := range tests {
		u, err := a.Login(tt.user, tt.secret)
		switch {
		case tt.ok && (err != nil || u.Name != tt.user):
			t.Errorf("Login(%s) = %+v, %v; want user %q", tt.name, u, err, tt.user)
		case !tt.ok && !errors.Is(err, ErrBadCredentials):
			t.Errorf("Login(%s) = %+v, %v; want ErrBadCredentials", tt.name, u, err)
		}
	}

	now = authEpoch.Add(2 * time.Hour)
	if u, err := a.Login("kid", kidTok); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Login(kid, expired token) = %+v, %v; want ErrBadCredentials", u, err)
	}
}

// TestLooksLikeToken checks that Login tries only token-shaped secrets as
// tokens: ordinary passwords go to bcrypt.
func TestLooksLikeToken(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers(), authSecret, &now)
	tests := []struct {
		s    string
		want bool
	}{
		{issue(t, a, "kid", time.Hour), true},
		{"pw-kid", false},
		{"correct horse battery staple", false},
		{"", false},
		{strings.Repeat("x", 60), false},
		{"eyJ" + strings.Repeat("x", 60), false},                         // no dots
		{"eyJ" + strings.Repeat("x", 30) + ".abc.def.ghi", false},        // three dots
		{"eyJ" + strings.Repeat("x", 30) + ".a b.c", false},              // a space
		{"eyJ" + strings.Repeat("x", 30) + ".a+b.c/d", false},            // std base64
		{"eyJ" + strings.Repeat("x", 40) + ".a.", true},                  // empty signature: still a token's shape
		{"eyJhbG.ab.cd", false},                                          // too short
		{"eyJ" + strings.Repeat("x", 4100) + ".a.b", false},              // too long
		{"my password is eyJ" + strings.Repeat("x", 30) + ".a.b", false}, // does not start with eyJ
		{"Eyj" + strings.Repeat("x", 40) + ".a.b", false},
	}
	for _, tt := range tests {
		if got := LooksLikeToken(tt.s); got != tt.want {
			t.Errorf("LooksLikeToken(%.50q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "token.secret")
	first, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatalf("LoadOrCreateSecret (create): %v", err)
	}
	if len(first) != 32 {
		t.Errorf("created secret has %d bytes, want 32", len(first))
	}
	if bytes.Equal(first, make([]byte, 32)) {
		t.Errorf("created secret is all zeros")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat secret: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("secret file mode = %v, want 0600", got)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read secret: %v", err)
	}
	if !bytes.Equal(onDisk, first) {
		t.Errorf("secret on disk differs from the one returned")
	}

	second, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatalf("LoadOrCreateSecret (load): %v", err)
	}
	if !bytes.Equal(second, first) {
		t.Errorf("second call returned %x, want the first secret %x", second, first)
	}

	other, err := LoadOrCreateSecret(filepath.Join(t.TempDir(), "token.secret"))
	if err != nil {
		t.Fatalf("LoadOrCreateSecret (another file): %v", err)
	}
	if bytes.Equal(other, first) {
		t.Errorf("two new secrets are equal: %x", first)
	}
}

func TestLoadOrCreateSecretErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, make([]byte, 31), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long")
	if err := os.WriteFile(long, bytes.Repeat([]byte("k"), 64), 0o600); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{short, empty, dir, filepath.Join(notDir, "secret")} {
		if b, err := LoadOrCreateSecret(path); err == nil {
			t.Errorf("LoadOrCreateSecret(%s) = %d bytes, nil; want an error", path, len(b))
		}
	}
	if b, err := os.ReadFile(short); err != nil || len(b) != 31 {
		t.Errorf("short secret file changed: %d bytes, %v", len(b), err)
	}

	// A longer secret, written by hand, is used as it is.
	b, err := LoadOrCreateSecret(long)
	if err != nil || len(b) != 64 {
		t.Errorf("LoadOrCreateSecret(64-byte file) = %d bytes, %v; want 64, nil", len(b), err)
	}
}

// TestSetUsers: the users of a running Authenticator are replaced at
// once: a user added logs in, a removed one neither logs in nor keeps its
// tokens, and a changed password refuses the tokens issued before it.
func TestSetUsers(t *testing.T) {
	now := authEpoch
	a := newTestAuth(t, authUsers()[:2], authSecret, &now) // mum and dad
	dadTok, mumTok := issue(t, a, "dad", time.Hour), issue(t, a, "mum", time.Hour)
	if _, err := a.CheckPassword("kid", "pw-kid"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("kid before being added: %v", err)
	}

	users := authUsers()[1:] // dad and kid; mum removed
	users[0].PasswordHash = authHashes()["pw-kid-2"]
	a.SetUsers(users)
	if _, err := a.CheckPassword("kid", "pw-kid"); err != nil {
		t.Errorf("kid added: CheckPassword = %v", err)
	}
	for name, tok := range map[string]string{"removed mum": mumTok, "dad after a password change": dadTok} {
		if _, err := a.Verify(tok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("token of %s: Verify = %v, want ErrBadCredentials", name, err)
		}
	}
	if _, err := a.Login("dad", "pw-dad"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("dad's old password: %v, want ErrBadCredentials", err)
	}
	if _, err := a.Login("dad", "pw-kid-2"); err != nil {
		t.Errorf("dad's new password: %v", err)
	}
	if _, err := a.Verify(issue(t, a, "dad", time.Hour)); err != nil {
		t.Errorf("dad's new token: %v", err)
	}
}
