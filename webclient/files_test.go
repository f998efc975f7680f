package webclient

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// These tests serve the real embedded dist/, as the binary does.

func server(t testing.TB) string {
	t.Helper()
	if !Built() {
		t.Fatal("the web chat is not built: run `make web` first")
	}
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// fetch sends one request with the given headers ("Name: value") and
// returns the answer with its body read. The client neither asks for nor
// decodes compression by itself.
func fetch(t testing.TB, method, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp, body
}

// embedded returns a file of dist/ as the build wrote it.
func embedded(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(dist, "dist/"+name)
	if err != nil {
		t.Fatalf("dist/%s: %v", name, err)
	}
	return b
}

// decode undoes a Content-Encoding: gzip with Go's reader, brotli with
// Node's zlib (Go has no brotli decoder; Node builds the page anyway).
func decode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	switch enc {
	case "":
		return b
	case "gzip":
		r, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		return out
	case "br":
		node := mt.NeedTool(t, "node", "nodejs")
		cmd := exec.Command(node, "-e", `process.stdout.write(require("zlib").brotliDecompressSync(require("fs").readFileSync(0)))`)
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("brotli decode with node: %v", err)
		}
		return out
	}
	t.Fatalf("unexpected Content-Encoding %q", enc)
	return nil
}

var refRE = regexp.MustCompile(`(?:src|href)="([^"]+)"|url\("\./([^"]+)"\)|sourceMappingURL=(\S+)`)

// refs lists the files a page, script or style sheet refers to.
func refs(b []byte) []string {
	var out []string
	for _, m := range refRE.FindAllSubmatch(b, -1) {
		out = append(out, string(bytes.Join(m[1:], nil)))
	}
	return out
}

// appJS is the hashed name of the main script, from index.html.
func appJS(t testing.TB) string {
	t.Helper()
	m := regexp.MustCompile(`src="(app-[A-Z2-7]{8}\.js)"`).FindSubmatch(embedded(t, "index.html"))
	if m == nil {
		t.Fatal("index.html names no app-HASH.js")
	}
	return string(m[1])
}

// TestHashedAssets follows every name index.html refers to, and what
// those refer to in turn (the favicon in the style sheet, source maps):
// each is hashed, there, immutable, with its content type.
func TestHashedAssets(t *testing.T) {
	base := server(t)
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".map": "application/json"}
	seen := map[string]bool{}
	var todo []string
	for _, r := range refs(embedded(t, "index.html")) {
		if !strings.HasPrefix(r, "/") { // "/manifest.webmanifest" and the like: TestStableFiles
			todo = append(todo, r)
		}
	}
	if len(todo) != 4 {
		t.Fatalf("index.html refers to %q, want the favicon, the style sheet, the boot script and the script", todo)
	}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		if !hashedName(name) {
			t.Errorf("%s is referred to, but its name carries no content hash", name)
		}
		resp, body := fetch(t, "GET", base+"/"+name)
		ext := name[strings.LastIndexByte(name, '.'):]
		if resp.StatusCode != 200 || len(body) == 0 || !bytes.Equal(body, embedded(t, name)) {
			t.Fatalf("GET /%s: %d, %d bytes, want 200 and the built file", name, resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("/%s: Cache-Control %q, want immutable", name, got)
		}
		if got := resp.Header.Get("Content-Type"); got != types[ext] {
			t.Errorf("/%s: Content-Type %q, want %q", name, got, types[ext])
		}
		todo = append(todo, refs(body)...)
	}
	for _, want := range []string{".js", ".css", ".svg", ".js.map", ".css.map"} {
		found := false
		for name := range seen {
			found = found || strings.HasSuffix(name, want)
		}
		if !found {
			t.Errorf("no %s file among %v", want, seen)
		}
	}
	// And the build made nothing else under a name without a hash.
	entries, _ := fs.ReadDir(dist, "dist")
	for _, e := range entries {
		n := e.Name()
		stem, _, _ := strings.Cut(n, ".")
		if !stableFiles[stem+"."+strings.Split(n, ".")[1]] && !strings.HasPrefix(n, ".") && !hashedName(n) {
			t.Errorf("dist/%s has no content hash in its name", n)
		}
	}
}

