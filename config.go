package hearth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// SamplePassword is the password of every user in the sample config.yaml.
// Validate refuses a configuration that listens on a non-loopback address
// while some user's password_hash still matches it.
const SamplePassword = "hearth-sample"

// Config is config.yaml (README, "Configuration").
type Config struct {
	DataDir string        `yaml:"data_dir"`
	HTTP    HTTPConfig    `yaml:"http"`
	MQTT    MQTTConfig    `yaml:"mqtt"`
	Auth    AuthConfig    `yaml:"auth"`
	Users   []User        `yaml:"users"`
	Rooms   []Room        `yaml:"rooms"`
	ACL     []ACLRule     `yaml:"acl"` // topics outside the chat tree
	Bridge  BridgeConfig  `yaml:"bridge"`
	Devices []Device      `yaml:"devices"` // MQTT client ids reserved for their user
	Metrics MetricsConfig `yaml:"metrics"`
	// Attachments are the limits of photo uploads.
	Attachments AttachmentsConfig `yaml:"attachments"`
	Push        PushConfig        `yaml:"push"`
}

// PushConfig is about Web Push notifications. Subject is the contact a
// push service may use (the VAPID "sub" claim): mailto:ADDRESS or an
// https:// URL.
type PushConfig struct {
	Subject string `yaml:"subject"`
}

// AttachmentsConfig limits photo uploads (POST
// /api/rooms/{room}/attachments).
type AttachmentsConfig struct {
	MaxBytes  int `yaml:"max_bytes"`  // the largest upload, in bytes
	PerMinute int `yaml:"per_minute"` // uploads per user per minute; 0 = no limit
}

// MaxAttachmentBytes bounds attachments.max_bytes.
const MaxAttachmentBytes = 256 << 20

// Device reserves MQTT client ids for one user: no other user may connect
// with them, and a session another user holds under one is dropped at
// start.
type Device struct {
	User      string   `yaml:"user"`
	ClientIDs []string `yaml:"client_ids"`
}

// ClientIDOwners returns the user each reserved client id belongs to.
func (c *Config) ClientIDOwners() map[string]string {
	m := map[string]string{}
	for _, d := range c.Devices {
		for _, id := range d.ClientIDs {
			m[id] = d.User
		}
	}
	return m
}

// MetricsConfig is the optional listener that serves /metrics without a
// token, for a Prometheus on the same machine. GET /metrics on http.addr
// always needs an admin's token.
type MetricsConfig struct {
	Addr string `yaml:"addr"` // "" (the default) turns it off; a loopback host:port otherwise
}

// HTTPConfig is the web page, API and MQTT over WebSocket listener.
type HTTPConfig struct {
	Addr string `yaml:"addr"`
	// AllowedOrigins are extra origins ("https://chat.example.org") allowed
	// for WebSocket and CORS, written exactly as a browser sends them.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// PublicURL is where people open the chat ("https://chat.example.org"):
	// its origin may use /mqtt and the API. "" means only the loopback
	// origins of http.addr's port.
	PublicURL string `yaml:"public_url"`
	// TLS, when both files are set, makes the HTTP listener speak HTTPS.
	TLS CertFiles `yaml:"tls"`
	// TrustedProxies are reverse proxies (CIDRs or single IPs) whose
	// X-Forwarded-For and X-Forwarded-Proto hearth believes.
	TrustedProxies []string     `yaml:"trusted_proxies"`
	Timeouts       HTTPTimeouts `yaml:"timeouts"`
}

// CertFiles are a PEM certificate (chain) and its private key.
type CertFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HTTPTimeouts bound how long a client may take (README, "Timeouts").
type HTTPTimeouts struct {
	ReadHeader Duration `yaml:"read_header"` // the request line and headers
	Read       Duration `yaml:"read"`        // the whole request, body included
	Write      Duration `yaml:"write"`       // the answer; not /mqtt nor the backup download
	Idle       Duration `yaml:"idle"`        // a kept-alive connection between requests
}

