// Package attachments takes uploaded photos: it checks what they are
// (JPEG, PNG, WebP or GIF, sniffed from the bytes), refuses image bombs
// before decoding, strips metadata (EXIF with its GPS position, XMP, text
// chunks), makes a thumbnail, and stores both content-addressed under a
// directory, with their metadata in the archive (Meta).
package attachments

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/hearth-home/hearth"
)

// Limits of an uploaded image.
const (
	MaxPixels   = 50_000_000 // width × height
	MaxSide     = 16384      // pixels, either side
	ThumbSide   = 480        // the thumbnail's longest side
	JPEGQuality = 88
	// maxGIFPixels bounds the pixels of all frames of a GIF together.
	maxGIFPixels = 4 * MaxPixels
)

var (
	// ErrBadImage is wrapped by the errors for bytes that are not an
	// image hearth takes, or a truncated or damaged one (HTTP 400).
	ErrBadImage = hearth.KindError(hearth.ErrBadPayload, "not a photo hearth takes")
	// ErrImageTooLarge is wrapped by the errors for an image with too
	// many pixels (HTTP 413).
	ErrImageTooLarge = hearth.KindError(hearth.ErrTooLarge, "image too large")
)

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadImage, fmt.Sprintf(format, args...))
}

// Image is a processed upload: the file to store and its thumbnail.
type Image struct {
	ContentType   string
	Data          []byte // the stripped file
	Width, Height int    // of the stored file, as it is shown
	Thumb         []byte
	ThumbType     string
}

// Sniff names the type of b from its first bytes: image/jpeg, image/png,
// image/webp or image/gif, or "" for anything else.
func Sniff(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "image/jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "image/gif"
	}
	return ""
}

// Process checks an upload and makes what is stored of it. Errors wrap
// ErrBadImage or ErrImageTooLarge.
func Process(b []byte) (*Image, error) {
	ct := Sniff(b)
	var cfg image.Config
	var err error
	switch ct {
	case "image/jpeg":
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
	case "image/png":
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	case "image/webp":
		cfg, err = webp.DecodeConfig(bytes.NewReader(b))
	case "image/gif":
		cfg, err = gif.DecodeConfig(bytes.NewReader(b))
	default:
		return nil, bad("want a JPEG, PNG, WebP or GIF image")
	}
	if err != nil {
		return nil, bad("%s header: %v", ct, err)
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img := &Image{ContentType: ct}
	var pic image.Image
	switch ct {
	case "image/jpeg":
		pic, img.Data, err = stripJPEG(b)
	case "image/png":
		pic, img.Data, err = stripPNG(b)
	case "image/webp":
		pic, img.Data, err = stripWebP(b)
	case "image/gif":
		pic, img.Data, err = stripGIF(b)
	}
	if err != nil {
		return nil, err
	}
	r := pic.Bounds()
	img.Width, img.Height = r.Dx(), r.Dy()
	img.Thumb, img.ThumbType, err = thumbnail(pic)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func checkSize(w, h int) error {
	switch {
	case w <= 0 || h <= 0:
		return bad("the image has no pixels (%d×%d)", w, h)
	case w > MaxSide || h > MaxSide:
		return fmt.Errorf("%w: %d×%d pixels, a side may be at most %d", ErrImageTooLarge, w, h, MaxSide)
	case int64(w)*int64(h) > MaxPixels:
		return fmt.Errorf("%w: %d×%d pixels, at most %d megapixels", ErrImageTooLarge, w, h, MaxPixels/1_000_000)
	}
	return nil
}

// stripJPEG decodes, turns the pixels as the EXIF orientation says and
// encodes anew: nothing of the original's metadata survives but its ICC
// colour profile, which is copied.
func stripJPEG(b []byte) (image.Image, []byte, error) {
	orient, icc := jpegMeta(b)
	pic, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil, bad("damaged or truncated JPEG: %v", err)
	}
	pic = orientate(pic, orient)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, pic, &jpeg.Options{Quality: JPEGQuality}); err != nil {
		return nil, nil, bad("JPEG: %v", err)
	}
	data := out.Bytes()
	if len(icc) > 0 { // right after SOI
		data = append(append(append([]byte{}, data[:2]...), icc...), data[2:]...)
	}
	return pic, data, nil
}

// jpegMeta reads the EXIF orientation (1 when there is none) and the raw
// APP2 ICC_PROFILE segments from the segments before the scan.
func jpegMeta(b []byte) (orient int, icc []byte) {
	orient = 1
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			return
		}
		if marker >= 0xD0 && marker <= 0xD7 || marker == 0x01 {
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return
		}
		seg := b[i+4 : i+2+n]
		switch {
		case marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")):
			if o := exifOrientation(seg[6:]); o >= 1 && o <= 8 {
				orient = o
			}
		case marker == 0xE2 && bytes.HasPrefix(seg, []byte("ICC_PROFILE\x00")):
			icc = append(icc, b[i:i+2+n]...)
		}
		i += 2 + n
	}
	return
}

// exifOrientation reads tag 0x0112 of IFD0 of a TIFF structure; 0 if absent.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 0
	}
	n := int(bo.Uint16(t[off:]))
	for e := off + 2; n > 0 && e+12 <= len(t); e, n = e+12, n-1 {
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 { // SHORT
			return int(bo.Uint16(t[e+8:]))
		}
	}
	return 0
}

// orientate turns pic upright for EXIF orientation o (2..8; 1 is as is).
func orientate(pic image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return pic
	}
	src := image.NewRGBA(image.Rect(0, 0, pic.Bounds().Dx(), pic.Bounds().Dy()))
	draw.Draw(src, src.Rect, pic, pic.Bounds().Min, draw.Src)
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			si, di := src.PixOffset(x, y), dst.PixOffset(dx, dy)
			copy(dst.Pix[di:di+4], src.Pix[si:si+4])
		}
	}
	return dst
}

