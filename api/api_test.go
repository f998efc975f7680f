package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// apiConfigYAML is the family behind the API tests. HASH_<name> stands
// for a bcrypt hash of "pw-<name>".
const apiConfigYAML = `users:
  - {name: mum, password_hash: "HASH_mum", role: admin}
  - {name: dad, password_hash: "HASH_dad"}
  - {name: kid, password_hash: "HASH_kid"}
  - {name: kitchen, password_hash: "HASH_kitchen", role: device}
  - {name: doorbell, password_hash: "HASH_doorbell", role: device}
rooms:
  - {name: family, title: Family, members: ["*"], readers: [kitchen]}
  - {name: parents, members: [mum, dad]}
  - {name: porch, members: [doorbell], readers: ["*"]}
`

const apiTokenTTL = time.Hour

// apiFamily parses apiConfigYAML once and builds its Authenticator once:
// NewAuthenticator spends a DefaultCost bcrypt, and both are immutable.
var apiFamily = sync.OnceValues(func() (*apiParts, error) {
	var pairs []string
	for _, u := range []string{"mum", "dad", "kid", "kitchen", "doorbell"} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, "HASH_"+u, string(h))
	}
	cfg, err := hearth.ParseConfig(strings.NewReader(strings.NewReplacer(pairs...).Replace(apiConfigYAML)))
	if err != nil {
		return nil, err
	}
	auth, err := hearth.NewAuthenticator(cfg.Users, bytes.Repeat([]byte("k"), 32))
	if err != nil {
		return nil, err
	}
	return &apiParts{policy: hearth.NewPolicy(&cfg), auth: auth}, nil
})

type apiParts struct {
	policy *hearth.Policy
	auth   *hearth.Authenticator
}

var (
	errPubNotAllowed  = hearth.KindError(hearth.ErrNotAllowed, "not allowed by the broker")
	errPubTooLarge    = hearth.KindError(hearth.ErrTooLarge, "too large for the broker")
	errPubRateLimited = hearth.KindError(hearth.ErrRateLimited, "too many for the broker")
	errPubBusy        = hearth.KindError(hearth.ErrBusy, "the broker is busy")
)

// storePublisher stands in for the broker and bridge: it archives what is
// published, as the bridge would once the broker delivered it. It records
// every call, and fails with err when that is set.
type storePublisher struct {
	store *history.Store
	mu    sync.Mutex
	calls []publishCall
	err   error
}

type publishCall struct {
	user, topic string
	payload     hearth.Payload
}

func (p *storePublisher) Publish(user, topic string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, err := hearth.ParsePayload(payload)
	if err != nil {
		return fmt.Errorf("publisher got a payload the broker would refuse: %w", err)
	}
	p.calls = append(p.calls, publishCall{user, topic, pl})
	if p.err != nil {
		return p.err
	}
	tp := hearth.ParseTopic(topic)
	_, err = p.store.Append([]hearth.Message{{ID: pl.ID, Room: tp.Room, From: tp.User, Text: pl.Text, TS: pl.TS, ReplyTo: pl.ReplyTo, Attachments: pl.Attachments}})
	return err
}

func (p *storePublisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *storePublisher) Calls() []publishCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

type apiEnv struct {
	t     *testing.T
	url   string
	dir   string // the store's directory
	store *history.Store
	pub   *storePublisher
	auth  *hearth.Authenticator
}

// newAPIEnv serves the API over a store at path (a new one in t.TempDir()
// when path is ""). The server and the store close at the end of the test.
// tune, if given, changes the API's config (over the store) before it is
// made.
func newAPIEnv(t *testing.T, path string, tune ...func(*Config, *history.Store)) *apiEnv {
	t.Helper()
	parts, err := apiFamily()
	if err != nil {
		t.Fatalf("test family: %v", err)
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), "history.db")
	}
	store, err := history.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { store.Close() })
	pub := &storePublisher{store: store}
	cfg := Config{
		Auth:            parts.auth,
		Policy:          parts.policy,
		Publisher:       pub,
		TokenTTL:        apiTokenTTL,
		MaxMessageBytes: 16384,
	}
	for _, f := range tune {
		f(&cfg, store)
	}
	api := New(store, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // registered last, so it runs before the store closes
	return &apiEnv{t: t, url: srv.URL, dir: filepath.Dir(path), store: store, pub: pub, auth: parts.auth}
}

