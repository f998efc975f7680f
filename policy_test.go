package hearth

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// policyConfig is the family of the access matrix below.
const policyConfig = `users:
  - {name: mum, password_hash: "HASH", role: admin}
  - {name: dad, password_hash: "HASH"}
  - {name: kid, password_hash: "HASH", role: member}
  - {name: kitchen, password_hash: "HASH", role: device}
  - {name: doorbell, password_hash: "HASH", role: device}
rooms:
  - {name: family, title: Family, members: ["*"], readers: [kitchen]}
  - {name: parents, members: [mum, dad]}
  - {name: porch, members: [doorbell], readers: ["*"]}
`

// policyHash is one bcrypt hash (MinCost) for every user of policyConfig:
// the policy never looks at it, but ParseConfig wants a real one.
var policyHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

// newTestPolicy parses policyConfig through ParseConfig, so the matrix
// runs on exactly what a real config.yaml would give (roles filled in).
func newTestPolicy(t *testing.T) *Policy {
	t.Helper()
	c, err := ParseConfig(strings.NewReader(strings.ReplaceAll(policyConfig, "HASH", policyHash())))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return NewPolicy(&c)
}

// Topic names and filters of the matrix. {me} is the user of the row and
// {other} another user of the family.
var (
	matrixTopics = func() []string {
		var out []string
		for _, r := range []string{"family", "parents", "porch"} {
			out = append(out,
				"rooms/"+r+"/messages/{me}", "rooms/"+r+"/messages/{other}",
				"rooms/"+r+"/typing/{me}", "rooms/"+r+"/typing/{other}")
		}
		return append(out,
			"presence/x", "presence/{me}",
			"users/{me}/receipts", "users/{other}/receipts",
			"$SYS/broker/uptime", "home/temp",
			"rooms/family/other/kid", "rooms/Bad/messages/kid", "rooms/family/messages",
		)
	}()
	matrixFilters = []string{
		"#", "+/#", "rooms/#", "rooms/+/messages/+", "rooms/parents/#", "rooms/parents/messages/+",
		"presence/+", "users/kid/receipts", "users/+/receipts", "$SYS/#",
		"$share/g/rooms/family/messages/+", "$share/g", "home/#",
	}
)

// accessRow is what one user may do. rooms is "room:rw" per room (r read,
// w write, - not); publish, receive and subscribe list, space separated,
// exactly the topics (of matrixTopics) and filters (of matrixFilters)
// allowed; everything else in those lists must be refused.
type accessRow struct {
	user, other string
	rooms       string
	publish     string
	receive     string
	subscribe   string
}

