package hearth

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClient(t *testing.T) {
	proxies, err := ParseProxies([]string{"127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		peer    string
		tls     bool
		xff     []string // X-Forwarded-For headers, in order
		proto   []string // X-Forwarded-Proto headers
		want    string
		https   bool
		proxied bool
	}{
		{name: "no proxy", peer: "203.0.113.7:4711", want: "203.0.113.7"},
		{name: "hearth's own tls", peer: "203.0.113.7:4711", tls: true, want: "203.0.113.7", https: true},
		{name: "spoofed headers from an untrusted peer", peer: "203.0.113.7:4711", xff: []string{"198.51.100.1"}, proto: []string{"https"}, want: "203.0.113.7"},
		{name: "untrusted peer that claims a trusted proxy", peer: "203.0.113.7:4711", xff: []string{"127.0.0.1"}, want: "203.0.113.7"},
		{name: "trusted proxy", peer: "127.0.0.1:5000", xff: []string{"198.51.100.1"}, proto: []string{"https"}, want: "198.51.100.1", https: true, proxied: true},
		{name: "trusted proxy says http", peer: "127.0.0.1:5000", tls: true, xff: []string{"198.51.100.1"}, proto: []string{"http"}, want: "198.51.100.1", proxied: true},
		{name: "trusted proxy without headers", peer: "127.0.0.1:5000", want: "127.0.0.1"},
		{name: "proxy's own request", peer: "127.0.0.1:5000", xff: []string{"10.1.1.1"}, want: "10.1.1.1", proxied: true},
		{name: "client forges the left of the chain", peer: "127.0.0.1:5000", xff: []string{"1.2.3.4, 198.51.100.1"}, want: "198.51.100.1", proxied: true},
		{name: "chain of trusted proxies", peer: "127.0.0.1:5000", xff: []string{"6.6.6.6, 198.51.100.1, 10.0.0.5, 10.9.9.9"}, want: "198.51.100.1", proxied: true},
		{name: "chain across headers", peer: "127.0.0.1:5000", xff: []string{"6.6.6.6, 198.51.100.1", "10.0.0.5"}, want: "198.51.100.1", proxied: true},
		{name: "untrusted hop in the middle", peer: "127.0.0.1:5000", xff: []string{"198.51.100.1, 192.0.2.9, 10.0.0.5"}, want: "192.0.2.9", proxied: true},
		{name: "every hop trusted", peer: "127.0.0.1:5000", xff: []string{"10.0.0.7, 10.0.0.5"}, want: "10.0.0.7", proxied: true},
		{name: "spaces and empty entries", peer: "127.0.0.1:5000", xff: []string{" 198.51.100.1 ,, 10.0.0.5 ,"}, want: "198.51.100.1", proxied: true},
		{name: "garbage right of the client stops at the last trusted hop", peer: "127.0.0.1:5000", xff: []string{"198.51.100.1, nonsense, 10.0.0.5"}, want: "10.0.0.5", proxied: true},
		{name: "garbage as the only entry", peer: "127.0.0.1:5000", xff: []string{"unknown"}, want: "127.0.0.1"},
		{name: "garbage left of the client is not read", peer: "127.0.0.1:5000", xff: []string{"<script>, 198.51.100.1"}, want: "198.51.100.1", proxied: true},
		{name: "zone is refused", peer: "127.0.0.1:5000", xff: []string{"fe80::1%eth0"}, want: "127.0.0.1"},
		{name: "entry with a port", peer: "127.0.0.1:5000", xff: []string{"198.51.100.1:4711"}, want: "198.51.100.1", proxied: true},
		{name: "ipv6 client", peer: "[::1]:5000", xff: []string{"2001:db8::1"}, proto: []string{"HTTPS"}, want: "2001:db8::1", https: true, proxied: true},
		{name: "ipv6 client with a port", peer: "[::1]:5000", xff: []string{"[2001:db8::1]:4711"}, want: "2001:db8::1", proxied: true},
		{name: "ipv6 chain", peer: "[fd00::1]:5000", xff: []string{"2001:db8::1, fd12::7"}, want: "2001:db8::1", proxied: true},
		{name: "ipv6 untrusted peer", peer: "[2001:db8::2]:5000", xff: []string{"2001:db8::1"}, want: "2001:db8::2"},
		{name: "ipv4-mapped peer", peer: "[::ffff:127.0.0.1]:5000", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1", proxied: true},
		{name: "ipv4-mapped untrusted peer", peer: "[::ffff:203.0.113.7]:5000", xff: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "several protos: the nearest proxy's counts", peer: "127.0.0.1:5000", xff: []string{"198.51.100.1"}, proto: []string{"http", "https"}, want: "198.51.100.1", https: true, proxied: true},
		{name: "proto list", peer: "127.0.0.1:5000", xff: []string{"198.51.100.1"}, proto: []string{"https, http"}, want: "198.51.100.1", proxied: true},
		{name: "peer that is not an IP", peer: "@", xff: []string{"198.51.100.1"}, want: "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			c := proxies.Client(r)
			if c.String() != tc.want || c.HTTPS != tc.https || c.Proxied != tc.proxied {
				t.Errorf("Client = %s https %v proxied %v; want %s https %v proxied %v", c, c.HTTPS, c.Proxied, tc.want, tc.https, tc.proxied)
			}
			// The middleware hands the same to ClientOf.
			var got Client
			proxies.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = ClientOf(r) })).ServeHTTP(httptest.NewRecorder(), r)
			if got != c {
				t.Errorf("ClientOf behind Handler = %+v, want %+v", got, c)
			}
		})
	}

	// Without trusted proxies every header is ignored.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	r.Header.Set("X-Forwarded-Proto", "https")
	if c := (Proxies{}).Client(r); c != (Client{Addr: netip.MustParseAddr("127.0.0.1")}) {
		t.Errorf("no trusted proxies: %+v", c)
	}
	if c := ClientOf(r); c.String() != "127.0.0.1" || c.HTTPS {
		t.Errorf("ClientOf without the middleware: %+v", c)
	}
}