// token returns a fresh token of user.
func (e *apiEnv) token(user string) string {
	e.t.Helper()
	tok, _, err := e.auth.Issue(user, time.Hour)
	if err != nil {
		e.t.Fatalf("Issue(%s): %v", user, err)
	}
	return tok
}

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; auth is a whole Authorization header ("" for none).
// A 5xx answer fails the test: bad input never causes one.
func (e *apiEnv) do(method, path, auth, body string) apiResponse {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if res.StatusCode >= 500 {
		e.t.Errorf("%s %s: status %d (%s), want no 5xx", method, path, res.StatusCode, b)
	}
	return apiResponse{res.StatusCode, res.Header, b}
}

// get is a GET as user ("" for no credentials).
func (e *apiEnv) get(user, path string) apiResponse {
	e.t.Helper()
	auth := ""
	if user != "" {
		auth = "Bearer " + e.token(user)
	}
	return e.do(http.MethodGet, path, auth, "")
}

// post is a POST of a JSON body as user ("" for no credentials).
func (e *apiEnv) post(user, path, body string) apiResponse {
	e.t.Helper()
	auth := ""
	if user != "" {
		auth = "Bearer " + e.token(user)
	}
	return e.do(http.MethodPost, path, auth, body)
}

// wantJSON checks the status and the JSON content type of r.
func wantJSON(t *testing.T, what string, r apiResponse, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d (%s), want %d", what, r.status, bytes.TrimSpace(r.body), status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
}

// wantError checks an error answer: the status, and a body that is
// exactly {"error":"<something>"}.
func wantError(t *testing.T, what string, r apiResponse, status int) {
	t.Helper()
	wantJSON(t, what, r, status)
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Errorf("%s: body %q is not a JSON object: %v", what, r.body, err)
		return
	}
	msg, ok := body["error"].(string)
	if len(body) != 1 || !ok || msg == "" {
		t.Errorf("%s: body %s, want {\"error\":\"...\"}", what, r.body)
	}
	if status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s: 401 without a WWW-Authenticate header", what)
	}
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && r.header.Get("Retry-After") == "" {
		t.Errorf("%s: %d without a Retry-After header", what, status)
	}
}

// decodeStrict decodes r's body into v, refusing fields v does not name.
func decodeStrict(t *testing.T, what string, r apiResponse, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: decode %s: %v", what, r.body, err)
	}
}

// appendN archives n messages from "mum" in room, ids <room>-1 .. <room>-n.
func (e *apiEnv) appendN(room string, n int) {
	e.t.Helper()
	msgs := make([]hearth.Message, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%d", room, i+1)
		msgs[i] = hearth.Message{ID: id, Room: room, From: "mum", Text: "text " + id, TS: 1700000000000 + int64(i)}
	}
	if _, err := e.store.Append(msgs); err != nil {
		e.t.Fatalf("Append %d messages to %s: %v", n, room, err)
	}
}

type pageBody struct {
	Messages []hearth.Message `json:"messages"`
	HasMore  *bool            `json:"has_more"`
}

// page GETs a page of room as user and checks it is a 200 of the right shape.
func (e *apiEnv) page(user, room, query string) pageBody {
	e.t.Helper()
	path := "/api/rooms/" + room + "/messages" + query
	r := e.get(user, path)
	wantJSON(e.t, "GET "+path, r, http.StatusOK)
	if r.status != http.StatusOK {
		e.t.FailNow()
	}
	var p pageBody
	decodeStrict(e.t, "GET "+path, r, &p)
	if p.Messages == nil {
		e.t.Errorf("GET %s: messages is %s, want a list", path, r.body)
	}
	if p.HasMore == nil {
		e.t.Fatalf("GET %s: no has_more in %s", path, r.body)
	}
	return p
}

