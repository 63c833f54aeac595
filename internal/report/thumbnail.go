package report

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"

	xdraw "golang.org/x/image/draw"
)

// The thumbnails of a worst image are drawn on one grid, so that the same
// pixel of each panel shows the same place: the label's grid, downscaled
// (nearest neighbour, so that every pixel keeps a class) until its longer
// side is at most maxSide. When the sample carries its input picture, it is
// scaled onto that grid (bilinear), shown as the first panel, and the label
// and prediction are drawn over it, half transparent.
//
// The error map shows where the prediction is wrong: a correct pixel is
// dimmed (the picture there, or the label's class color without one, in
// washed-out grey), a wrong pixel has the color of the class predicted, and
// a pixel not evaluated (the ignore label, or a label that is no class) is
// ErrorMapIgnored. Wrong pixels are thus the only saturated ones.

// ErrorMapIgnored is the error map's color of pixels that are not
// evaluated: a mid grey, darker than any dimmed pixel (see dim).
var ErrorMapIgnored = color.NRGBA{112, 112, 112, 255}

// overlayWeight is the percentage of a class color over the picture in the
// label and prediction panels.
const overlayWeight = 50

// Grid is the grid the panels of a thumbnail are drawn on: the label's,
// downscaled by nearest neighbour. NewThumbnail draws on it, and a caller
// takes its prediction only at its pixels (see ThumbnailSource).
type Grid struct {
	// Height and Width are the panels' size.
	Height, Width int
	// Pixels holds, for each panel pixel in row-major order, the index
	// in the label (row * the label's width + column) of the label pixel
	// under the panel pixel's center.
	Pixels []int
}

// NewGrid returns the grid of the panels of a height x width label whose
// longer side is at most maxSide (see fit).
func NewGrid(height, width, maxSide int) (Grid, error) {
	switch {
	case height <= 0 || width <= 0:
		return Grid{}, fmt.Errorf("report: thumbnail: bad size %dx%d", height, width)
	case maxSide <= 0:
		return Grid{}, errors.New("report: thumbnail: maxSide must be positive")
	}
	g := Grid{}
	g.Height, g.Width = fit(height, width, maxSide)
	g.Pixels = make([]int, 0, g.Height*g.Width)
	for y := range g.Height {
		sy := (2*y + 1) * height / (2 * g.Height)
		for x := range g.Width {
			sx := (2*x + 1) * width / (2 * g.Width)
			g.Pixels = append(g.Pixels, sy*width+sx)
		}
	}
	return g, nil
}

// At returns the values of a label-sized map, such as the labels, at the
// grid's pixels, in their order: what ThumbnailSource holds.
func (g Grid) At(values []int32) []int32 {
	out := make([]int32, len(g.Pixels))
	for k, i := range g.Pixels {
		out[k] = values[i]
	}
	return out
}

// ThumbnailSource is what a worst image's thumbnail is drawn from: a
// Height x Width label and its prediction, given only at the pixels of the
// panels' grid, NewGrid(Height, Width, maxSide) for NewThumbnail's
// maxSide, so that the prediction need not be computed anywhere else.
type ThumbnailSource struct {
	// Height and Width are the label's size.
	Height, Width int
	// Labels and Pred hold a class id for each pixel of the grid, in the
	// order of Grid.Pixels (row-major on the panels): the label there
	// (after any label mapping) and the predicted class.
	Labels, Pred []int32
	Classes      int
	// Ignore is the label value that is not evaluated; it is only
	// consulted when HasIgnore is set.
	Ignore    int32
	HasIgnore bool
	// Picture is the sample's input image, or nil. Its size may differ from
	// the label's, but it must have the same aspect ratio (see
	// CheckPicture).
	Picture image.Image
}

