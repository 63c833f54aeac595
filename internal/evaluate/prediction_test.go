package evaluate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/sample"
)

// TestPredictionAt compares PredictionAt, for each kind of prediction, with
// the class map of every pixel its metrics are computed from, at the same
// pixels.
func TestPredictionAt(t *testing.T) {
	const classes = 5
	probs := probsImage("p", classes, 3)
	h, w := probs.Height, probs.Width
	p := h * w
	half := make([]uint16, len(probs.Scores))
	halfValues := make([]float32, len(probs.Scores)) // the float32 values of half
	logits := make([]float32, len(probs.Scores))
	for i, v := range probs.Scores {
		half[i] = npy.Float32ToFloat16(v)
		halfValues[i] = npy.Float16ToFloat32(half[i])
		logits[i] = float32(math.Log(float64(v))) // negative
	}
	binary := slices.Clone(logits[:p])
	for i := range binary {
		binary[i] += 2.5 // some positive
	}
	// Raw ids 7 and 26 are classes 0 and 4 after the prediction map.
	predMap := []byte(`{"7": 0, "26": 4, "255": 255}`)
	stored, mapped := make([]int32, p), make([]int32, p)
	for i := range stored {
		stored[i], mapped[i] = 7, 0
		if i%3 == 1 {
			stored[i], mapped[i] = 26, 4
		}
	}
	must := func(m []int32, err error) []int32 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(m)
	}
	tests := []struct {
		name string
		opt  func(*Options)
		// img is a new image each time: PredictionAt remaps it.
		img func() *sample.Image
		// want is the class map of every pixel.
		want []int32
	}{{
		name: "probabilities",
		img:  func() *sample.Image { return probs },
		want: must(lovasz.NewEvaluator().Argmax(probs.Scores, classes, w)),
	}, {
		name: "float16 bits",
		img: func() *sample.Image {
			return &sample.Image{Height: h, Width: w, Labels: probs.Labels, Prediction: sample.Probs, Classes: classes, Half: half}
		},
		want: must(lovasz.NewEvaluator().Argmax(halfValues, classes, w)),
	}, {
		name: "logits",
		img: func() *sample.Image {
			return &sample.Image{Height: h, Width: w, Labels: probs.Labels, Prediction: sample.Logits, Classes: classes, Scores: logits}
		},
		want: must(lovasz.NewEvaluator().Argmax(logits, classes, w)),
	}, {
		name: "binary logits",
		opt:  func(o *Options) { o.Mode = Binary },
		img: func() *sample.Image {
			return &sample.Image{Height: h, Width: w, Labels: probs.Labels, Prediction: sample.Logits, Classes: 1, Scores: binary}
		},
		want: lovasz.BinaryPrediction(binary, nil),
	}, {
		name: "stored map, remapped",
		opt:  func(o *Options) { o.Classes, o.PredMap = classes, predMap },
		img: func() *sample.Image {
			return &sample.Image{Height: h, Width: w, Labels: probs.Labels, Prediction: sample.ArgmaxMap, Pred: slices.Clone(stored)}
		},
		want: mapped,
	}}
	r := rand.New(rand.NewPCG(1, 1))
	random := make([]int, p/4)
	for k := range random {
		random[k] = r.IntN(p)
	}
	all := make([]int, p)
	for i := range all {
		all[i] = i
	}
	for _, tt := range tests {
		for name, pixels := range map[string][]int{"none": {}, "all": all, "random": random} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				opt := options()
				if tt.opt != nil {
					tt.opt(&opt)
				}
				got, gotClasses, err := NewEvaluator(opt).PredictionAt(tt.img(), pixels)
				if err != nil {
					t.Fatal(err)
				}
				wantClasses := classes
				if opt.Mode == Binary {
					wantClasses = 2
				}
				if gotClasses != wantClasses {
					t.Errorf("%d classes, want %d", gotClasses, wantClasses)
				}
				want := make([]int32, len(pixels))
				for k, i := range pixels {
					want[k] = tt.want[i]
				}
				if !slices.Equal(got, want) {
					t.Errorf("got %v\nwant %v", got[:min(len(got), 20)], want[:min(len(want), 20)])
				}
			})
		}
	}
}

// TestPredictionAtErrors checks that a NaN is an error only at a listed
// pixel, and that a pixel outside the image is an error for every kind of
// prediction.
func TestPredictionAtErrors(t *testing.T) {
	const classes = 3
	probs := probsImage("p", classes, 5)
	p := probs.Height * probs.Width
	nan := slices.Clone(probs.Scores)
	nan[p+17] = float32(math.NaN()) // class 1, pixel 17
	tests := []struct {
		name   string
		img    *sample.Image
		pixels []int
		want   string // "" for none
	}{
		{"NaN at a listed pixel", &sample.Image{Height: probs.Height, Width: probs.Width, Labels: probs.Labels, Prediction: sample.Probs, Classes: classes, Scores: nan}, []int{3, 17}, "score NaN of class 1 at pixel (1, 7)"},
		{"NaN elsewhere", &sample.Image{Height: probs.Height, Width: probs.Width, Labels: probs.Labels, Prediction: sample.Probs, Classes: classes, Scores: nan}, []int{3, 16, 18}, ""},
		{"pixel past the scores", probs, []int{p}, "outside"},
		{"pixel past the class map", &sample.Image{Height: probs.Height, Width: probs.Width, Labels: probs.Labels, Prediction: sample.ArgmaxMap, Pred: make([]int32, p)}, []int{0, p}, "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := options()
			opt.Classes = classes
			_, _, err := NewEvaluator(opt).PredictionAt(tt.img, tt.pixels)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}
