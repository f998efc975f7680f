package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/attachments"
)

// Photos: POST /api/rooms/{room}/attachments takes an image as the body;
// GET /api/attachments/{id} and /api/attachments/{id}/thumb give it back
// to those who may see it. The two GET routes also take the token as
// ?access_token=, since an <img src> cannot send a header.

// uploadLimits holds a rate limiter per user.
type uploadLimits struct {
	mu    sync.Mutex
	per   int // per minute; 0 = no limit
	users map[string]*rate.Limiter
}

func (l *uploadLimits) allow(user string) bool {
	if l.per <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.users[user]
	if !ok {
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.per)), l.per)
		l.users[user] = lim
	}
	return lim.Allow()
}

type attachmentJSON struct {
	ID          string `json:"id"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
}

func (a *API) upload(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	room, err := a.room(r, u)
	if err != nil {
		return err
	}
	if !a.cfg.Policy.CanWrite(u.Name, room) {
		return errStatus(http.StatusForbidden, "you cannot write in room "+strconv.Quote(room))
	}
	if !a.uploads.allow(u.Name) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, 60/max(1, a.uploads.per))))
		return errStatus(http.StatusTooManyRequests, "too many photos: at most "+strconv.Itoa(a.uploads.per)+" a minute (attachments.per_minute)")
	}
	limit := a.maxUpload()
	if r.ContentLength > limit {
		return errStatus(http.StatusRequestEntityTooLarge, "the photo is larger than "+strconv.FormatInt(limit, 10)+" bytes (attachments.max_bytes)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errStatus(http.StatusRequestEntityTooLarge, "the photo is larger than "+strconv.FormatInt(limit, 10)+" bytes (attachments.max_bytes)")
	case err != nil:
		return errStatus(http.StatusBadRequest, "the photo did not arrive whole: "+err.Error())
	case len(body) == 0:
		return errStatus(http.StatusBadRequest, "empty body: send the image's bytes")
	}
	att, err := a.cfg.Attachments.Save(r.Context(), u.Name, room, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, attachmentJSON{att.ID, att.ContentType, att.Bytes, att.Width, att.Height})
	return nil
}

func (a *API) maxUpload() int64 {
	if a.cfg.MaxAttachmentBytes > 0 {
		return a.cfg.MaxAttachmentBytes
	}
	return 20 << 20
}

func (a *API) attachment(thumb bool) func(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	return func(w http.ResponseWriter, r *http.Request, u hearth.User) error {
		canRead := func(room string) bool { return a.cfg.Policy.CanRead(u.Name, room) }
		f, att, err := a.cfg.Attachments.Open(r.PathValue("id"), u.Name, canRead, thumb)
		if errors.Is(err, attachments.ErrNotFound) {
			return errStatus(http.StatusNotFound, "no such attachment")
		}
		if err != nil {
			return err
		}
		defer f.Close()
		ct := att.ContentType
		if thumb {
			ct = att.ThumbType
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
		h.Set("Content-Disposition", "inline")
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		etag := `"` + att.ID + `"`
		if thumb {
			etag = `"` + att.ID + `-thumb"`
		}
		h.Set("ETag", etag)
		// ServeContent answers If-None-Match (304) and ranges.
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	}
}

// authedQuery is authed that also takes the token as ?access_token=,
// for the routes a browser loads as <img src>.
func (a *API) authedQuery(h func(w http.ResponseWriter, r *http.Request, u hearth.User) error) handlerFunc {
	inner := a.authed(h)
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.Header.Get("Authorization") == "" {
			if tok := r.URL.Query().Get("access_token"); tok != "" {
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer "+tok)
			}
		}
		return inner(w, r)
	}
}
