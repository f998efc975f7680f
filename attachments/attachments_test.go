package attachments_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/webp"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/attachments"
	"github.com/hearth-home/hearth/history"
)

// newStore is an attachments store over a real archive in a temp dir.
func newStore(t *testing.T) (*attachments.Store, *history.Store) {
	t.Helper()
	dir := t.TempDir()
	h, err := history.Open(filepath.Join(dir, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s, err := attachments.New(filepath.Join(dir, "attachments"), h)
	if err != nil {
		t.Fatal(err)
	}
	return s, h
}

// gradient is a w×h opaque picture whose top-left corner is red.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	for y := range h / 4 {
		for x := range w / 4 {
			img.Set(x, y, color.RGBA{255, 0, 0, 255})
		}
	}
	return img
}

func jpegOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// exifSegment is an APP1 Exif segment (big-endian TIFF) with IFD0 holding
// Orientation = orient and a GPS IFD pointer, and a GPS IFD with a
// latitude reference "N" and the marker string "GPSMARKER" in Make.
func exifSegment(orient uint16) []byte {
	var t bytes.Buffer
	be := binary.BigEndian
	w := func(v any) { binary.Write(&t, be, v) }
	t.WriteString("MM")
	w(uint16(42))
	w(uint32(8))
	// IFD0 at 8: three entries.
	w(uint16(3))
	ifd0End := 8 + 2 + 3*12 + 4
	makeOff := ifd0End
	gpsOff := makeOff + 10
	w([]uint16{0x010F, 2}) // Make, ASCII
	w(uint32(10))
	w(uint32(makeOff))
	w([]uint16{0x0112, 3}) // Orientation, SHORT
	w(uint32(1))
	w([]uint16{orient, 0})
	w([]uint16{0x8825, 4}) // GPS IFD, LONG
	w(uint32(1))
	w(uint32(gpsOff))
	w(uint32(0))
	t.WriteString("GPSMARKER\x00")
	// GPS IFD: GPSLatitudeRef "N".
	w(uint16(1))
	w([]uint16{0x0001, 2})
	w(uint32(2))
	t.Write([]byte{'N', 0, 0, 0})
	w(uint32(0))
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	out := []byte{0xFF, 0xE1, 0, 0}
	be.PutUint16(out[2:], uint16(len(seg)+2))
	return append(out, seg...)
}

func withExif(j []byte, orient uint16) []byte {
	return append(append(append([]byte{}, j[:2]...), exifSegment(orient)...), j[2:]...)
}