// TestIndexETag: the page is revalidated with a strong ETag per
// encoding, and answered 304 when it has not changed.
func TestIndexETag(t *testing.T) {
	base := server(t)
	resp, body := fetch(t, "GET", base+"/")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !bytes.Equal(body, embedded(t, "index.html")) {
		t.Fatalf("GET /: %d, want 200 and index.html", resp.StatusCode)
	}
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag %q, want a strong one", etag)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if resp, _ := fetch(t, "GET", base+"/index.html"); resp.StatusCode != 200 || resp.Header.Get("ETag") != etag {
		t.Errorf("GET /index.html: %d, ETag %q; want 200 and %q", resp.StatusCode, resp.Header.Get("ETag"), etag)
	}
	brResp, _ := fetch(t, "GET", base+"/", "Accept-Encoding: br")
	brTag := brResp.Header.Get("ETag")
	if brTag == etag || brTag == "" {
		t.Fatalf("brotli ETag %q, want one of its own (identity: %q)", brTag, etag)
	}
	for _, c := range []struct {
		path, accept, ifNoneMatch string
		want                      int
	}{
		{"/", "", etag, 304},
		{"/index.html", "", etag, 304},
		{"/", "", `"other", ` + etag, 304},
		{"/", "", "*", 304},
		{"/", "", "W/" + etag, 304}, // If-None-Match compares weakly
		{"/", "", `"other"`, 200},
		{"/", "br", brTag, 304},
		{"/", "gzip", brTag, 200},
		{"/", "", brTag, 200},
	} {
		resp, body := fetch(t, "GET", base+c.path, "Accept-Encoding: "+c.accept, "If-None-Match: "+c.ifNoneMatch)
		if resp.StatusCode != c.want {
			t.Errorf("%s, Accept-Encoding %q, If-None-Match %s: %d, want %d", c.path, c.accept, c.ifNoneMatch, resp.StatusCode, c.want)
		}
		if c.want == 304 && (len(body) != 0 || resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache") {
			t.Errorf("304 with %d bytes, ETag %q, Cache-Control %q", len(body), resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
		}
	}
}

// TestEncodings serves the main script to each Accept-Encoding and
// checks the coding chosen, its length, and that it decodes to the file.
func TestEncodings(t *testing.T) {
	base := server(t)
	name := appJS(t)
	plain := embedded(t, name)
	for _, c := range []struct {
		accept string // "-": no header
		want   string // Content-Encoding; "406" for Not Acceptable
	}{
		{"-", ""},
		{"", ""},
		{"gzip, deflate", "gzip"},
		{"gzip, deflate, br, zstd", "br"},
		{"br", "br"},
		{"BR;Q=1", "br"},
		{"x-gzip", "gzip"},
		{"gzip;q=1.0, br;q=0.5", "gzip"},
		{"br;q=0.8, gzip;q=0.8", "br"},
		{"gzip;q=0, br;q=0", ""},
		{"gzip;q=0.5", "gzip"},
		{"br;q=0, *", "gzip"},
		{"*", "br"},
		{"identity", ""},
		{"identity;q=0.5, gzip;q=0.2", ""},
		{"deflate", ""},
		{"br;q=nonsense, gzip", "gzip"},
		{"br;q=NaN, gzip;q=2", ""},
		{"identity;q=0", "406"},
		{"*;q=0", "406"},
		{"*;q=0, identity", ""},
		{"identity;q=0, gzip", "gzip"},
	} {
		var headers []string
		if c.accept != "-" {
			headers = append(headers, "Accept-Encoding: "+c.accept)
		}
		resp, body := fetch(t, "GET", base+"/"+name, headers...)
		if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", c.accept, got)
		}
		if c.want == "406" {
			if resp.StatusCode != http.StatusNotAcceptable {
				t.Errorf("Accept-Encoding %q: %d, want 406", c.accept, resp.StatusCode)
			}
			continue
		}
		enc := resp.Header.Get("Content-Encoding")
		if resp.StatusCode != 200 || enc != c.want {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q; want 200, %q", c.accept, resp.StatusCode, enc, c.want)
			continue
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
			t.Errorf("Accept-Encoding %q: Content-Length %s for %d bytes", c.accept, got, len(body))
		}
		if got := resp.Header.Get("Content-Type"); got != "text/javascript; charset=utf-8" {
			t.Errorf("Accept-Encoding %q: Content-Type %q", c.accept, got)
		}
		if enc != "" && len(body) >= len(plain)/2 {
			t.Errorf("%s: %d bytes of %d, want it well compressed", enc, len(body), len(plain))
		}
		if !bytes.Equal(decode(t, enc, body), plain) {
			t.Errorf("Accept-Encoding %q: the %q body does not decode to %s", c.accept, enc, name)
		}
	}
}

