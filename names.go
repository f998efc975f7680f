package hearth

import (
	"errors"
	"fmt"
)

// ErrBadName is returned (wrapped) for a room or user name that does not
// match ^[a-z0-9][a-z0-9_-]{0,31}$.
var ErrBadName = errors.New("bad name: want 1 to 32 characters of a-z, 0-9, _ and -, starting with a letter or digit")

// ValidName reports whether s is a valid room or user name:
// ^[a-z0-9][a-z0-9_-]{0,31}$.
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// CheckName returns nil for a valid name and an error wrapping ErrBadName
// that quotes the name otherwise.
func CheckName(s string) error {
	if ValidName(s) {
		return nil
	}
	return fmt.Errorf("%q: %w", s, ErrBadName)
}
