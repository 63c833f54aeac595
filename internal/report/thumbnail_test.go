package report

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"slices"
	"strings"
	"testing"
)

// flatPicture is a w x h picture of one color.
func flatPicture(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

// onGrid is a thumbnail source's labels and prediction from label-sized
// maps: their values at the pixels of the panels' grid.
func onGrid(t *testing.T, h, w, maxSide int, labels, pred []int32) (gridLabels, gridPred []int32) {
	t.Helper()
	g, err := NewGrid(h, w, maxSide)
	if err != nil {
		t.Fatal(err)
	}
	return g.At(labels), g.At(pred)
}

func TestNewThumbnail(t *testing.T) {
	// A 2x4 grid of 21 VOC classes, 255 ignored: correct, wrong, ignored,
	// and a label that is no class (not evaluated either). Each cell is a
	// block x block square, so that JPEG panels keep its color inside.
	const block = 16
	cells := []int32{
		1, 1, 255, 2,
		15, 0, 40, 3,
	}
	predCells := []int32{
		1, 2, 1, 2,
		15, 15, 3, 0,
	}
	const h, w = 2 * block, 4 * block
	labels, pred := make([]int32, h*w), make([]int32, h*w)
	for y := range h {
		for x := range w {
			labels[y*w+x], pred[y*w+x] = cells[y/block*4+x/block], predCells[y/block*4+x/block]
		}
	}
	const gray = 80
	picture := flatPicture(2*w, 2*h, rgb(gray, gray, gray)) // twice the label's size: scaled down
	type pixel struct {
		x, y                    int
		label, prediction, errs color.NRGBA
	}
	over := func(c color.NRGBA) color.NRGBA { return mix(c, rgb(gray, gray, gray), overlayWeight) }
	tests := []struct {
		name    string
		picture image.Image
		pixels  []pixel
	}{{
		name: "without picture",
		pixels: []pixel{
			{0, 0, vocColor(1), vocColor(1), dim(vocColor(1))},                // correct: dimmed label color
			{1, 0, vocColor(1), vocColor(2), vocColor(2)},                     // wrong: the predicted class's color
			{2, 0, void, vocColor(1), ErrorMapIgnored},                        // ignored
			{0, 1, vocColor(15), vocColor(15), dim(vocColor(15))},             // person, correct
			{1, 1, vocColor(0), vocColor(15), vocColor(15)},                   // background taken for a person
			{2, 1, void, vocColor(3), ErrorMapIgnored},                        // 40 is no class: not evaluated
			{3, 1, vocColor(3), vocColor(0), rgb(0, 0, 0)},                    // wrong as background: black
			{3, 0, vocColor(2), vocColor(2), dim(vocColor(2))},                // correct
			{2, 1, void, vocColor(3), color.NRGBA{112, 112, 112, 255}},        // the documented grey
			{0, 0, vocColor(1), vocColor(1), color.NRGBA{180, 180, 180, 255}}, // luma of (128,0,0) is 38; 255-(255-38)*35/100
		},
	}, {
		name:    "over a picture",
		picture: picture,
		pixels: []pixel{
			{0, 0, over(vocColor(1)), over(vocColor(1)), dim(rgb(gray, gray, gray))}, // correct: the picture, dimmed
			{1, 0, over(vocColor(1)), over(vocColor(2)), vocColor(2)},
			{2, 0, rgb(gray, gray, gray), over(vocColor(1)), ErrorMapIgnored}, // nothing over the picture where ignored
			{1, 1, over(vocColor(0)), over(vocColor(15)), vocColor(15)},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gridLabels, gridPred := onGrid(t, h, w, w, labels, pred)
			src := ThumbnailSource{Height: h, Width: w, Labels: gridLabels, Pred: gridPred, Classes: 21, Ignore: 255, HasIgnore: true, Picture: tt.picture}
			th, err := NewThumbnail(src, w)
			if err != nil {
				t.Fatal(err)
			}
			if (th.Image != nil) != (tt.picture != nil) {
				t.Fatalf("image panel present = %v, want %v", th.Image != nil, tt.picture != nil)
			}
			// Panels with the picture are JPEG, close to their colors;
			// the others and the error map are PNG, exact.
			tol := 0
			decode := decodePNG
			if tt.picture != nil {
				tol, decode = 6, decodeJPEG
			}
			label, prediction, errs := decode(t, th.Label), decode(t, th.Prediction), decodePNG(t, th.Errors)
			for _, img := range []image.Image{label, prediction, errs} {
				if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
					t.Fatalf("panel is %v, want %dx%d", b, w, h)
				}
			}
			if th.Image != nil {
				pic := decodeJPEG(t, th.Image)
				if b := pic.Bounds(); b.Dx() != w || b.Dy() != h {
					t.Fatalf("image panel is %v, want the label's %dx%d", b, w, h)
				}
				if got := color.NRGBAModel.Convert(pic.At(block, block)).(color.NRGBA); !close(got, rgb(gray, gray, gray), tol) {
					t.Errorf("image panel = %v, want the picture's gray", got)
				}
			}
			at := func(img image.Image, x, y int) color.NRGBA {
				return color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			}
			for _, p := range tt.pixels {
				// The pixel at the center of cell (p.x, p.y).
				p.x, p.y = p.x*block+block/2, p.y*block+block/2
				if got := at(label, p.x, p.y); !close(got, p.label, tol) {
					t.Errorf("label at (%d,%d) = %v, want %v (±%d)", p.x, p.y, got, p.label, tol)
				}
				if got := at(prediction, p.x, p.y); !close(got, p.prediction, tol) {
					t.Errorf("prediction at (%d,%d) = %v, want %v (±%d)", p.x, p.y, got, p.prediction, tol)
				}
				if got := at(errs, p.x, p.y); got != p.errs {
					t.Errorf("error map at (%d,%d) = %v, want %v", p.x, p.y, got, p.errs)
				}
			}
		})
	}
}