var accessMatrix = []accessRow{
	{
		user: "mum", other: "kid", // admin: every room, $SYS, outside the chat tree
		rooms: "family:rw parents:rw porch:rw",
		publish: "rooms/family/messages/{me} rooms/family/typing/{me} " +
			"rooms/parents/messages/{me} rooms/parents/typing/{me} " +
			"rooms/porch/messages/{me} rooms/porch/typing/{me} " +
			"home/temp",
		receive: "rooms/family/messages/{me} rooms/family/messages/{other} rooms/family/typing/{me} rooms/family/typing/{other} " +
			"rooms/parents/messages/{me} rooms/parents/messages/{other} rooms/parents/typing/{me} rooms/parents/typing/{other} " +
			"rooms/porch/messages/{me} rooms/porch/messages/{other} rooms/porch/typing/{me} rooms/porch/typing/{other} " +
			"presence/x presence/{me} users/{me}/receipts $SYS/broker/uptime home/temp",
		// Not users/kid/receipts: receipts are their owner's only, so no
		// topic mum may receive matches that filter.
		subscribe: "# +/# rooms/# rooms/+/messages/+ rooms/parents/# rooms/parents/messages/+ " +
			"presence/+ users/+/receipts $SYS/# $share/g/rooms/family/messages/+ home/#",
	},
	{
		user: "dad", other: "kid",
		rooms: "family:rw parents:rw porch:r-",
		publish: "rooms/family/messages/{me} rooms/family/typing/{me} " +
			"rooms/parents/messages/{me} rooms/parents/typing/{me}",
		receive: "rooms/family/messages/{me} rooms/family/messages/{other} rooms/family/typing/{me} rooms/family/typing/{other} " +
			"rooms/parents/messages/{me} rooms/parents/messages/{other} rooms/parents/typing/{me} rooms/parents/typing/{other} " +
			"rooms/porch/messages/{me} rooms/porch/messages/{other} rooms/porch/typing/{me} rooms/porch/typing/{other} " +
			"presence/x presence/{me} users/{me}/receipts",
		subscribe: "# +/# rooms/# rooms/+/messages/+ rooms/parents/# rooms/parents/messages/+ " +
			"presence/+ users/+/receipts $share/g/rooms/family/messages/+",
	},
	{
		user: "kid", other: "dad",
		rooms:   "family:rw parents:-- porch:r-",
		publish: "rooms/family/messages/{me} rooms/family/typing/{me}",
		receive: "rooms/family/messages/{me} rooms/family/messages/{other} rooms/family/typing/{me} rooms/family/typing/{other} " +
			"rooms/porch/messages/{me} rooms/porch/messages/{other} rooms/porch/typing/{me} rooms/porch/typing/{other} " +
			"presence/x presence/{me} users/{me}/receipts",
		subscribe: "# +/# rooms/# rooms/+/messages/+ " +
			"presence/+ users/kid/receipts users/+/receipts $share/g/rooms/family/messages/+",
	},
	{
		user: "kitchen", other: "kid", // device, a reader of family only; "*" is not for devices
		rooms:   "family:r- parents:-- porch:--",
		publish: "",
		receive: "rooms/family/messages/{me} rooms/family/messages/{other} rooms/family/typing/{me} rooms/family/typing/{other} " +
			"presence/x presence/{me} users/{me}/receipts",
		subscribe: "# +/# rooms/# rooms/+/messages/+ " +
			"presence/+ users/+/receipts $share/g/rooms/family/messages/+",
	},
	{
		user: "doorbell", other: "kid", // device, a member of porch only
		rooms:   "family:-- parents:-- porch:rw",
		publish: "rooms/porch/messages/{me} rooms/porch/typing/{me}",
		receive: "rooms/porch/messages/{me} rooms/porch/messages/{other} rooms/porch/typing/{me} rooms/porch/typing/{other} " +
			"presence/x presence/{me} users/{me}/receipts",
		subscribe: "# +/# rooms/# rooms/+/messages/+ presence/+ users/+/receipts",
	},
	{
		// The bridge reads every room's messages (not typing) and publishes
		// receipts only. {me} is not a valid name, so its "own" topics are
		// invalid ones.
		user: BridgeUser, other: "kid",
		rooms:   "family:r- parents:r- porch:r-",
		publish: "users/{other}/receipts",
		receive: "rooms/family/messages/{other} rooms/parents/messages/{other} rooms/porch/messages/{other}",
		subscribe: "# +/# rooms/# rooms/+/messages/+ rooms/parents/# rooms/parents/messages/+ " +
			"$share/g/rooms/family/messages/+",
	},
	{
		user: "zed", other: "kid", // not configured: nothing at all
		rooms: "family:-- parents:-- porch:--",
	},
}

func expand(s, me, other string) string {
	return strings.NewReplacer("{me}", me, "{other}", other).Replace(s)
}

// allowedSet turns a row's space-separated list into a set, checking that
// each entry is one of all (a typo would otherwise pass silently).
func allowedSet(t *testing.T, list string, all []string) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	for _, s := range strings.Fields(list) {
		if !slices.Contains(all, s) {
			t.Fatalf("test bug: %q is not in the matrix's list", s)
		}
		set[s] = true
	}
	return set
}

