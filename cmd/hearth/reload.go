package main

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/history"
)

// What a reload applies while hearth runs. Every other key that changed
// is logged as needing a restart, and keeps its running value.
var liveKeys = []string{
	"users", "rooms", "acl", "auth.token_ttl",
	"mqtt.publish_rate", "mqtt.publish_burst", "mqtt.max_connections_per_user",
	"mqtt.max_queued_bytes", "mqtt.max_offline_bytes", "mqtt.max_keepalive",
}

// withLive returns running with the keys of liveKeys taken from next.
func withLive(running, next hearth.Config) hearth.Config {
	c := running
	c.Users, c.Rooms, c.ACL = next.Users, next.Rooms, next.ACL
	c.Auth.TokenTTL = next.Auth.TokenTTL
	m, n := &c.MQTT, next.MQTT
	m.PublishRate, m.PublishBurst, m.MaxConnectionsPerUser = n.PublishRate, n.PublishBurst, n.MaxConnectionsPerUser
	m.MaxQueuedBytes, m.MaxOfflineBytes, m.MaxKeepalive = n.MaxQueuedBytes, n.MaxOfflineBytes, n.MaxKeepalive
	return c
}

// brokerLimits are the broker's limits in cfg.
func brokerLimits(cfg hearth.Config) broker.Limits {
	m := cfg.MQTT
	return broker.Limits{PublishRate: m.PublishRate, PublishBurst: m.PublishBurst, MaxPerUser: m.MaxConnectionsPerUser,
		MaxQueuedBytes: m.MaxQueuedBytes, MaxOfflineBytes: m.MaxOfflineBytes, MaxKeepalive: uint16(m.MaxKeepalive)}
}

// Reload reads the config file at path again and applies what can change
// while hearth runs (liveKeys): users and their passwords, rooms, acl
// rules, limits. It is what SIGHUP does. A config with problems changes
// nothing: every problem is logged, and returned. Keys that need a
// restart are logged, one line each, and keep their running values.
//
// Access changes at once, for connections already open too, since every
// publish and every delivery asks the policy: a user who may no longer
// read a room receives nothing more of it, and what waits queued for them
// of it is dropped. The connections of a user removed, or whose password
// hash changed, are closed, and their tokens are refused from now on.
func (a *App) Reload(path string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	next, err := hearth.LoadConfig(path)
	if err != nil {
		return a.refuse(path, err, "config reload: problem")
	}
	old := a.cfg
	var restart []string
	for _, k := range diffKeys(reflect.ValueOf(old), reflect.ValueOf(next), "") {
		if !slices.Contains(liveKeys, k) {
			restart = append(restart, k)
			a.log.Warn("config reload: restart needed to apply a change", "key", k)
		}
	}
	next = withLive(old, next)
	if err := next.Validate(); err != nil {
		// Some key that needs a restart changed with one that depends on
		// it (mqtt.max_message_bytes and the queue bounds, say).
		return a.refuse(path, err, "config reload: problem with the running values of the keys that need a restart")
	}

	users := diffUsers(old.Users, next.Users)
	rooms := diffRooms(old.Rooms, next.Rooms)

	// The bridge subscribes to a new room before anyone may post in it,
	// so that no message of it misses the archive.
	if len(rooms.added) > 0 || len(rooms.removed) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.bridge.SetRooms(ctx, roomNames(next)); err != nil {
			a.log.Warn("config reload: the archive is not subscribed to the new rooms yet", "error", err)
		}
		cancel()
	}
	a.auth.SetUsers(next.Users)
	a.policy.Replace(&next)
	a.broker.SetLimits(brokerLimits(next))
	a.api.SetTokenTTL(next.Auth.TokenTTL.D())
	closed, dropped := a.broker.Reloaded(users.revoked, users.added, users.removed)
	// Their tokens fail already (bound to the password hash); the device
	// logins are removed too, so that nobody sees them listed.
	devicesRevoked := a.devices.RemoveUsers(users.revoked)
	if rooms.retention {
		a.startRetention(next.Rooms)
	}
	a.cfg = next

	var changed []string
	for _, k := range diffKeys(reflect.ValueOf(old), reflect.ValueOf(next), "") {
		if k != "users" && k != "rooms" {
			changed = append(changed, k)
		}
	}
	if len(users.all())+len(rooms.all())+len(changed) == 0 {
		a.log.Info("config reloaded: no change", "config", path, "restart_needed", len(restart))
		return nil
	}
	a.log.Info("config reloaded", "config", path,
		"users_added", users.added, "users_removed", users.removed, "users_changed", users.changed,
		"rooms_added", rooms.added, "rooms_removed", rooms.removed, "rooms_changed", rooms.changed,
		"other", changed, "connections_closed", closed, "device_logins_revoked", devicesRevoked, "queued_dropped", dropped, "restart_needed", len(restart))
	return nil
}