func decodeJPEG(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decoding the JPEG: %v", err)
	}
	return img
}

// close reports whether a and b differ by at most tol in each channel.
func close(a, b color.NRGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B) && a.A == b.A
}

// TestNewThumbnailDownscales checks that the panels share the label's grid
// when it is scaled down, and that a wrong region stays where it is.
func TestNewThumbnailDownscales(t *testing.T) {
	const h, w = 40, 100
	labels, pred := make([]int32, h*w), make([]int32, h*w)
	for y := range h {
		for x := range w {
			labels[y*w+x] = 0 // road
			pred[y*w+x] = 0
			if x >= w/2 {
				pred[y*w+x] = 13 // car, wrong on the right half
			}
		}
	}
	gridLabels, gridPred := onGrid(t, h, w, 10, labels, pred)
	th, err := NewThumbnail(ThumbnailSource{Height: h, Width: w, Labels: gridLabels, Pred: gridPred, Classes: 19,
		Picture: flatPicture(200, 80, rgb(10, 200, 10))}, 10)
	if err != nil {
		t.Fatal(err)
	}
	errs := decodePNG(t, th.Errors)
	if b := errs.Bounds(); b.Dx() != 10 || b.Dy() != 4 {
		t.Fatalf("error map is %v, want 10x4", b)
	}
	for x := range 10 {
		got := color.NRGBAModel.Convert(errs.At(x, 2)).(color.NRGBA)
		want := dim(rgb(10, 200, 10))
		if x >= 5 {
			want = cityscapes[13]
		}
		if got != want {
			t.Errorf("error map at x=%d is %v, want %v", x, got, want)
		}
	}
}

