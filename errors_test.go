package hearth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{ErrNotAllowed, http.StatusForbidden},
		{KindError(ErrTooLarge, "message too large"), http.StatusRequestEntityTooLarge},
		{fmt.Errorf("publish: %w", KindError(ErrRateLimited, "slow down")), http.StatusTooManyRequests},
		{KindError(ErrBusy, "the archive is behind"), http.StatusServiceUnavailable},
		{&http.MaxBytesError{Limit: 10}, http.StatusRequestEntityTooLarge},
		{fmt.Errorf("%w: text", ErrBadPayload), http.StatusBadRequest},
		{ErrBadName, http.StatusBadRequest},
		{ErrBadCredentials, http.StatusUnauthorized},
		{errors.New("disk full"), http.StatusInternalServerError},
	} {
		if got := HTTPStatus(tt.err); got != tt.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if err := KindError(ErrBusy, "the archive is behind"); err.Error() != "the archive is behind" || errors.Is(err, ErrTooLarge) {
		t.Errorf("KindError: %q, is ErrTooLarge %v", err, errors.Is(err, ErrTooLarge))
	}
}
