package hearth

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Client is where an HTTP request comes from, as hearth sees it: the
// login limiter, the logs and /mqtt's connections use its address.
type Client struct {
	// Addr is the client's IP address: the TCP peer, or what a trusted
	// proxy says in X-Forwarded-For. It is not valid when the peer's
	// address is not an IP.
	Addr netip.Addr
	// HTTPS tells whether the client's request came over TLS: hearth's own,
	// or a trusted proxy's X-Forwarded-Proto.
	HTTPS bool
	// Proxied tells that Addr came from a trusted proxy's X-Forwarded-For.
	Proxied bool
}

// String is the address, as the logs and the login limiter use it.
func (c Client) String() string {
	if !c.Addr.IsValid() {
		return "unknown"
	}
	return c.Addr.String()
}

// Proxies are the reverse proxies whose X-Forwarded-For and
// X-Forwarded-Proto headers are believed (http.trusted_proxies). The zero
// value trusts none.
type Proxies struct{ nets []netip.Prefix }

// ParseProxies reads http.trusted_proxies: CIDRs ("10.0.0.0/8") or single
// IPs ("127.0.0.1", "::1").
func ParseProxies(list []string) (Proxies, error) {
	var p Proxies
	for i, s := range list {
		n, err := parseProxy(s)
		if err != nil {
			return Proxies{}, fmt.Errorf("http.trusted_proxies[%d]: %w", i, err)
		}
		p.nets = append(p.nets, n)
	}
	return p, nil
}

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		n, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: not a CIDR such as 10.0.0.0/8 or fd00::/8", s)
		}
		if n.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q: write an IPv4 network as IPv4, e.g. 10.0.0.0/8", s)
		}
		return n.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: not an IP address or CIDR, e.g. 127.0.0.1 or 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// trusts reports whether a is one of the proxies.
func (p Proxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the client a request would be without any proxy: its TCP peer
// and hearth's own TLS.
func peer(r *http.Request) Client {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return Client{HTTPS: r.TLS != nil}
	}
	return Client{Addr: ap.Addr().WithZone("").Unmap(), HTTPS: r.TLS != nil}
}

// Client works out where r comes from. A peer that is not a trusted proxy
// is the client, whatever its headers say. A trusted one's X-Forwarded-For
// is read from the right (each proxy appends the address it got the
// request from): the first address that is not itself a trusted proxy is
// the client. An entry that is not an IP address ends the walk at the last
// trusted hop, which is then taken as the client. X-Forwarded-Proto is
// believed from a trusted peer only; of several values the right-most, set
// by the proxy nearest hearth, counts.
func (p Proxies) Client(r *http.Request) Client {
	c := peer(r)
	if len(p.nets) == 0 || !c.Addr.IsValid() || !p.trusts(c.Addr) {
		return c
	}
	if proto := lastValue(r.Header.Values("X-Forwarded-Proto")); proto != "" {
		c.HTTPS = strings.EqualFold(proto, "https")
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var hop string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				hop, list = list[j+1:], list[:j]
			} else {
				hop, list = list, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return c
			}
			c.Addr, c.Proxied = a, true
			if !p.trusts(a) {
				return c
			}
		}
	}
	return c
}

// parseHop reads one X-Forwarded-For entry: an IP, or, as some proxies
// write it, an IP with a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// lastValue is the right-most comma-separated value of a header.
func lastValue(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	v := vals[len(vals)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

type clientKey struct{}

// Handler puts the client of each request, as Client works it out, where
// ClientOf finds it. A request whose peer is not a trusted proxy passes
// unchanged: ClientOf reads its peer directly, so the common case costs
// no allocation.
func (p Proxies) Handler(h http.Handler) http.Handler {
	if len(p.nets) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := p.Client(r); c != peer(r) {
			r = r.WithContext(context.WithValue(r.Context(), clientKey{}, c))
		}
		h.ServeHTTP(w, r)
	})
}

// ClientOf is where r comes from: what Proxies.Handler found, or else its
// TCP peer.
func ClientOf(r *http.Request) Client {
	if c, ok := r.Context().Value(clientKey{}).(Client); ok {
		return c
	}
	return peer(r)
}