func TestPolicyMatrix(t *testing.T) {
	p := newTestPolicy(t)
	for _, row := range accessMatrix {
		t.Run(row.user, func(t *testing.T) {
			var got []string
			for _, room := range []string{"family", "parents", "porch"} {
				rw := []byte("--")
				if p.CanRead(row.user, room) {
					rw[0] = 'r'
				}
				if p.CanWrite(row.user, room) {
					rw[1] = 'w'
				}
				got = append(got, room+":"+string(rw))
			}
			if g := strings.Join(got, " "); g != row.rooms {
				t.Errorf("CanRead/CanWrite(%q): got %q, want %q", row.user, g, row.rooms)
			}

			checks := []struct {
				name string
				fn   func(user, s string) bool
				list string
				all  []string
			}{
				{"CanPublish", p.CanPublish, row.publish, matrixTopics},
				{"CanReceive", p.CanReceive, row.receive, matrixTopics},
				{"CanSubscribe", p.CanSubscribe, row.subscribe, matrixFilters},
			}
			for _, c := range checks {
				allowed := allowedSet(t, c.list, c.all)
				for _, tmpl := range c.all {
					s := expand(tmpl, row.user, row.other)
					if got, want := c.fn(row.user, s), allowed[tmpl]; got != want {
						t.Errorf("%s(%q, %q) = %v, want %v", c.name, row.user, s, got, want)
					}
				}
			}
		})
	}
}

// TestPolicyReceiveImpliesSubscribe checks the two answers agree: any topic
// name a user may receive is also a filter the user may subscribe to.
func TestPolicyReceiveImpliesSubscribe(t *testing.T) {
	p := newTestPolicy(t)
	for _, row := range accessMatrix {
		for _, tmpl := range matrixTopics {
			topic := expand(tmpl, row.user, row.other)
			if p.CanReceive(row.user, topic) && !p.CanSubscribe(row.user, topic) {
				t.Errorf("CanReceive(%q, %q) = true but CanSubscribe of the same name = false", row.user, topic)
			}
		}
	}
}

func TestPolicyUnknownRoom(t *testing.T) {
	p := newTestPolicy(t)
	for _, user := range []string{"mum", "dad", "doorbell", BridgeUser} {
		for _, check := range []struct {
			name string
			got  bool
		}{
			{"CanRead(nope)", p.CanRead(user, "nope")},
			{"CanWrite(nope)", p.CanWrite(user, "nope")},
			{"CanPublish(rooms/nope/messages/" + user + ")", p.CanPublish(user, MessageTopic("nope", user))},
			{"CanReceive(rooms/nope/messages/kid)", p.CanReceive(user, MessageTopic("nope", "kid"))},
		} {
			if check.got {
				t.Errorf("%s for %q = true, want false", check.name, user)
			}
		}
	}
	// A subscription naming an unknown room matches nothing receivable,
	// except for the admin, who may subscribe to anything, and the
	// bridge, which subscribes to a room before a reload adds it (it
	// receives nothing of it until then, above).
	for user, want := range map[string]bool{"dad": false, "kitchen": false, BridgeUser: true} {
		if got := p.CanSubscribe(user, "rooms/nope/messages/+"); got != want {
			t.Errorf("CanSubscribe(%q, rooms/nope/messages/+) = %v, want %v", user, got, want)
		}
	}
}

