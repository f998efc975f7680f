package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestIconsUpToDate: the committed icons are what this program draws, at
// their sizes.
func TestIconsUpToDate(t *testing.T) {
	for _, ic := range icons {
		want, err := encode(draw32(ic))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "src", "icons", ic.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what `go run ./webclient/icons` draws: run it", ic.name)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(got))
		if err != nil || cfg.Width != ic.size || cfg.Height != ic.size {
			t.Errorf("%s: %dx%d (%v), want %d px square", ic.name, cfg.Width, cfg.Height, err, ic.size)
		}
	}
}