func TestAPILogin(t *testing.T) {
	e := newAPIEnv(t, "")
	for _, tt := range []struct{ user, role string }{{"kid", "member"}, {"mum", "admin"}, {"kitchen", "device"}} {
		before := time.Now()
		r := e.do(http.MethodPost, "/api/login", "", fmt.Sprintf(`{"username":%q,"password":"pw-%s"}`, tt.user, tt.user))
		wantJSON(t, "login "+tt.user, r, http.StatusOK)
		var got struct {
			Token     string `json:"token"`
			ExpiresAt string `json:"expires_at"`
			User      struct {
				Name string `json:"name"`
				Role string `json:"role"`
			} `json:"user"`
		}
		decodeStrict(t, "login "+tt.user, r, &got)
		if got.User.Name != tt.user || got.User.Role != tt.role {
			t.Errorf("login %s: user %+v, want name %s role %s", tt.user, got.User, tt.user, tt.role)
		}
		exp, err := time.Parse(time.RFC3339, got.ExpiresAt)
		if err != nil {
			t.Errorf("login %s: expires_at %q is not RFC 3339: %v", tt.user, got.ExpiresAt, err)
		} else if lo, hi := before.Add(apiTokenTTL-time.Second), time.Now().Add(apiTokenTTL); exp.Before(lo) || exp.After(hi) {
			t.Errorf("login %s: expires_at %s, want about now + %s (%s .. %s)", tt.user, exp, apiTokenTTL, lo, hi)
		}
		// The token is good for the API.
		rooms := e.do(http.MethodGet, "/api/rooms", "Bearer "+got.Token, "")
		wantJSON(t, "GET /api/rooms with the login token of "+tt.user, rooms, http.StatusOK)
	}

	errs := []struct {
		name, body string
		status     int
	}{
		{"wrong password", `{"username":"kid","password":"pw-dad"}`, 401},
		{"unknown user", `{"username":"zed","password":"pw-kid"}`, 401},
		{"password of another user's name", `{"username":"Kid","password":"pw-kid"}`, 401},
		{"missing password", `{"username":"kid"}`, 400},
		{"missing username", `{"password":"pw-kid"}`, 400},
		{"empty password", `{"username":"kid","password":""}`, 400},
		{"empty object", `{}`, 400},
		{"empty body", ``, 400},
		{"malformed JSON", `{"username":"kid",`, 400},
		{"not an object", `["kid","pw-kid"]`, 400},
		{"null", `null`, 400},
		{"username as number", `{"username":7,"password":"pw-kid"}`, 400},
		{"unknown field", `{"username":"kid","password":"pw-kid","remember_me":true}`, 400},
		{"trailing data", `{"username":"kid","password":"pw-kid"} x`, 400},
		{"trailing object", `{"username":"kid","password":"pw-kid"}{}`, 400},
		{"trailing brace", `{"username":"kid","password":"pw-kid"}}`, 400},
		{"too large", `{"username":"kid","password":"` + strings.Repeat("x", 5000) + `"}`, 413},
	}
	for _, tt := range errs {
		r := e.do(http.MethodPost, "/api/login", "", tt.body)
		wantError(t, "login: "+tt.name, r, tt.status)
	}
}

func TestAPIUnauthorized(t *testing.T) {
	e := newAPIEnv(t, "")
	kid := e.token("kid")
	other, err := hearth.NewAuthenticator([]hearth.User{{Name: "kid", PasswordHash: "x"}}, bytes.Repeat([]byte("o"), 32))
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := other.Issue("kid", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auths := []struct{ name, header string }{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"garbage token", "Bearer garbage"},
		{"other secret", "Bearer " + forged},
		{"truncated token", "Bearer " + kid[:len(kid)-2]},
		{"basic auth", "Basic a2lkOnB3LWtpZA=="},
		{"token without scheme", kid},
	}
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/rooms", ""},
		{http.MethodGet, "/api/rooms/family/messages", ""},
		{http.MethodPost, "/api/rooms/family/messages", `{"text":"hi"}`},
	}
	for _, rt := range routes {
		for _, a := range auths {
			r := e.do(rt.method, rt.path, a.header, rt.body)
			wantError(t, rt.method+" "+rt.path+" with "+a.name, r, http.StatusUnauthorized)
		}
	}
	if n := len(e.pub.Calls()); n != 0 {
		t.Errorf("unauthorized POSTs published %d messages, want 0", n)
	}
	r := e.get("kid", "/api/nope")
	wantError(t, "GET /api/nope", r, http.StatusNotFound)
}

