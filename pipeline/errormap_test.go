package pipeline_test

import (
	"bytes"
	"encoding/base64"
	"html"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/report"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/transforms"
)

// The error-map scene: an 8x12 (HxW) label, class 1 on the left half and 2
// on the right, its bottom row ignored; the prediction is class 1
// everywhere, wrong on the right half. The picture is four flat quadrants,
// as in internal/sample/testdata/quadrants_*.webp.
const sceneH, sceneW = 8, 12

var sceneQuadrants = []color.NRGBA{{200, 40, 40, 255}, {40, 160, 60, 255}, {40, 60, 200, 255}, {230, 200, 40, 255}}

func scenePicture() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, sceneW, sceneH))
	for y := range sceneH {
		for x := range sceneW {
			img.SetNRGBA(x, y, sceneQuadrants[x/6+2*(y/4)])
		}
	}
	return img
}

func sceneMaps() (labels, pred []int32) {
	labels, pred = make([]int32, sceneH*sceneW), make([]int32, sceneH*sceneW)
	for y := range sceneH {
		for x := range sceneW {
			i := y*sceneW + x
			labels[i], pred[i] = 1, 1
			if x >= sceneW/2 {
				labels[i] = 2
			}
			if y == sceneH-1 {
				labels[i] = 255
			}
		}
	}
	return labels, pred
}

// thumbImages returns the decoded panels of the report's thumbnails of
// key, by their alt text, and the row's note.
func thumbImages(t *testing.T, page, key string) (map[string]image.Image, string) {
	t.Helper()
	// html/template writes a data: URI's "+" as "&#43;".
	imgRe := regexp.MustCompile(`<img src="data:image/(?:png|jpeg);base64,([^"]+)" alt="([a-z ]+)">`)
	noteRe := regexp.MustCompile(`<p class="note thumbnote">([^<]*)</p>`)
	for _, row := range strings.Split(page, "<tr>") {
		if !strings.Contains(row, `<td class="l key">`+key+`</td>`) {
			continue
		}
		panels := map[string]image.Image{}
		for _, m := range imgRe.FindAllStringSubmatch(row, -1) {
			data, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			img, _, err := image.Decode(bytes.NewReader(data)) // JPEG panels over a picture, PNG otherwise
			if err != nil {
				t.Fatalf("%s of %s: %v", m[2], key, err)
			}
			panels[m[2]] = img
		}
		var note string
		if m := noteRe.FindStringSubmatch(row); m != nil {
			note = m[1]
		}
		return panels, note
	}
	t.Fatalf("report has no row of %s", key)
	return nil, ""
}

func nrgbaAt(img image.Image, x, y int) color.NRGBA {
	return color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
}