// refuse logs every problem of a reload, and that nothing changed.
func (a *App) refuse(path string, err error, msg string) error {
	problems := hearth.Problems(err)
	for _, p := range problems {
		a.log.Error(msg, "config", path, "problem", p.Error())
	}
	a.log.Error("config reload refused: nothing changed", "config", path, "problems", len(problems))
	return err
}

// roomNames is every room of cfg, in order.
func roomNames(cfg hearth.Config) []string {
	var out []string
	for _, r := range cfg.Rooms {
		out = append(out, r.Name)
	}
	return out
}

type userChanges struct {
	added, removed, changed []string // changed: "dad (password)", "kid (role)"
	revoked                 []string // removed, or a new password hash
}

func (u userChanges) all() []string { return slices.Concat(u.added, u.removed, u.changed) }

func diffUsers(old, next []hearth.User) userChanges {
	var d userChanges
	d.added, d.removed = diffNamed(old, next, func(u hearth.User) string { return u.Name }, func(o, u hearth.User) {
		var what []string
		if o.PasswordHash != u.PasswordHash {
			what = append(what, "password")
			d.revoked = append(d.revoked, u.Name)
		}
		if o.Role != u.Role {
			what = append(what, "role")
		}
		if len(what) > 0 {
			d.changed = append(d.changed, u.Name+" ("+strings.Join(what, ", ")+")")
		}
	})
	d.revoked = append(d.revoked, d.removed...)
	return d
}

// diffNamed pairs the items of two lists by name. It returns the names
// only in next and those only in old, and calls both for each item in
// both lists, in the order of next.
func diffNamed[T any](old, next []T, name func(T) string, both func(o, n T)) (added, removed []string) {
	was := map[string]T{}
	for _, o := range old {
		was[name(o)] = o
	}
	for _, n := range next {
		if o, ok := was[name(n)]; ok {
			delete(was, name(n))
			both(o, n)
		} else {
			added = append(added, name(n))
		}
	}
	for _, o := range old {
		if _, gone := was[name(o)]; gone {
			removed = append(removed, name(o))
		}
	}
	return added, removed
}

type roomChanges struct {
	added, removed, changed []string
	retention               bool // some room's retention is not what it was
}

func (r roomChanges) all() []string { return slices.Concat(r.added, r.removed, r.changed) }

func diffRooms(old, next []hearth.Room) roomChanges {
	var d roomChanges
	d.added, d.removed = diffNamed(old, next, func(r hearth.Room) string { return r.Name }, func(o, r hearth.Room) {
		if !reflect.DeepEqual(o, r) {
			d.changed = append(d.changed, r.Name)
			d.retention = d.retention || o.Retention != r.Retention
		}
	})
	// A room added or removed with a retention changes the retention's rooms.
	d.retention = d.retention || slices.ContainsFunc(slices.Concat(old, next), func(r hearth.Room) bool {
		return r.Retention != hearth.Retention{} && (slices.Contains(d.added, r.Name) || slices.Contains(d.removed, r.Name))
	})
	return d
}

// diffKeys lists the keys (as config.yaml names them) whose values differ
// between two configs; a list (users, rooms, acl) is one key.
func diffKeys(a, b reflect.Value, path string) []string {
	if a.Kind() != reflect.Struct || a.Type() == reflect.TypeFor[hearth.Duration]() {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{path}
	}
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if path != "" {
			name = path + "." + name
		}
		out = append(out, diffKeys(a.Field(i), b.Field(i), name)...)
	}
	return out
}

// startRetention (re)starts the retention of rooms in the background.
func (a *App) startRetention(rooms []hearth.Room) {
	a.stopRetention()
	rules := map[string]history.Retention{}
	for _, r := range rooms {
		if r.Retention.MaxAge.D() > 0 || r.Retention.MaxMessages > 0 {
			rules[r.Name] = history.Retention{MaxAge: r.Retention.MaxAge.D(), MaxMessages: r.Retention.MaxMessages}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.retention, a.retentionEnd = cancel, make(chan struct{})
	log := a.log.With("component", "retention")
	// The loop runs without rules too: it sweeps the photos no message
	// refers to any more, after each pass's commits.
	sweep := func(now time.Time) {
		if n, err := a.attachments.Sweep(now); err != nil {
			log.Error("attachments sweep", "error", err)
		} else if n > 0 {
			log.Info("deleted photos no message refers to", "attachments", n)
		}
	}
	go func() {
		defer close(a.retentionEnd)
		a.store.RunRetention(ctx, rules, a.retentionEvery, log, sweep)
	}()
}

func (a *App) stopRetention() {
	if a.retention != nil {
		a.retention()
		<-a.retentionEnd
		a.retention = nil
	}
}
