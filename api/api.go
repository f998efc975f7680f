// Package api is hearth's HTTP JSON API: login and tokens (auth.go),
// rooms, pages of history from the archive, posting through the broker,
// the admins' backup, and CORS for the browser origins allowed.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/attachments"
	"github.com/hearth-home/hearth/history"
)

// Publisher publishes a chat message as a user, with the broker's access
// rules and validation (broker.Broker).
type Publisher interface {
	Publish(user, topic string, payload []byte) error
}

// Store is what the API reads of the archive: history.Store.
type Store interface {
	LastSeq(room string) (uint64, error)
	Page(room string, q history.Query) ([]hearth.Message, bool, error)
	Search(room, q string, limit int) ([]hearth.Message, error)
	Snapshot() (*os.File, error)
	Unread(room string, after uint64, except string, limit int) (int, error)
	MutedRooms(user string) (map[string]bool, error)
	SetMuted(user, room string, muted bool) error
}

// ReadMarks gives each user's read mark of a room (broker.Broker).
type ReadMarks interface {
	ReadMark(room, user string) uint64
}

// MaxUnread caps the unread count of GET /api/rooms.
const MaxUnread = 999

// Config is what the HTTP API needs besides the store.
type Config struct {
	Auth   *hearth.Authenticator
	Policy *hearth.Policy
	// Publisher's errors answer by their kind (hearth.HTTPStatus): 403,
	// 413, 429 and 503, the last two with Retry-After; an error of no
	// kind is a 500.
	Publisher Publisher
	// ReadMarks gives read_seq in GET /api/rooms; nil: every mark is 0.
	ReadMarks       ReadMarks
	TokenTTL        time.Duration
	MaxMessageBytes int
	Origins         hearth.Origins // browser origins allowed (CORS)
	// Logins limits failed logins; share it with the broker so that MQTT
	// and HTTP count together. nil: the API keeps its own.
	Logins *hearth.LoginLimiter
	// Attachments stores photos; nil turns the photo routes off.
	Attachments          *attachments.Store
	MaxAttachmentBytes   int64 // the largest upload (attachments.max_bytes); 0: 20 MiB
	AttachmentsPerMinute int   // uploads per user per minute (attachments.per_minute); 0: no limit

	// Devices keeps the device logins (nil: "remember" is ignored);
	// DeviceTTL is their tokens' lifetime; DeviceCloser closes the MQTT
	// connections of a device revoked.
	Devices      *Devices
	DeviceTTL    time.Duration
	DeviceCloser DeviceCloser

	// Push, if set, serves the Web Push routes.
	Push *PushConfig
}

// API serves history and login over HTTP as JSON. Routes:
//
//	POST /api/login
//	POST /api/token
//	GET  /api/rooms
//	GET  /api/rooms/{room}/messages
//	POST /api/rooms/{room}/messages
//	GET  /api/rooms/{room}/search
//	GET  /api/backup (admins)
//	POST /api/rooms/{room}/attachments
//	GET  /api/attachments/{id}
//	GET  /api/attachments/{id}/thumb
//	GET  /api/devices, DELETE /api/devices/{id}
//	GET  /api/push/key, POST and DELETE /api/push/subscriptions
//	PUT  /api/rooms/{room}/mute
type API struct {
	store   Store
	cfg     Config
	log     *slog.Logger
	logins  *hearth.LoginLimiter
	uploads *uploadLimits
	ttl     atomic.Int64 // the tokens' lifetime: cfg.TokenTTL, then SetTokenTTL
}