func TestPolicyAccessors(t *testing.T) {
	p := newTestPolicy(t)
	if got, want := p.Rooms(), []string{"family", "parents", "porch"}; !slices.Equal(got, want) {
		t.Errorf("Rooms() = %q, want %q", got, want)
	}
	// Rooms returns a copy.
	p.Rooms()[0] = "changed"
	if got := p.Rooms()[0]; got != "family" {
		t.Errorf("Rooms()[0] after changing a returned slice = %q, want family", got)
	}
	if got, want := p.Users(), []string{"dad", "doorbell", "kid", "kitchen", "mum"}; !slices.Equal(got, want) {
		t.Errorf("Users() = %q, want %q", got, want)
	}
	for _, tt := range []struct{ room, title string }{{"family", "Family"}, {"parents", "parents"}, {"nope", ""}} {
		if got := p.Title(tt.room); got != tt.title {
			t.Errorf("Title(%q) = %q, want %q", tt.room, got, tt.title)
		}
	}
	for _, tt := range []struct {
		user string
		role Role
		ok   bool
	}{
		{"mum", RoleAdmin, true}, {"dad", RoleMember, true}, {"kitchen", RoleDevice, true},
		{"zed", "", false}, {BridgeUser, "", false},
	} {
		if got, ok := p.Role(tt.user); got != tt.role || ok != tt.ok {
			t.Errorf("Role(%q) = %q, %v; want %q, %v", tt.user, got, ok, tt.role, tt.ok)
		}
	}
	if ValidName(BridgeUser) {
		t.Errorf("ValidName(%q) = true: a configured user could take the bridge's identity", BridgeUser)
	}
}

// TestPolicyRoleEmpty pins down that a Config built by hand with an empty
// role grants nothing: only ParseConfig turns "" into member.
func TestPolicyRoleEmpty(t *testing.T) {
	p := NewPolicy(&Config{
		Users: []User{{Name: "ann"}},
		Rooms: []Room{{Name: "family", Members: []string{"*", "ann"}}},
	})
	got := fmt.Sprint(p.CanRead("ann", "family"), p.CanWrite("ann", "family"), p.CanPublish("ann", MessageTopic("family", "ann")))
	if want := "false false false"; got != want {
		t.Errorf("role \"\": CanRead, CanWrite, CanPublish = %s, want %s", got, want)
	}
}

// TestACLRules: acl rules open topics outside the chat tree, a deny rule
// wins over every grant (an admin's too), %u and %c stand for the user and
// the client id, and the chat tree keeps its own rules.
func TestACLRules(t *testing.T) {
	acl := `acl:
  - {user: kitchen, topic: "homeassistant/#", access: readwrite}
  - {role: member, topic: "home/#", access: read}
  - {topic: "home/alarm/#", access: deny}
  - {role: device, topic: "devices/%u/%c/#", access: write}
`
	c, err := ParseConfig(strings.NewReader(strings.ReplaceAll(policyConfig, "HASH", policyHash()) + acl))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPolicy(&c)
	for _, tc := range []struct {
		user, client, topic string
		publish, receive    bool
	}{
		{"kitchen", "k1", "homeassistant/light/state", true, true},
		{"kitchen", "k1", "home/light", false, false},
		{"dad", "d1", "home/light", false, true},
		{"dad", "d1", "homeassistant/x", false, false},
		{"dad", "d1", "home/alarm/code", false, false},
		{"mum", "m1", "home/alarm/code", false, false}, // deny wins over admin
		{"mum", "m1", "home/light", true, true},
		{"mum", "m1", "$app/x", true, true},
		{"kitchen", "k1", "devices/kitchen/k1/temp", true, false},
		{"kitchen", "k1", "devices/kitchen/k2/temp", false, false},
		{"kitchen", "k/1", "devices/kitchen/k/1/temp", false, false}, // no %c with a /
		{"doorbell", "k1", "devices/kitchen/k1/temp", false, false},
		{"kitchen", "k1", "rooms/family/messages/kitchen", false, true}, // the chat tree's rules
		{"dad", "d1", "$SYS/broker/uptime", false, false},
	} {
		if got := p.CanPublishAs(tc.user, tc.client, tc.topic); got != tc.publish {
			t.Errorf("%s (%s) publish %s: %v, want %v", tc.user, tc.client, tc.topic, got, tc.publish)
		}
		if got := p.CanReceiveAs(tc.user, tc.client, tc.topic); got != tc.receive {
			t.Errorf("%s (%s) receive %s: %v, want %v", tc.user, tc.client, tc.topic, got, tc.receive)
		}
	}
	for _, tc := range []struct {
		user, filter string
		want         bool
	}{
		{"dad", "home/#", true},
		{"dad", "home", true}, // home/# matches home itself
		{"dad", "home/alarm/#", false},
		{"dad", "#", true}, // reaches the family room and home/; every delivery is checked
		{"kitchen", "home/#", false},
		{"kitchen", "+/light/state", true},
		{"dad", "$SYS/#", false},
		{"mum", "$SYS/#", true},
		{"mum", "home/alarm/code", false},
	} {
		if got := p.CanSubscribeAs(tc.user, "c", tc.filter); got != tc.want {
			t.Errorf("%s subscribe %s: %v, want %v", tc.user, tc.filter, got, tc.want)
		}
	}
}