func TestNewThumbnailErrors(t *testing.T) {
	ok := ThumbnailSource{Height: 2, Width: 2, Labels: make([]int32, 4), Pred: make([]int32, 4), Classes: 3}
	tests := []struct {
		name    string
		edit    func(*ThumbnailSource)
		maxSide int
		want    string
	}{
		{"no pixels", func(s *ThumbnailSource) { s.Height = 0 }, 8, "bad size"},
		{"short prediction", func(s *ThumbnailSource) { s.Pred = s.Pred[:3] }, 8, "3 predictions"},
		{"no classes", func(s *ThumbnailSource) { s.Classes = 0 }, 8, "0 classes"},
		{"no side", func(s *ThumbnailSource) {}, 0, "maxSide"},
		{"every pixel's values for a smaller grid", func(s *ThumbnailSource) {}, 1, "4 labels and 4 predictions for the 1x1 grid"},
		{"picture of another shape", func(s *ThumbnailSource) { s.Picture = flatPicture(4, 2, rgb(0, 0, 0)) }, 8, "not the same aspect ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := ok
			tt.edit(&src)
			_, err := NewThumbnail(src, tt.maxSide)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestNewGrid checks the panels' size and that each panel pixel takes the
// label pixel under its center.
func TestNewGrid(t *testing.T) {
	tests := []struct {
		name                  string
		h, w, maxSide         int
		wantHeight, wantWidth int
	}{
		{"fits", 32, 64, 64, 32, 64},
		{"downscaled", 40, 100, 10, 4, 10},
		{"cityscapes", 1024, 2048, 256, 128, 256},
		{"portrait, odd ratio", 375, 500, 37, 28, 37},
		{"tall", 300, 7, 100, 100, 2},
		{"one row", 1, 1000, 256, 1, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGrid(tt.h, tt.w, tt.maxSide)
			if err != nil {
				t.Fatal(err)
			}
			if g.Height != tt.wantHeight || g.Width != tt.wantWidth || len(g.Pixels) != g.Height*g.Width {
				t.Fatalf("grid %dx%d of %d pixels, want %dx%d", g.Height, g.Width, len(g.Pixels), tt.wantHeight, tt.wantWidth)
			}
			for k, i := range g.Pixels {
				y, x := k/g.Width, k%g.Width
				// The center of panel pixel (x, y), in label pixels.
				cy := (float64(y) + 0.5) * float64(tt.h) / float64(g.Height)
				cx := (float64(x) + 0.5) * float64(tt.w) / float64(g.Width)
				if want := int(cy)*tt.w + int(cx); i != want {
					t.Fatalf("panel pixel (%d,%d) takes label pixel %d, want %d (row %d, column %d)", x, y, i, want, int(cy), int(cx))
				}
			}
		})
	}
	for _, bad := range [][3]int{{0, 5, 8}, {5, -1, 8}, {5, 5, 0}} {
		if _, err := NewGrid(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("NewGrid(%d, %d, %d) = nil error", bad[0], bad[1], bad[2])
		}
	}
}

func TestGridAt(t *testing.T) {
	g, err := NewGrid(4, 6, 3) // a 2x3 grid over 2x2 blocks
	if err != nil {
		t.Fatal(err)
	}
	values := make([]int32, 4*6)
	for i := range values {
		values[i] = int32(10 * i)
	}
	// The label pixel under the center of each block: row 1 or 3, column
	// 1, 3 or 5.
	want := []int32{70, 90, 110, 190, 210, 230}
	if got := g.At(values); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestCheckPicture(t *testing.T) {
	tests := []struct {
		w, h, labelH, labelW int
		ok                   bool
	}{
		{2048, 1024, 1024, 2048, true},
		{1024, 512, 1024, 2048, true}, // half the resolution
		{500, 375, 375, 500, true},
		{501, 375, 375, 500, true}, // rounding of a resize
		{375, 500, 375, 500, false},
		{560, 375, 375, 500, false},
	}
	for _, tt := range tests {
		err := CheckPicture(image.Rect(0, 0, tt.w, tt.h), tt.labelH, tt.labelW)
		if (err == nil) != tt.ok {
			t.Errorf("picture %dx%d (WxH), label %dx%d (HxW): %v, want ok=%v", tt.w, tt.h, tt.labelH, tt.labelW, err, tt.ok)
		}
	}
}

func decodePNG(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decoding the PNG: %v", err)
	}
	return img
}
