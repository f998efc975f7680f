package mqtttest

import (
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// User is a user of the tests; its password is Password(Name).
type User struct{ Name, Role string }

// Password is the password of a test user.
func Password(user string) string { return "pw-" + user }

var (
	hashMu sync.Mutex
	hashes = map[string]string{}
)

// PasswordHash returns the bcrypt hash of user's password, made once (at
// the lowest cost: tests log in thousands of times).
func PasswordHash(user string) string {
	hashMu.Lock()
	defer hashMu.Unlock()
	if h, ok := hashes[user]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte(Password(user)), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	hashes[user] = string(h)
	return string(h)
}

// ConfigYAML is a config.yaml for tests: data in dir, every listener on
// 127.0.0.1:0, no publish rate, the users given, and two rooms: family
// (every member, kitchen reads) and parents (mum and dad).
func ConfigYAML(dir string, users []User) string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\nhttp: {addr: \"127.0.0.1:0\"}\nmqtt: {addr: \"127.0.0.1:0\", publish_rate: 0, connect_rate: {per_address: 0, per_user: 0}}\nusers:\n", dir)
	for _, u := range users {
		fmt.Fprintf(&b, "  - {name: %s, role: %s, password_hash: %q}\n", u.Name, u.Role, PasswordHash(u.Name))
	}
	b.WriteString(`rooms:
  - {name: family, title: Family, members: ["*"], readers: [kitchen]}
  - {name: parents, title: Parents, members: [mum, dad]}
`)
	return b.String()
}