func TestAPIRooms(t *testing.T) {
	e := newAPIEnv(t, "")
	e.appendN("family", 3)
	e.appendN("parents", 2)
	type room struct {
		Name     string `json:"name"`
		Title    string `json:"title"`
		LastSeq  uint64 `json:"last_seq"`
		CanWrite bool   `json:"can_write"`
		ReadSeq  uint64 `json:"read_seq"`
		Unread   int    `json:"unread"`
		Muted    bool   `json:"muted"`
	}
	// Every message is mum's: unread for everyone else, not for her.
	var (
		family     = room{"family", "Family", 3, true, 0, 3, false}
		familyMum  = room{"family", "Family", 3, true, 0, 0, false}
		familyRO   = room{"family", "Family", 3, false, 0, 3, false}
		parents    = room{"parents", "parents", 2, true, 0, 2, false}
		parentsMum = room{"parents", "parents", 2, true, 0, 0, false}
		porch      = room{"porch", "porch", 0, true, 0, 0, false}
		porchRO    = room{"porch", "porch", 0, false, 0, 0, false}
	)
	tests := []struct {
		user string
		want []room
	}{
		{"mum", []room{familyMum, parentsMum, porch}},
		{"dad", []room{family, parents, porchRO}},
		{"kid", []room{family, porchRO}},
		{"kitchen", []room{familyRO}},
		{"doorbell", []room{porch}},
	}
	for _, tt := range tests {
		r := e.get(tt.user, "/api/rooms")
		wantJSON(t, "GET /api/rooms as "+tt.user, r, http.StatusOK)
		var got []room
		decodeStrict(t, "GET /api/rooms as "+tt.user, r, &got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("GET /api/rooms as %s: got %+v, want %+v", tt.user, got, tt.want)
		}
	}
}

func TestAPIMessagesAccess(t *testing.T) {
	e := newAPIEnv(t, "")
	e.appendN("parents", 1)
	tests := []struct {
		user, room string
		status     int
	}{
		{"kid", "family", 200},
		{"kitchen", "family", 200},
		{"kid", "porch", 200},
		{"mum", "parents", 200},
		{"kid", "parents", 403},
		{"kitchen", "parents", 403},
		{"kitchen", "porch", 403},
		{"doorbell", "family", 403},
		{"kid", "nope", 404},
		{"mum", "nope", 404},
		{"kid", "Bad", 400},
		{"kid", "a%2Fb", 400},
		{"kid", "-x", 400},
		{"kid", "fam%20ily", 400},
		{"kid", "%C3%A9", 400},
		{"kid", strings.Repeat("a", 33), 400},
		{"mum", "Bad", 400},
	}
	for _, tt := range tests {
		path := "/api/rooms/" + tt.room + "/messages"
		r := e.get(tt.user, path)
		what := fmt.Sprintf("GET %s as %s", path, tt.user)
		if tt.status == 200 {
			wantJSON(t, what, r, 200)
			continue
		}
		wantError(t, what, r, tt.status)
		if bytes.Contains(r.body, []byte("text parents-1")) {
			t.Errorf("%s: a refusal leaks a message: %s", what, r.body)
		}
	}
}