// MQTTConfig is the MQTT over TCP (and TLS) listener and the limits of every
// MQTT connection.
type MQTTConfig struct {
	Addr            string    `yaml:"addr"` // "" turns MQTT over TCP off
	TLS             TLSConfig `yaml:"tls"`
	MaxMessageBytes int       `yaml:"max_message_bytes"`
	PublishRate     float64   `yaml:"publish_rate"` // per second per connection; 0 = no limit
	PublishBurst    int       `yaml:"publish_burst"`
	// MaxConnections caps MQTT connections (TCP, TLS and WebSocket
	// together); MaxConnectionsPerUser caps one user's. 0 = no limit.
	MaxConnections        int `yaml:"max_connections"`
	MaxConnectionsPerUser int `yaml:"max_connections_per_user"`
	// MaxQueuedBytes bounds what one session holds for its client (queued
	// and unacknowledged messages); MaxOfflineBytes what all of one user's
	// offline sessions hold together. A message over either is dropped
	// and counted.
	MaxQueuedBytes  int `yaml:"max_queued_bytes"`
	MaxOfflineBytes int `yaml:"max_offline_bytes"`
	// MaxKeepalive is the longest keep alive, in seconds, an MQTT 5 client
	// gets (Server Keep Alive); 0 = the client's own.
	MaxKeepalive int `yaml:"max_keepalive"`
	// ConnectRate limits how often new MQTT connections are made.
	ConnectRate ConnectRateConfig `yaml:"connect_rate"`
}

// ConnectRateConfig limits new MQTT connections per client address (all
// of them, before the password is checked) and per user (those that
// logged in): a rate per second each, 0 = no limit, with bursts of Burst.
type ConnectRateConfig struct {
	PerAddress float64 `yaml:"per_address"`
	PerUser    float64 `yaml:"per_user"`
	Burst      int     `yaml:"burst"`
}

