package hearth

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Origins are the browser origins whose pages may use /mqtt and the API
// (CORS). The request's Host header plays no part: with DNS rebinding, a
// hostile page has a Host of its own choosing. It is safe for concurrent
// use once made.
type Origins struct{ set map[string]bool }

// PageOrigins are the origins allowed on the HTTP listener bound at addr
// (host:port, the real port): http.allowed_origins, and the origin of
// http.public_url, or, without one, the loopback origins of addr's port
// (http://127.0.0.1:PORT, http://localhost:PORT, http://[::1]:PORT; https
// with http.tls), so that a browser on the machine itself works.
func (c *HTTPConfig) PageOrigins(addr string) Origins {
	list := append([]string(nil), c.AllowedOrigins...)
	if c.PublicURL != "" {
		if s, err := PublicOrigin(c.PublicURL); err == nil {
			list = append(list, s)
		}
		return NewOrigins(list...)
	}
	scheme := "http"
	if c.TLS.CertFile != "" {
		scheme = "https"
	}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
			list = append(list, scheme+"://"+h+":"+port)
		}
	}
	return NewOrigins(list...)
}

// NewOrigins allows exactly the origins given, as browsers write them
// (scheme://host[:port]).
func NewOrigins(list ...string) Origins {
	o := Origins{set: make(map[string]bool, len(list))}
	for _, s := range list {
		o.set[strings.ToLower(strings.TrimSuffix(s, "/"))] = true
	}
	return o
}

// Allowed reports whether a request with this Origin header may go on. No
// Origin (not a browser) is allowed: such clients still have to log in.
func (o Origins) Allowed(origin string) bool {
	return origin == "" || o.set[strings.ToLower(origin)]
}

// Listed reports whether origin is one of the origins (an empty one is not).
func (o Origins) Listed(origin string) bool {
	return origin != "" && o.set[strings.ToLower(origin)]
}

// PublicOrigin checks http.public_url, an absolute http or https URL
// without a path ("https://chat.example.org"), and returns its origin as a
// browser writes it: lower case, without a default port.
func PublicOrigin(raw string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("%q: %s; want e.g. https://chat.example.org", raw, why)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("the scheme must be http or https")
	case u.Hostname() == "" || u.Opaque != "":
		return "", bad("no host")
	case u.User != nil:
		return "", bad("no user or password allowed")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return "", bad("no path, query or fragment allowed (hearth is served at the root of its host)")
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("the port must be a number from 1 to 65535")
		}
		if (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
			host = strings.TrimSuffix(host, ":"+p)
		}
	}
	return u.Scheme + "://" + host, nil
}
