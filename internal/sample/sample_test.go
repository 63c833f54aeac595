package sample

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"cmp"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/shard"
)

var (
	testLimits  = Limits{MaxPixels: 1 << 16, MaxClasses: 8, MaxMemberBytes: 1 << 20}
	testOptions = Options{Limits: testLimits}
)

func npyFile(t *testing.T, descr string, shape []int, data any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := npy.Write(&buf, descr, shape, data); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pngFile(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// grayPNG encodes an 8-bit grayscale PNG of the given size and pixels.
func grayPNG(t *testing.T, h, w int, pix ...uint8) []byte {
	return pngFile(t, &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)})
}

// palettePNG encodes an 8-bit palette PNG whose indexes are pix.
func palettePNG(t *testing.T, h, w int, pix ...uint8) []byte {
	palette := color.Palette{}
	for i := range 256 {
		palette = append(palette, color.RGBA{uint8(i), 0, uint8(255 - i), 255})
	}
	return pngFile(t, &image.Paletted{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h), Palette: palette})
}

func newSample(key string, fields map[string][]byte) *shard.Sample {
	return &shard.Sample{Key: key, Fields: fields}
}

// npzFile writes an .npz archive of one array with archive/zip, as numpy's
// savez (method zip.Store) or savez_compressed (zip.Deflate) would.
func npzFile(t *testing.T, method uint16, array string, npyData []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: array + ".npy", Method: method})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(npyData); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	// A 2x3 label map and predictions for it.
	label := grayPNG(t, 2, 3, 0, 1, 2, 2, 1, 255)
	wantLabels := []int32{0, 1, 2, 2, 1, 255}
	scores := []float32{ // 2 classes, class-major
		0.5, 0.25, 0.125, 1, 0, -2,
		0.5, 0.75, 0.875, 0, 1, 3,
	}
	hwc := []float32{ // the same scores channels-last: pixel by pixel
		0.5, 0.5, 0.25, 0.75, 0.125, 0.875,
		1, 0, 0, 1, -2, 3,
	}
	hwcOpt := Options{Limits: testLimits, Layout: HWC}
	tests := []struct {
		name   string
		fields map[string][]byte
		opt    Options // testOptions if zero
		want   Image
	}{
		{
			name: "float16 probs with label.png",
			fields: map[string][]byte{
				"label.png": label,
				"probs.npy": npyFile(t, "<f2", []int{2, 2, 3}, scores),
				"jpg":       []byte("not decoded"),
			},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Probs, Classes: 2, Scores: scores},
		},
		{
			name: "float32 logits [1,C,H,W] with label.npy",
			fields: map[string][]byte{
				"label.npy":  npyFile(t, "<i8", []int{2, 3}, []int64{0, 1, 2, 2, 1, 255}),
				"logits.npy": npyFile(t, "<f4", []int{1, 2, 2, 3}, scores),
			},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 2, Scores: scores},
		},
		{
			name: "float64 probs",
			fields: map[string][]byte{
				"label.png": label,
				"probs.npy": npyFile(t, "<f8", []int{2, 2, 3}, []float64{0.5, 0.25, 0.125, 1, 0, -2, 0.5, 0.75, 0.875, 0, 1, 3}),
			},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Probs, Classes: 2, Scores: scores},
		},
		{
			name: "binary logits [H,W]",
			fields: map[string][]byte{
				"label.png":  label,
				"logits.npy": npyFile(t, "<f4", []int{2, 3}, scores[:6]),
			},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 1, Scores: scores[:6]},
		},
		{
			name: "binary logits [1,H,W]",
			fields: map[string][]byte{
				"label.png":  label,
				"logits.npy": npyFile(t, "<f4", []int{1, 2, 3}, scores[:6]),
			},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 1, Scores: scores[:6]},
		},
		{
			name: "float32 probs [H,W,C]",
			fields: map[string][]byte{
				"label.png": label,
				"probs.npy": npyFile(t, "<f4", []int{2, 3, 2}, hwc),
			},
			opt:  hwcOpt,
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Probs, Classes: 2, Scores: scores},
		},
		{
			name: "float16 logits [1,H,W,C]",
			fields: map[string][]byte{
				"label.png":  label,
				"logits.npy": npyFile(t, "<f2", []int{1, 2, 3, 2}, hwc),
			},
			opt:  hwcOpt,
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 2, Scores: scores},
		},
		{
			name: "binary logits [H,W,1]",
			fields: map[string][]byte{
				"label.png":  label,
				"logits.npy": npyFile(t, "<f4", []int{2, 3, 1}, scores[:6]),
			},
			opt:  hwcOpt,
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 1, Scores: scores[:6]},
		},
		{
			name: "binary logits [H,W] in layout hwc",
			fields: map[string][]byte{
				"label.png":  label,
				"logits.npy": npyFile(t, "<f4", []int{2, 3}, scores[:6]),
			},
			opt:  hwcOpt,
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 1, Scores: scores[:6]},
		},
		{
			name: "logits.npz deflated, named",
			fields: map[string][]byte{
				"label.png":  label,
				"logits.npz": npzFile(t, zip.Deflate, "logits", npyFile(t, "<f4", []int{2, 2, 3}, scores)),
			},
			opt:  Options{Limits: testLimits, NPZKey: "logits"},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Logits, Classes: 2, Scores: scores},
		},
		{
			name: "probs.npz stored, [H,W,C]",
			fields: map[string][]byte{
				"label.png": label,
				"probs.npz": npzFile(t, zip.Store, "arr_0", npyFile(t, "<f2", []int{2, 3, 2}, hwc)),
			},
			opt:  hwcOpt,
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: Probs, Classes: 2, Scores: scores},
		},
		{
			name: "pred.png",
			fields: map[string][]byte{
				"label.png": label,
				"pred.png":  palettePNG(t, 2, 3, 0, 1, 1, 2, 7, 255),
			},
			want: Image{Height: 2, Width: 3, Labels: wantLabels, Prediction: ArgmaxMap, Pred: []int32{0, 1, 1, 2, 7, 255}},
		},
		{
			name: "pred.npy with metadata",
			fields: map[string][]byte{
				"label.npy": npyFile(t, "|u1", []int{2, 3}, []uint8{0, 1, 2, 2, 1, 255}),
				"pred.npy":  npyFile(t, "<i4", []int{2, 3}, []int32{2, 1, 0, 0, 1, 2}),
				"json":      []byte(`{"source": "val", "scale": 0.5, "crop": [1, 2]}`),
			},
			want: Image{
				Height: 2, Width: 3, Labels: wantLabels, Prediction: ArgmaxMap, Pred: []int32{2, 1, 0, 0, 1, 2},
				Meta: map[string]any{"source": "val", "scale": 0.5, "crop": []any{1.0, 2.0}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := tt.opt
			if opt == (Options{}) {
				opt = testOptions
			}
			var d Decoder
			img, err := d.Decode(newSample("a/img1", tt.fields), "gs://b/x.tar", opt)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.want.Key = "a/img1"
			if !reflect.DeepEqual(*img, tt.want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", *img, tt.want)
			}
		})
	}
}

