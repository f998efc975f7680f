package hearth

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Kinds of error that more than one package returns (the broker refuses a
// publish with them, the HTTP API answers them). A package's own error is
// of a kind when it is, or wraps, one of these (errors.Is); HTTPStatus maps
// each kind to its HTTP status.
var (
	ErrNotAllowed  = errors.New("not allowed")
	ErrTooLarge    = errors.New("too large")
	ErrRateLimited = errors.New("rate limited")
	ErrBusy        = errors.New("busy: try again shortly")
)

// KindError returns an error that says msg and is of kind (errors.Is).
func KindError(kind error, msg string) error { return &kindError{kind, msg} }

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// HTTPStatus is the HTTP status that answers err: 400 for bad input
// (ErrBadPayload, ErrBadName), 401 for ErrBadCredentials, 403 ErrNotAllowed,
// 413 ErrTooLarge (and a body over http.MaxBytesReader's limit), 429
// ErrRateLimited, 503 ErrBusy; anything else is a fault of the server, 500.
func HTTPStatus(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrBadPayload), errors.Is(err, ErrBadName):
		return http.StatusBadRequest
	case errors.Is(err, ErrBadCredentials):
		return http.StatusUnauthorized
	case errors.Is(err, ErrNotAllowed):
		return http.StatusForbidden
	case errors.Is(err, ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// WriteError answers {"error": msg} with status, as every JSON route of
// hearth does; a 401 also names the Bearer scheme (WWW-Authenticate).
func WriteError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hearth"`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
