package evaluate

import (
	"fmt"
	"math"
	"testing"

	"github.com/segeval/segeval/internal/lovasz"
)

func TestPoissonWeights(t *testing.T) {
	// Poisson(1): mean 1, variance 1, P(0) = 1/e; and deterministic.
	var sum, sq float64
	zeros := 0
	const n = 20000
	for i := range n {
		w := float64(weight(fmt.Sprintf("img%06d", i), i%7))
		sum += w
		sq += w * w
		if w == 0 {
			zeros++
		}
		if w != float64(weight(fmt.Sprintf("img%06d", i), i%7)) {
			t.Fatal("weights are not deterministic")
		}
	}
	mean := sum / n
	variance := sq/n - mean*mean
	if math.Abs(mean-1) > 0.03 || math.Abs(variance-1) > 0.06 || math.Abs(float64(zeros)/n-math.Exp(-1)) > 0.015 {
		t.Errorf("weights: mean %.3f variance %.3f P(0) %.3f", mean, variance, float64(zeros)/n)
	}
}

func TestIntervalsCoverTheEstimateAndNarrow(t *testing.T) {
	width := func(images int) (lovasz.Metrics, Intervals, float64) {
		opt := options()
		opt.Bootstrap = 200
		e := NewEvaluator(opt)
		for i := range images {
			if _, err := e.Evaluate(probsImage(fmt.Sprintf("k%d", i), 4, uint64(i)), "s"); err != nil {
				t.Fatal(err)
			}
		}
		acc, _ := take(t, e)
		iv := acc.Bootstrap.Intervals(0.95)
		return acc.Tally.Counts.Metrics(), iv, iv.MIoU.High - iv.MIoU.Low
	}
	m, iv, small := width(10)
	if !(iv.MIoU.Low <= m.MIoU && m.MIoU <= iv.MIoU.High) {
		t.Errorf("miou %v outside its interval %+v", m.MIoU, iv.MIoU)
	}
	if !(iv.PerImageLoss.Low < iv.PerImageLoss.High) {
		t.Errorf("loss interval %+v", iv.PerImageLoss)
	}
	_, _, large := width(80)
	if !(large < small) || small <= 0 {
		t.Errorf("interval width %v with 10 images, %v with 80: should narrow", small, large)
	}
}

func TestSlices(t *testing.T) {
	opt := options()
	opt.SliceBy = [][]string{{"weather"}, {"weather", "city"}}
	e := NewEvaluator(opt)
	metas := []map[string]any{
		{"weather": "rain", "city": "bonn"},
		{"weather": "rain", "city": "ulm"},
		{"weather": "clear", "city": "ulm"},
		{"city": "ulm"},
	}
	for i, meta := range metas {
		img := probsImage(fmt.Sprintf("k%d", i), 3, uint64(i))
		img.Meta = meta
		if _, err := e.Evaluate(img, "s"); err != nil {
			t.Fatal(err)
		}
	}
	acc, slices := take(t, e)
	want := map[string]int64{
		"weather" + sliceSep + "rain":                2,
		"weather" + sliceSep + "clear":               1,
		"weather" + sliceSep + Missing:               1,
		"weather+city" + sliceSep + "rain+bonn":      1,
		"weather+city" + sliceSep + "rain+ulm":       1,
		"weather+city" + sliceSep + "clear+ulm":      1,
		"weather+city" + sliceSep + Missing + "+ulm": 1,
	}
	if len(slices) != len(want) {
		t.Errorf("%d slices, want %d", len(slices), len(want))
	}
	var total int64
	for k, n := range want {
		if slices[k] == nil || slices[k].Images != n {
			t.Errorf("slice %q: %+v, want %d images", k, slices[k], n)
		}
		if f, _ := SplitSliceKey(k); f == "weather" {
			total += slices[k].Counts.ValidPixels()
		}
	}
	if total != acc.Tally.Counts.ValidPixels() {
		t.Errorf("the weather slices hold %d pixels, the dataset %d", total, acc.Tally.Counts.ValidPixels())
	}
}