func TestDecodeReusesBuffers(t *testing.T) {
	for _, layout := range []Layout{CHW, HWC} {
		t.Run(string(layout), func(t *testing.T) {
			opt := Options{Limits: testLimits, Layout: layout}
			shape := []int{3, 2, 2}
			if layout == HWC {
				shape = []int{2, 2, 3}
			}
			sampleOf := func(seed uint8) *shard.Sample {
				return newSample("img", map[string][]byte{
					"label.png": grayPNG(t, 2, 2, seed, 1, 2, 3),
					"probs.npy": npyFile(t, "<f4", shape, []float32{float32(seed), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}),
				})
			}
			var d Decoder
			first, err := d.Decode(sampleOf(0), "s", opt)
			if err != nil {
				t.Fatal(err)
			}
			second, err := d.Decode(sampleOf(9), "s", opt)
			if err != nil {
				t.Fatal(err)
			}
			if &first.Labels[0] != &second.Labels[0] || &first.Scores[0] != &second.Scores[0] {
				t.Error("second Decode did not reuse the first one's Labels and Scores")
			}
			if second.Labels[0] != 9 || first.Labels[0] != 9 || second.Scores[0] != 9 || first.Scores[0] != 9 {
				t.Errorf("Labels[0], Scores[0] = %d, %g in the first image and %d, %g in the second; want 9, 9 (the second sample's) in both",
					first.Labels[0], first.Scores[0], second.Labels[0], second.Scores[0])
			}
			// A failed prediction must not cost the buffers.
			bad := newSample("img", map[string][]byte{
				"label.png": grayPNG(t, 2, 2, 0, 1, 2, 3),
				"probs.npy": []byte("corrupt"),
			})
			if _, err := d.Decode(bad, "s", opt); err == nil {
				t.Fatal("Decode of a corrupt probs.npy succeeded")
			}
			third, err := d.Decode(sampleOf(1), "s", opt)
			if err != nil {
				t.Fatal(err)
			}
			if &first.Scores[0] != &third.Scores[0] {
				t.Error("Decode after a failure did not reuse Scores")
			}
		})
	}
}

