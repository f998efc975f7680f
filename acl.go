package hearth

import (
	"fmt"
	"strings"
)

// ACLRule grants or denies topics outside the chat tree, as Mosquitto's
// acl_file does. It applies to one user, to every user of one role, or
// (neither set) to every user. Topic is a filter; "%u" in it stands for
// the user's name and "%c" for the client id.
type ACLRule struct {
	User   string `yaml:"user"`
	Role   Role   `yaml:"role"`
	Topic  string `yaml:"topic"`
	Access Access `yaml:"access"`
}

// Access is what an ACLRule allows: read (subscribe and receive), write
// (publish), both, or deny (neither; a deny rule wins over every grant).
type Access string

// The kinds of access.
const (
	AccessRead      Access = "read"
	AccessWrite     Access = "write"
	AccessReadWrite Access = "readwrite"
	AccessDeny      Access = "deny"
)

// checkACLRule returns the problems of one rule; users maps the configured
// users to their roles.
func checkACLRule(r ACLRule, users map[string]Role) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	switch {
	case r.User != "" && r.Role != "":
		bad("user", "give user or role, not both")
	case r.User != "":
		if _, ok := users[r.User]; !ok {
			bad("user", "unknown user %q", r.User)
		}
	case r.Role != "":
		switch r.Role {
		case RoleMember, RoleDevice, RoleAdmin:
		default:
			bad("role", "unknown role %q: want member, device or admin", r.Role)
		}
	}
	switch r.Access {
	case AccessRead, AccessWrite, AccessReadWrite, AccessDeny:
	case "":
		bad("access", "required: read, write, readwrite or deny")
	default:
		bad("access", "unknown access %q: want read, write, readwrite or deny", r.Access)
	}
	if err := checkACLTopic(r.Topic); err != nil {
		bad("topic", "%v", err)
	}
	return errs
}

func checkACLTopic(t string) error {
	if t == "" {
		return fmt.Errorf("required: a topic filter such as homeassistant/#")
	}
	l := strings.Split(t, "/")
	for i, lvl := range l {
		if strings.Contains(lvl, "#") && (lvl != "#" || i != len(l)-1) {
			return fmt.Errorf("%q: # must be a whole last level", t)
		}
		if strings.Contains(lvl, "+") && lvl != "+" {
			return fmt.Errorf("%q: + must be a whole level", t)
		}
	}
	if strings.Contains(t, "%c") && !strings.Contains(t, "%u") {
		return fmt.Errorf("%q: %%c needs %%u beside it (as in devices/%%u/%%c/#): a client id is chosen by the client", t)
	}
	switch {
	case strings.Contains(l[0], "%"):
		return fmt.Errorf("%q: the first level cannot be %%u or %%c; name it", t)
	case l[0] == "#" || l[0] == "+":
		return fmt.Errorf("%q: a rule cannot start with a wildcard, which would reach the chat tree; name the first level", t)
	case isChatRoot(l[0]):
		return fmt.Errorf("%q: the chat tree (rooms/, presence/, users/) keeps its own rules", t)
	case strings.EqualFold(l[0], "$SYS"), strings.EqualFold(l[0], "$share"), l[0] == "$hearth":
		return fmt.Errorf("%q: %s is not for rules", t, l[0])
	}
	return nil
}

func isChatRoot(level string) bool {
	for _, r := range chatRoots {
		if level == r {
			return true
		}
	}
	return false
}

// aclRule is a rule as the policy applies it.
type aclRule struct {
	user        string
	role        Role
	levels      []string
	read, write bool
	deny        bool
}

func newACLRule(r ACLRule) aclRule {
	return aclRule{
		user: r.User, role: r.Role, levels: strings.Split(r.Topic, "/"),
		read:  r.Access == AccessRead || r.Access == AccessReadWrite,
		write: r.Access == AccessWrite || r.Access == AccessReadWrite,
		deny:  r.Access == AccessDeny,
	}
}

func (r aclRule) appliesTo(user string, role Role) bool {
	return (r.user == "" || r.user == user) && (r.role == "" || r.role == role)
}

// filterFor is the rule's filter for one user and client id. ok is false
// when a client id that is not a plain level ("/", "+" or "#" in it)
// would have to stand in it.
func (r aclRule) filterFor(user, client string) (levels []string, ok bool) {
	out := make([]string, len(r.levels))
	for i, lvl := range r.levels {
		if strings.Contains(lvl, "%c") && (client == "" || strings.ContainsAny(client, "/+#")) {
			return nil, false
		}
		lvl = strings.ReplaceAll(lvl, "%u", user)
		out[i] = strings.ReplaceAll(lvl, "%c", client)
	}
	return out, true
}

// otherAccess decides a topic or filter outside the chat tree for a user
// with a client id: admins have it unless a deny rule covers it, others
// when a rule grants it and no deny rule covers it. grant says whether a
// rule's filter grants t; covers whether a deny rule's filter takes t
// away.
func (p *rules) otherAccess(user, client string, t []string, write bool, grant, covers func(rule, t []string) bool) bool {
	role, ok := p.roles[user]
	if !ok {
		return false
	}
	allowed := role == RoleAdmin
	for _, r := range p.acl {
		if !r.appliesTo(user, role) {
			continue
		}
		f, ok := r.filterFor(user, client)
		if r.deny {
			if !ok || covers(f, t) {
				return false
			}
			continue
		}
		if ok && (write && r.write || !write && r.read) && grant(f, t) {
			allowed = true
		}
	}
	return allowed
}

// wildOverDollar reports whether filter f starts with a wildcard and g
// with "$": such a wildcard never matches there [MQTT-4.7.1-1].
func wildOverDollar(f, g []string) bool {
	return len(f) > 0 && len(g) > 0 && strings.HasPrefix(g[0], "$") && (f[0] == "+" || f[0] == "#")
}

// filtersOverlap reports whether some topic matches both filters.
func filtersOverlap(a, b []string) bool {
	if wildOverDollar(a, b) || wildOverDollar(b, a) {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(a) || i == len(b):
			// "x/#" also matches "x" [MQTT-4.7.1-2]
			return len(a) == len(b) || (i < len(a) && a[i] == "#") || (i < len(b) && b[i] == "#")
		case a[i] == "#" || b[i] == "#":
			return true
		case a[i] != "+" && b[i] != "+" && a[i] != b[i]:
			return false
		}
	}
}

// filterCovers reports whether every topic that matches filter g also
// matches filter f. A topic name is a filter without wildcards: for one,
// it says whether f matches it.
func filterCovers(f, g []string) bool {
	if wildOverDollar(f, g) {
		return false
	}
	for i, lvl := range f {
		if lvl == "#" {
			return true
		}
		if i >= len(g) || g[i] == "#" || (lvl != "+" && (g[i] == "+" || lvl != g[i])) {
			return false
		}
	}
	return len(f) == len(g)
}