// stripPNG decodes and encodes anew, which keeps only the pixels (no
// eXIf, tEXt, iTXt or zTXt chunks).
func stripPNG(b []byte) (image.Image, []byte, error) {
	pic, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil, bad("damaged or truncated PNG: %v", err)
	}
	var out bytes.Buffer
	if err := png.Encode(&out, pic); err != nil {
		return nil, nil, bad("PNG: %v", err)
	}
	return pic, out.Bytes(), nil
}

// stripWebP rewrites the RIFF container without its EXIF and XMP chunks
// and clears their flags in VP8X; the image data is kept as it is (Go has
// no WebP encoder). It must decode.
func stripWebP(b []byte) (image.Image, []byte, error) {
	pic, err := webp.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil, bad("damaged, truncated or animated WebP: %v", err)
	}
	size := int(binary.LittleEndian.Uint32(b[4:8]))
	if size < 4 || 8+size > len(b) {
		return nil, nil, bad("truncated WebP")
	}
	out := append([]byte{}, b[:12]...)
	for i := 12; i < 8+size; {
		if i+8 > len(b) {
			return nil, nil, bad("truncated WebP chunk")
		}
		fourcc := string(b[i : i+4])
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		end := i + 8 + n + n&1
		if n < 0 || end > len(b) || i+8+n > 8+size {
			return nil, nil, bad("truncated WebP chunk %q", fourcc)
		}
		switch fourcc {
		case "EXIF", "XMP ":
		case "VP8X":
			c := append([]byte{}, b[i:end]...)
			if n > 0 {
				c[8] &^= 0x08 | 0x04 // EXIF and XMP flags
			}
			out = append(out, c...)
		default:
			out = append(out, b[i:end]...)
		}
		i = end
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return pic, out, nil
}

// stripGIF walks the blocks of a GIF, dropping comment and application
// extensions (but the looping one, NETSCAPE2.0), and checking that it is
// whole and that its frames are not too many pixels; the first frame
// must decode. The image data is kept as it is.
func stripGIF(b []byte) (image.Image, []byte, error) {
	if len(b) < 13 {
		return nil, nil, bad("truncated GIF")
	}
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (1 + b[10]&7)
	}
	if i > len(b) {
		return nil, nil, bad("truncated GIF")
	}
	out := append([]byte{}, b[:i]...)
	// subBlocks returns the end of the sub-blocks starting at j.
	subBlocks := func(j int) (int, error) {
		for {
			if j >= len(b) {
				return 0, bad("truncated GIF")
			}
			n := int(b[j])
			j += 1 + n
			if n == 0 {
				return j, nil
			}
		}
	}
	var pixels int64
	for {
		if i >= len(b) {
			return nil, nil, bad("truncated GIF (no trailer)")
		}
		switch b[i] {
		case 0x3B: // trailer
			out = append(out, 0x3B)
			pic, err := gif.Decode(bytes.NewReader(b))
			if err != nil {
				return nil, nil, bad("damaged GIF: %v", err)
			}
			return pic, out, nil
		case 0x21: // extension
			if i+2 > len(b) {
				return nil, nil, bad("truncated GIF")
			}
			end, err := subBlocks(i + 2)
			if err != nil {
				return nil, nil, err
			}
			label := b[i+1]
			keep := label != 0xFE && label != 0xFF
			if label == 0xFF && i+14 <= len(b) && b[i+2] == 11 && string(b[i+3:i+14]) == "NETSCAPE2.0" {
				keep = true
			}
			if keep {
				out = append(out, b[i:end]...)
			}
			i = end
		case 0x2C: // image
			if i+10 > len(b) {
				return nil, nil, bad("truncated GIF")
			}
			w, h := binary.LittleEndian.Uint16(b[i+5:]), binary.LittleEndian.Uint16(b[i+7:])
			if pixels += int64(w) * int64(h); pixels > maxGIFPixels {
				return nil, nil, fmt.Errorf("%w: the GIF's frames hold more than %d megapixels", ErrImageTooLarge, maxGIFPixels/1_000_000)
			}
			j := i + 10
			if b[i+9]&0x80 != 0 {
				j += 3 << (1 + b[i+9]&7)
			}
			end, err := subBlocks(j + 1) // after the LZW minimum code size
			if err != nil {
				return nil, nil, err
			}
			out = append(out, b[i:end]...)
			i = end
		default:
			return nil, nil, bad("damaged GIF: unknown block %#x", b[i])
		}
	}
}

// thumbnail scales pic so that its longest side is at most ThumbSide
// (never up), as a JPEG, or a PNG when pic has transparent pixels.
func thumbnail(pic image.Image) ([]byte, string, error) {
	r := pic.Bounds()
	w, h := r.Dx(), r.Dy()
	if long := max(w, h); long > ThumbSide {
		w, h = max(1, w*ThumbSide/long), max(1, h*ThumbSide/long)
	}
	opaque := true
	if o, ok := pic.(interface{ Opaque() bool }); ok {
		opaque = o.Opaque()
	} else if _, ok := pic.(*image.YCbCr); !ok {
		opaque = false
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if opaque {
		draw.Draw(dst, dst.Rect, image.NewUniform(color.White), image.Point{}, draw.Src)
	}
	draw.CatmullRom.Scale(dst, dst.Rect, pic, r, draw.Over, nil)
	var out bytes.Buffer
	if !opaque {
		if err := png.Encode(&out, dst); err != nil {
			return nil, "", err
		}
		return out.Bytes(), "image/png", nil
	}
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, "", err
	}
	return out.Bytes(), "image/jpeg", nil
}
