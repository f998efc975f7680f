package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/hearth-home/hearth"
)

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

// loadCertificate reads a certificate and its key; an error names the key
// of the config that is wrong (key is "http.tls").
func loadCertificate(key string, f hearth.CertFiles) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return tls.Certificate{}, &hearth.ConfigError{Key: key + ".cert_file", Err: err}
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return tls.Certificate{}, &hearth.ConfigError{Key: key + ".key_file", Err: err}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &hearth.ConfigError{Key: key, Err: fmt.Errorf("cert_file %s and key_file %s are not a certificate and its key: %w", f.CertFile, f.KeyFile, err)}
	}
	return cert, nil
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, s)
}

// readyz answers 200 only when the broker listens, the bridge is
// subscribed and the store is open; it says which is not.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	var not []string
	if !a.broker.Ready() {
		not = append(not, "broker not serving")
	}
	if !a.bridge.Ready() {
		not = append(not, "bridge not subscribed")
	}
	if len(not) > 0 {
		writeText(w, http.StatusServiceUnavailable, strings.Join(not, "\n")+"\n")
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

// securityHeaders sets the headers every answer carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// getOnly answers 405 to anything but GET and HEAD.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeText(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}