// TLSConfig is the MQTT over TLS listener; it is off while Addr is "".
type TLSConfig struct {
	Addr     string `yaml:"addr"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// AuthConfig is about tokens. An empty TokenSecretFile means a secret
// generated once into data_dir.
type AuthConfig struct {
	TokenTTL        Duration `yaml:"token_ttl"`
	TokenSecretFile string   `yaml:"token_secret_file"`
	// DeviceTTL is the lifetime of a device login's token (POST
	// /api/login with "remember"), renewed by each refresh.
	DeviceTTL Duration `yaml:"device_ttl"`
}

// User is a configured user. PasswordHash is a bcrypt hash.
type User struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
	Role         Role   `yaml:"role"`
}

// Role is what a user may do (README, "Users and roles").
type Role string

// The roles. An empty role in config.yaml means RoleMember.
const (
	RoleMember Role = "member"
	RoleDevice Role = "device"
	RoleAdmin  Role = "admin"
)

// Room is a configured room. Members read and write, Readers only read;
// "*" in either stands for every user whose role is member or admin.
type Room struct {
	Name      string    `yaml:"name"`
	Title     string    `yaml:"title"` // defaults to Name
	Members   []string  `yaml:"members"`
	Readers   []string  `yaml:"readers"`
	Retention Retention `yaml:"retention"`
}

// Retention bounds a room's archive; a zero field means no bound.
type Retention struct {
	MaxAge      Duration `yaml:"max_age"`
	MaxMessages int      `yaml:"max_messages"`
}

// BridgeConfig is the archive bridge. An empty BrokerURL means the embedded
// broker.
type BridgeConfig struct {
	BrokerURL string `yaml:"broker_url"`
	ClientID  string `yaml:"client_id"`
}

// Limits that Validate enforces.
const (
	MinMessageBytes = 256
	MaxMessageBytes = 268435455 // the largest MQTT packet
	MaxTokenTTL     = 8760 * time.Hour
	MaxDeviceTTL    = 10 * 8760 * time.Hour
	MaxTitleLen     = 64    // characters
	MaxTopicBytes   = 65600 // the longest MQTT topic, and what a queued message costs besides
)

// DefaultConfig returns the values a config.yaml starts from: whatever a key
// does not say.
func DefaultConfig() Config {
	return Config{
		DataDir: "./data",
		HTTP: HTTPConfig{Addr: "127.0.0.1:8080", Timeouts: HTTPTimeouts{
			ReadHeader: Duration(10 * time.Second), Read: Duration(60 * time.Second),
			Write: Duration(60 * time.Second), Idle: Duration(120 * time.Second),
		}},
		MQTT: MQTTConfig{
			Addr:            "127.0.0.1:1883",
			MaxMessageBytes: 16384,
			PublishRate:     50,
			PublishBurst:    200,

			MaxConnections:        1000,
			MaxConnectionsPerUser: 20,
			MaxQueuedBytes:        64 << 20,
			MaxOfflineBytes:       256 << 20,
			ConnectRate:           ConnectRateConfig{PerAddress: 10, PerUser: 5, Burst: 30},
		},
		Auth:        AuthConfig{TokenTTL: Duration(24 * time.Hour), DeviceTTL: Duration(8760 * time.Hour)},
		Bridge:      BridgeConfig{ClientID: "hearth-archiver"},
		Attachments: AttachmentsConfig{MaxBytes: 20 << 20, PerMinute: 30},
		Push:        PushConfig{Subject: "mailto:hearth@localhost"},
	}
}

// ConfigError is a problem with one key of the configuration. Key is its
// path, such as "users[2].name"; Line is its line in the YAML, or 0 when
// not known (problems found by Validate).
type ConfigError struct {
	Key  string
	Line int
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %v (line %d)", e.Key, e.Err, e.Line)
	}
	return e.Key + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads and validates the configuration file at path. Relative
// paths in it (data_dir, auth.token_secret_file, http.tls.cert_file,
// http.tls.key_file, mqtt.tls.cert_file and mqtt.tls.key_file) are resolved against the directory of the file, so a
// config works from any working directory. Errors start with
// "config PATH: ".
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// The path is in our prefix; keep only the cause (errors.Is still works).
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Config{}, &fileError{path, err}
	}
	c, err := ParseConfig(bytes.NewReader(b))
	if err != nil {
		return Config{}, &fileError{path, err}
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.DataDir, &c.Auth.TokenSecretFile, &c.HTTP.TLS.CertFile, &c.HTTP.TLS.KeyFile, &c.MQTT.TLS.CertFile, &c.MQTT.TLS.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return c, nil
}

// ParseConfig reads one YAML document over DefaultConfig, fills the defaults
// of each user and room (role member, title = name) and validates the
// result. Unknown keys and values of the wrong type are errors naming the
// key and its line; an empty input and several documents are errors too.
// Paths are left as written (see LoadConfig). Several problems come back
// together (errors.Join), each a *ConfigError where a key is to blame.
func ParseConfig(r io.Reader) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("config is empty")
		}
		return Config{}, err
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return Config{}, fmt.Errorf("config has more than one YAML document (the second starts at line %d)", more.Line)
	} else if !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return Config{}, errors.New("config is empty")
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return Config{}, errors.New("config is empty")
	}

	// Check keys and value types first, so that every such problem is
	// reported with its key path, not only yaml's first one by line.
	shape := checkNode("", root, reflect.TypeFor[Config]())

	// Defaults are in place before decoding, so an explicit value (even
	// `addr: ""`) wins and an absent one keeps its default. A value of
	// the wrong type keeps its default too, so that the rules below can
	// still report everything else.
	c := DefaultConfig()
	if len(shape) == 0 {
		dec = yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return Config{}, err
		}
	} else if root.Kind == yaml.MappingNode {
		_ = root.Decode(&c) // what checkNode left of it
	}
	for i := range c.Users {
		if c.Users[i].Role == "" {
			c.Users[i].Role = RoleMember
		}
	}
	for i := range c.Rooms {
		if c.Rooms[i].Title == "" {
			c.Rooms[i].Title = c.Rooms[i].Name
		}
	}
	err = c.Validate()
	if len(shape) > 0 {
		// A rule about a key whose value was already refused (or its
		// parts) would only repeat that problem.
		for _, p := range Problems(err) {
			var ce *ConfigError
			if !errors.As(p, &ce) || !underAny(ce.Key, shape) {
				shape = append(shape, p)
			}
		}
		return Config{}, errors.Join(shape...)
	}
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

// underAny reports whether key is, or is part of, the key of one of the
// problems in errs.
func underAny(key string, errs []error) bool {
	for _, e := range errs {
		var ce *ConfigError
		if errors.As(e, &ce) && (key == ce.Key || ce.Key == "config" ||
			strings.HasPrefix(key, ce.Key+".") || strings.HasPrefix(key, ce.Key+"[")) {
			return true
		}
	}
	return false
}

// fileError is an error of LoadConfig: "config PATH: " and the problems.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string { return "config " + e.path + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// Problems splits an error of LoadConfig, ParseConfig or Validate into
// its problems, in the order of the file (most are *ConfigError, which
// name their key), without LoadConfig's "config PATH: " in front. A YAML
// syntax error, or a file that cannot be read, is one problem.
func Problems(err error) []error {
	if err == nil {
		return nil
	}
	var fe *fileError
	if errors.As(err, &fe) {
		err = fe.err
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

var durationType = reflect.TypeFor[Duration]()

// checkNode checks that n fits a value of type t: known keys only, and
// scalars that decode. It returns one *ConfigError per problem, and takes
// what it refuses out of the tree (an unknown key, a value of the wrong
// type becomes null), so that the rest still decodes.
func checkNode(path string, n *yaml.Node, t reflect.Type) []error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // yaml leaves the value (its default) alone
	}
	fail := func(format string, args ...any) []error {
		err := &ConfigError{Key: keyName(path), Line: n.Line, Err: fmt.Errorf(format, args...)}
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
		return []error{err}
	}
	switch {
	case t == durationType:
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			return fail("%w", err)
		}
		return nil
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping of keys, got %s", describeNode(n))
		}
		var errs []error
		known := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" {
				errs = append(errs, checkMerge(path, v, t)...)
				known = append(known, k, v)
				continue
			}
			f, ok := fieldByKey(t, k.Value)
			if k.Kind != yaml.ScalarNode || !ok {
				errs = append(errs, &ConfigError{Key: joinKey(path, k.Value), Line: k.Line, Err: errors.New("unknown key")})
				continue
			}
			errs = append(errs, checkNode(joinKey(path, k.Value), v, f.Type)...)
			known = append(known, k, v)
		}
		n.Content = known
		return errs
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fail("want a list, got %s", describeNode(n))
		}
		var errs []error
		for i, v := range n.Content {
			errs = append(errs, checkNode(fmt.Sprintf("%s[%d]", path, i), v, t.Elem())...)
		}
		return errs
	}
	if n.Kind != yaml.ScalarNode {
		return fail("want %s, got %s", describeType(t), describeNode(n))
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return fail("want %s, got %s", describeType(t), describeNode(n))
	}
	return nil
}

// checkMerge checks the value of a YAML merge key (<<: *anchor).
func checkMerge(path string, v *yaml.Node, t reflect.Type) []error {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind != yaml.SequenceNode {
		return checkNode(path, v, t)
	}
	var errs []error
	for _, m := range v.Content {
		errs = append(errs, checkNode(path, m, t)...)
	}
	return errs
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if f.IsExported() && name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func keyName(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:40]) + "..."
	}
	return strconv.Quote(v)
}

// User returns the configured user called name.
func (c *Config) User(name string) (User, bool) {
	for _, u := range c.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// Room returns the configured room called name.
func (c *Config) Room(name string) (Room, bool) {
	for _, r := range c.Rooms {
		if r.Name == name {
			return r, true
		}
	}
	return Room{}, false
}

// IsLoopbackAddr reports whether the host of hostport is "localhost" or a
// loopback IP. An empty host, 0.0.0.0, :: and every other name are not
// loopback: they may be reached from other machines.
func IsLoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Validate checks every rule of the README's "Configuration" section
// and returns all problems joined (errors.Join), each a *ConfigError that
// names its key, or nil. It expects the defaults of ParseConfig to be
// filled in (a user's role is not empty). When some listener is not on
// loopback it compares every password hash with SamplePassword, which takes
// a bcrypt computation per user.
func (c *Config) Validate() error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	addErr := func(key string, err error) {
		errs = append(errs, &ConfigError{Key: key, Err: err})
	}

	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}

	// Listeners.
	if c.HTTP.Addr == "" {
		add("http.addr", "required, e.g. 127.0.0.1:8080")
	} else if err := checkHostPort(c.HTTP.Addr); err != nil {
		addErr("http.addr", err)
	}
	if c.MQTT.Addr != "" {
		if err := checkHostPort(c.MQTT.Addr); err != nil {
			addErr("mqtt.addr", err)
		}
	}
	tls := c.MQTT.TLS
	if tls.Addr != "" {
		if err := checkHostPort(tls.Addr); err != nil {
			addErr("mqtt.tls.addr", err)
		}
		if tls.CertFile == "" {
			add("mqtt.tls.cert_file", "required when mqtt.tls.addr is set")
		}
		if tls.KeyFile == "" {
			add("mqtt.tls.key_file", "required when mqtt.tls.addr is set")
		}
	} else if tls.CertFile != "" || tls.KeyFile != "" {
		add("mqtt.tls.addr", "required when cert_file or key_file is set (or remove them to turn TLS off)")
	}
	listeners := []struct{ key, addr string }{{"http.addr", c.HTTP.Addr}, {"mqtt.addr", c.MQTT.Addr}, {"mqtt.tls.addr", tls.Addr}}
	for i, a := range listeners {
		for _, b := range listeners[:i] {
			if a.addr != "" && a.addr == b.addr && !strings.HasSuffix(a.addr, ":0") {
				add(a.key, "%s is also %s", a.addr, b.key)
			}
		}
	}

	if a := c.Metrics.Addr; a != "" {
		switch err := checkHostPort(a); {
		case err != nil:
			addErr("metrics.addr", err)
		case !IsLoopbackAddr(a):
			add("metrics.addr", "%q: must be a loopback address such as 127.0.0.1:9090 (it serves without a token; from elsewhere, scrape GET /metrics on http.addr with an admin's token)", a)
		}
		for _, l := range listeners {
			if a == l.addr && !strings.HasSuffix(a, ":0") {
				add("metrics.addr", "%s is also %s", a, l.key)
			}
		}
	}

	for i, o := range c.HTTP.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			addErr(fmt.Sprintf("http.allowed_origins[%d]", i), err)
		}
	}
	if c.HTTP.PublicURL != "" {
		if _, err := PublicOrigin(c.HTTP.PublicURL); err != nil {
			addErr("http.public_url", err)
		}
	}
	if ht := c.HTTP.TLS; (ht.CertFile == "") != (ht.KeyFile == "") {
		if ht.CertFile == "" {
			add("http.tls.cert_file", "required when http.tls.key_file is set (set both, or neither for plain HTTP)")
		} else {
			add("http.tls.key_file", "required when http.tls.cert_file is set (set both, or neither for plain HTTP)")
		}
	}
	for i, p := range c.HTTP.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			addErr(fmt.Sprintf("http.trusted_proxies[%d]", i), err)
		}
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{{"read_header", c.HTTP.Timeouts.ReadHeader}, {"read", c.HTTP.Timeouts.Read}, {"write", c.HTTP.Timeouts.Write}, {"idle", c.HTTP.Timeouts.Idle}} {
		if d.d <= 0 || d.d.D() > 24*time.Hour {
			add("http.timeouts."+d.key, "must be above 0 and at most 24h, got %s", d.d)
		}
	}
	// net/http's write deadline runs from the end of the headers: an
	// answer to a body cut off at the read timeout needs it to be later.
	if to := c.HTTP.Timeouts; to.Read > 0 && to.Write < to.Read {
		add("http.timeouts.write", "must be at least http.timeouts.read (%s), so that a request cut off for a slow body still gets its answer; got %s", to.Read, to.Write)
	}

	if n := c.Attachments.MaxBytes; n < 1024 || n > MaxAttachmentBytes {
		add("attachments.max_bytes", "must be between 1024 and %d bytes, got %d", MaxAttachmentBytes, n)
	}
	if n := c.Attachments.PerMinute; n < 0 {
		add("attachments.per_minute", "must be 0 (no limit) or more, got %d", n)
	}

	// MQTT limits.
	if m := c.MQTT.MaxMessageBytes; m < MinMessageBytes || m > MaxMessageBytes {
		add("mqtt.max_message_bytes", "must be between %d and %d, got %d", MinMessageBytes, MaxMessageBytes, m)
	}
	if r := c.MQTT.PublishRate; !(r >= 0) || math.IsInf(r, 0) {
		add("mqtt.publish_rate", "must be 0 (no limit) or more, got %v", r)
	}
	if b := c.MQTT.PublishBurst; b < 0 {
		add("mqtt.publish_burst", "must be 0 or more, got %d", b)
	} else if b < 1 && c.MQTT.PublishRate > 0 {
		add("mqtt.publish_burst", "must be at least 1 when publish_rate is above 0")
	}
	if n := c.MQTT.MaxConnections; n < 0 {
		add("mqtt.max_connections", "must be 0 (no limit) or more, got %d", n)
	}
	if n := c.MQTT.MaxConnectionsPerUser; n < 0 {
		add("mqtt.max_connections_per_user", "must be 0 (no limit) or more, got %d", n)
	}
	// Room for one message of the largest size on the longest topic.
	if n, least := c.MQTT.MaxQueuedBytes, c.MQTT.MaxMessageBytes+MaxTopicBytes; n < least {
		add("mqtt.max_queued_bytes", "must be at least mqtt.max_message_bytes + %d (%d), got %d", MaxTopicBytes, least, n)
	}
	if n, least := c.MQTT.MaxOfflineBytes, c.MQTT.MaxMessageBytes+MaxTopicBytes; n < least {
		add("mqtt.max_offline_bytes", "must be at least mqtt.max_message_bytes + %d (%d), got %d", MaxTopicBytes, least, n)
	}
	if n := c.MQTT.MaxKeepalive; n < 0 || n > 65535 {
		add("mqtt.max_keepalive", "must be between 0 (the client's own) and 65535 seconds, got %d", n)
	}

	cr := c.MQTT.ConnectRate
	for _, r := range []struct {
		key string
		v   float64
	}{{"mqtt.connect_rate.per_address", cr.PerAddress}, {"mqtt.connect_rate.per_user", cr.PerUser}} {
		if !(r.v >= 0) || math.IsInf(r.v, 0) {
			add(r.key, "must be 0 (no limit) or more, got %v", r.v)
		}
	}
	if cr.Burst < 1 && (cr.PerAddress > 0 || cr.PerUser > 0) {
		add("mqtt.connect_rate.burst", "must be at least 1 when a connect rate is above 0, got %d", cr.Burst)
	}

	if ttl := c.Auth.TokenTTL.D(); ttl <= 0 || ttl > MaxTokenTTL {
		add("auth.token_ttl", "must be above 0 and at most 8760h (a year), got %s", c.Auth.TokenTTL)
	}
	if ttl := c.Auth.DeviceTTL.D(); ttl <= 0 || ttl > MaxDeviceTTL {
		add("auth.device_ttl", "must be above 0 and at most 87600h (ten years), got %s", c.Auth.DeviceTTL)
	}
	if sub := c.Push.Subject; !validPushSubject(sub) {
		add("push.subject", "must be mailto:ADDRESS or an https:// URL, got %q", sub)
	}

	// Users.
	if len(c.Users) == 0 {
		add("users", "at least one user is required")
	}
	users := make(map[string]Role, len(c.Users))
	userAt := make(map[string]int, len(c.Users))
	hashOK := make([]bool, len(c.Users))
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if err := CheckName(u.Name); err != nil {
			addErr(key+".name", err)
		} else if j, dup := userAt[u.Name]; dup {
			add(key+".name", "duplicate user %q (also users[%d])", u.Name, j)
		} else {
			userAt[u.Name] = i
			users[u.Name] = u.Role
		}
		switch u.Role {
		case RoleMember, RoleDevice, RoleAdmin:
		default:
			add(key+".role", "unknown role %q: want member, device or admin", u.Role)
		}
		// Never print the hash: it is a secret too.
		if u.PasswordHash == "" {
			add(key+".password_hash", "required; make one with 'hearth passwd'")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || len(u.PasswordHash) != 60 {
			add(key+".password_hash", "not a bcrypt hash; make one with 'hearth passwd'")
		} else {
			hashOK[i] = true
		}
	}

	// Rooms.
	if len(c.Rooms) == 0 {
		add("rooms", "at least one room is required")
	}
	roomAt := make(map[string]int, len(c.Rooms))
	for i, r := range c.Rooms {
		key := fmt.Sprintf("rooms[%d]", i)
		if err := CheckName(r.Name); err != nil {
			addErr(key+".name", err)
		} else if j, dup := roomAt[r.Name]; dup {
			add(key+".name", "duplicate room %q (also rooms[%d])", r.Name, j)
		} else {
			roomAt[r.Name] = i
		}
		if n := utf8.RuneCountInString(r.Title); n > MaxTitleLen {
			add(key+".title", "at most %d characters, got %d", MaxTitleLen, n)
		} else if strings.IndexFunc(r.Title, unicode.IsControl) >= 0 || !utf8.ValidString(r.Title) {
			add(key+".title", "must be one line of text")
		}
		members := map[string]bool{}
		checkList := func(list string, names []string, seen map[string]bool) {
			for j, m := range names {
				k := fmt.Sprintf("%s.%s[%d]", key, list, j)
				_, known := users[m]
				switch {
				case m == "*":
				case !ValidName(m):
					addErr(k, CheckName(m))
					continue
				case !known:
					add(k, "unknown user %q", m)
					continue
				}
				if seen[m] {
					add(k, "%q is listed twice", m)
				}
				seen[m] = true
			}
		}
		checkList("members", r.Members, members)
		readers := map[string]bool{}
		checkList("readers", r.Readers, readers)
		for j, m := range r.Readers {
			k := fmt.Sprintf("%s.readers[%d]", key, j)
			switch {
			case members[m]:
				add(k, "%q is also in members; a user is either a member or a reader", m)
			case members["*"] && users[m] == RoleMember:
				// "*" makes every member a member: readers would not make
				// this one read-only.
				add(k, "%q (role member) is already a member through \"*\" in members", m)
			}
		}
		if r.Retention.MaxAge < 0 {
			add(key+".retention.max_age", "must be 0 (keep forever) or more, got %s", r.Retention.MaxAge)
		}
		if r.Retention.MaxMessages < 0 {
			add(key+".retention.max_messages", "must be 0 (keep all) or more, got %d", r.Retention.MaxMessages)
		}
	}

	// Bridge.
	if !ValidID(c.Bridge.ClientID) {
		add("bridge.client_id", "%q: want 1 to 64 characters of A-Z, a-z, 0-9, _ and -", c.Bridge.ClientID)
	}
	if c.Bridge.BrokerURL != "" {
		if err := checkBrokerURL(c.Bridge.BrokerURL); err != nil {
			addErr("bridge.broker_url", err)
		}
	}

	// Devices.
	reserved := map[string]string{}
	for i, d := range c.Devices {
		key := fmt.Sprintf("devices[%d]", i)
		if _, ok := users[d.User]; !ok {
			add(key+".user", "unknown user %q", d.User)
		}
		if len(d.ClientIDs) == 0 {
			add(key+".client_ids", "at least one client id is required")
		}
		for j, id := range d.ClientIDs {
			k := fmt.Sprintf("%s.client_ids[%d]", key, j)
			switch {
			case id == "" || len(id) > 65535 || !utf8.ValidString(id):
				add(k, "want 1 to 65535 bytes of UTF-8, got %q", id)
			case id == c.Bridge.ClientID || id == BridgeReceiptsClientID(c.Bridge.ClientID):
				add(k, "%q is the bridge's", id)
			case reserved[id] != "":
				add(k, "%q is also %s", id, reserved[id])
			default:
				reserved[id] = k
			}
		}
	}

	// The sample password is fine on loopback only. bcrypt is slow, so
	// compare only when it matters, and in parallel.
	for _, l := range listeners {
		if l.addr == "" || IsLoopbackAddr(l.addr) {
			continue
		}
		sample := make([]bool, len(c.Users))
		var wg sync.WaitGroup
		for i, u := range c.Users {
			if hashOK[i] {
				wg.Go(func() {
					sample[i] = bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(SamplePassword)) == nil
				})
			}
		}
		wg.Wait()
		for i, u := range c.Users {
			if sample[i] {
				add(fmt.Sprintf("users[%d].password_hash", i),
					"%s still has the sample password and %s %s is not loopback; set a new one with 'hearth passwd'", u.Name, l.key, l.addr)
			}
		}
		break
	}

	// Access rules for topics outside the chat tree.
	for i, r := range c.ACL {
		for _, err := range checkACLRule(r, users) {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Key = fmt.Sprintf("acl[%d].%s", i, ce.Key)
			}
			errs = append(errs, err)
		}
	}

	return errors.Join(errs...)
}

// checkHostPort checks a listening address: host:port with a numeric port;
// an empty host means every interface.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. 127.0.0.1:8080", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || port[0] == '+' {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%q: host must be an IP address or a host name", s)
		}
	}
	return nil
}

// checkOrigin checks a browser origin, scheme://host[:port], written as a
// browser sends it in the Origin header (lower case, no trailing slash).
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || o != u.Scheme+"://"+u.Host {
		return fmt.Errorf("%q: want an origin such as https://chat.example.org or http://localhost:8080 (no path, no trailing slash)", o)
	}
	if u.Host != strings.ToLower(u.Host) {
		return fmt.Errorf("%q: write the host in lower case, as browsers send it", o)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port must be a number from 1 to 65535", o)
		}
	}
	return nil
}

// checkBrokerURL checks the URL of an external MQTT broker.
func checkBrokerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: not a URL", s)
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%q: scheme must be mqtt, tcp, mqtts, tls, ws or wss", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host, want e.g. mqtt://host:1883", s)
	}
	return nil
}

// validPushSubject reports whether s is mailto:something or an https://
// URL with a host.
func validPushSubject(s string) bool {
	if addr, ok := strings.CutPrefix(s, "mailto:"); ok {
		return strings.Contains(addr, "@") && !strings.ContainsAny(addr, " \t\r\n")
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != ""
}