func TestJPEGStripsExifAndTurns(t *testing.T) {
	s, h := newStore(t)
	src := withExif(jpegOf(t, gradient(64, 40)), 6)
	if !bytes.Contains(src, []byte("GPSMARKER")) {
		t.Fatal("the test's EXIF is missing")
	}
	a, err := s.Save(t.Context(), "mum", "family", src)
	if err != nil {
		t.Fatal(err)
	}
	if a.ContentType != "image/jpeg" || a.Width != 40 || a.Height != 64 {
		t.Fatalf("stored %+v, want a 40×64 JPEG (orientation 6 turns it)", a)
	}
	b, err := os.ReadFile(s.Path(a.ID, false))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("Exif")) || bytes.Contains(b, []byte("GPSMARKER")) {
		t.Error("the stored JPEG still holds EXIF")
	}
	if int64(len(b)) != a.Bytes {
		t.Errorf("bytes %d, file %d", a.Bytes, len(b))
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() != 40 || r.Dy() != 64 {
		t.Fatalf("stored image is %v", r)
	}
	// Orientation 6: the top-left red corner is now at the top right.
	if r, g, _, _ := img.At(38, 1).RGBA(); r>>8 < 200 || g>>8 > 60 {
		t.Errorf("top right is %v, want red", img.At(38, 1))
	}
	if r, _, _, _ := img.At(1, 1).RGBA(); r>>8 > 100 {
		t.Errorf("top left is %v, want not red", img.At(1, 1))
	}
	if ok, _ := h.HasAttachment(a.ID); !ok {
		t.Error("no metadata")
	}
	// Uploaded again: stored once, same id.
	b2, err := s.Save(t.Context(), "dad", "family", src)
	if err != nil || b2.ID != a.ID {
		t.Fatalf("second upload: %+v %v", b2, err)
	}
	if n := countFiles(t, s.Dir()); n != 2 {
		t.Errorf("%d files after the same upload twice, want 2 (file and thumbnail)", n)
	}
	// Both uploaders may see it, nobody else before it is sent.
	no := func(string) bool { return false }
	for user, want := range map[string]bool{"mum": true, "dad": true, "kid": false} {
		if _, ok, _ := h.Attachment(a.ID, user, no); ok != want {
			t.Errorf("%s sees it: %v, want %v", user, ok, want)
		}
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestLargeJPEGThumbnail(t *testing.T) {
	s, _ := newStore(t)
	a, err := s.Save(t.Context(), "mum", "family", jpegOf(t, gradient(1200, 600)))
	if err != nil {
		t.Fatal(err)
	}
	th, err := os.ReadFile(s.Path(a.ID, true))
	if err != nil {
		t.Fatal(err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(th))
	if err != nil || format != "jpeg" || cfg.Width != 480 || cfg.Height != 240 || a.ThumbType != "image/jpeg" {
		t.Fatalf("thumbnail %s %dx%d %v (%s), want a 480×240 jpeg", format, cfg.Width, cfg.Height, err, a.ThumbType)
	}
}

func TestPNGAlphaAndText(t *testing.T) {
	s, _ := newStore(t)
	img := image.NewNRGBA(image.Rect(0, 0, 600, 300))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	// A tEXt chunk after IHDR (8 + 25 bytes).
	raw := b.Bytes()
	text := pngChunk("tEXt", []byte("Comment\x00GPSMARKER"))
	src := append(append(append([]byte{}, raw[:33]...), text...), raw[33:]...)
	a, err := s.Save(t.Context(), "kid", "family", src)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := os.ReadFile(s.Path(a.ID, false))
	if bytes.Contains(stored, []byte("GPSMARKER")) || a.ContentType != "image/png" || a.Width != 600 || a.Height != 300 {
		t.Fatalf("stored %+v, text kept: %v", a, bytes.Contains(stored, []byte("GPSMARKER")))
	}
	th, _ := os.ReadFile(s.Path(a.ID, true))
	cfg, format, err := image.DecodeConfig(bytes.NewReader(th))
	if err != nil || format != "png" || cfg.Width != 480 || cfg.Height != 240 || a.ThumbType != "image/png" {
		t.Fatalf("thumbnail %s %dx%d %v, want a 480×240 png", format, cfg.Width, cfg.Height, err)
	}
}

func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc(append([]byte(typ), data...)))
}

func crc(b []byte) uint32 {
	var table [256]uint32
	for i := range table {
		c := uint32(i)
		for range 8 {
			if c&1 != 0 {
				c = 0xEDB88320 ^ c>>1
			} else {
				c >>= 1
			}
		}
		table[i] = c
	}
	c := ^uint32(0)
	for _, x := range b {
		c = table[byte(c)^x] ^ c>>8
	}
	return ^c
}

// webpWithMeta wraps the simple (VP8) testdata file into VP8X with EXIF
// and XMP chunks and their flags set.
func webpWithMeta(t *testing.T) []byte {
	t.Helper()
	simple, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := webp.DecodeConfig(bytes.NewReader(simple))
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(fourcc string, data []byte) []byte {
		out := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
		out = append(out, data...)
		if len(data)%2 == 1 {
			out = append(out, 0)
		}
		return out
	}
	vp8x := make([]byte, 10)
	vp8x[0] = 0x08 | 0x04
	put24 := func(b []byte, v int) { b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16) }
	put24(vp8x[4:], cfg.Width-1)
	put24(vp8x[7:], cfg.Height-1)
	body := append([]byte("WEBP"), chunk("VP8X", vp8x)...)
	body = append(body, simple[12:]...)
	body = append(body, chunk("EXIF", append([]byte("MM\x00\x2a"), "GPSMARKER-exif"...))...)
	body = append(body, chunk("XMP ", []byte("<x:xmpmeta>GPSMARKER-xmp</x:xmpmeta>"))...)
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

func TestWebPDropsExifAndXMP(t *testing.T) {
	s, _ := newStore(t)
	src := webpWithMeta(t)
	if _, err := webp.Decode(bytes.NewReader(src)); err != nil {
		t.Fatalf("the test's WebP does not decode: %v", err)
	}
	a, err := s.Save(t.Context(), "mum", "family", src)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := os.ReadFile(s.Path(a.ID, false))
	if bytes.Contains(stored, []byte("GPSMARKER")) || bytes.Contains(stored, []byte("EXIF")) || bytes.Contains(stored, []byte("XMP ")) {
		t.Error("EXIF or XMP kept")
	}
	if got := binary.LittleEndian.Uint32(stored[4:]); int(got) != len(stored)-8 {
		t.Errorf("RIFF size %d, file %d", got, len(stored))
	}
	if i := bytes.Index(stored, []byte("VP8X")); i < 0 || stored[i+8]&0x0C != 0 {
		t.Error("VP8X flags still say EXIF/XMP")
	}
	img, err := webp.Decode(bytes.NewReader(stored))
	if err != nil || a.ContentType != "image/webp" || img.Bounds().Dx() != a.Width || a.Width != 150 || a.Height != 100 {
		t.Fatalf("stored WebP: %+v, %v", a, err)
	}
	if a.ThumbType != "image/jpeg" {
		t.Errorf("thumb %s", a.ThumbType)
	}
}

func TestGIFDropsComments(t *testing.T) {
	s, _ := newStore(t)
	pal := color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}}
	g := &gif.GIF{LoopCount: 0}
	for i := range 3 {
		f := image.NewPaletted(image.Rect(0, 0, 20, 10), pal)
		f.Pix[i] = 2
		g.Image, g.Delay = append(g.Image, f), append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	// A comment extension before the trailer.
	src := append(append(append([]byte{}, raw[:len(raw)-1]...), 0x21, 0xFE, 9), "GPSMARKER\x00\x3B"...)
	a, err := s.Save(t.Context(), "dad", "family", src)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := os.ReadFile(s.Path(a.ID, false))
	if bytes.Contains(stored, []byte("GPSMARKER")) || !bytes.Contains(stored, []byte("NETSCAPE2.0")) {
		t.Error("comment kept or loop extension dropped")
	}
	all, err := gif.DecodeAll(bytes.NewReader(stored))
	if err != nil || len(all.Image) != 3 || a.Width != 20 || a.Height != 10 || a.ContentType != "image/gif" {
		t.Fatalf("stored GIF: %+v %v", a, err)
	}
}

