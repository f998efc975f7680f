package hearth

import (
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that config.yaml writes as text: a Go
// duration ("24h", "90m"), a number of days ("30d", "1d12h"), or a bare 0
// meaning zero. It exists because yaml.v3 refuses such text for a
// time.Duration, and because a bare number ("5") is ambiguous: it is an
// error that asks for a unit.
//
// *Duration is also a flag.Value.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration without trailing zero units: "24h",
// "1h30m", "0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Set parses s with ParseDuration, for use as a flag.Value.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a string that UnmarshalYAML reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string, or a bare integer 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 24h, 90m or 30d")
	}
	switch n.ShortTag() {
	case "!!str":
		v, err := ParseDuration(n.Value)
		if err != nil {
			return err
		}
		*d = v
		return nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil && i == 0 {
			*d = 0
			return nil
		}
		return fmt.Errorf("bare number %s needs a unit: write e.g. %sh, %sm or %sd", n.Value, n.Value, n.Value, n.Value)
	case "!!float":
		return fmt.Errorf("bare number %s needs a unit: write e.g. 90m instead of 1.5h", n.Value)
	}
	return fmt.Errorf("%q is not a duration: want e.g. 24h, 90m or 30d", n.Value)
}

// ParseDuration parses a Go duration ("24h", "1h30m", "-5s"), optionally
// led by a whole number of days ("30d", "1d12h"). A day is 24 hours.
func ParseDuration(s string) (Duration, error) {
	bad := func() (Duration, error) {
		return 0, fmt.Errorf("%q is not a duration: want e.g. 24h, 90m or 30d", s)
	}
	rest, neg := s, false
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg, rest = rest[0] == '-', rest[1:]
	}
	i := strings.IndexByte(rest, 'd')
	if i < 0 {
		v, err := time.ParseDuration(rest)
		if err != nil {
			return bad()
		}
		if neg {
			v = -v
		}
		return Duration(v), nil
	}
	if i == 0 {
		return bad()
	}
	const day = 24 * time.Hour
	var days int64
	for _, c := range rest[:i] {
		if c < '0' || c > '9' {
			return bad()
		}
		days = days*10 + int64(c-'0')
		if days > math.MaxInt64/int64(day) {
			return 0, fmt.Errorf("%q: duration too long", s)
		}
	}
	v := time.Duration(days) * day
	if tail := rest[i+1:]; tail != "" {
		if tail[0] == '-' || tail[0] == '+' {
			return bad()
		}
		t, err := time.ParseDuration(tail)
		if err != nil {
			return bad()
		}
		if v > math.MaxInt64-t {
			return 0, fmt.Errorf("%q: duration too long", s)
		}
		v += t
	}
	if neg {
		v = -v
	}
	return Duration(v), nil
}
