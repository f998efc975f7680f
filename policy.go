package hearth

import (
	"slices"
	"strings"
	"sync/atomic"
)

// BridgeUser is the internal identity of the archive bridge. It is not a
// valid user name, so no configured user can take it.
const BridgeUser = "$hearth-bridge"

// Policy answers who may read and write what. It is built from the
// configuration, and Replace swaps in the rules of another one while it
// is in use, without a lock: each call answers by one set of rules, the
// old or the new. It is safe for concurrent use.
type Policy struct {
	cur atomic.Pointer[rules]
}

// NewPolicy builds the policy of a validated configuration.
func NewPolicy(c *Config) *Policy {
	p := &Policy{}
	p.Replace(c)
	return p
}

// Replace makes the rules of c, a validated configuration, the policy's
// from now on. Calls in progress finish with the rules they began with.
func (p *Policy) Replace(c *Config) { p.cur.Store(newRules(c)) }

// Role returns a user's role, and false for an unknown user.
func (p *Policy) Role(user string) (Role, bool) { return p.cur.Load().role(user) }

// Rooms returns every room's name in configuration order.
func (p *Policy) Rooms() []string { return slices.Clone(p.cur.Load().names) }

// Title returns a room's title.
func (p *Policy) Title(room string) string { return p.cur.Load().rooms[room].title }

// HasRoom reports whether room is configured.
func (p *Policy) HasRoom(room string) bool { return p.cur.Load().hasRoom(room) }

// CanWrite reports whether user may post in room. Devices write only where
// a room's members name them; "*" covers members and admins.
func (p *Policy) CanWrite(user, room string) bool { return p.cur.Load().canWrite(user, room) }

// CanRead reports whether user may read room. The bridge reads every room.
func (p *Policy) CanRead(user, room string) bool { return p.cur.Load().canRead(user, room) }

// CanPublish reports whether user may publish on topic (a name, not a
// filter). Only the server writes presence; only the bridge writes
// receipts; a user writes messages, events and typing only as itself,
// in a room it can write, its read marks (reads) only as itself in rooms
// it can read, and its focus only as itself. Topics
// outside the chat tree are for admins and the acl rules (with client id
// "" for "%c": see CanPublishAs).
func (p *Policy) CanPublish(user, topic string) bool { return p.CanPublishAs(user, "", topic) }

// CanPublishAs is CanPublish for a connection with a client id.
func (p *Policy) CanPublishAs(user, client, topic string) bool {
	return p.cur.Load().canPublishAs(user, client, topic)
}

// CanReceive reports whether user may receive a message published on
// topic (a name). It is checked for every delivery, so wildcard
// subscriptions never leak a room the user cannot read. Read marks go to
// the room's readers; focus goes to nobody.
func (p *Policy) CanReceive(user, topic string) bool { return p.CanReceiveAs(user, "", topic) }

// CanReceiveAs is CanReceive for a connection with a client id.
func (p *Policy) CanReceiveAs(user, client, topic string) bool {
	return p.cur.Load().canReceiveAs(user, client, topic)
}

// CanSubscribe reports whether user may subscribe to filter: true when at
// least one topic the user may receive can match it. Deliveries are still
// checked one by one with CanReceive. A shared subscription
// ($share/group/filter) is judged by its filter. The bridge may subscribe
// to the messages and events of any room, configured or not, so that it
// can subscribe to a room before a reload adds it; it receives those of
// configured rooms only.
func (p *Policy) CanSubscribe(user, filter string) bool { return p.CanSubscribeAs(user, "", filter) }

// CanSubscribeAs is CanSubscribe for a connection with a client id.
func (p *Policy) CanSubscribeAs(user, client, filter string) bool {
	return p.cur.Load().canSubscribeAs(user, client, filter)
}

// Users returns every configured user's name, sorted.
func (p *Policy) Users() []string { return p.cur.Load().users() }

// rules are the policy of one configuration; they never change.
type rules struct {
	roles map[string]Role
	rooms map[string]roomAccess
	names []string  // room names in config order
	acl   []aclRule // for topics outside the chat tree
}

type roomAccess struct {
	title                  string
	members, readers       map[string]bool // named explicitly
	allMembers, allReaders bool            // "*": every member and admin
}

func newRules(c *Config) *rules {
	p := &rules{roles: map[string]Role{}, rooms: map[string]roomAccess{}}
	for _, u := range c.Users {
		p.roles[u.Name] = u.Role
	}
	for _, r := range c.Rooms {
		a := roomAccess{title: r.Title, members: map[string]bool{}, readers: map[string]bool{}}
		for _, m := range r.Members {
			if m == "*" {
				a.allMembers = true
			} else {
				a.members[m] = true
			}
		}
		for _, m := range r.Readers {
			if m == "*" {
				a.allReaders = true
			} else {
				a.readers[m] = true
			}
		}
		p.rooms[r.Name] = a
		p.names = append(p.names, r.Name)
	}
	for _, r := range c.ACL {
		p.acl = append(p.acl, newACLRule(r))
	}
	return p
}