func within(a, b color.NRGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

// TestErrorMapsThroughPipeline evaluates samples carrying their input image
// as PNG, JPEG and WebP, one without, one whose JPEG is corrupt and one
// whose picture is not the label's shape, and reads the thumbnails back out
// of report.html: the error maps' pixels, the overlays, and the notes on
// the pictures not shown. The metrics must not care.
func TestErrorMapsThroughPipeline(t *testing.T) {
	labels, pred := sceneMaps()
	labelPNG, err := synth.EncodeLabelPNG(labels, sceneH, sceneW)
	if err != nil {
		t.Fatal(err)
	}
	predPNG, err := synth.EncodeLabelPNG(pred, sceneH, sceneW)
	if err != nil {
		t.Fatal(err)
	}
	var pngPic, jpegPic bytes.Buffer
	if err := png.Encode(&pngPic, scenePicture()); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jpegPic, scenePicture(), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	var squarePic bytes.Buffer // not the label's shape: not shown
	if err := png.Encode(&squarePic, image.NewGray(image.Rect(0, 0, 12, 12))); err != nil {
		t.Fatal(err)
	}
	webpPic, err := os.ReadFile(filepath.Join("..", "internal", "sample", "testdata", "quadrants_lossless.webp"))
	if err != nil {
		t.Fatal(err)
	}
	samples := []struct {
		key, field string
		picture    []byte
		tol        int // color tolerance of the picture's format
	}{
		{"withpng", "png", pngPic.Bytes(), 0},
		{"withjpg", "jpg", jpegPic.Bytes(), 24},
		{"withwebp", "webp", webpPic, 0},
		{"bare", "", nil, 0},
		{"corrupt", "jpg", jpegPic.Bytes()[:100], 0},
		{"square", "png", squarePic.Bytes(), 0},
	}
	dir := t.TempDir()
	var shard bytes.Buffer
	sw := synth.NewShardWriter(&shard)
	for _, s := range samples {
		members := []struct {
			name string
			data []byte
		}{{s.key + ".label.png", labelPNG}, {s.key + ".pred.png", predPNG}}
		if s.field != "" {
			members = append(members, struct {
				name string
				data []byte
			}{s.key + "." + s.field, s.picture})
		}
		for _, m := range members {
			if err := sw.Member(m.name, m.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pictures.tar"), shard.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config([]string{filepath.Join(dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Eval.Classes = 5
	cfg.WorstK = len(samples)
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(cfg.Output, transforms.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)

	// Class 1 in the 5-class VOC palette, the predicted color of the
	// wrong half.
	predicted := color.NRGBA{128, 0, 0, 255}
	for _, s := range samples {
		t.Run(s.key, func(t *testing.T) {
			panels, _ := thumbImages(t, page, s.key)
			errs := panels["error map"]
			if errs == nil || panels["label"] == nil || panels["prediction"] == nil {
				t.Fatalf("thumbnails of %s: %d panels, want label, prediction and error map", s.key, len(panels))
			}
			if b := errs.Bounds(); b.Dx() != sceneW || b.Dy() != sceneH {
				t.Fatalf("error map is %v, want %dx%d", b, sceneW, sceneH)
			}
			hasPicture := s.field != "" && s.key != "corrupt" && s.key != "square"
			if (panels["image"] != nil) != hasPicture {
				t.Errorf("image panel shown = %v, want %v", panels["image"] != nil, hasPicture)
			}
			for y := range sceneH {
				for x := range sceneW {
					got := nrgbaAt(errs, x, y)
					switch {
					case y == sceneH-1:
						if got != report.ErrorMapIgnored {
							t.Errorf("ignored pixel (%d,%d) is %v, want %v", x, y, got, report.ErrorMapIgnored)
						}
					case x >= sceneW/2:
						if got != predicted {
							t.Errorf("wrong pixel (%d,%d) is %v, want the predicted class's %v", x, y, got, predicted)
						}
					default:
						// Correct: a light grey, the dimmed picture (or
						// label color), never a class color.
						if got.R != got.G || got.G != got.B || got.R < 166 {
							t.Errorf("correct pixel (%d,%d) is %v, want a grey of at least 166", x, y, got)
						}
					}
				}
			}
			if !hasPicture {
				// Without a picture the label is the plain class color.
				if got := nrgbaAt(panels["label"], 1, 1); got != predicted {
					t.Errorf("label at (1,1) is %v, want class 1's %v", got, predicted)
				}
				return
			}
			// The picture, and the label over it: class 1's color
			// half-way to the top-left quadrant's. Both panels are JPEG,
			// which blurs colors across this small scene's quadrants.
			const jpegTol = 40
			q := sceneQuadrants[0]
			if got := nrgbaAt(panels["image"], 1, 1); !within(got, q, s.tol+jpegTol) {
				t.Errorf("image at (1,1) is %v, want about %v", got, q)
			}
			half := color.NRGBA{uint8((128 + int(q.R) + 1) / 2), uint8(int(q.G) / 2), uint8(int(q.B) / 2), 255}
			if got := nrgbaAt(panels["label"], 1, 1); !within(got, half, s.tol/2+jpegTol) {
				t.Errorf("label over the image at (1,1) is %v, want about %v", got, half)
			}
			// The error map's correct pixels are the picture's, dimmed:
			// the two left quadrants differ.
			if a, b := nrgbaAt(errs, 1, 1), nrgbaAt(errs, 1, 5); a == b {
				t.Errorf("dimmed quadrants are the same grey %v: the picture does not show through", a)
			}
		})
	}
	_, note := thumbImages(t, page, "corrupt")
	for _, want := range []string{"Input image not shown", "sample corrupt", "member corrupt.jpg", "JPEG"} {
		if !strings.Contains(note, want) {
			t.Errorf("note on the corrupt image %q does not say %q", note, want)
		}
	}
	_, note = thumbImages(t, page, "square")
	for _, want := range []string{"member square.png", "not the same aspect ratio"} {
		if !strings.Contains(note, want) {
			t.Errorf("note on the mismatched image %q does not say %q", note, want)
		}
	}
	m := readOutput(t, storage.New(storage.Options{}), cfg.Output).metrics
	if m.Images != int64(len(samples)) || m.ImagesRejected != 0 {
		t.Errorf("%d images evaluated and %d rejected, want %d and 0: the input image must not matter", m.Images, m.ImagesRejected, len(samples))
	}
}
