package webclient

import (
	"strings"
	"testing"
)

func TestCSP(t *testing.T) {
	for _, c := range []struct {
		host, want, notWant string
	}{
		{"127.0.0.1:8080", "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;", ""},
		{"chat.example.org", "ws://chat.example.org wss://chat.example.org", ""},
		{"[::1]:8080", "ws://[::1]:8080", ""},
		{"evil; script-src *", "connect-src 'self';", "evil"},
		{"", "connect-src 'self';", "ws://"},
	} {
		got := csp(c.host)
		if !strings.Contains(got, c.want) || (c.notWant != "" && strings.Contains(got, c.notWant)) {
			t.Errorf("csp(%q) = %q, want it to contain %q and not %q", c.host, got, c.want, c.notWant)
		}
		for _, must := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'"} {
			if !strings.Contains(got, must) {
				t.Errorf("csp(%q) lacks %q", c.host, must)
			}
		}
	}
}
