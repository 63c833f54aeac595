package sample

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/shard"
)

// quadrants are the colors of the fixture picture's four 6x4 quadrants:
// top left, top right, bottom left, bottom right.
var quadrants = []color.NRGBA{{200, 40, 40, 255}, {40, 160, 60, 255}, {40, 60, 200, 255}, {230, 200, 40, 255}}

// quadrantImage is the 12x8 fixture picture.
func quadrantImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 12, 8))
	for y := range 8 {
		for x := range 12 {
			img.SetNRGBA(x, y, quadrants[x/6+2*(y/4)])
		}
	}
	return img
}

// pngEncode is png.Encode, for fuzz seeds (pngFile takes a *testing.T).
var pngEncode = png.Encode

func jpegFile(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readFixture reads a file of testdata. The WebP files hold quadrantImage:
// written by a Go program as PNG, then converted with Debian's webp 1.2.4
// (apt-get install webp), as
//
//	cwebp -lossless quadrants.png -o quadrants_lossless.webp
//	cwebp -q 90 quadrants.png -o quadrants_lossy.webp
//
// since golang.org/x/image/webp decodes but has no encoder.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// near reports whether two colors differ by at most tol in every channel.
func near(a, b color.Color, tol int) bool {
	ar, ag, ab, _ := a.RGBA()
	br, bg, bb, _ := b.RGBA()
	d := func(x, y uint32) bool { return abs(int(x>>8)-int(y>>8)) <= tol }
	return d(ar, br) && d(ag, bg) && d(ab, bb)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestDecodeInputImage(t *testing.T) {
	pic := quadrantImage()
	tests := []struct {
		name  string
		field string
		data  []byte
		tol   int // color tolerance of the format
	}{
		{"png", "png", pngFile(t, pic), 0},
		{"jpg", "jpg", jpegFile(t, pic), 24},
		{"jpeg", "jpeg", jpegFile(t, pic), 24},
		{"lossless webp", "webp", readFixture(t, "quadrants_lossless.webp"), 0},
		{"lossy webp", "webp", readFixture(t, "quadrants_lossy.webp"), 24},
		// Datasets hold PNG files named .jpg: the content decides.
		{"png named jpg", "jpg", pngFile(t, pic), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &shard.Sample{Key: "k", Fields: map[string][]byte{"label.png": nil, tt.field: tt.data}}
			img, err := DecodeInputImage(s, "s.tar", testLimits)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != 12 || b.Dy() != 8 {
				t.Fatalf("image is %v, want 12x8", b)
			}
			// The center of each quadrant, away from the lossy codecs'
			// blurred edges.
			for q, want := range quadrants {
				x, y := 3+6*(q%2), 2+4*(q/2)
				if got := img.At(x, y); !near(got, want, tt.tol) {
					t.Errorf("quadrant %d at (%d,%d) is %v, want %v (±%d)", q, x, y, got, want, tt.tol)
				}
			}
		})
	}
}

func TestDecodeInputImageNone(t *testing.T) {
	s := &shard.Sample{Key: "k", Fields: map[string][]byte{"label.png": nil, "probs.npy": nil, "json": []byte("{}")}}
	img, err := DecodeInputImage(s, "s.tar", testLimits)
	if img != nil || err != nil {
		t.Fatalf("got %v, %v; want no image and no error", img, err)
	}
}

func TestDecodeInputImageErrors(t *testing.T) {
	good := pngFile(t, quadrantImage())
	webpData := readFixture(t, "quadrants_lossless.webp")
	tests := []struct {
		name   string
		fields map[string][]byte
		lim    Limits
		member string // the member the error names, "" for none
		want   string
	}{
		{"truncated png", map[string][]byte{"png": good[:len(good)/2]}, testLimits, "k.png", "input image: PNG"},
		{"truncated jpeg", map[string][]byte{"jpg": jpegFile(t, quadrantImage())[:60]}, testLimits, "k.jpg", "input image: JPEG"},
		{"corrupt webp", map[string][]byte{"webp": append(webpData[:20:20], bytes.Repeat([]byte{0xff}, 30)...)}, testLimits, "k.webp", "input image: WebP"},
		{"not an image", map[string][]byte{"jpg": []byte("hello")}, testLimits, "k.jpg", "not a JPEG, PNG or WebP file"},
		{"empty", map[string][]byte{"webp": {}}, testLimits, "k.webp", "not a JPEG, PNG or WebP file"},
		{"too many pixels", map[string][]byte{"png": good}, Limits{MaxPixels: 95, MaxClasses: 1, MaxMemberBytes: 1 << 20}, "k.png", "more than the limit of 95 pixels"},
		{"too many bytes", map[string][]byte{"png": good}, Limits{MaxPixels: 1 << 20, MaxClasses: 1, MaxMemberBytes: 10}, "k.png", "exceeds the limit of 10"},
		{"two images", map[string][]byte{"png": good, "jpg": good}, testLimits, "", "more than one input image: k.jpg and k.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &shard.Sample{Key: "k", Fields: tt.fields}
			_, err := DecodeInputImage(s, "s.tar", tt.lim)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if e.Shard != "s.tar" || e.Key != "k" || e.Member != tt.member {
				t.Errorf("error names shard %q, sample %q, member %q; want s.tar, k, %q", e.Shard, e.Key, e.Member, tt.member)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestDecodeIgnoresInputImage checks that evaluation's decoding neither
// needs nor reads the input image: a sample with a corrupt one decodes.
func TestDecodeIgnoresInputImage(t *testing.T) {
	s := &shard.Sample{Key: "k", Fields: map[string][]byte{
		"label.png": grayPNG(t, 1, 2, 0, 1),
		"pred.png":  grayPNG(t, 1, 2, 1, 1),
		"jpg":       []byte("not a jpeg"),
	}}
	var d Decoder
	img, err := d.Decode(s, "s.tar", testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if img.Height != 1 || img.Width != 2 {
		t.Errorf("decoded %dx%d, want 1x2", img.Height, img.Width)
	}
}

// FuzzDecodeInputImage feeds arbitrary bytes as each kind of input image:
// decoding must not panic, must respect the pixel limit, and must fail
// with an *Error naming the member.
func FuzzDecodeInputImage(f *testing.F) {
	var png, jpg bytes.Buffer
	if err := pngEncode(&png, quadrantImage()); err != nil {
		f.Fatal(err)
	}
	if err := jpeg.Encode(&jpg, quadrantImage(), nil); err != nil {
		f.Fatal(err)
	}
	f.Add(png.Bytes())
	f.Add(jpg.Bytes())
	for _, name := range []string{"quadrants_lossless.webp", "quadrants_lossy.webp"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	lim := Limits{MaxPixels: 1 << 12, MaxClasses: 1, MaxMemberBytes: 1 << 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, field := range InputImageFields {
			s := &shard.Sample{Key: "k", Fields: map[string][]byte{field: data}}
			img, err := DecodeInputImage(s, "s.tar", lim)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Member != "k."+field {
					t.Fatalf("%s: error %v does not name the member", field, err)
				}
				continue
			}
			if b := img.Bounds(); int64(b.Dx())*int64(b.Dy()) > lim.MaxPixels {
				t.Fatalf("%s: decoded %v, over the limit of %d pixels", field, b, lim.MaxPixels)
			}
		}
	})
}
