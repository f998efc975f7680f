package history

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hearth-home/hearth"
)

// Publisher publishes a chat message as a user, with the broker's access
// rules and validation (broker.Broker).
type Publisher interface {
	Publish(user, topic string, payload []byte) error
}

// APIConfig is what the HTTP API needs besides the store.
type APIConfig struct {
	Auth      *hearth.Authenticator
	Policy    *hearth.Policy
	Publisher Publisher
	// IsNotAllowed, IsTooLarge, IsRateLimited and IsBusy classify the
	// Publisher's errors (403, 413, 429 and 503, the last two with
	// Retry-After); any other error of it is a 500.
	IsNotAllowed, IsTooLarge, IsRateLimited, IsBusy func(error) bool
	TokenTTL                                        time.Duration
	MaxMessageBytes                                 int
	Origins                                         hearth.Origins // browser origins allowed (CORS)
	// Logins limits failed logins; share it with the broker so that MQTT
	// and HTTP count together. nil: the API keeps its own.
	Logins *hearth.LoginLimiter
}

// API serves history and login over HTTP as JSON. Routes:
//
//	POST /api/login
//	POST /api/token
//	GET  /api/rooms
//	GET  /api/rooms/{room}/messages
//	POST /api/rooms/{room}/messages
//	GET  /api/backup (admins)
type API struct {
	store  *Store
	cfg    APIConfig
	log    *slog.Logger
	logins *hearth.LoginLimiter
	ttl    atomic.Int64 // the tokens' lifetime: cfg.TokenTTL, then SetTokenTTL
}

// NewAPI returns the API over store.
func NewAPI(store *Store, cfg APIConfig, log *slog.Logger) *API {
	a := &API{store: store, cfg: cfg, log: log, logins: cfg.Logins}
	if a.logins == nil {
		a.logins = hearth.NewLoginLimiter()
	}
	a.SetTokenTTL(cfg.TokenTTL)
	return a
}

// SetTokenTTL changes the lifetime of the tokens given out from now on.
func (a *API) SetTokenTTL(d time.Duration) { a.ttl.Store(int64(d)) }

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /api/login", a.wrap(a.login))
	mux.Handle("POST /api/token", a.wrap(a.authed(a.refresh)))
	mux.Handle("GET /api/rooms", a.wrap(a.authed(a.rooms)))
	mux.Handle("GET /api/rooms/{room}/messages", a.wrap(a.authed(a.messages)))
	mux.Handle("POST /api/rooms/{room}/messages", a.wrap(a.authed(a.post)))
	mux.Handle("GET /api/backup", a.wrap(a.authed(a.backup)))
	mux.Handle("OPTIONS /api/", a.wrap(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("/api/", a.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return errStatus(http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	}))
}

// httpError is an error with the status it answers.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errStatus(status int, msg string) error { return &httpError{status, msg} }

// statusOf is the one place that maps errors to HTTP statuses.
func statusOf(err error) (int, string) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, hearth.ErrBadCredentials):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, hearth.ErrBadPayload), errors.Is(err, hearth.ErrBadName), errors.Is(err, ErrBadQuery):
		return http.StatusBadRequest, err.Error()
	}
	return http.StatusInternalServerError, "internal error"
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap adds CORS headers and turns a handler's error into a JSON answer.
func (a *API) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); a.cfg.Origins.Listed(o) {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Vary", "Origin")
		}
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r); err != nil {
			status, msg := statusOf(err)
			if status >= 500 {
				a.log.Error("api", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hearth"`)
			}
			writeJSON(w, status, map[string]string{"error": msg})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type userKey struct{}

// authed requires a valid Bearer token and passes its user on.
func (a *API) authed(h func(w http.ResponseWriter, r *http.Request, u hearth.User) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			return errStatus(http.StatusUnauthorized, "missing bearer token: log in with POST /api/login")
		}
		u, err := a.cfg.Auth.Verify(strings.TrimSpace(tok))
		if err != nil {
			return errStatus(http.StatusUnauthorized, "invalid or expired token")
		}
		return h(w, r, u)
	}
}