// TestBadUploads: each is refused with its kind, and nothing is stored.
func TestBadUploads(t *testing.T) {
	s, h := newStore(t)
	full := jpegOf(t, gradient(200, 200))
	bomb := func() []byte { // a PNG header claiming 100000×100000
		ihdr := binary.BigEndian.AppendUint32(nil, 100000)
		ihdr = binary.BigEndian.AppendUint32(ihdr, 100000)
		ihdr = append(ihdr, 8, 6, 0, 0, 0)
		return append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	}()
	for _, c := range []struct {
		name string
		body []byte
		kind error
	}{
		{"text", []byte("hello, this is not a photo"), hearth.ErrBadPayload},
		{"pdf", []byte("%PDF-1.7\n%âãÏÓ\n1 0 obj"), hearth.ErrBadPayload},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), hearth.ErrBadPayload},
		{"truncated jpeg", full[:len(full)/2], hearth.ErrBadPayload},
		{"jpeg header only", full[:20], hearth.ErrBadPayload},
		{"png bomb", bomb, hearth.ErrTooLarge},
		{"truncated webp", webpWithMeta(t)[:200], hearth.ErrBadPayload},
		{"gif without trailer", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"), hearth.ErrBadPayload},
	} {
		_, err := s.Save(t.Context(), "mum", "family", c.body)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want an error of kind %v", c.name, err, c.kind)
		}
		if hearth.HTTPStatus(err) >= 500 {
			t.Errorf("%s: status %d", c.name, hearth.HTTPStatus(err))
		}
		if err != nil && strings.Contains(err.Error(), "internal") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if n := countFiles(t, s.Dir()); n != 0 {
		t.Errorf("%d files left after bad uploads", n)
	}
	if n, _ := h.SweepAttachments(time.Now().Add(48*time.Hour), time.Hour); len(n) != 0 {
		t.Errorf("metadata of bad uploads: %v", n)
	}
}