// BenchmarkProxiesHandler is what the middleware adds to a request: none
// for a peer that is not a proxy, one context for one that is.
func BenchmarkProxiesHandler(b *testing.B) {
	proxies, _ := ParseProxies([]string{"127.0.0.1", "10.0.0.0/8"})
	var sink Client
	h := proxies.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sink = ClientOf(r) }))
	for _, c := range []struct{ name, peer string }{{"direct", "203.0.113.7:4711"}, {"proxied", "127.0.0.1:5000"}} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", "198.51.100.1, 10.0.0.5")
		r.Header.Set("X-Forwarded-Proto", "https")
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(nil, r)
			}
		})
	}
	_ = sink
}

func TestOrigins(t *testing.T) {
	loop := (&HTTPConfig{AllowedOrigins: []string{"http://localhost:5173"}}).PageOrigins("127.0.0.1:8080")
	tlsLoop := (&HTTPConfig{TLS: CertFiles{CertFile: "c", KeyFile: "k"}}).PageOrigins("[::]:8443")
	public := (&HTTPConfig{PublicURL: "https://Chat.Example.org:443/", AllowedOrigins: []string{"http://localhost:5173"}}).PageOrigins("127.0.0.1:8080")
	for _, c := range []struct {
		o      Origins
		origin string
		want   bool
	}{
		{loop, "", true},
		{loop, "http://127.0.0.1:8080", true},
		{loop, "http://localhost:8080", true},
		{loop, "http://[::1]:8080", true},
		{loop, "http://LOCALHOST:8080", true},
		{loop, "http://localhost:5173", true},
		{loop, "https://127.0.0.1:8080", false},
		{loop, "http://127.0.0.1:8081", false},
		{loop, "http://evil.example:8080", false},
		{loop, "http://127.0.0.1:8080.evil.example", false},
		{loop, "null", false},
		{tlsLoop, "https://localhost:8443", true},
		{tlsLoop, "http://localhost:8443", false},
		{public, "https://chat.example.org", true},
		{public, "http://localhost:5173", true},
		{public, "http://127.0.0.1:8080", false}, // a public URL replaces the loopback origins
		{public, "http://chat.example.org", false},
		{public, "https://chat.example.org:8443", false},
	} {
		if got := c.o.Allowed(c.origin); got != c.want {
			t.Errorf("%v: Allowed(%q) = %v, want %v", c.o.set, c.origin, got, c.want)
		}
	}
	if public.Listed("") {
		t.Error(`Listed("") is true`)
	}

	for _, c := range []struct{ url, want string }{
		{"https://chat.example.org", "https://chat.example.org"},
		{"https://chat.example.org/", "https://chat.example.org"},
		{"HTTPS://Chat.Example.ORG:443", "https://chat.example.org"},
		{"http://chat.example.org:80", "http://chat.example.org"},
		{"http://192.168.1.10:8080", "http://192.168.1.10:8080"},
		{"https://[2001:db8::1]:8443/", "https://[2001:db8::1]:8443"},
	} {
		if got, err := PublicOrigin(c.url); got != c.want || err != nil {
			t.Errorf("PublicOrigin(%q) = %q, %v; want %q", c.url, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "chat.example.org", "ftp://chat.example.org", "https://", "https://u:p@chat.example.org", "https://chat.example.org/chat", "https://chat.example.org?x", "https://chat.example.org#x", "https://chat.example.org:99999", "https:chat"} {
		if got, err := PublicOrigin(bad); err == nil {
			t.Errorf("PublicOrigin(%q) = %q, want an error", bad, got)
		}
	}
}