// TestACLRuleErrors: a rule that would reach the chat tree, start with a
// substitution or a wildcard, or name an unknown user or access is an
// error naming its key.
func TestACLRuleErrors(t *testing.T) {
	for _, tc := range []struct{ rule, key string }{
		{`{topic: "rooms/#", access: read}`, "acl[0].topic"},
		{`{topic: "#", access: read}`, "acl[0].topic"},
		{`{topic: "%u/#", access: read}`, "acl[0].topic"},
		{`{topic: "devices/%c/#", access: read}`, "acl[0].topic"},
		{`{topic: "$SYS/#", access: read}`, "acl[0].topic"},
		{`{topic: "home/#/x", access: read}`, "acl[0].topic"},
		{`{user: nobody, topic: "home/#", access: read}`, "acl[0].user"},
		{`{user: dad, role: member, topic: "home/#", access: read}`, "acl[0].user"},
		{`{topic: "home/#", access: all}`, "acl[0].access"},
		{`{topic: "home/#"}`, "acl[0].access"},
	} {
		_, err := ParseConfig(strings.NewReader(strings.ReplaceAll(policyConfig, "HASH", policyHash()) + "acl:\n  - " + tc.rule + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("acl rule %s: %v, want an error about %s", tc.rule, err, tc.key)
		}
	}
}

// TestPolicyReplace: a policy in use takes another configuration's rules
// at once, rooms, users and acl rules alike.
func TestPolicyReplace(t *testing.T) {
	p := newTestPolicy(t)
	if !p.CanRead("kid", "family") || p.CanRead("kid", "parents") || p.HasRoom("attic") {
		t.Fatal("test bug: the matrix's family changed")
	}
	c, err := ParseConfig(strings.NewReader(strings.ReplaceAll(`users:
  - {name: mum, password_hash: "HASH", role: admin}
  - {name: kid, password_hash: "HASH"}
  - {name: nan, password_hash: "HASH"}
rooms:
  - {name: parents, members: [mum, kid]}
  - {name: attic, title: Attic, members: [nan]}
acl:
  - {user: kid, topic: "lights/#", access: readwrite}
`, "HASH", policyHash())))
	if err != nil {
		t.Fatal(err)
	}
	p.Replace(&c)
	for _, tt := range []struct {
		what string
		got  bool
		want bool
	}{
		{"kid reads family (removed)", p.CanRead("kid", "family"), false},
		{"kid writes parents (now a member)", p.CanPublish("kid", "rooms/parents/messages/kid"), true},
		{"nan (added) reads attic (added)", p.CanReceive("nan", "rooms/attic/messages/nan"), true},
		{"dad (removed) receives presence", p.CanReceive("dad", "presence/mum"), false},
		{"kid writes lights (acl added)", p.CanPublish("kid", "lights/kitchen"), true},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.what, tt.got, tt.want)
		}
	}
	if got := p.Users(); !slices.Equal(got, []string{"kid", "mum", "nan"}) {
		t.Errorf("Users() = %q", got)
	}
	if got := p.Rooms(); !slices.Equal(got, []string{"parents", "attic"}) || p.Title("attic") != "Attic" {
		t.Errorf("Rooms() = %q, title %q", got, p.Title("attic"))
	}
}