func (p *rules) role(user string) (Role, bool) {
	r, ok := p.roles[user]
	return r, ok
}

func (p *rules) hasRoom(room string) bool {
	_, ok := p.rooms[room]
	return ok
}

func (p *rules) canWrite(user, room string) bool {
	a, ok := p.rooms[room]
	if !ok {
		return false
	}
	switch p.roles[user] {
	case RoleAdmin:
		return true
	case RoleMember:
		return a.allMembers || a.members[user]
	case RoleDevice:
		return a.members[user]
	}
	return false
}

func (p *rules) canRead(user, room string) bool {
	a, ok := p.rooms[room]
	if !ok {
		return false
	}
	if user == BridgeUser {
		return true
	}
	switch p.roles[user] {
	case RoleAdmin:
		return true
	case RoleMember:
		return a.allMembers || a.allReaders || a.members[user] || a.readers[user]
	case RoleDevice:
		return a.members[user] || a.readers[user]
	}
	return false
}

func (p *rules) canPublishAs(user, client, topic string) bool {
	t := ParseTopic(topic)
	if user == BridgeUser {
		return t.Kind == TopicReceipts
	}
	switch t.Kind {
	case TopicMessage, TopicEvent, TopicTyping:
		return t.User == user && p.canWrite(user, t.Room)
	case TopicRead:
		return t.User == user && p.canRead(user, t.Room)
	case TopicFocus:
		_, known := p.roles[user]
		return t.User == user && known
	case TopicOther:
		l := strings.Split(topic, "/")
		return p.otherAccess(user, client, l, true, filterCovers, filterCovers)
	}
	return false
}

func (p *rules) canReceiveAs(user, client, topic string) bool {
	t := ParseTopic(topic)
	if user == BridgeUser {
		return (t.Kind == TopicMessage || t.Kind == TopicEvent) && p.hasRoom(t.Room)
	}
	if _, ok := p.roles[user]; !ok {
		return false
	}
	switch t.Kind {
	case TopicMessage, TopicEvent, TopicTyping, TopicRead:
		return p.canRead(user, t.Room)
	case TopicPresence:
		return true
	case TopicReceipts:
		return t.User == user
	case TopicSys:
		return p.roles[user] == RoleAdmin
	case TopicOther:
		return p.otherAccess(user, client, strings.Split(topic, "/"), false, filterCovers, filterCovers)
	}
	return false
}

// bridgeFilters are what the bridge may subscribe to: any room's
// messages and events.
var bridgeFilters = [][]string{{"rooms", "*", "messages", "*"}, {"rooms", "*", "events", "*"}}

func (p *rules) canSubscribeAs(user, client, filter string) bool {
	if strings.HasPrefix(filter, "$share/") {
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) < 3 {
			return false
		}
		filter = parts[2]
	}
	f := strings.Split(filter, "/")
	if user == BridgeUser {
		return slices.ContainsFunc(bridgeFilters, func(tpl []string) bool { return filterMayMatch(f, tpl) })
	}
	if _, ok := p.roles[user]; !ok {
		return false
	}
	if !slices.Contains(chatRoots, f[0]) {
		if f[0] == "$SYS" {
			return p.roles[user] == RoleAdmin
		}
		// Topics outside the chat tree, or a wildcard that reaches them.
		if p.otherAccess(user, client, f, false, filtersOverlap, filterCovers) {
			return true
		}
	}
	for _, tpl := range p.readable(user) {
		if filterMayMatch(f, tpl) {
			return true
		}
	}
	return false
}

// readable lists templates of the topics user (not the bridge) may
// receive; "*" stands for any valid name.
func (p *rules) readable(user string) [][]string {
	var out [][]string
	for _, room := range p.names {
		if p.canRead(user, room) {
			out = append(out, []string{"rooms", room, "messages", "*"}, []string{"rooms", room, "typing", "*"},
				[]string{"rooms", room, "events", "*"}, []string{"rooms", room, "reads", "*"})
		}
	}
	return append(out, []string{"presence", "*"}, []string{"users", user, "receipts"})
}

// filterMayMatch reports whether some topic of template tpl matches the
// filter levels f. Per MQTT, wildcards at the first level never match a
// topic starting with "$", and no template here starts with "$".
func filterMayMatch(f, tpl []string) bool {
	for i, lvl := range f {
		if lvl == "#" {
			return i == len(f)-1
		}
		if i >= len(tpl) {
			return false
		}
		switch {
		case lvl == "+":
		case tpl[i] == "*":
			if !ValidName(lvl) {
				return false
			}
		case lvl != tpl[i]:
			return false
		}
	}
	return len(f) == len(tpl)
}

func (p *rules) users() []string {
	out := make([]string, 0, len(p.roles))
	for u := range p.roles {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// BridgeReceiptsClientID is the client id of the bridge's second
// connection, which publishes receipts; the broker reserves it like the
// bridge's own.
func BridgeReceiptsClientID(bridgeClientID string) string { return bridgeClientID + "-receipts" }