// TestDecodeHWCAllocs checks that, once its buffers are warm, a Decoder
// transposes channels-last scores without allocating: decoding them costs
// the same allocations as decoding channels-first scores of the same size.
func TestDecodeHWCAllocs(t *testing.T) {
	label := grayPNG(t, 16, 16, make([]uint8, 256)...)
	shapes := map[Layout][]int{CHW: {8, 16, 16}, HWC: {16, 16, 8}}
	allocs := make(map[Layout]float64)
	for _, layout := range []Layout{CHW, HWC} {
		probs := npyFile(t, "<f2", shapes[layout], make([]float32, 16*16*8))
		s := newSample("img", map[string][]byte{"label.png": label, "probs.npy": probs})
		opt := Options{Limits: testLimits, Layout: layout}
		var d Decoder
		allocs[layout] = testing.AllocsPerRun(20, func() {
			if _, err := d.Decode(s, "s", opt); err != nil {
				t.Fatal(err)
			}
		})
	}
	if allocs[HWC] != allocs[CHW] {
		t.Errorf("Decode allocates %g times per hwc sample, %g per chw sample", allocs[HWC], allocs[CHW])
	}
}

func TestDecodeErrors(t *testing.T) {
	label := grayPNG(t, 2, 3, 0, 1, 2, 2, 1, 0)
	probs := npyFile(t, "<f4", []int{2, 2, 3}, make([]float32, 12))
	tests := []struct {
		name       string
		fields     map[string][]byte
		opt        Options // with testLimits if its Limits are zero
		wantMember string  // "" for errors about the whole sample
		wantErr    string
	}{
		{
			name:    "missing label",
			fields:  map[string][]byte{"probs.npy": probs, "jpg": nil},
			wantErr: "missing label: want one of label.png, label.npy; sample has jpg, probs.npy",
		},
		{
			name:    "missing prediction",
			fields:  map[string][]byte{"label.png": label},
			wantErr: "missing prediction: want one of probs.npy, probs.npz, logits.npy, logits.npz, pred.png, pred.npy; sample has label.png",
		},
		{
			name:    "two predictions",
			fields:  map[string][]byte{"label.png": label, "probs.npy": probs, "pred.png": label},
			wantErr: "more than one prediction: probs.npy and pred.png",
		},
		{
			name:    "two labels",
			fields:  map[string][]byte{"label.png": label, "label.npy": nil, "probs.npy": probs},
			wantErr: "more than one label: label.png and label.npy",
		},
		{
			name:       "size mismatch",
			fields:     map[string][]byte{"label.png": label, "probs.npy": npyFile(t, "<f4", []int{2, 3, 2}, make([]float32, 12))},
			wantMember: "img1.probs.npy",
			wantErr:    "prediction is 3x2 (HxW) in layout chw but label img1.label.png is 2x3",
		},
		{
			name:       "pred.png size mismatch",
			fields:     map[string][]byte{"label.png": label, "pred.png": grayPNG(t, 3, 2, 0, 0, 0, 0, 0, 0)},
			wantMember: "img1.pred.png",
			wantErr:    "prediction is 3x2 (HxW) but label img1.label.png is 2x3",
		},
		{
			name:       "too many classes",
			fields:     map[string][]byte{"label.png": label, "logits.npy": npyFile(t, "<f4", []int{9, 2, 3}, make([]float32, 54))},
			wantMember: "img1.logits.npy",
			wantErr:    "9 classes, want 1 to 8",
		},
		{
			name:       "zero classes",
			fields:     map[string][]byte{"label.png": label, "probs.npy": npyFile(t, "<f4", []int{0, 2, 3}, []float32{})},
			wantMember: "img1.probs.npy",
			wantErr:    "0 classes, want 1 to 8",
		},
		{
			name:       "too many pixels in label.png",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs},
			opt:        Options{Limits: Limits{MaxPixels: 5, MaxClasses: 8, MaxMemberBytes: 1 << 20}},
			wantMember: "img1.label.png",
			wantErr:    "2x3 (HxW) image has 6 pixels, more than the limit of 5",
		},
		{
			name:       "too many pixels in label.npy",
			fields:     map[string][]byte{"label.npy": npyFile(t, "<i4", []int{2, 3}, make([]int32, 6)), "probs.npy": probs},
			opt:        Options{Limits: Limits{MaxPixels: 5, MaxClasses: 8, MaxMemberBytes: 1 << 20}},
			wantMember: "img1.label.npy",
			wantErr:    "2x3 (HxW) image has more than the limit of 5 pixels",
		},
		{
			name:       "too many pixels in probs.npy",
			fields:     map[string][]byte{"label.png": grayPNG(t, 1, 1, 0), "probs.npy": headerOnlyNPY("<f4", "(1, 1048576, 1048576)")},
			wantMember: "img1.probs.npy",
			wantErr:    "1048576x1048576 (HxW) image has more than the limit of 65536 pixels",
		},
		{
			name:       "member too large",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs},
			opt:        Options{Limits: Limits{MaxPixels: 1 << 16, MaxClasses: 8, MaxMemberBytes: int64(len(probs) - 1)}},
			wantMember: "img1.probs.npy",
			wantErr:    "bytes exceeds the limit of",
		},
		{
			name:       "2-D probs",
			fields:     map[string][]byte{"label.png": label, "probs.npy": npyFile(t, "<f4", []int{2, 3}, make([]float32, 6))},
			wantMember: "img1.probs.npy",
			wantErr:    "shape [2 3], want [C,H,W] or [1,C,H,W]",
		},
		{
			name:       "batch of two logits",
			fields:     map[string][]byte{"label.png": label, "logits.npy": npyFile(t, "<f4", []int{2, 1, 2, 3}, make([]float32, 12))},
			wantMember: "img1.logits.npy",
			wantErr:    "shape [2 1 2 3], want [C,H,W], [1,C,H,W] or, for binary logits, [H,W]",
		},
		{
			name:       "3-D label.npy",
			fields:     map[string][]byte{"label.npy": npyFile(t, "<i4", []int{1, 2, 3}, make([]int32, 6)), "probs.npy": probs},
			wantMember: "img1.label.npy",
			wantErr:    "shape [1 2 3], want [H,W]",
		},
		{
			name:       "empty pred.npy",
			fields:     map[string][]byte{"label.png": label, "pred.npy": npyFile(t, "<i4", []int{0, 3}, []int32{})},
			wantMember: "img1.pred.npy",
			wantErr:    "empty 0x3 (HxW) image",
		},
		{
			name:       "float label.npy",
			fields:     map[string][]byte{"label.npy": npyFile(t, "<f4", []int{2, 3}, make([]float32, 6)), "probs.npy": probs},
			wantMember: "img1.label.npy",
			wantErr:    `npy: dtype "<f4" is not an integer type`,
		},
		{
			name:       "integer probs",
			fields:     map[string][]byte{"label.png": label, "probs.npy": npyFile(t, "<i4", []int{2, 2, 3}, make([]int32, 12))},
			wantMember: "img1.probs.npy",
			wantErr:    `npy: dtype "<i4" is not a floating-point type`,
		},
		{
			name:       "truncated probs.npy",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs[:len(probs)-1]},
			wantMember: "img1.probs.npy",
			wantErr:    "needs 48 data bytes, file has 47",
		},
		{
			name:       "color label",
			fields:     map[string][]byte{"label.png": pngFile(t, image.NewNRGBA(image.Rect(0, 0, 3, 2))), "probs.npy": probs},
			wantMember: "img1.label.png",
			wantErr:    "labels must be single-channel class ids",
		},
		{
			name:       "corrupt label.png",
			fields:     map[string][]byte{"label.png": label[:40], "probs.npy": probs},
			wantMember: "img1.label.png",
			wantErr:    "labelpng: ",
		},
		{
			name:       "json array",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs, "json": []byte(`[1, 2]`)},
			wantMember: "img1.json",
			wantErr:    "metadata must be a JSON object: json: cannot unmarshal array",
		},
		{
			name:       "json null",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs, "json": []byte(`null`)},
			wantMember: "img1.json",
			wantErr:    "metadata must be a JSON object, not null",
		},
		{
			name:       "invalid json",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs, "json": []byte(`{"a": `)},
			wantMember: "img1.json",
			wantErr:    "metadata must be a JSON object: unexpected end of JSON input",
		},
		{
			name:       "probs.npz of several arrays, no key",
			fields:     map[string][]byte{"label.npy": fixture(t, "label.npy"), "probs.npz": fixture(t, "probs_two.npz")},
			wantMember: "img1.probs.npz",
			wantErr:    "npz: the archive holds more than one array: logits, softmax; name the one to read",
		},
		{
			name:       "probs.npz without the key",
			fields:     map[string][]byte{"label.npy": fixture(t, "label.npy"), "probs.npz": fixture(t, "probs_softmax.npz")},
			opt:        Options{NPZKey: "probabilities"},
			wantMember: "img1.probs.npz",
			wantErr:    `npz: no array named "probabilities"; the archive holds softmax`,
		},
		{
			name:       "probs.npz not a zip",
			fields:     map[string][]byte{"label.png": label, "probs.npz": probs},
			wantMember: "img1.probs.npz",
			wantErr:    "npz: reading the archive: zip: not a valid zip file",
		},
		{
			name:       "zip bomb",
			fields:     map[string][]byte{"label.png": label, "logits.npz": npzFile(t, zip.Deflate, "arr_0", make([]byte, 1<<20))},
			opt:        Options{Limits: Limits{MaxPixels: 1 << 16, MaxClasses: 8, MaxMemberBytes: 1 << 16}},
			wantMember: "img1.logits.npz",
			wantErr:    "npz: member arr_0.npy: declared size 1048576 bytes exceeds the limit of 65536",
		},
		{
			name:       "probs.npz of a 2-D array",
			fields:     map[string][]byte{"label.png": label, "probs.npz": npzFile(t, zip.Deflate, "softmax", npyFile(t, "<f4", []int{2, 3}, make([]float32, 6)))},
			wantMember: "img1.probs.npz",
			wantErr:    "array softmax: shape [2 3], want [C,H,W] or [1,C,H,W]",
		},
		{
			name:       "probs.npz of integers",
			fields:     map[string][]byte{"label.png": label, "probs.npz": npzFile(t, zip.Store, "arr_0", npyFile(t, "<i4", []int{2, 2, 3}, make([]int32, 12)))},
			wantMember: "img1.probs.npz",
			wantErr:    `array arr_0: npy: dtype "<i4" is not a floating-point type`,
		},
		{
			name:       "2-D probs in layout hwc",
			fields:     map[string][]byte{"label.png": label, "probs.npy": npyFile(t, "<f4", []int{2, 3}, make([]float32, 6))},
			opt:        Options{Layout: HWC},
			wantMember: "img1.probs.npy",
			wantErr:    "shape [2 3], want [H,W,C] or [1,H,W,C]",
		},
		{
			name:       "batch of two logits in layout hwc",
			fields:     map[string][]byte{"label.png": label, "logits.npy": npyFile(t, "<f4", []int{2, 2, 3, 1}, make([]float32, 12))},
			opt:        Options{Layout: HWC},
			wantMember: "img1.logits.npy",
			wantErr:    "shape [2 2 3 1], want [H,W,C], [1,H,W,C] or, for binary logits, [H,W]",
		},
		{
			// [2,2,3] read channels-last is 2x2 with 3 classes.
			name:       "chw file read as hwc",
			fields:     map[string][]byte{"label.png": label, "probs.npy": probs},
			opt:        Options{Layout: HWC},
			wantMember: "img1.probs.npy",
			wantErr:    "prediction is 2x2 (HxW) in layout hwc but label img1.label.png is 2x3",
		},
		{
			name:       "too many classes in layout hwc",
			fields:     map[string][]byte{"label.png": label, "probs.npy": npyFile(t, "<f4", []int{2, 3, 9}, make([]float32, 54))},
			opt:        Options{Layout: HWC},
			wantMember: "img1.probs.npy",
			wantErr:    "9 classes, want 1 to 8",
		},
		{
			name:    "unknown layout",
			fields:  map[string][]byte{"label.png": label, "probs.npy": probs},
			opt:     Options{Layout: "HWC"},
			wantErr: `unknown layout "HWC", want "chw" or "hwc"`,
		},
		{
			name:    "zero limits",
			fields:  map[string][]byte{"label.png": label, "probs.npy": probs},
			opt:     Options{Limits: Limits{MaxPixels: 1 << 16, MaxMemberBytes: 1 << 20}},
			wantErr: "every limit must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := tt.opt
			if opt.Limits == (Limits{}) {
				opt.Limits = testLimits
			}
			var d Decoder
			img, err := d.Decode(newSample("img1", tt.fields), "gs://b/x.tar", opt)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode = %v, %v; want an *Error", img, err)
			}
			if e.Shard != "gs://b/x.tar" || e.Key != "img1" || e.Member != tt.wantMember || !strings.Contains(e.Err.Error(), tt.wantErr) {
				t.Errorf("error = %q\nwant shard gs://b/x.tar, sample img1, member %q and an error containing %q", err, tt.wantMember, tt.wantErr)
			}
			if img != nil {
				t.Errorf("Decode returned an image with the error")
			}
		})
	}
}

