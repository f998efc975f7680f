// Package jsonscan reads JSON of one known, simple shape without
// reflection: literal punctuation and keys, strings without escapes, and
// integers. Every method reports false on anything else, and its caller
// then leaves the whole value to encoding/json.
package jsonscan

import "unicode/utf8"

// Reader reads b from i on.
type Reader struct {
	b []byte
	i int
}

// New returns a Reader at the start of b.
func New(b []byte) Reader { return Reader{b: b} }

// Done reports whether everything has been read.
func (r *Reader) Done() bool { return r.i == len(r.b) }

// Has reports whether s comes next.
func (r *Reader) Has(s string) bool {
	return len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s
}

// Lit reads s.
func (r *Reader) Lit(s string) bool {
	if !r.Has(s) {
		return false
	}
	r.i += len(s)
	return true
}

// Str reads a JSON string of valid UTF-8 without escapes or control
// characters.
func (r *Reader) Str(dst *string) bool {
	if !r.Lit(`"`) {
		return false
	}
	start := r.i
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			s := r.b[start:r.i]
			if !utf8.Valid(s) {
				return false
			}
			*dst = string(s)
			r.i++
			return true
		case c == '\\' || c < 0x20:
			return false
		}
	}
	return false
}

// Uint reads up to 18 digits (no overflow), with no leading zero but "0".
func (r *Reader) Uint(dst *uint64) bool {
	start := r.i
	var n uint64
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		n = n*10 + uint64(r.b[r.i]-'0')
		r.i++
	}
	digits := r.i - start
	if digits == 0 || digits > 18 || (digits > 1 && r.b[start] == '0') {
		return false
	}
	*dst = n
	return true
}

// Int reads an integer as Uint does, with an optional minus sign.
func (r *Reader) Int(dst *int64) bool {
	neg := r.Lit("-")
	var n uint64
	if !r.Uint(&n) {
		return false
	}
	*dst = int64(n)
	if neg {
		*dst = -*dst
	}
	return true
}