// TestSweep: a photo whose message retention prunes is deleted, files
// and metadata; one never sent goes after a day; one still referred to
// stays.
func TestSweep(t *testing.T) {
	s, h := newStore(t)
	kept, err := s.Save(t.Context(), "mum", "family", jpegOf(t, gradient(30, 30)))
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := s.Save(t.Context(), "mum", "family", jpegOf(t, gradient(31, 30)))
	if err != nil {
		t.Fatal(err)
	}
	unsent, err := s.Save(t.Context(), "mum", "family", jpegOf(t, gradient(32, 30)))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).UnixMilli()
	if _, err := h.Append([]hearth.Message{
		{ID: "m1", Room: "family", From: "mum", Attachments: []string{pruned.ID}, At: old},
		{ID: "m2", Room: "family", From: "mum", Text: "x", Attachments: []string{kept.ID}},
	}); err != nil {
		t.Fatal(err)
	}
	// Kid reads family: the referred ones are his to see now.
	canRead := func(room string) bool { return room == "family" }
	if _, ok, _ := h.Attachment(pruned.ID, "kid", canRead); !ok {
		t.Error("a reader of the room cannot see a photo sent there")
	}
	if _, ok, _ := h.Attachment(unsent.ID, "kid", canRead); ok {
		t.Error("a reader sees a photo never sent")
	}
	if _, ok, _ := h.Attachment(pruned.ID, "kid", func(string) bool { return false }); ok {
		t.Error("someone who cannot read the room sees its photo")
	}
	if n, err := s.Sweep(time.Now()); err != nil || n != 0 {
		t.Fatalf("first sweep deleted %d (%v), want 0", n, err)
	}
	if n, err := h.Prune("family", history.Retention{MaxAge: 30 * time.Minute}, time.Now()); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if n, err := s.Sweep(time.Now()); err != nil || n != 1 {
		t.Fatalf("sweep after prune deleted %d (%v), want 1", n, err)
	}
	for _, thumb := range []bool{false, true} {
		if _, err := os.Stat(s.Path(pruned.ID, thumb)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pruned photo's file (thumb %v) still there: %v", thumb, err)
		}
	}
	if ok, _ := h.HasAttachment(pruned.ID); ok {
		t.Error("pruned photo's metadata still there")
	}
	if n, err := s.Sweep(time.Now().Add(25 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep a day later deleted %d (%v), want 1 (the unsent one)", n, err)
	}
	if _, err := os.Stat(s.Path(unsent.ID, false)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the unsent photo is still there")
	}
	if _, err := os.Stat(s.Path(kept.ID, false)); err != nil {
		t.Errorf("the photo still referred to is gone: %v", err)
	}
	// A stray temporary file of an upload cut short goes after an hour.
	stray := filepath.Join(s.Dir(), "ab", ".upload-123")
	os.MkdirAll(filepath.Dir(stray), 0o700)
	os.WriteFile(stray, []byte("x"), 0o600)
	s.Sweep(time.Now().Add(50 * time.Hour))
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Error("stray temporary file kept")
	}
	if _, err := os.Stat(s.Path(kept.ID, false)); err != nil {
		t.Errorf("the stray sweep removed a known photo: %v", err)
	}
}