// TestRangeAndHEAD: ranges are of the encoding sent, and HEAD answers
// the headers of a GET without the body.
func TestRangeAndHEAD(t *testing.T) {
	base := server(t)
	name := appJS(t)
	for _, enc := range []string{"", "gzip", "br"} {
		full := embedded(t, name+map[string]string{"": "", "gzip": ".gz", "br": ".br"}[enc])
		resp, body := fetch(t, "GET", base+"/"+name, "Accept-Encoding: "+enc, "Range: bytes=100-199")
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, full[100:200]) || resp.Header.Get("Content-Encoding") != enc {
			t.Errorf("%q range 100-199: %d, %d bytes, Content-Encoding %q; want 206 and those bytes of the %q form", enc, resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"), enc)
		}
		if want := "bytes 100-199/" + strconv.Itoa(len(full)); resp.Header.Get("Content-Range") != want {
			t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
		}
		resp, _ = fetch(t, "GET", base+"/"+name, "Accept-Encoding: "+enc, "Range: bytes=99999999-")
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("%q range past the end: %d, want 416", enc, resp.StatusCode)
		}
		get, getBody := fetch(t, "GET", base+"/"+name, "Accept-Encoding: "+enc)
		head, headBody := fetch(t, "HEAD", base+"/"+name, "Accept-Encoding: "+enc)
		if head.StatusCode != 200 || len(headBody) != 0 {
			t.Errorf("%q HEAD: %d with %d bytes, want 200 and none", enc, head.StatusCode, len(headBody))
		}
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "ETag", "Cache-Control", "Vary"} {
			if head.Header.Get(k) != get.Header.Get(k) {
				t.Errorf("%q HEAD %s %q, GET %q", enc, k, head.Header.Get(k), get.Header.Get(k))
			}
		}
		if get.Header.Get("Content-Length") != strconv.Itoa(len(getBody)) || len(getBody) != len(full) {
			t.Errorf("%q GET: Content-Length %s, %d bytes, want %d", enc, get.Header.Get("Content-Length"), len(getBody), len(full))
		}
	}
}

func TestNotFound(t *testing.T) {
	base := server(t)
	name := appJS(t)
	for _, p := range []string{"/nosuch", "/app.js", "/style.css", "/favicon.svg", "/.gitkeep", "/" + name + ".br", "/" + name + ".gz", "/index.html.gz", "/dist/index.html", "/x/", "/%2e%2e/go.mod", "/" + name + "/x"} {
		for _, method := range []string{"GET", "HEAD"} {
			if resp, _ := fetch(t, method, base+p, "Accept-Encoding: br, gzip"); resp.StatusCode != 404 {
				t.Errorf("%s %s: %d, want 404", method, p, resp.StatusCode)
			}
		}
	}
}

func TestHashedName(t *testing.T) {
	for name, want := range map[string]bool{
		"app-RWZK5K5T.js": true, "app-RWZK5K5T.js.map": true, "favicon-DLXPASHB.svg": true, "my-app-ABCDEFG2.js": true,
		"index.html": false, "app.js": false, "app-rwzk5k5t.js": false, "app-RWZK5K5.js": false, "app-RWZK5K5T1.js": false, "app-RWZK5K51.js": false, "-": false,
	} {
		if got := hashedName(name); got != want {
			t.Errorf("hashedName(%q) = %v, want %v", name, got, want)
		}
	}
}

