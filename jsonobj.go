package hearth

import (
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData is returned by DecodeJSONObject when more follows the
// JSON value.
var ErrTrailingData = errors.New("trailing data after the JSON object")

// DecodeJSONObject decodes exactly one JSON value from r into v, and
// nothing after it: json.Decoder.More alone lets a stray "}" or "]"
// through. With strict, unknown object keys are errors. Errors of r
// itself (a body over its size limit, say) are returned as they are.
func DecodeJSONObject(r io.Reader, v any, strict bool) error {
	dec := json.NewDecoder(r)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	_, err := dec.Token()
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil || errors.As(err, &se):
		return ErrTrailingData
	}
	return err
}
