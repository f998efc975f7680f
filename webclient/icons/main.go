// Command icons draws the page's app icons (PNG) from the brand mark of
// src/favicon.svg: the flame on the rounded square. Run it from the
// repository's root after changing the mark:
//
//	go run ./webclient/icons
//
// It writes webclient/src/icons/: icon-192.png and icon-512.png (the
// rounded square, purpose "any"), maskable-192.png and maskable-512.png
// (the colour to every edge, the flame inside the safe circle, purpose
// "maskable") and apple-touch-icon.png (180 px, full square: iOS rounds it
// itself). The output is the same on every run; a test checks that the
// committed files are what this program draws.
package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"golang.org/x/image/vector"
)

// The colours of favicon.svg.
var (
	brand = color.NRGBA{0xa5, 0x40, 0x1b, 0xff}
	flame = color.NRGBA{0xff, 0xf3, 0xea, 0xff}
)

// An icon to draw: its file, size in pixels, and whether the colour goes
// to every edge (maskable, Apple) or is the favicon's rounded square.
type icon struct {
	name  string
	size  int
	bleed bool
}

var icons = []icon{
	{"icon-192.png", 192, false},
	{"icon-512.png", 512, false},
	{"maskable-192.png", 192, true},
	{"maskable-512.png", 512, true},
	{"apple-touch-icon.png", 180, true},
}

func main() {
	dir := filepath.Join("webclient", "src", "icons")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, ic := range icons {
		b, err := encode(draw32(ic))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, ic.name), b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func encode(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	err := enc.Encode(&buf, img)
	return buf.Bytes(), err
}

// pen draws favicon.svg's 32-unit coordinates onto a rasterizer, scaled
// by s and moved by (dx, dy) pixels.
type pen struct {
	r          *vector.Rasterizer
	s, dx, dy  float32
	curX, curY float32
}

func (p *pen) pt(x, y float32) (float32, float32) { return x*p.s + p.dx, y*p.s + p.dy }

func (p *pen) move(x, y float32) {
	p.curX, p.curY = x, y
	p.r.MoveTo(p.pt(x, y))
}

func (p *pen) line(x, y float32) {
	p.curX, p.curY = x, y
	p.r.LineTo(p.pt(x, y))
}

// cube is SVG's relative "c": control points and end relative to the
// current point.
func (p *pen) cube(x1, y1, x2, y2, x, y float32) {
	ax, ay := p.pt(p.curX+x1, p.curY+y1)
	bx, by := p.pt(p.curX+x2, p.curY+y2)
	p.curX, p.curY = p.curX+x, p.curY+y
	cx, cy := p.pt(p.curX, p.curY)
	p.r.CubeTo(ax, ay, bx, by, cx, cy)
}

// kappa makes a quarter circle of radius 1 from one cubic Bézier.
const kappa = 0.5522847

// draw32 draws one icon.
func draw32(ic icon) *image.NRGBA {
	n := float32(ic.size)
	img := image.NewNRGBA(image.Rect(0, 0, ic.size, ic.size))
	r := vector.NewRasterizer(ic.size, ic.size)

	// The square: rounded (rx 8 of 32) or to the edges.
	p := &pen{r: r, s: n / 32}
	if ic.bleed {
		p.move(0, 0)
		p.line(32, 0)
		p.line(32, 32)
		p.line(0, 32)
	} else {
		const rx, k = 8, 8 * kappa
		p.move(rx, 0)
		p.line(32-rx, 0)
		p.cube(k, 0, rx, rx-k, rx, rx)
		p.line(32, 32-rx)
		p.cube(0, k, k-rx, rx, -rx, rx)
		p.line(rx, 32)
		p.cube(-k, 0, -rx, k-rx, -rx, -rx)
		p.line(0, rx)
		p.cube(0, -k, rx-k, -rx, rx, -rx)
	}
	r.ClosePath()
	r.Draw(img, img.Bounds(), image.NewUniform(brand), image.Point{})

	// The flame: M16 5c1 5 7 7 7 14a7 7 0 0 1-14 0c0-4 2-6 3-8 1 3 2 4 3
	// 4-1-4 0-7 1-10z, its arc as two quarter circles. Its box is x 9..23,
	// y 5..26. On a maskable icon it is half the height, centred, well
	// inside the safe circle (80% of the size).
	r.Reset(ic.size, ic.size)
	p = &pen{r: r, s: n / 32}
	if ic.bleed {
		p.s = n * 0.5 / 21
		p.dx = n/2 - 16*p.s
		p.dy = n/2 - 15.5*p.s
	}
	const k = 7 * kappa
	p.move(16, 5)
	p.cube(1, 5, 7, 7, 7, 14)
	p.cube(0, k, k-7, 7, -7, 7)
	p.cube(-k, 0, -7, k-7, -7, -7)
	p.cube(0, -4, 2, -6, 3, -8)
	p.cube(1, 3, 2, 4, 3, 4)
	p.cube(-1, -4, 0, -7, 1, -10)
	r.ClosePath()
	r.Draw(img, img.Bounds(), image.NewUniform(flame), image.Point{})
	return img
}
