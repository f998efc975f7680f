package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-home/hearth/attachments"
	"github.com/hearth-home/hearth/history"
)

// photoEnv is the API with photos on, at most maxBytes an upload and
// perMinute a user.
func photoEnv(t *testing.T, maxBytes int64, perMinute int) (*apiEnv, *attachments.Store) {
	t.Helper()
	var photos *attachments.Store
	e := newAPIEnv(t, "", func(c *Config, h *history.Store) {
		var err error
		if photos, err = attachments.New(filepath.Join(t.TempDir(), "attachments"), h); err != nil {
			t.Fatal(err)
		}
		c.Attachments, c.MaxAttachmentBytes, c.AttachmentsPerMinute = photos, maxBytes, perMinute
	})
	return e, photos
}

func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// upload posts body as user to room.
func (e *apiEnv) upload(user, room string, body []byte) apiResponse {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/rooms/"+room+"/attachments", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token(user))
	req.Header.Set("Content-Type", "text/plain") // ignored: the type is sniffed
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		e.t.Errorf("upload: %d %s", res.StatusCode, b)
	}
	return apiResponse{res.StatusCode, res.Header, b}
}

func TestAttachmentsUploadAndFetch(t *testing.T) {
	e, photos := photoEnv(t, 1<<20, 100)
	src := testJPEG(t, 960, 640)
	res := e.upload("dad", "family", src)
	if res.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", res.status, res.body)
	}
	var att attachmentJSON
	if err := json.Unmarshal(res.body, &att); err != nil || len(att.ID) != 64 || att.ContentType != "image/jpeg" || att.Width != 960 || att.Height != 640 || att.Bytes <= 0 {
		t.Fatalf("201 body %s (%v)", res.body, err)
	}
	path := "/api/attachments/" + att.ID

	// The uploader may fetch it; nobody else before it is sent.
	got := e.get("dad", path)
	stored, _ := os.ReadFile(photos.Path(att.ID, false))
	if got.status != 200 || !bytes.Equal(got.body, stored) || int64(len(stored)) != att.Bytes {
		t.Fatalf("dad fetching: %d, %d bytes", got.status, len(got.body))
	}
	for k, want := range map[string]string{
		"Content-Type": "image/jpeg", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "private, max-age=31536000, immutable", "ETag": `"` + att.ID + `"`, "Content-Disposition": "inline",
	} {
		if got.header.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, got.header.Get(k), want)
		}
	}
	if r := e.get("kid", path); r.status != 404 {
		t.Errorf("kid before it is sent: %d, want 404", r.status)
	}
	if r := e.get("", path); r.status != 401 {
		t.Errorf("no token: %d, want 401", r.status)
	}

	// Dad sends it to family: kid reads family and may fetch it, with
	// the token in the query as an <img src> would.
	if r := e.post("dad", "/api/rooms/family/messages", `{"attachments":["`+att.ID+`"]}`); r.status != 202 {
		t.Fatalf("post with the attachment: %d %s", r.status, r.body)
	}
	r := e.do("GET", path+"?access_token="+e.token("kid"), "", "")
	if r.status != 200 || !bytes.Equal(r.body, stored) {
		t.Errorf("kid after it was sent: %d", r.status)
	}
	if r := e.do("GET", path+"?access_token=forged", "", ""); r.status != 401 {
		t.Errorf("forged query token: %d", r.status)
	}
	th := e.do("GET", path+"/thumb?access_token="+e.token("kitchen"), "", "")
	cfg, format, err := image.DecodeConfig(bytes.NewReader(th.body))
	if th.status != 200 || err != nil || format != "jpeg" || cfg.Width != 480 || cfg.Height != 320 || th.header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("thumbnail as kitchen (reader of family): %d %s %dx%d %v", th.status, format, cfg.Width, cfg.Height, err)
	}
	// The history shows the attachment.
	var page pageJSON
	json.Unmarshal(e.get("kid", "/api/rooms/family/messages").body, &page)
	if n := len(page.Messages); n != 1 || len(page.Messages[0].Attachments) != 1 || page.Messages[0].Attachments[0] != att.ID {
		t.Errorf("history: %+v", page.Messages)
	}
	// A conditional GET answers 304.
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token("kid"))
	req.Header.Set("If-None-Match", `"`+att.ID+`"`)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 304 {
		t.Errorf("If-None-Match: %v %v", res.StatusCode, err)
	}

	// Mum sends a photo to parents: kid (not a parent) gets 404, as for
	// an unknown id.
	res = e.upload("mum", "parents", testJPEG(t, 50, 50))
	var p attachmentJSON
	json.Unmarshal(res.body, &p)
	e.post("mum", "/api/rooms/parents/messages", `{"text":"us","attachments":["`+p.ID+`"]}`)
	for user, want := range map[string]int{"mum": 200, "dad": 200, "kid": 404, "kitchen": 404} {
		if r := e.get(user, "/api/attachments/"+p.ID+"/thumb"); r.status != want {
			t.Errorf("%s fetching the parents' photo: %d, want %d", user, r.status, want)
		}
	}
	for _, id := range []string{strings.Repeat("0", 64), "nope", strings.ToUpper(p.ID)} {
		if r := e.get("mum", "/api/attachments/"+id); r.status != 404 {
			t.Errorf("unknown id %s: %d", id, r.status)
		}
	}
}

