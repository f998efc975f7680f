package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// Logins and tokens: POST /api/login checks a password (failures held by
// the login limiter, per user name and per address) and gives a token;
// POST /api/token trades a valid token for a fresh one; every other route
// wants the token as "Authorization: Bearer".

// SetTokenTTL changes the lifetime of the tokens given out from now on.
func (a *API) SetTokenTTL(d time.Duration) { a.ttl.Store(int64(d)) }

// authed requires a valid Bearer token and passes its user on.
func (a *API) authed(h func(w http.ResponseWriter, r *http.Request, u hearth.User) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := hearth.BearerToken(r.Header.Get("Authorization"))
		if !ok {
			return errStatus(http.StatusUnauthorized, "missing bearer token: log in with POST /api/login")
		}
		u, dev, err := a.cfg.Auth.VerifyDevice(tok)
		if err != nil {
			return errStatus(http.StatusUnauthorized, "invalid or expired token")
		}
		return h(w, withDevice(r, dev), u)
	}
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Remember makes a device login: a long-lived token (auth.device_ttl)
	// of its own, listed by GET /api/devices, revocable.
	Remember bool `json:"remember"`
}

type loginResponse struct {
	Token     string       `json:"token"`
	ExpiresAt string       `json:"expires_at"`
	User      userJSON     `json:"user"`
	Device    *loginDevice `json:"device,omitempty"`
}

type loginDevice struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
	Name      string `json:"name"`
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
	if req.Remember && a.cfg.Devices != nil {
		dev, evicted, err := a.cfg.Devices.Add(u.Name, DeviceName(r.UserAgent()))
		if err != nil {
			return err
		}
		if evicted != "" && a.cfg.DeviceCloser != nil {
			a.cfg.DeviceCloser.CloseDevice(evicted)
			a.log.Info("device login revoked: the user has too many", "user", u.Name, "device", evicted, "limit", MaxDevices)
		}
		a.log.Info("device login", "user", u.Name, "device", dev.ID, "name", dev.Name)
		return a.issueDevice(w, u, dev)
	}
	return a.issue(w, u)
}

// refresh trades a valid token for a fresh one, so that an open chat
// stays logged in; a password change still ends it (tokens are bound to
// the password hash).
// A device login's token is traded for a fresh one of the same device
// (its lifetime starts again).
func (a *API) refresh(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	if id := deviceOf(r); id != "" {
		return a.issueDevice(w, u, history.Device{ID: id})
	}
	return a.issue(w, u)
}

// issueDevice answers with a token of device dev.
func (a *API) issueDevice(w http.ResponseWriter, u hearth.User, dev history.Device) error {
	tok, exp, err := a.cfg.Auth.IssueDevice(u.Name, dev.ID, a.cfg.DeviceTTL)
	if err != nil {
		return err
	}
	resp := loginResponse{Token: tok, ExpiresAt: exp.UTC().Format(time.RFC3339), User: userJSON{u.Name, u.Role}}
	if dev.Name != "" {
		resp.Device = &loginDevice{ID: dev.ID, CreatedAt: rfc3339(dev.CreatedAt), Name: dev.Name}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) issue(w http.ResponseWriter, u hearth.User) error {
	tok, exp, err := a.cfg.Auth.Issue(u.Name, time.Duration(a.ttl.Load()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, loginResponse{Token: tok, ExpiresAt: exp.UTC().Format(time.RFC3339), User: userJSON{u.Name, u.Role}})
	return nil
}