func TestAPIMessagesPaging(t *testing.T) {
	e := newAPIEnv(t, "")
	const n = 250
	e.appendN("family", n)

	// Empty room: an empty list, not null, and nothing more either way.
	for _, q := range []string{"", "?after=0", "?before=1", "?before=5", "?after=3", "?limit=1"} {
		r := e.get("kid", "/api/rooms/porch/messages"+q)
		wantJSON(t, "empty room "+q, r, 200)
		if want := `{"messages":[],"has_more":false}`; string(bytes.TrimSpace(r.body)) != want {
			t.Errorf("GET empty room%s: body %s, want %s", q, r.body, want)
		}
	}

	tests := []struct {
		query       string
		first, last uint64 // 0, 0: an empty page
		more        bool
	}{
		{"", 201, 250, true},
		{"?limit=10", 241, 250, true},
		{"?limit=250", 51, 250, true},
		{"?limit=100000", 51, 250, true},
		{"?limit=9223372036854775807", 51, 250, true},
		{"?limit=99999999999999999999", 51, 250, true},
		{"?limit=200", 51, 250, true},
		{"?limit=1", 250, 250, true},
		{"?before=1", 0, 0, false},
		{"?before=2", 1, 1, false},
		{"?before=3&limit=1", 2, 2, true},
		{"?before=51", 1, 50, false},
		{"?before=52", 2, 51, true},
		{"?before=251", 201, 250, true},
		{"?before=1000", 201, 250, true},
		{"?before=18446744073709551615", 201, 250, true},
		{"?before=250&limit=300", 50, 249, true},
		{"?before=201&limit=200", 1, 200, false},
		{"?after=0", 1, 50, true},
		{"?after=0&limit=250", 1, 200, true},
		{"?after=0&limit=100000", 1, 200, true},
		{"?after=50", 51, 100, true},
		{"?after=200", 201, 250, false},
		{"?after=200&limit=49", 201, 249, true},
		{"?after=200&limit=50", 201, 250, false},
		{"?after=248&limit=1", 249, 249, true},
		{"?after=249&limit=1", 250, 250, false},
		{"?after=249", 250, 250, false},
		{"?after=250", 0, 0, false},
		{"?after=1000", 0, 0, false},
		{"?after=18446744073709551615", 0, 0, false},
		{"?limit=5&after=10", 11, 15, true},
		{"?unknown=1", 201, 250, true},
	}
	for _, tt := range tests {
		p := e.page("kid", "family", tt.query)
		var got []uint64
		for _, m := range p.Messages {
			got = append(got, m.Seq)
		}
		var want []uint64
		for s := tt.first; tt.first > 0 && s <= tt.last; s++ {
			want = append(want, s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("GET family%s: seqs %s, want %s", tt.query, seqRange(got), seqRange(want))
		}
		if *p.HasMore != tt.more {
			t.Errorf("GET family%s: has_more %v, want %v", tt.query, *p.HasMore, tt.more)
		}
	}

	// The fields of an archived message come back as stored.
	p := e.page("kid", "family", "?after=6&limit=1")
	if len(p.Messages) != 1 {
		t.Fatalf("GET family?after=6&limit=1: %d messages, want 1", len(p.Messages))
	}
	m := p.Messages[0]
	if m.Seq != 7 || m.ID != "family-7" || m.Room != "family" || m.From != "mum" || m.Text != "text family-7" || m.TS != 1700000000006 || m.At == 0 {
		t.Errorf("message 7: got %+v", m)
	}
}

// seqRange prints a list of seqs briefly: [first..last] (n).
func seqRange(s []uint64) string {
	if len(s) == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d..%d] (%d)", s[0], s[len(s)-1], len(s))
}

func TestAPIMessagesBadQuery(t *testing.T) {
	e := newAPIEnv(t, "")
	e.appendN("family", 3)
	for _, q := range []string{
		"?limit=0",
		"?limit=-1",
		"?limit=abc",
		"?limit=",
		"?limit=1.5",
		"?limit=1e3",
		"?limit=0x10",
		"?limit=5&limit=6",
		"?limit=5&limit=5",
		"?before=abc",
		"?before=0",
		"?before=-1",
		"?before=",
		"?before=18446744073709551616",
		"?before=1&before=2",
		"?after=abc",
		"?after=-1",
		"?after=",
		"?after=1.0",
		"?after=1&after=2",
		"?before=2&after=1",
		"?before=0&after=0",
		"?after=0&before=3&limit=1",
	} {
		r := e.get("kid", "/api/rooms/family/messages"+q)
		wantError(t, "GET family"+q, r, http.StatusBadRequest)
	}
}

