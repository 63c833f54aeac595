package lovasz

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// pixelLists are the pixel lists the argmax at pixels is tried at on an
// image of p pixels: none, every pixel, and random ones, unsorted and with
// repeats.
func pixelLists(p int, r *rand.Rand) map[string][]int {
	random := make([]int, 1+p/3)
	for k := range random {
		random[k] = r.IntN(p)
	}
	all := make([]int, p)
	for i := range all {
		all[i] = i
	}
	sorted := slices.Sorted(slices.Values(random))
	return map[string][]int{
		"none":   {},
		"all":    all,
		"random": random,
		"sorted": sorted,
		"last":   {p - 1, 0, p - 1},
	}
}

// at is full[i] at each of pixels.
func at(full []int32, pixels []int) []int32 {
	out := make([]int32, len(pixels))
	for k, i := range pixels {
		out[k] = full[i]
	}
	return out
}

// TestArgmaxAtMatchesFullMap compares ArgmaxHalfAt and ArgmaxAt with
// Argmax's full map, of the float32 values of the same bits, at the same
// pixels: ties, signed zeros, negative values (logits), infinities, and
// images of several thousand pixels.
func TestArgmaxAtMatchesFullMap(t *testing.T) {
	cases := halfCases()
	inf := halfCase{name: "infinities", classes: 2, h: 1, w: 3}
	inf.probs = []uint16{0x7c00, 0xfc00, 0x3c00, 0x3c00, 0x7c00, 0xfc00} // +inf, -inf, 1 / 1, +inf, -inf
	negative := halfCase{name: "negative", classes: 4, h: 30, w: 41}
	r := rand.New(rand.NewPCG(3, 5))
	for range negative.classes * negative.h * negative.w {
		negative.probs = append(negative.probs, 0x8000|uint16(r.IntN(0x7c00))) // -0 to the largest negative finite
	}
	cases = append(cases, inf, negative)
	for _, tc := range cases {
		wantHalf, err := NewEvaluator().Argmax(fromHalf(tc.probs), tc.classes, tc.w)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		scores := fromHalf(tc.probs)
		for i := range scores {
			scores[i] = scores[i]*3 - 1 // logits, most of them negative; ties stay ties
		}
		want, err := NewEvaluator().Argmax(scores, tc.classes, tc.w)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for name, pixels := range pixelLists(tc.h*tc.w, r) {
			got, err := ArgmaxHalfAt(tc.probs, tc.classes, tc.w, pixels, []int32{7, 7})
			if err != nil {
				t.Fatalf("%s, %s pixels: ArgmaxHalfAt: %v", tc.name, name, err)
			}
			if want := at(wantHalf, pixels); !slices.Equal(got, want) {
				t.Errorf("%s, %s pixels: ArgmaxHalfAt = %v\nwant %v", tc.name, name, got[:min(len(got), 20)], want[:min(len(want), 20)])
			}
			got, err = ArgmaxAt(scores, tc.classes, tc.w, pixels, nil)
			if err != nil {
				t.Fatalf("%s, %s pixels: ArgmaxAt: %v", tc.name, name, err)
			}
			if want := at(want, pixels); !slices.Equal(got, want) {
				t.Errorf("%s, %s pixels: ArgmaxAt = %v\nwant %v", tc.name, name, got[:min(len(got), 20)], want[:min(len(want), 20)])
			}
		}
	}
}

// TestArgmaxAtNaN checks that a NaN at a listed pixel is reported as the
// full map's argmax reports it when it holds no other, the lowest class
// first, and that a NaN at an unlisted pixel is not read.
func TestArgmaxAtNaN(t *testing.T) {
	const classes, h, w = 3, 4, 5
	const p = h * w
	tests := []struct {
		name    string
		nan     uint16
		at      []int // indices into probs
		pixels  []int
		wantErr bool
	}{
		{"listed", 0x7e00, []int{p + 7}, []int{3, 7, 9}, true},
		{"lower class at a later pixel", 0x7e00, []int{2*p + 3, p + 9}, []int{9, 3}, true},
		{"lowest pixel of the class, listed last", 0xfe01, []int{p + 9, p + 3}, []int{9, 3}, true},
		{"class 0", 0x7c01, []int{6}, []int{6}, true},
		{"unlisted", 0x7e00, []int{p + 8, 2*p + 1}, []int{0, 7, 9, 19}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := make([]uint16, classes*p)
			for i := range probs {
				probs[i] = uint16(i * 97 % 0x3c00) // distinct values in [0, 1)
			}
			for _, i := range tt.at {
				probs[i] = tt.nan
			}
			listed := probs
			if !tt.wantErr {
				// The reference on the same image without its NaNs.
				listed = slices.Clone(probs)
				for _, i := range tt.at {
					listed[i] = 0
				}
			}
			want, wantErr := NewEvaluator().Argmax(fromHalf(listed), classes, w)
			got, err := ArgmaxHalfAt(probs, classes, w, tt.pixels, nil)
			got32, err32 := ArgmaxAt(fromHalf(probs), classes, w, tt.pixels, nil)
			if tt.wantErr {
				if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
					t.Errorf("ArgmaxHalfAt: error %v, want %v", err, wantErr)
				}
				if wantErr == nil || err32 == nil || err32.Error() != wantErr.Error() {
					t.Errorf("ArgmaxAt: error %v, want %v", err32, wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, at(want, tt.pixels)) {
				t.Errorf("ArgmaxHalfAt = %v, %v; want %v", got, err, at(want, tt.pixels))
			}
			if err32 != nil || !slices.Equal(got32, at(want, tt.pixels)) {
				t.Errorf("ArgmaxAt = %v, %v; want %v", got32, err32, at(want, tt.pixels))
			}
		})
	}
}

// TestArgmaxAtBadInput checks that a pixel index outside the image is an
// error, not a value of another class read instead, and that
// ArgmaxHalfAt's tie-breaker is not given more classes than it holds.
func TestArgmaxAtBadInput(t *testing.T) {
	if _, err := ArgmaxHalfAt(make([]uint16, 1<<16+1), 1<<16+1, 1, []int{0}, nil); err == nil || !strings.Contains(err.Error(), "classes") {
		t.Errorf("ArgmaxHalfAt of 1<<16+1 classes: %v, want an error", err)
	}
	const classes, p = 2, 6
	for _, pixels := range [][]int{{0, p}, {-1}} {
		if _, err := ArgmaxHalfAt(make([]uint16, classes*p), classes, 3, pixels, nil); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("ArgmaxHalfAt at %v: %v, want an error", pixels, err)
		}
		if _, err := ArgmaxAt(make([]float32, classes*p), classes, 3, pixels, nil); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("ArgmaxAt at %v: %v, want an error", pixels, err)
		}
		if _, err := BinaryPredictionAt(make([]float32, p), pixels, nil); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("BinaryPredictionAt at %v: %v, want an error", pixels, err)
		}
	}
}

func TestBinaryPredictionAt(t *testing.T) {
	logits := []float32{-1, 0, float32(math.Copysign(0, -1)), 1e-30, 3, float32(math.NaN()), float32(math.Inf(-1))}
	full := BinaryPrediction(logits, nil)
	for name, pixels := range pixelLists(len(logits), rand.New(rand.NewPCG(1, 2))) {
		got, err := BinaryPredictionAt(logits, pixels, []int32{5})
		if err != nil {
			t.Fatalf("%s pixels: %v", name, err)
		}
		if want := at(full, pixels); !slices.Equal(got, want) {
			t.Errorf("%s pixels: got %v, want %v", name, got, want)
		}
	}
}
