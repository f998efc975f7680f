// Package webclient serves hearth's web chat. The page is built from
// webclient/src by npm and esbuild into webclient/dist, which is embedded
// into the binary; a binary built without it serves a page that says how
// to build it.
package webclient

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"unicode/utf8"
)

//go:embed all:dist
var dist embed.FS

//go:embed placeholder.html
var placeholder []byte

// Built reports whether the web chat's assets were embedded.
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html")
	return err == nil
}

// Handler serves the web chat, or the placeholder page when it was not
// built. Every answer carries a Content-Security-Policy that allows only
// the page's own scripts and styles, and WebSocket connections to the
// page's own host.
//
// The files are read once, here. A file whose name carries esbuild's
// content hash (app-RWZK5K5T.js) is served as immutable: a new build
// gives it a new name. The others (index.html, which names the hashed
// ones) are revalidated on every use with a strong ETag. Each file is
// served in the encoding the client prefers among brotli, gzip (both
// made by the build) and none; unknown paths are 404.
func Handler() http.Handler {
	if !Built() {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
			w.Write(placeholder)
		})
	}
	sub, _ := fs.Sub(dist, "dist")
	files := loadFiles(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// fs.FS refuses a name that is not UTF-8 (%c0%ae, %ff) as invalid,
		// which http.FileServerFS would answer with a 500.
		if !utf8.ValidString(r.URL.Path) {
			http.Error(w, "bad path: not UTF-8", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Security-Policy", csp(r.Host))
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		f.serve(w, r)
	})
}

// csp is the page's policy. worker-src 'self' lets the page register
// its service worker (/sw.js), manifest-src 'self' load its manifest.
// MQTT.js runs its keepalive timer in a Web
// Worker made from a blob (so that throttled background tabs stay
// connected), hence worker-src blob:. connect-src names the WebSocket
// origins of the host explicitly, for browsers whose 'self' does not
// cover ws: and wss:.
func csp(host string) string {
	connect := "'self'"
	if validHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; manifest-src 'self'; " +
		"connect-src " + connect + "; worker-src 'self' blob:; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// validHost accepts what may stand in a CSP source: a host name or IP,
// with an optional port.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	return strings.IndexFunc(h, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) < 0
}