// BenchmarkServeAppJS serves the main script brotli-compressed, as a
// browser on https asks for it.
func BenchmarkServeAppJS(b *testing.B) {
	if !Built() {
		b.Fatal("the web chat is not built: run `make web` first")
	}
	h := Handler()
	req := httptest.NewRequest("GET", "/"+appJS(b), nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	b.ReportAllocs()
	for b.Loop() {
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != 200 || w.h.Get("Content-Encoding") != "br" {
			b.Fatalf("%d %q", w.code, w.h.Get("Content-Encoding"))
		}
		b.SetBytes(int64(w.n))
	}
}

// discard is a ResponseWriter that counts the body, so that the
// benchmark measures the handler and not a buffer.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header  { return d.h }
func (d *discard) WriteHeader(code int) { d.code = code }
func (d *discard) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = 200
	}
	d.n += len(p)
	return len(p), nil
}

// stableFiles are the files served under names without a hash (asked for
// by name: the page, the service worker, the manifest, the icons), with
// their content types.
var stableFiles = map[string]bool{
	"index.html": true, "sw.js": true, "manifest.webmanifest": true, "apple-touch-icon.png": true,
	"icon-192.png": true, "icon-512.png": true, "maskable-192.png": true, "maskable-512.png": true,
}

// TestStableFiles: the service worker, the manifest and the icons are
// there under their names, revalidated on every use (no-cache, with an
// ETag), with their content types; the manifest names the icons with
// their sizes, and the service worker precaches the hashed files that
// index.html names.
func TestStableFiles(t *testing.T) {
	base := server(t)
	types := map[string]string{"sw.js": "text/javascript; charset=utf-8", "manifest.webmanifest": "application/manifest+json"}
	for name := range stableFiles {
		if name == "index.html" {
			continue
		}
		want := types[name]
		if want == "" {
			want = "image/png"
		}
		resp, body := fetch(t, "GET", base+"/"+name, "Accept-Encoding: br")
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET /%s: %d, %d bytes", name, resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("Content-Type"); got != want {
			t.Errorf("/%s: Content-Type %q, want %q", name, got, want)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("/%s: Cache-Control %q, want no-cache", name, got)
		}
		if resp.Header.Get("ETag") == "" {
			t.Errorf("/%s: no ETag", name)
		}
	}
	var manifest struct {
		StartURL string `json:"start_url"`
		Scope    string `json:"scope"`
		Display  string `json:"display"`
		Icons    []struct{ Src, Sizes, Type, Purpose string }
	}
	if err := json.Unmarshal(embedded(t, "manifest.webmanifest"), &manifest); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if manifest.StartURL != "/" || manifest.Scope != "/" || manifest.Display != "standalone" {
		t.Errorf("manifest: start_url %q, scope %q, display %q", manifest.StartURL, manifest.Scope, manifest.Display)
	}
	purposes := map[string]bool{}
	for _, ic := range manifest.Icons {
		cfg, err := png.DecodeConfig(bytes.NewReader(embedded(t, strings.TrimPrefix(ic.Src, "/"))))
		if err != nil || fmt.Sprintf("%dx%d", cfg.Width, cfg.Height) != ic.Sizes || ic.Type != "image/png" {
			t.Errorf("icon %s: %dx%d (%v), manifest says %s %s", ic.Src, cfg.Width, cfg.Height, err, ic.Sizes, ic.Type)
		}
		purposes[ic.Sizes+" "+ic.Purpose] = true
	}
	for _, want := range []string{"192x192 any", "512x512 any", "192x192 maskable", "512x512 maskable"} {
		if !purposes[want] {
			t.Errorf("manifest has no %s icon: %v", want, manifest.Icons)
		}
	}
	sw := string(embedded(t, "sw.js"))
	for _, r := range refs(embedded(t, "index.html")) {
		if !strings.Contains(sw, `"/`+strings.TrimPrefix(r, "/")+`"`) {
			t.Errorf("sw.js does not precache %s", r)
		}
	}
	if strings.Contains(sw, ".map\"") || !strings.Contains(sw, `"/"`) {
		t.Errorf("sw.js should precache \"/\" and no source maps")
	}
}