// decodeBody reads one JSON object of at most limit bytes into v.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	err := hearth.DecodeJSONObject(http.MaxBytesReader(w, r.Body, limit), v, true)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return errStatus(http.StatusBadRequest, "empty request body: want a JSON object")
	case errors.Is(err, os.ErrDeadlineExceeded) || r.Context().Err() != nil:
		return errStatus(http.StatusRequestTimeout, "the request body did not arrive in time (http.timeouts.read)")
	}
	return errStatus(http.StatusBadRequest, "invalid JSON body: "+strings.TrimPrefix(err.Error(), "json: "))
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string   `json:"token"`
	ExpiresAt string   `json:"expires_at"`
	User      userJSON `json:"user"`
}

type userJSON struct {
	Name string      `json:"name"`
	Role hearth.Role `json:"role"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeBody(w, r, 4096, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return errStatus(http.StatusBadRequest, "username and password are required")
	}
	client := hearth.ClientOf(r).String()
	try, d := a.logins.Begin(req.Username, client)
	if try == nil {
		secs := int(math.Ceil(d.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return errStatus(http.StatusTooManyRequests, fmt.Sprintf("too many failed logins: try again in %d s", secs))
	}
	u, err := a.cfg.Auth.CheckPassword(req.Username, req.Password)
	try.Done(err == nil)
	if err != nil {
		a.log.Debug("login refused", "user", req.Username, "remote", client)
		return err
	}
	return a.issue(w, u)
}

// refresh trades a valid token for a fresh one, so that an open chat
// stays logged in; a password change still ends it (tokens are bound to
// the password hash).
func (a *API) refresh(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	return a.issue(w, u)
}

func (a *API) issue(w http.ResponseWriter, u hearth.User) error {
	tok, exp, err := a.cfg.Auth.Issue(u.Name, time.Duration(a.ttl.Load()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, loginResponse{Token: tok, ExpiresAt: exp.UTC().Format(time.RFC3339), User: userJSON{u.Name, u.Role}})
	return nil
}

type roomJSON struct {
	Name     string `json:"name"`
	Title    string `json:"title"`
	LastSeq  uint64 `json:"last_seq"`
	CanWrite bool   `json:"can_write"`
}

func (a *API) rooms(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	out := []roomJSON{}
	for _, name := range a.cfg.Policy.Rooms() {
		if !a.cfg.Policy.CanRead(u.Name, name) {
			continue
		}
		last, err := a.store.LastSeq(name)
		if err != nil {
			return err
		}
		out = append(out, roomJSON{Name: name, Title: a.cfg.Policy.Title(name), LastSeq: last, CanWrite: a.cfg.Policy.CanWrite(u.Name, name)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// room checks the {room} of the path: a valid name (400), configured
// (404), and readable by u (403).
func (a *API) room(r *http.Request, u hearth.User) (string, error) {
	room := r.PathValue("room")
	if err := hearth.CheckName(room); err != nil {
		return "", errStatus(http.StatusBadRequest, "room: "+err.Error())
	}
	if !a.cfg.Policy.HasRoom(room) {
		return "", errStatus(http.StatusNotFound, "unknown room "+strconv.Quote(room))
	}
	if !a.cfg.Policy.CanRead(u.Name, room) {
		return "", errStatus(http.StatusForbidden, "you cannot read room "+strconv.Quote(room))
	}
	return room, nil
}

type pageJSON struct {
	Messages []hearth.Message `json:"messages"`
	HasMore  bool             `json:"has_more"`
}

func (a *API) messages(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	room, err := a.room(r, u)
	if err != nil {
		return err
	}
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	msgs, more, err := a.store.Page(room, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pageJSON{Messages: msgs, HasMore: more})
	return nil
}

func badQuery(format string, args ...any) error {
	return errStatus(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// ParseQuery reads limit, before and after of a history request. limit
// defaults to DefaultLimit and is capped at MaxLimit; zero, negative and
// non-numeric values are errors (400), as are before=0 and before with after.
func ParseQuery(v map[string][]string) (Query, error) {
	q := Query{Limit: DefaultLimit}
	get := func(k string) (string, bool, error) {
		vals, ok := v[k]
		if !ok {
			return "", false, nil
		}
		if len(vals) != 1 {
			return "", false, badQuery("%s given more than once", k)
		}
		return vals[0], true, nil
	}
	if s, ok, err := get("limit"); err != nil {
		return q, err
	} else if ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) && s[0] != '-' {
			n, err = MaxLimit, nil // a huge limit is capped like any other over MaxLimit
		}
		if err != nil || n < 1 {
			return q, badQuery("limit must be a whole number from 1 to %d", MaxLimit)
		}
		q.Limit = int(min(n, MaxLimit))
	}
	seq := func(k string) (uint64, bool, error) {
		s, ok, err := get(k)
		if err != nil || !ok {
			return 0, ok, err
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, false, badQuery("%s must be a seq (a whole number, 0 or more)", k)
		}
		return n, true, nil
	}
	before, hasBefore, err := seq("before")
	if err != nil {
		return q, err
	}
	after, hasAfter, err := seq("after")
	if err != nil {
		return q, err
	}
	switch {
	case hasBefore && hasAfter:
		return q, badQuery("give before or after, not both")
	case hasBefore && before == 0:
		return q, badQuery("before must be 1 or more")
	}
	q.Before, q.After, q.HasAfter = before, after, hasAfter
	return q, nil
}

type postRequest struct {
	ID      string `json:"id"`
	Text    string `json:"text"`
	ReplyTo string `json:"reply_to"`
}

func (a *API) post(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	room, err := a.room(r, u)
	if err != nil {
		return err
	}
	if !a.cfg.Policy.CanWrite(u.Name, room) {
		return errStatus(http.StatusForbidden, "you cannot write in room "+strconv.Quote(room))
	}
	var req postRequest
	// JSON escapes can make a body up to six times its text.
	if err := decodeBody(w, r, int64(6*a.cfg.MaxMessageBytes+1024), &req); err != nil {
		return err
	}
	if req.ID == "" {
		req.ID = newID()
	}
	p := hearth.Payload{ID: req.ID, Text: req.Text, TS: time.Now().UnixMilli(), ReplyTo: req.ReplyTo}
	if err := p.Validate(); err != nil {
		return err
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := a.cfg.Publisher.Publish(u.Name, hearth.MessageTopic(room, u.Name), payload); err != nil {
		switch {
		case a.cfg.IsTooLarge != nil && a.cfg.IsTooLarge(err):
			return errStatus(http.StatusRequestEntityTooLarge, err.Error())
		case a.cfg.IsNotAllowed != nil && a.cfg.IsNotAllowed(err):
			return errStatus(http.StatusForbidden, err.Error())
		case a.cfg.IsRateLimited != nil && a.cfg.IsRateLimited(err):
			w.Header().Set("Retry-After", "1")
			return errStatus(http.StatusTooManyRequests, err.Error())
		case a.cfg.IsBusy != nil && a.cfg.IsBusy(err):
			w.Header().Set("Retry-After", "5")
			return errStatus(http.StatusServiceUnavailable, err.Error())
		}
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": req.ID})
	return nil
}

// backup streams a consistent copy of the archive (a bbolt file) to an
// admin, taken in one read transaction while writers carry on.
func (a *API) backup(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	if u.Role != hearth.RoleAdmin {
		return errStatus(http.StatusForbidden, "only an admin may take a backup")
	}
	// A copy on disk first: a slow download then holds no transaction.
	f, err := a.store.Snapshot()
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="history.db"`)
	w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
	// A big archive over a slow link takes longer than the server's
	// timeouts: instead, each piece must be taken within backupStall.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	if _, err := io.Copy(stallWriter{w, rc}, f); err != nil {
		// The status line is gone already: the short body tells the client.
		a.log.Warn("backup download ended early", "error", err)
	}
	return nil
}

// backupStall is how long a backup download may make no progress.
const backupStall = time.Minute

// stallWriter moves the write deadline on before each write.
type stallWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (s stallWriter) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(backupStall)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	return s.w.Write(p)
}

// newID makes a message id: 12 hex digits of the time in milliseconds,
// so ids sort by time, then 16 random hex digits.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%012x%s", time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}