// fixture returns a file of testdata, written by numpy (see gen.py).
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeNumPyFiles decodes one 3-class 4x5 float16 probability map as
// numpy saved it channels-first, channels-last, in .npz archives and in
// Fortran order, with its label map in either order: every form must give
// the same Scores and Labels.
func TestDecodeNumPyFiles(t *testing.T) {
	const c, h, w = 3, 4, 5
	want, shape, err := npy.DecodeFloat32(fixture(t, "probs_chw.npy"), npy.Limits{MaxElements: c * h * w}, nil)
	if err != nil || !slices.Equal(shape, []int{c, h, w}) {
		t.Fatalf("probs_chw.npy: shape %v, %v", shape, err)
	}
	// The probabilities of each pixel sum to 1 in class-major order only,
	// so a channels-last file decoded without transposing fails this.
	for p := range h * w {
		if sum := want[p] + want[h*w+p] + want[2*h*w+p]; math.Abs(float64(sum)-1) > 2e-3 {
			t.Fatalf("probs_chw.npy: pixel %d sums to %g", p, sum)
		}
	}
	labels, _, err := npy.DecodeInt32(fixture(t, "label.npy"), npy.Limits{MaxElements: h * w}, nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		field, file string
		opt         Options
		label       string // label.npy when empty
	}{
		{"probs.npy", "probs_chw.npy", Options{}, ""},
		{"probs.npy", "probs_chw.npy", Options{Layout: CHW}, ""},
		{"probs.npy", "probs_hwc.npy", Options{Layout: HWC}, ""},
		{"probs.npy", "probs_hwc_batch.npy", Options{Layout: HWC}, ""},
		{"probs.npz", "probs_stored.npz", Options{}, ""},
		{"probs.npz", "probs_stored.npz", Options{NPZKey: "arr_0"}, ""},
		{"probs.npz", "probs_softmax.npz", Options{}, ""},
		{"probs.npz", "probs_softmax.npz", Options{NPZKey: "softmax"}, ""},
		{"probs.npz", "probs_hwc.npz", Options{Layout: HWC}, ""},
		{"probs.npz", "probs_hwc.npz", Options{Layout: HWC, NPZKey: "probabilities"}, ""},
		{"probs.npz", "probs_two.npz", Options{NPZKey: "softmax"}, ""},
		// Fortran order, as numpy saves Fortran-contiguous arrays.
		{"probs.npy", "probs_chw.npy", Options{}, "label_fortran.npy"},
		{"probs.npy", "probs_chw_fortran.npy", Options{Layout: CHW}, ""},
		{"probs.npy", "probs_chw_fortran.npy", Options{Layout: CHW}, "label_fortran.npy"},
		{"probs.npy", "probs_hwc_fortran.npy", Options{Layout: HWC}, "label_fortran.npy"},
		{"probs.npy", "probs_hwc_batch_fortran.npy", Options{Layout: HWC}, ""},
		{"probs.npz", "probs_softmax_fortran.npz", Options{}, "label_fortran.npy"},
	}
	var d Decoder
	for _, tt := range tests {
		opt := tt.opt
		opt.Limits = testLimits
		label := cmp.Or(tt.label, "label.npy")
		s := newSample("img", map[string][]byte{"label.npy": fixture(t, label), tt.field: fixture(t, tt.file)})
		img, err := d.Decode(s, "s", opt)
		if err != nil {
			t.Errorf("%s and %s with %+v: %v", tt.file, label, tt.opt, err)
			continue
		}
		if img.Prediction != Probs || img.Classes != c || img.Height != h || img.Width != w ||
			!slices.Equal(img.Scores, want) || !slices.Equal(img.Labels, labels) {
			t.Errorf("%s and %s with %+v: Decode = %+v, want the scores of probs_chw.npy and the labels of label.npy", tt.file, label, tt.opt, *img)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		opt  Options
		want string // "" for valid options
	}{
		{Options{Limits: testLimits}, ""},
		{Options{Limits: testLimits, Layout: CHW, NPZKey: "softmax"}, ""},
		{Options{Limits: testLimits, Layout: HWC}, ""},
		{Options{Limits: testLimits, Layout: "nhwc"}, `unknown layout "nhwc", want "chw" or "hwc"`},
		{Options{Limits: Limits{MaxPixels: 1, MaxClasses: 1}}, "every limit must be positive, got {MaxPixels:1 MaxClasses:1 MaxMemberBytes:0}"},
		{Options{Limits: Limits{MaxPixels: 1, MaxClasses: -1, MaxMemberBytes: 1}}, "every limit must be positive"},
	}
	for _, tt := range tests {
		err := tt.opt.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v.Validate() = %v, want nil", tt.opt, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%+v.Validate() = %v, want an error starting with %q", tt.opt, err, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	inner := errors.New("9 classes, want 1 to 8")
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Shard: "gs://b/x.tar", Key: "img1", Member: "img1.probs.npy", Err: inner}, "shard gs://b/x.tar, sample img1, member img1.probs.npy: 9 classes, want 1 to 8"},
		{&Error{Shard: "gs://b/x.tar", Key: "img1", Err: inner}, "shard gs://b/x.tar, sample img1: 9 classes, want 1 to 8"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.err, inner) {
			t.Errorf("%v does not unwrap to its cause", tt.err)
		}
	}
}

