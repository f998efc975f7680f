package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
	"github.com/hearth-home/hearth/push"
)

// Web Push: the server's VAPID key, the browsers' subscriptions, and the
// rooms each user has muted.

// PushStore keeps push subscriptions: history.Store.
type PushStore interface {
	AddPushSubscription(sub history.PushSubscription, max int) error
	DeletePushSubscription(user, endpoint string) (bool, error)
}

// PushConfig is what the push routes need.
type PushConfig struct {
	Key   string // the VAPID public key, base64url
	Store PushStore
}

// MaxPushSubscriptions is the most push subscriptions one user may have.
const MaxPushSubscriptions = 20

func (a *API) registerPush(mux *http.ServeMux) {
	mux.Handle("GET /api/push/key", a.wrap(a.authed(a.pushKey)))
	mux.Handle("POST /api/push/subscriptions", a.wrap(a.authed(a.subscribe)))
	mux.Handle("DELETE /api/push/subscriptions", a.wrap(a.authed(a.unsubscribe)))
	mux.Handle("PUT /api/rooms/{room}/mute", a.wrap(a.authed(a.mute)))
}

func (a *API) pushOn() error {
	if a.cfg.Push == nil {
		return errStatus(http.StatusNotFound, "push notifications are off")
	}
	return nil
}

func (a *API) pushKey(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	if err := a.pushOn(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": a.cfg.Push.Key})
	return nil
}

// subscriptionRequest is a browser's PushSubscription.toJSON().
type subscriptionRequest struct {
	Endpoint       string   `json:"endpoint"`
	ExpirationTime *float64 `json:"expirationTime"`
	Keys           struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

func (a *API) subscribe(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	if err := a.pushOn(); err != nil {
		return err
	}
	var req subscriptionRequest
	if err := decodeBody(w, r, 8192, &req); err != nil {
		return err
	}
	if err := push.CheckSubscription(req.Endpoint, req.Keys.P256dh, req.Keys.Auth); err != nil {
		return errStatus(http.StatusBadRequest, err.Error())
	}
	sub := history.PushSubscription{User: u.Name, Endpoint: req.Endpoint, P256dh: req.Keys.P256dh, Auth: req.Keys.Auth, CreatedAt: time.Now().UnixMilli()}
	err := a.cfg.Push.Store.AddPushSubscription(sub, MaxPushSubscriptions)
	if errors.Is(err, history.ErrTooManySubscriptions) {
		return errStatus(http.StatusBadRequest, "too many push subscriptions: at most "+strconv.Itoa(MaxPushSubscriptions)+" per user; remove one first")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"endpoint": req.Endpoint})
	return nil
}

func (a *API) unsubscribe(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	if err := a.pushOn(); err != nil {
		return err
	}
	var req struct {
		Endpoint string `json:"endpoint"`
	}
	if err := decodeBody(w, r, 4096, &req); err != nil {
		return err
	}
	if req.Endpoint == "" {
		return errStatus(http.StatusBadRequest, "endpoint is required")
	}
	found, err := a.cfg.Push.Store.DeletePushSubscription(u.Name, req.Endpoint)
	if err != nil {
		return err
	}
	if !found {
		return errStatus(http.StatusNotFound, "no such push subscription")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) mute(w http.ResponseWriter, r *http.Request, u hearth.User) error {
	room, err := a.room(r, u)
	if err != nil {
		return err
	}
	var req struct {
		Muted *bool `json:"muted"`
	}
	if err := decodeBody(w, r, 1024, &req); err != nil {
		return err
	}
	if req.Muted == nil {
		return errStatus(http.StatusBadRequest, `want {"muted":true} or {"muted":false}`)
	}
	if err := a.store.SetMuted(u.Name, room, *req.Muted); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"muted": *req.Muted})
	return nil
}