func TestAPIPost(t *testing.T) {
	e := newAPIEnv(t, "")
	r := e.post("kid", "/api/rooms/family/messages", `{"text":"hello"}`)
	wantJSON(t, "POST family", r, http.StatusAccepted)
	var got struct {
		ID string `json:"id"`
	}
	decodeStrict(t, "POST family", r, &got)
	if !hearth.ValidID(got.ID) {
		t.Errorf("POST family: id %q is not a valid message id", got.ID)
	}

	r = e.post("kid", "/api/rooms/family/messages", `{"id":"m-2","text":"re: hello","reply_to":"`+got.ID+`"}`)
	wantJSON(t, "POST family with id", r, http.StatusAccepted)
	if want := `{"id":"m-2"}`; string(bytes.TrimSpace(r.body)) != want {
		t.Errorf("POST family with id: body %s, want %s", r.body, want)
	}
	r = e.post("doorbell", "/api/rooms/porch/messages", `{"text":"ding"}`)
	wantJSON(t, "POST porch as doorbell", r, http.StatusAccepted)

	calls := e.pub.Calls()
	if len(calls) != 3 {
		t.Fatalf("published %d messages, want 3: %+v", len(calls), calls)
	}
	for i, want := range []struct{ user, topic, id, text, replyTo string }{
		{"kid", "rooms/family/messages/kid", got.ID, "hello", ""},
		{"kid", "rooms/family/messages/kid", "m-2", "re: hello", got.ID},
		{"doorbell", "rooms/porch/messages/doorbell", "", "ding", ""},
	} {
		c := calls[i]
		if c.user != want.user || c.topic != want.topic || (want.id != "" && c.payload.ID != want.id) ||
			c.payload.Text != want.text || c.payload.ReplyTo != want.replyTo || c.payload.TS <= 0 {
			t.Errorf("publish %d: got %+v, want %+v with a ts", i, c, want)
		}
	}

	// What was published is what history serves.
	p := e.page("dad", "family", "")
	if len(p.Messages) != 2 || p.Messages[0].ID != got.ID || p.Messages[0].From != "kid" || p.Messages[1].ReplyTo != got.ID {
		t.Errorf("family after two POSTs: %+v", p.Messages)
	}

	t.Run("publisher errors", func(t *testing.T) {
		for _, tt := range []struct {
			err    error
			status int
		}{
			{errPubNotAllowed, http.StatusForbidden},
			{fmt.Errorf("wrapped: %w", errPubTooLarge), http.StatusRequestEntityTooLarge},
			{errPubRateLimited, http.StatusTooManyRequests},
		} {
			e.pub.setErr(tt.err)
			r := e.post("kid", "/api/rooms/family/messages", `{"text":"x"}`)
			wantError(t, fmt.Sprintf("POST when the publisher says %v", tt.err), r, tt.status)
		}
		e.pub.setErr(nil)
	})
}

func TestAPIPostRefused(t *testing.T) {
	e := newAPIEnv(t, "")
	long := strings.Repeat("é", hearth.MaxTextLen+1)
	tests := []struct {
		name, user, room, body string
		status                 int
	}{
		{"reader", "kitchen", "family", `{"text":"hi"}`, 403},
		{"reader through *", "kid", "porch", `{"text":"hi"}`, 403},
		{"cannot read", "kid", "parents", `{"text":"hi"}`, 403},
		{"device outside its room", "doorbell", "family", `{"text":"hi"}`, 403},
		{"unknown room", "mum", "nope", `{"text":"hi"}`, 404},
		{"bad room name", "mum", "Bad", `{"text":"hi"}`, 400},
		{"room name with a slash", "mum", "a%2Fb", `{"text":"hi"}`, 400},
		{"empty text", "kid", "family", `{"text":""}`, 400},
		{"missing text", "kid", "family", `{"id":"a"}`, 400},
		{"text too long", "kid", "family", `{"text":"` + long + `"}`, 400},
		{"text as number", "kid", "family", `{"text":5}`, 400},
		{"bad id", "kid", "family", `{"id":"a b","text":"hi"}`, 400},
		{"id too long", "kid", "family", `{"id":"` + strings.Repeat("a", 65) + `","text":"hi"}`, 400},
		{"bad reply_to", "kid", "family", `{"text":"hi","reply_to":"a/b"}`, 400},
		{"unknown field", "kid", "family", `{"text":"hi","from":"mum"}`, 400},
		{"ts is the server's", "kid", "family", `{"text":"hi","ts":1}`, 400},
		{"empty body", "kid", "family", ``, 400},
		{"malformed JSON", "kid", "family", `{"text":`, 400},
		{"JSON array", "kid", "family", `[{"text":"hi"}]`, 400},
		{"trailing data", "kid", "family", `{"text":"hi"} x`, 400},
		{"trailing brace", "kid", "family", `{"text":"hi"}}`, 400},
		{"huge body", "kid", "family", `{"text":"` + strings.Repeat("x", 110_000) + `"}`, 413},
	}
	for _, tt := range tests {
		path := "/api/rooms/" + tt.room + "/messages"
		r := e.post(tt.user, path, tt.body)
		wantError(t, fmt.Sprintf("POST %s as %s (%s)", path, tt.user, tt.name), r, tt.status)
	}
	if calls := e.pub.Calls(); len(calls) != 0 {
		t.Errorf("refused POSTs published %d messages, want 0: %+v", len(calls), calls)
	}
	if last, err := e.store.LastSeq("family"); err != nil || last != 0 {
		t.Errorf("family's last seq after refused POSTs = %d, %v; want 0", last, err)
	}
}

func TestAPIRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	const query = "/api/rooms/family/messages?limit=3&before=5"

	// A first run in a subtest, so its server and store are closed
	// (cleanups) before the second run opens the same file.
	var firstPage, firstRooms []byte
	t.Run("first", func(t *testing.T) {
		e := newAPIEnv(t, path)
		e.appendN("family", 7)
		r := e.get("kid", query)
		wantJSON(t, "first GET", r, 200)
		firstPage = r.body
		firstRooms = e.get("kid", "/api/rooms").body
	})
	if t.Failed() {
		t.FailNow()
	}

	e := newAPIEnv(t, path)
	r := e.get("kid", query)
	wantJSON(t, "GET after restart", r, 200)
	if !bytes.Equal(r.body, firstPage) {
		t.Errorf("page after restart:\n got %s\nwant %s", r.body, firstPage)
	}
	if rooms := e.get("kid", "/api/rooms").body; !bytes.Equal(rooms, firstRooms) {
		t.Errorf("rooms after restart:\n got %s\nwant %s", rooms, firstRooms)
	}
	p := e.page("kid", "family", "?limit=3&before=5")
	var got []uint64
	for _, m := range p.Messages {
		got = append(got, m.Seq)
	}
	if want := []uint64{2, 3, 4}; !slices.Equal(got, want) || !*p.HasMore {
		t.Errorf("page after restart: seqs %v has_more %v, want %v true", got, *p.HasMore, want)
	}
	// Seqs go on where they stopped.
	if r := e.post("kid", "/api/rooms/family/messages", `{"id":"after-restart","text":"hi"}`); r.status != http.StatusAccepted {
		t.Fatalf("POST after restart: status %d (%s)", r.status, r.body)
	}
	if last, err := e.store.LastSeq("family"); err != nil || last != 8 {
		t.Errorf("LastSeq(family) after restart and one more message = %d, %v; want 8", last, err)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10", "limit=0", "limit=-1", "limit=abc", "limit=100000", "limit=1&limit=2",
		"before=1", "before=0", "after=0", "after=18446744073709551615", "before=18446744073709551616",
		"before=5&after=3", "limit=+5", "limit=%20", "after=%", "limit=9223372036854775808",
	} {
		f.Add(s)
	}
	store, err := history.Open(filepath.Join(f.TempDir(), "history.db"))
	if err != nil {
		f.Fatalf("Open: %v", err)
	}
	f.Cleanup(func() { store.Close() })
	if _, err := store.Append([]hearth.Message{{ID: "a", Room: "family", From: "kid", Text: "x"}}); err != nil {
		f.Fatalf("Append: %v", err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw) // what is parsed of a bad query still reaches ParseQuery
		q, err := ParseQuery(v)
		if err != nil {
			if status, _ := statusOf(err); status != http.StatusBadRequest {
				t.Fatalf("ParseQuery(%q) error %v maps to status %d, want 400", raw, err, status)
			}
			return
		}
		if q.Limit < 1 || q.Limit > history.MaxLimit {
			t.Errorf("ParseQuery(%q) limit %d, want 1..%d", raw, q.Limit, history.MaxLimit)
		}
		if _, ok := v["limit"]; !ok && q.Limit != history.DefaultLimit {
			t.Errorf("ParseQuery(%q) limit %d without a limit, want %d", raw, q.Limit, history.DefaultLimit)
		}
		_, hasBefore := v["before"]
		_, hasAfter := v["after"]
		if hasBefore && hasAfter {
			t.Errorf("ParseQuery(%q) accepted both before and after: %+v", raw, q)
		}
		if q.Before > 0 && q.HasAfter || hasBefore && q.Before == 0 || hasAfter != q.HasAfter {
			t.Errorf("ParseQuery(%q) = %+v, inconsistent with the query", raw, q)
		}
		msgs, _, err := store.Page("family", q)
		if err != nil {
			t.Fatalf("Page(family, %+v) of accepted query %q: %v", q, raw, err)
		}
		if len(msgs) > q.Limit {
			t.Errorf("Page(family, %+v) gave %d messages", q, len(msgs))
		}
	})
}

