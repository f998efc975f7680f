package webclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// An encoding is a content coding the build made a file in.
type encoding int

const (
	identity encoding = iota
	gzipped
	brotli
	numEncodings
)

// names and suffixes of the encodings, as Content-Encoding says them and
// as the build names the compressed files.
var (
	encodingNames  = [numEncodings]string{"identity", "gzip", "br"}
	encodingSuffix = [numEncodings]string{"", ".gz", ".br"}
)

// preference is the order in which equally acceptable encodings are
// chosen: the smallest first.
var preference = [numEncodings]encoding{brotli, gzipped, identity}

// contentTypes of the files the build writes; others fall back to the
// mime package.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".map":  "application/json",
	".png":  "image/png",
	// The web app manifest (W3C Web Application Manifest).
	".webmanifest": "application/manifest+json",
}

// A file of the web chat, in each encoding the build made it in.
type file struct {
	name        string // for http.ServeContent's error messages
	contentType string
	immutable   bool
	forms       [numEncodings]*form // nil where the build made none
}

type form struct {
	data []byte
	etag string // strong: a hash of data, so each encoding has its own
}

// loadFiles reads every file of fsys at its top level, with its .gz and
// .br forms beside it. Dot files are left out, and the compressed files
// are no files of their own.
func loadFiles(fsys fs.FS) map[string]*file {
	entries, _ := fs.ReadDir(fsys, ".")
	files := map[string]*file{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".br") {
			continue
		}
		f := &file{name: name, contentType: contentType(name), immutable: hashedName(name)}
		for enc := range numEncodings {
			// The embedded files are in memory: a read fails only for a
			// form the build did not make.
			if data, err := fs.ReadFile(fsys, name+encodingSuffix[enc]); err == nil {
				sum := sha256.Sum256(data)
				f.forms[enc] = &form{data: data, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
			}
		}
		if f.forms[identity] != nil {
			files[name] = f
		}
	}
	return files
}

func contentType(name string) string {
	ext := path.Ext(name)
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// hashedName reports whether name carries esbuild's content hash, as in
// app-RWZK5K5T.js or app-RWZK5K5T.js.map: eight characters of base32
// after the last "-" of the part before the first dot.
func hashedName(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	i := strings.LastIndexByte(stem, '-')
	if i < 0 || len(stem)-i-1 != 8 {
		return false
	}
	return strings.IndexFunc(stem[i+1:], func(c rune) bool {
		return !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7')
	}) < 0
}

// serve answers a GET or HEAD for f. http.ServeContent does the rest:
// Content-Length, Range, If-None-Match against the ETag, HEAD.
func (f *file) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Vary", "Accept-Encoding")
	if f.immutable {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	enc, ok := negotiate(r.Header.Values("Accept-Encoding"), func(e encoding) bool { return f.forms[e] != nil })
	if !ok {
		http.Error(w, "not acceptable: this file is served as br, gzip or identity, and Accept-Encoding refuses all three", http.StatusNotAcceptable)
		return
	}
	fm := f.forms[enc]
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", fm.etag)
	if enc != identity {
		h.Set("Content-Encoding", encodingNames[enc])
		// ServeContent leaves Content-Length out when Content-Encoding is
		// set (for handlers that compress as they write). These bytes are
		// the whole answer; a range, a 304 or an error replaces or drops it.
		h.Set("Content-Length", strconv.Itoa(len(fm.data)))
	}
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(fm.data))
}

// unnamedIdentity is the weight of identity when Accept-Encoding names
// neither it nor "*": acceptable, but after any coding named with a q
// above 0 (the smallest q-value is 0.001).
const unnamedIdentity = 0.0001

// negotiate chooses the encoding to send from the Accept-Encoding header
// values (RFC 9110, 12.5.3): the one with the highest q-value among those
// the file has, brotli before gzip before identity when they tie. No
// header, or an empty one, means identity. "*" stands for every coding
// not named; identity is acceptable unless "identity;q=0" (or "*;q=0"
// without identity) says otherwise. x-gzip is gzip. It reports false
// when the client accepts none of the forms there are.
func negotiate(header []string, has func(encoding) bool) (encoding, bool) {
	if len(header) == 0 {
		return identity, has(identity)
	}
	q := [numEncodings]float64{-1, -1, -1} // -1: not named
	star := -1.0
	for _, v := range header {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			weight, ok := qValue(params)
			if coding == "" || !ok {
				continue
			}
			switch coding {
			case "*":
				star = max(star, weight)
			case "identity":
				q[identity] = max(q[identity], weight)
			case "gzip", "x-gzip":
				q[gzipped] = max(q[gzipped], weight)
			case "br":
				q[brotli] = max(q[brotli], weight)
			}
		}
	}
	for e := range numEncodings {
		if q[e] < 0 {
			switch {
			case star >= 0:
				q[e] = star
			case e == identity:
				q[e] = unnamedIdentity
			default:
				q[e] = 0
			}
		}
	}
	best, bestQ := identity, 0.0
	for _, e := range preference {
		if has(e) && q[e] > bestQ {
			best, bestQ = e, q[e]
		}
	}
	return best, bestQ > 0
}

// qValue reads the q parameter among an item's parameters ("q=0.5"),
// 1 when there is none. It reports false for a q that is not a number
// from 0 to 1, so that the item is ignored.
func qValue(params string) (float64, bool) {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || !(f >= 0 && f <= 1) { // NaN too
				return 0, false
			}
			return f, true
		}
	}
	return 1, true
}