// New returns the API over store.
func New(store Store, cfg Config, log *slog.Logger) *API {
	a := &API{store: store, cfg: cfg, log: log, logins: cfg.Logins,
		uploads: &uploadLimits{per: cfg.AttachmentsPerMinute, users: map[string]*rate.Limiter{}}}
	if a.logins == nil {
		a.logins = hearth.NewLoginLimiter()
	}
	a.SetTokenTTL(cfg.TokenTTL)
	return a
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /api/login", a.wrap(a.login))
	mux.Handle("POST /api/token", a.wrap(a.authed(a.refresh)))
	mux.Handle("GET /api/rooms", a.wrap(a.authed(a.rooms)))
	mux.Handle("GET /api/rooms/{room}/messages", a.wrap(a.authed(a.messages)))
	mux.Handle("POST /api/rooms/{room}/messages", a.wrap(a.authed(a.post)))
	mux.Handle("GET /api/rooms/{room}/search", a.wrap(a.authed(a.search)))
	mux.Handle("GET /api/backup", a.wrap(a.authed(a.backup)))
	if a.cfg.Attachments != nil {
		mux.Handle("POST /api/rooms/{room}/attachments", a.wrap(a.authed(a.upload)))
		mux.Handle("GET /api/attachments/{id}", a.wrap(a.authedQuery(a.attachment(false))))
		mux.Handle("GET /api/attachments/{id}/thumb", a.wrap(a.authedQuery(a.attachment(true))))
	}
	a.registerDevices(mux)
	a.registerPush(mux)
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

// statusOf maps an error to its HTTP status and message: the API's own
// errors, then hearth.HTTPStatus.
func statusOf(err error) (int, string) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, history.ErrBadQuery):
		return http.StatusBadRequest, err.Error()
	}
	if status := hearth.HTTPStatus(err); status != http.StatusInternalServerError {
		return status, err.Error()
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
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			w.Header().Set("Vary", "Origin")
		}
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r); err != nil {
			status, msg := statusOf(err)
			if status >= 500 {
				a.log.Error("api", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			hearth.WriteError(w, status, msg)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
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

type roomJSON struct {
	Name     string `json:"name"`
	Title    string `json:"title"`
	LastSeq  uint64 `json:"last_seq"`
	CanWrite bool   `json:"can_write"`
	ReadSeq  uint64 `json:"read_seq"` // the caller's read mark
	Unread   int    `json:"unread"`   // messages from others after read_seq, at most MaxUnread
	Muted    bool   `json:"muted"`
}

func (a *API) rooms(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	out := []roomJSON{}
	muted, err := a.store.MutedRooms(u.Name)
	if err != nil {
		return err
	}
	for _, name := range a.cfg.Policy.Rooms() {
		if !a.cfg.Policy.CanRead(u.Name, name) {
			continue
		}
		last, err := a.store.LastSeq(name)
		if err != nil {
			return err
		}
		var mark uint64
		if a.cfg.ReadMarks != nil {
			mark = a.cfg.ReadMarks.ReadMark(name, u.Name)
		}
		unread, err := a.store.Unread(name, mark, u.Name, MaxUnread)
		if err != nil {
			return err
		}
		out = append(out, roomJSON{Name: name, Title: a.cfg.Policy.Title(name), LastSeq: last, CanWrite: a.cfg.Policy.CanWrite(u.Name, name),
			ReadSeq: mark, Unread: unread, Muted: muted[name]})
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

// maxSearchQuery is the longest q of a search, in characters.
const maxSearchQuery = 200

// search answers GET /api/rooms/{room}/search?q=&limit=: the messages
// with every word of q (the last one as a prefix), newest first.
func (a *API) search(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	room, err := a.room(r, u)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	if len(v["q"]) > 1 || len(v["limit"]) > 1 {
		return badQuery("q and limit may be given once each")
	}
	q := v.Get("q")
	switch n := utf8.RuneCountInString(q); {
	case strings.TrimSpace(q) == "":
		return badQuery("q is required: the words to search for")
	case n > maxSearchQuery || !utf8.ValidString(q):
		return badQuery("q must be at most %d characters", maxSearchQuery)
	}
	limit := history.SearchDefaultLimit
	if s, ok := v["limit"]; ok {
		n, err := strconv.ParseInt(s[0], 10, 64)
		if errors.Is(err, strconv.ErrRange) && s[0][0] != '-' {
			n, err = history.SearchMaxLimit, nil
		}
		if err != nil || n < 1 {
			return badQuery("limit must be a whole number from 1 to %d", history.SearchMaxLimit)
		}
		limit = int(min(n, history.SearchMaxLimit)) // more is capped, as for pages
	}
	msgs, err := a.store.Search(room, q, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]hearth.Message{"messages": msgs})
	return nil
}

func badQuery(format string, args ...any) error {
	return errStatus(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// ParseQuery reads limit, before and after of a history request. limit
// defaults to history.DefaultLimit and is capped at history.MaxLimit; zero, negative and
// non-numeric values are errors (400), as are before=0 and before with after.
func ParseQuery(v map[string][]string) (history.Query, error) {
	q := history.Query{Limit: history.DefaultLimit}
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
			n, err = history.MaxLimit, nil // a huge limit is capped like any other over history.MaxLimit
		}
		if err != nil || n < 1 {
			return q, badQuery("limit must be a whole number from 1 to %d", history.MaxLimit)
		}
		q.Limit = int(min(n, history.MaxLimit))
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
	ID          string   `json:"id"`
	Text        string   `json:"text"`
	ReplyTo     string   `json:"reply_to"`
	Attachments []string `json:"attachments"`
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
	if len(req.Attachments) > 0 {
		p.Attachments = req.Attachments
	}
	if err := p.Validate(); err != nil {
		return err
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := a.cfg.Publisher.Publish(u.Name, hearth.MessageTopic(room, u.Name), payload); err != nil {
		switch hearth.HTTPStatus(err) {
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "5")
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