// TestAPILoginRateLimited: repeated wrong passwords get 429 with
// Retry-After; the right password of another user still works.
func TestAPILoginRateLimited(t *testing.T) {
	e := newAPIEnv(t, "")
	for i := range 5 { // the limiter's burst per user name
		r := e.do(http.MethodPost, "/api/login", "", `{"username":"kid","password":"wrong"}`)
		wantError(t, fmt.Sprintf("wrong password %d", i+1), r, http.StatusUnauthorized)
	}
	r := e.do(http.MethodPost, "/api/login", "", `{"username":"kid","password":"pw-kid"}`)
	wantError(t, "after too many failures", r, http.StatusTooManyRequests)
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q, want a number of seconds", ra)
	}
	r = e.do(http.MethodPost, "/api/login", "", `{"username":"dad","password":"pw-dad"}`)
	wantJSON(t, "another user", r, http.StatusOK)
}

// TestAPIBackupHoldsNoTransaction: a download that stalls holds no read
// transaction (which would keep bbolt from reusing pages while messages
// are archived), and leaves no file behind.
func TestAPIBackupHoldsNoTransaction(t *testing.T) {
	e := newAPIEnv(t, "")
	text := strings.Repeat("x", 1000)
	for b := range 10 { // 10 MB: more than the socket buffers take
		var batch []hearth.Message
		for i := range 1000 {
			batch = append(batch, hearth.Message{ID: fmt.Sprintf("b%d-%d", b, i), Room: "family", From: "mum", Text: text, TS: 1})
		}
		if _, err := e.store.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest("GET", e.url+"/api/backup", nil)
	req.Header.Set("Authorization", "Bearer "+e.token("mum"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength < 10e6 {
		t.Fatalf("backup: status %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	// The download stalls here.
	deadline := time.Now().Add(5 * time.Second)
	for e.store.ReadTxs() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a stalled backup download holds a read transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	entries, _ := os.ReadDir(e.dir)
	if len(entries) != 1 {
		t.Errorf("files next to the store during a download: %v", entries)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || int64(len(rest)+100) != resp.ContentLength {
		t.Fatalf("rest of the backup: %d bytes, %v", len(rest), err)
	}
}

// TestAPILoginGuessesHeldPerAddress: someone guessing mum's password ten
// times a second from one address is held there (429 with Retry-After),
// while mum's right password from another address gets in every time.
func TestAPILoginGuessesHeldPerAddress(t *testing.T) {
	e := newAPIEnv(t, "")
	from := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	attacker, owner := from("127.0.0.2"), from("127.0.0.1")
	login := func(c *http.Client, pw string) (int, string) {
		res, err := c.Post(e.url+"/api/login", "application/json", strings.NewReader(`{"username":"mum","password":"`+pw+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	held := 0
	for i := range 30 {
		switch code, ra := login(attacker, "guess"); code {
		case http.StatusUnauthorized:
			if held > 0 {
				t.Fatalf("guess %d: 401 after being held", i)
			}
		case http.StatusTooManyRequests:
			if n, err := strconv.Atoi(ra); err != nil || n < 1 {
				t.Errorf("guess %d: Retry-After %q, want seconds", i, ra)
			}
			held++
		default:
			t.Fatalf("guess %d: status %d", i, code)
		}
		if code, _ := login(owner, "pw-mum"); code != http.StatusOK {
			t.Fatalf("round %d: the right password from another address got %d, want 200", i, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if held < 20 {
		t.Errorf("%d of 30 guesses held, want at least 20", held)
	}
}