// TestDecodeShard decodes the samples of a tar shard written with
// archive/tar and read with package shard.
func TestDecodeShard(t *testing.T) {
	members := []struct {
		name string
		data []byte
	}{
		{"val/img1.jpg", []byte("jpeg bytes")},
		{"val/img1.label.png", grayPNG(t, 1, 2, 1, 0)},
		{"val/img1.probs.npy", npyFile(t, "<f2", []int{2, 1, 2}, []float32{0.25, 0.5, 0.75, 0.5})},
		{"val/img2.label.npy", npyFile(t, "<u2", []int{1, 2}, []uint16{3, 300})},
		{"val/img2.pred.png", grayPNG(t, 1, 2, 3, 4)},
		{"val/img2.json", []byte(`{"id": 2}`)},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	want := []Image{
		{Key: "val/img1", Height: 1, Width: 2, Labels: []int32{1, 0}, Prediction: Probs, Classes: 2, Scores: []float32{0.25, 0.5, 0.75, 0.5}},
		{Key: "val/img2", Height: 1, Width: 2, Labels: []int32{3, 300}, Prediction: ArgmaxMap, Pred: []int32{3, 4}, Meta: map[string]any{"id": 2.0}},
	}
	r := shard.NewReader(&buf, "mem.tar", shard.Limits{MaxMemberBytes: 1 << 20})
	var d Decoder
	for i := 0; ; i++ {
		s, err := r.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Errorf("decoded %d samples, want %d", i, len(want))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		img, err := d.Decode(s, "mem.tar", testOptions)
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(want) || !reflect.DeepEqual(*img, want[i]) {
			t.Errorf("sample %d = %+v", i, *img)
		}
	}
}

// headerOnlyNPY returns a version 1.0 .npy header declaring a shape, with no
// data: a file that lies about its size.
func headerOnlyNPY(descr, shape string) []byte {
	dict := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }\n"
	return append([]byte{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, byte(len(dict)), 0}, dict...)
}
