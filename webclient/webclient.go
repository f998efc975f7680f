// Package webclient serves hearth's web chat. The page is built from
// webclient/src by npm and esbuild into webclient/dist, which is embedded
// into the binary; a binary built without it serves a page that says how
// to build it.
package webclient

import (
	"embed"
	"io/fs"
	"net/http"
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
// built.
func Handler() http.Handler {
	if !Built() {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
			w.Write(placeholder)
		})
	}
	sub, _ := fs.Sub(dist, "dist")
	return http.FileServerFS(sub)
}
