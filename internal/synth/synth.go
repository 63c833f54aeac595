// Package synth makes realistic synthetic segmentation samples and writes them
// as WebDataset tar shards, the way users' pipelines do: a single-channel PNG
// label with ignore pixels along region boundaries, float16 class
// probabilities in a .npy file (classes first), and a JSON metadata member.
// The bundled sample dataset, the tests and the benchmarks are made with it.
package synth

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"

	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/npy"
)

// Options shape the generated images.
type Options struct {
	Classes       int
	Height, Width int
	// Regions is the number of Voronoi regions an image is split into, each
	// with one class.
	Regions int
	// Ignore is the label of boundary pixels; negative for none.
	Ignore int32
	// Confidence is the logit added to the predicted class; larger makes a
	// better model. Some regions are predicted as a wrong class.
	Confidence float64
	// WrongRegions is the fraction of regions the model gets wrong.
	WrongRegions float64
}

// Image is one generated sample.
type Image struct {
	Key           string
	Height, Width int
	Classes       int
	Labels        []int32   // H*W
	Probs         []float32 // C*H*W, classes first
	Meta          map[string]any
}

var (
	weathers = []string{"clear", "rain", "fog", "night"}
	cities   = []string{"aachen", "bremen", "cologne", "dresden"}
)

// NewImage draws one image; the same key, options and seed give the same
// image.
func NewImage(key string, opt Options, seed uint64) Image {
	r := rand.New(rand.NewPCG(seed, 0x5e9e7a1))
	h, w, c := opt.Height, opt.Width, opt.Classes
	p := h * w
	type region struct {
		y, x         float64
		label, guess int32
	}
	regions := make([]region, max(opt.Regions, 1))
	for i := range regions {
		reg := region{y: r.Float64() * float64(h), x: r.Float64() * float64(w), label: int32(r.IntN(c))}
		reg.guess = reg.label
		if r.Float64() < opt.WrongRegions {
			reg.guess = int32(r.IntN(c))
		}
		regions[i] = reg
	}
	owner := make([]int32, p)
	for y := range h {
		for x := range w {
			best, bestD := 0, math.Inf(1)
			for i, reg := range regions {
				dy, dx := float64(y)-reg.y, float64(x)-reg.x
				if d := dy*dy + dx*dx; d < bestD {
					best, bestD = i, d
				}
			}
			owner[y*w+x] = int32(best)
		}
	}
	im := Image{Key: key, Height: h, Width: w, Classes: c, Labels: make([]int32, p), Probs: make([]float32, c*p)}
	for i, o := range owner {
		im.Labels[i] = regions[o].label
		y, x := i/w, i%w
		boundary := x+1 < w && owner[i+1] != o || y+1 < h && owner[i+w] != o
		if opt.Ignore >= 0 && boundary {
			im.Labels[i] = opt.Ignore
		}
		guess := regions[o].guess
		for k := range c {
			logit := r.NormFloat64()
			if int32(k) == guess {
				logit += opt.Confidence
			}
			im.Probs[k*p+i] = float32(logit)
		}
	}
	probs, err := lovasz.NewEvaluator().Softmax(im.Probs, c, im.Probs)
	if err != nil {
		panic(fmt.Sprintf("synth: softmax of generated logits: %v", err)) // finite by construction
	}
	im.Probs = probs
	im.Meta = map[string]any{"weather": weathers[r.IntN(len(weathers))], "city": cities[r.IntN(len(cities))]}
	return im
}

// RoundToFloat16 rounds the probabilities to float16 precision, as they are
// stored, so that in-memory images equal what a reader decodes.
func (im *Image) RoundToFloat16() {
	for i, v := range im.Probs {
		im.Probs[i] = npy.Float16ToFloat32(npy.Float32ToFloat16(v))
	}
}

// ShardWriter writes samples into one tar shard.
type ShardWriter struct {
	tw *tar.Writer
}

// NewShardWriter starts a shard on w.
func NewShardWriter(w io.Writer) *ShardWriter {
	return &ShardWriter{tw: tar.NewWriter(w)}
}

// Write adds one sample: KEY.label.png, KEY.probs.npy (float16) and
// KEY.json.
func (sw *ShardWriter) Write(im Image) error {
	labelPNG, err := EncodeLabelPNG(im.Labels, im.Height, im.Width)
	if err != nil {
		return fmt.Errorf("sample %s: %w", im.Key, err)
	}
	var probs bytes.Buffer
	if err := npy.Write(&probs, "<f2", []int{im.Classes, im.Height, im.Width}, im.Probs); err != nil {
		return fmt.Errorf("sample %s: %w", im.Key, err)
	}
	meta, err := json.Marshal(im.Meta)
	if err != nil {
		return fmt.Errorf("sample %s: %w", im.Key, err)
	}
	for _, m := range []struct {
		field string
		data  []byte
	}{{"label.png", labelPNG}, {"probs.npy", probs.Bytes()}, {"json", meta}} {
		if err := sw.Member(im.Key+"."+m.field, m.data); err != nil {
			return err
		}
	}
	return nil
}

// Member adds one file to the shard.
func (sw *ShardWriter) Member(name string, data []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := sw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("member %s: %w", name, err)
	}
	if _, err := sw.tw.Write(data); err != nil {
		return fmt.Errorf("member %s: %w", name, err)
	}
	return nil
}

// Close finishes the shard.
func (sw *ShardWriter) Close() error { return sw.tw.Close() }

// EncodeLabelPNG encodes labels as an 8-bit grayscale PNG (16-bit when a
// label exceeds 255).
func EncodeLabelPNG(labels []int32, height, width int) ([]byte, error) {
	wide := false
	for _, l := range labels {
		if l < 0 || l > math.MaxUint16 {
			return nil, fmt.Errorf("label %d does not fit a PNG", l)
		}
		wide = wide || l > 255
	}
	rect := image.Rect(0, 0, width, height)
	var img image.Image
	if wide {
		g := image.NewGray16(rect)
		for i, l := range labels {
			g.Pix[2*i], g.Pix[2*i+1] = byte(l>>8), byte(l)
		}
		img = g
	} else {
		g := image.NewGray(rect)
		for i, l := range labels {
			g.Pix[i] = byte(l)
		}
		img = g
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