// NewThumbnail draws the panels of a worst image, each an image file whose
// longer side is at most maxSide pixels: the picture (when there is one),
// the label and the prediction (over the picture when there is one), all
// three JPEG with a picture and PNG without, and the error map, PNG.
func NewThumbnail(src ThumbnailSource, maxSide int) (Thumbnail, error) {
	grid, err := NewGrid(src.Height, src.Width, maxSide)
	switch {
	case err != nil:
		return Thumbnail{}, err
	case len(src.Labels) != len(grid.Pixels) || len(src.Pred) != len(grid.Pixels):
		return Thumbnail{}, fmt.Errorf("report: thumbnail: %d labels and %d predictions for the %dx%d grid of a %dx%d image", len(src.Labels), len(src.Pred), grid.Height, grid.Width, src.Height, src.Width)
	case src.Classes <= 0:
		return Thumbnail{}, fmt.Errorf("report: thumbnail: %d classes", src.Classes)
	}
	if src.Picture != nil {
		if err := CheckPicture(src.Picture.Bounds(), src.Height, src.Width); err != nil {
			return Thumbnail{}, fmt.Errorf("report: thumbnail: %w", err)
		}
	}
	rect := image.Rect(0, 0, grid.Width, grid.Height)
	var pic *image.NRGBA
	if src.Picture != nil {
		pic = scalePicture(src.Picture, rect)
	}
	label, pred, errs := image.NewNRGBA(rect), image.NewNRGBA(rect), image.NewNRGBA(rect)
	evaluated := func(v int32) bool {
		return !(src.HasIgnore && v == src.Ignore) && v >= 0 && int64(v) < int64(src.Classes)
	}
	for k := range grid.Pixels {
		x, y := k%grid.Width, k/grid.Width
		l, p := src.Labels[k], src.Pred[k]
		lc, pc := classColor(l, src.Classes), classColor(p, src.Classes)
		if src.HasIgnore && l == src.Ignore {
			lc = void
		}
		var ec color.NRGBA
		switch {
		case !evaluated(l):
			ec = ErrorMapIgnored
		case p != l:
			ec = pc
		case pic != nil:
			ec = dim(pic.NRGBAAt(x, y))
		default:
			ec = dim(lc)
		}
		if pic != nil {
			under := pic.NRGBAAt(x, y)
			if evaluated(l) {
				lc = mix(lc, under, overlayWeight)
			} else {
				lc = under // nothing to draw over the picture
			}
			pc = mix(pc, under, overlayWeight)
		}
		label.SetNRGBA(x, y, lc)
		pred.SetNRGBA(x, y, pc)
		errs.SetNRGBA(x, y, ec)
	}
	// Panels with the picture in them are photographs, several times
	// smaller as JPEG than as PNG (a report holds dozens); the error map
	// stays PNG, its colors exact.
	encode := encodePNG
	if pic != nil {
		encode = encodeJPEG
	}
	var th Thumbnail
	if pic != nil {
		if th.Image, err = encode(pic); err != nil {
			return Thumbnail{}, err
		}
	}
	if th.Label, err = encode(label); err != nil {
		return Thumbnail{}, err
	}
	if th.Prediction, err = encode(pred); err != nil {
		return Thumbnail{}, err
	}
	if th.Errors, err = encodePNG(errs); err != nil {
		return Thumbnail{}, err
	}
	return th, nil
}

// CheckPicture reports whether a picture of the given bounds can be shown
// with a height x width label: it must have the label's aspect ratio,
// within 2% (a picture stored at another resolution than the label is
// scaled), or it is likely not the picture of that label.
func CheckPicture(b image.Rectangle, height, width int) error {
	ph, pw := int64(b.Dy()), int64(b.Dx())
	if ph <= 0 || pw <= 0 {
		return errors.New("input image is empty")
	}
	// |pw/ph - width/height| > 2% of width/height
	if d := pw*int64(height) - ph*int64(width); 50*max(d, -d) > ph*int64(width) {
		return fmt.Errorf("input image is %dx%d (HxW) but the label is %dx%d: not the same aspect ratio", ph, pw, height, width)
	}
	return nil
}

// scalePicture draws img scaled onto rect, over white (a picture with
// transparency would otherwise show the page through it).
func scalePicture(img image.Image, rect image.Rectangle) *image.NRGBA {
	dst := image.NewNRGBA(rect)
	xdraw.Draw(dst, rect, image.White, image.Point{}, xdraw.Src)
	xdraw.BiLinear.Scale(dst, rect, img, img.Bounds(), xdraw.Over, nil)
	return dst
}

// mix is the color a percent of the way from b to a.
func mix(a, b color.NRGBA, percent int) color.NRGBA {
	m := func(x, y uint8) uint8 { return uint8((int(x)*percent + int(y)*(100-percent) + 50) / 100) }
	return color.NRGBA{m(a.R, b.R), m(a.G, b.G), m(a.B, b.B), 255}
}

// dim washes c out for the error map's correct pixels: its luma, taken
// 35% of the way from white, so that dimmed pixels are greys from 166 to
// 255, lighter than ErrorMapIgnored and without color.
func dim(c color.NRGBA) color.NRGBA {
	luma := (299*int(c.R) + 587*int(c.G) + 114*int(c.B) + 500) / 1000
	v := uint8(255 - (255-luma)*35/100)
	return color.NRGBA{v, v, v, 255}
}

// thumbnailJPEGQuality is the quality of the panels stored as JPEG.
const thumbnailJPEGQuality = 85

// encodeJPEG encodes a thumbnail panel that shows a photograph.
func encodeJPEG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: thumbnailJPEGQuality}); err != nil {
		return nil, fmt.Errorf("report: thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

// encodePNG encodes a thumbnail panel.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("report: thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}
