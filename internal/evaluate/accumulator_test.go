package evaluate

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
)

func TestLossBin(t *testing.T) {
	last := LossBinCount - 1
	tests := []struct {
		loss float64
		want int
	}{
		{0, 0},
		{math.Copysign(0, -1), 0},
		{-1e-17, 0},
		{math.Inf(-1), 0},
		{0.005, 0},
		{0.01, 1},
		{math.Nextafter(0.01, 0), 0},
		{0.07, 7},  // 0.07*100 is 7.000000000000001
		{0.29, 29}, // 0.29*100 is 28.999999999999996
		{0.57, 57}, // 0.57*100 is 56.99999999999999
		{0.5, 50},
		{0.995, 99},
		{math.Nextafter(1, 0), 99},
		{1, last},
		{1.5, last},
		{1e300, last},
		{math.Inf(1), last},
	}
	for _, tt := range tests {
		if got := LossBin(tt.loss); got != tt.want {
			t.Errorf("LossBin(%v) = %d, want %d", tt.loss, got, tt.want)
		}
	}
	// Every edge i/100 starts bin i; the float64 just below it is in bin
	// i-1.
	for i := 1; i <= last; i++ {
		edge := float64(i) / 100
		if got := LossBin(edge); got != i {
			t.Errorf("LossBin(%v) = %d, want %d", edge, got, i)
		}
		if below, got := math.Nextafter(edge, 0), LossBin(math.Nextafter(edge, 0)); got != i-1 {
			t.Errorf("LossBin(%v) = %d, want %d", below, got, i-1)
		}
	}
}

// Evaluating images counts each defined loss in its bin, in the whole and
// in each slice; images without a loss are left out.
func TestTallyLossBins(t *testing.T) {
	for _, tc := range []encodeCase{
		{name: "multiclass", classes: 5, images: 12, height: 12, width: 10, regions: 4, allIgnored: true, argmaxMap: true},
		{name: "binary", mode: Binary, classes: 2, images: 12, height: 12, width: 10, regions: 3, allIgnored: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEvaluator(tc.options())
			var losses []float64
			add := func(img *sample.Image) {
				res, err := e.Evaluate(img, "s.tar")
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, res.Loss)
			}
			for i := range tc.images {
				add(synthImage(tc, fmt.Sprintf("k%d", i), uint64(i)))
			}
			img := synthImage(tc, "ignored", 99)
			for i := range img.Labels {
				img.Labels[i] = 255
			}
			add(img)
			if tc.argmaxMap {
				add(&sample.Image{Key: "map", Height: img.Height, Width: img.Width, Labels: img.Labels,
					Prediction: sample.ArgmaxMap, Pred: make([]int32, len(img.Labels)), Meta: img.Meta})
			}
			acc, tallies := take(t, e)
			tl := acc.Tally
			if tl.ImagesWithLoss != int64(tc.images) {
				t.Errorf("%d images with a loss, want %d", tl.ImagesWithLoss, tc.images)
			}
			checkLossBins(t, tl.LossBins, losses)
			// Each slicing partitions the images: its slices' bins add
			// up to the whole's.
			for _, fields := range tc.options().SliceBy {
				sum := make([]int64, LossBinCount)
				for key, st := range tallies {
					if field, _ := SplitSliceKey(key); field != strings.Join(fields, "+") {
						continue
					}
					var n int64
					for i, c := range st.LossBins {
						sum[i] += c
						n += c
					}
					if n != st.ImagesWithLoss {
						t.Errorf("slice %q: loss bins sum to %d, %d images with a loss", key, n, st.ImagesWithLoss)
					}
				}
				if !slices.Equal(sum, tl.LossBins) {
					t.Errorf("slicing by %v: loss bins add up to %v, want %v", fields, sum, tl.LossBins)
				}
			}
		})
	}
}

func TestTallyMergeLossBins(t *testing.T) {
	a, b := NewTally(3), NewTally(3)
	a.LossBins[0], a.LossBins[LossBinCount-1] = 2, math.MaxInt64-1
	b.LossBins[0], b.LossBins[40], b.LossBins[LossBinCount-1] = 3, 1, 1
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	want := make([]int64, LossBinCount)
	want[0], want[40], want[LossBinCount-1] = 5, 1, math.MaxInt64
	if !slices.Equal(a.LossBins, want) {
		t.Errorf("merged loss bins %v, want %v", a.LossBins, want)
	}
	if b.LossBins[0] != 3 {
		t.Error("merging changed the merged-in tally")
	}

	// A tally not made by NewTally is refused, before anything is added.
	before := slices.Clone(a.LossBins)
	images := a.Images
	bare := &Tally{Classes: 3, Images: 1, ClassLossSum: NewTally(3).ClassLossSum, ClassLossImages: make([]int64, 3),
		Counts: *lovasz.NewCounts(3)}
	if err := a.Merge(bare); err == nil || !strings.Contains(err.Error(), "101 and 0 loss bins") {
		t.Errorf("merging a tally without loss bins: %v", err)
	}
	if err := bare.Merge(a); err == nil || !strings.Contains(err.Error(), "0 and 101 loss bins") {
		t.Errorf("merging into a tally without loss bins: %v", err)
	}
	if !slices.Equal(a.LossBins, before) || a.Images != images {
		t.Error("a refused merge changed the tally")
	}
}