func TestAttachmentsRefused(t *testing.T) {
	e, photos := photoEnv(t, 64<<10, 100)
	big := testJPEG(t, 1200, 1200) // noise: well over 64 KiB
	if len(big) <= 64<<10 {
		t.Fatalf("test image only %d bytes", len(big))
	}
	trunc := testJPEG(t, 100, 100)
	var bomb bytes.Buffer // a PNG header claiming 100000×100000
	ihdr := []byte("IHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x06\x00\x00\x00")
	bomb.WriteString("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
	bomb.Write(binary.BigEndian.AppendUint32(ihdr, crc32.ChecksumIEEE(ihdr)))
	for _, c := range []struct {
		name, user, room string
		body             []byte
		want             int
		says             string
	}{
		{"text", "dad", "family", []byte("just words"), 400, "JPEG, PNG, WebP or GIF"},
		{"pdf", "dad", "family", []byte("%PDF-1.4\n1 0 obj\n"), 400, "JPEG, PNG, WebP or GIF"},
		{"empty", "dad", "family", nil, 400, "empty"},
		{"truncated jpeg", "dad", "family", trunc[:len(trunc)-200], 400, "truncated"},
		{"too big", "dad", "family", big, 413, "attachments.max_bytes"},
		{"image bomb", "dad", "family", bomb.Bytes(), 413, "image too large"},
		{"device cannot write", "kitchen", "family", trunc, 403, "cannot write"},
		{"not a parent", "kid", "parents", trunc, 403, "cannot read"},
		{"unknown room", "dad", "attic", trunc, 404, "unknown room"},
	} {
		r := e.upload(c.user, c.room, c.body)
		var body struct{ Error string }
		json.Unmarshal(r.body, &body)
		if r.status != c.want || !strings.Contains(body.Error, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, r.status, body.Error, c.want, c.says)
		}
	}
	n := 0
	filepath.WalkDir(photos.Dir(), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != 0 {
		t.Errorf("%d files stored after refused uploads", n)
	}
}

func TestAttachmentsRate(t *testing.T) {
	e, _ := photoEnv(t, 1<<20, 2)
	img := testJPEG(t, 10, 10)
	for i, want := range []int{201, 201, 429} {
		if r := e.upload("dad", "family", img); r.status != want {
			t.Errorf("upload %d: %d, want %d", i, r.status, want)
		} else if want == 429 && r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if r := e.upload("mum", "family", img); r.status != 201 {
		t.Errorf("another user: %d, want 201 (the rate is per user)", r.status)
	}
}
