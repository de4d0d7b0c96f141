package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func encode(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestShrink(t *testing.T) {
	white := color.RGBA{255, 255, 255, 255}
	// few: three colours, as a page of flat colours is.
	few := image.NewRGBA(image.Rect(0, 0, 30, 10))
	for x := range 30 {
		for y := range 10 {
			few.Set(x, y, []color.RGBA{white, {0, 0, 0, 255}, {20, 90, 200, 255}}[x/10])
		}
	}
	// many: 256 common greys (4 pixels each) and 100 rare colours (one
	// pixel each) one step off a grey, as anti-aliased edges are.
	many := image.NewRGBA(image.Rect(0, 0, 256, 5))
	for x := range 256 {
		g := uint8(x)
		for y := range 4 {
			many.Set(x, y, color.RGBA{g, g, g, 255})
		}
		many.Set(x, 4, color.RGBA{g, g, g, 255})
		if x < 100 {
			many.Set(x, 4, color.RGBA{g, g, g + 1, 255})
		}
	}
	for _, tc := range []struct {
		name string
		img  *image.RGBA
		// want is the colour expected at each pixel of the output.
		want func(x, y int) color.RGBA
	}{
		{"three colours stay exact", few, func(x, y int) color.RGBA { return few.RGBAAt(x, y) }},
		{"rare colours go to the nearest common one", many, func(x, y int) color.RGBA {
			g := uint8(x)
			return color.RGBA{g, g, g, 255}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := shrink(encode(t, tc.img))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			p, ok := img.(*image.Paletted)
			if !ok || len(p.Palette) > 256 {
				t.Fatalf("shrink gave %T, want a paletted PNG of at most 256 colours", img)
			}
			if img.Bounds() != tc.img.Bounds() {
				t.Fatalf("bounds %v, want %v", img.Bounds(), tc.img.Bounds())
			}
			for y := range tc.img.Bounds().Dy() {
				for x := range tc.img.Bounds().Dx() {
					if got := color.RGBAModel.Convert(p.At(x, y)); got != tc.want(x, y) {
						t.Fatalf("pixel %d,%d = %v, want %v", x, y, got, tc.want(x, y))
					}
				}
			}
		})
	}
	if _, err := shrink([]byte("not a png")); err == nil {
		t.Fatal("shrink of a non-PNG succeeded")
	}
}
