package evaluate

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/segeval/segeval/internal/exact"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/synth"
)

func options() Options {
	return Options{Mode: Multiclass, Ignore: 255, HasIgnore: true, BinsPerOctave: lovasz.DefaultBinsPerOctave}
}

func probsImage(key string, classes int, seed uint64) *sample.Image {
	im := synth.NewImage(key, synth.Options{Classes: classes, Height: 12, Width: 10, Regions: 4, Ignore: 255, Confidence: 2}, seed)
	return &sample.Image{Key: key, Height: 12, Width: 10, Labels: im.Labels, Prediction: sample.Probs, Classes: classes, Scores: im.Probs}
}

func TestEvaluateKinds(t *testing.T) {
	probs := probsImage("p", 4, 1)
	// The same image as an argmax map gives the same IoU and no loss.
	pred := make([]int32, len(probs.Labels))
	p := len(pred)
	for i := range pred {
		for c := 1; c < 4; c++ {
			if probs.Scores[c*p+i] > probs.Scores[int(pred[i])*p+i] {
				pred[i] = int32(c)
			}
		}
	}
	argmax := &sample.Image{Key: "m", Height: 12, Width: 10, Labels: probs.Labels, Prediction: sample.ArgmaxMap, Pred: pred}

	opt := options()
	opt.Classes = 4
	e := NewEvaluator(opt)
	a, err := e.Evaluate(probs, "s.tar")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Evaluate(argmax, "s.tar")
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(a.Loss) || !math.IsNaN(b.Loss) {
		t.Errorf("loss of probabilities %v, of an argmax map %v (want a number, then undefined)", a.Loss, b.Loss)
	}
	if a.MIoU != b.MIoU || a.PixelAccuracy != b.PixelAccuracy || a.ValidPixels != b.ValidPixels {
		t.Errorf("argmax of probabilities %+v and the stored map %+v disagree", a, b)
	}
	acc, _ := take(t, e)
	if tl := acc.Tally; tl.Images != 2 || tl.ImagesWithLoss != 1 || tl.Counts.ValidPixels() != 2*a.ValidPixels {
		t.Errorf("accumulator %d images, %d with loss, %d pixels", tl.Images, tl.ImagesWithLoss, tl.Counts.ValidPixels())
	}
	if again, _ := take(t, e); again != nil {
		t.Error("Take did not reset the accumulator")
	}
}

func TestEvaluateBinary(t *testing.T) {
	labels := []int32{0, 1, 1, 255}
	logits := []float32{-2, 3, -0.5, 9}
	opt := options()
	opt.Mode = Binary
	e := NewEvaluator(opt)
	res, err := e.Evaluate(&sample.Image{Key: "b", Height: 2, Width: 2, Labels: labels, Prediction: sample.Logits, Classes: 1, Scores: logits}, "s")
	if err != nil {
		t.Fatal(err)
	}
	want, err := lovasz.NewEvaluator().LovaszHinge(logits, labels, 2, 2, opt.lovasz())
	if err != nil {
		t.Fatal(err)
	}
	if res.Loss != want.Loss || res.ValidPixels != 3 {
		t.Errorf("binary result %+v, want loss %v over 3 pixels", res, want.Loss)
	}
	// Predictions 0 1 0 against labels 0 1 1: class 0 I=1 U=2, class 1 I=1 U=2.
	if res.MIoU != 0.5 || math.Abs(res.PixelAccuracy-2.0/3) > 1e-15 {
		t.Errorf("binary miou %v accuracy %v", res.MIoU, res.PixelAccuracy)
	}
}

func TestEvaluateErrors(t *testing.T) {
	base := probsImage("k", 4, 2)
	tests := []struct {
		name string
		opt  func(*Options)
		img  func() *sample.Image
		want string
	}{
		{"classes differ from the flag", func(o *Options) { o.Classes = 5 }, func() *sample.Image { return base }, "expected 5"},
		{"argmax map without classes", nil, func() *sample.Image {
			return &sample.Image{Key: "k", Height: 12, Width: 10, Labels: base.Labels, Prediction: sample.ArgmaxMap, Pred: base.Labels}
		}, "the number must be given"},
		{"ignore index is a class", func(o *Options) { o.Ignore = 2 }, func() *sample.Image { return base }, "ignore index 2"},
		{"binary mode with class scores", func(o *Options) { o.Mode = Binary }, func() *sample.Image { return base }, "binary mode"},
		{"one-class scores in multiclass mode", nil, func() *sample.Image {
			return &sample.Image{Key: "k", Height: 12, Width: 10, Labels: base.Labels, Prediction: sample.Logits, Classes: 1, Scores: base.Scores[:120]}
		}, "one logit per pixel"},
	}
	for _, tt := range tests {
		opt := options()
		if tt.opt != nil {
			tt.opt(&opt)
		}
		_, err := NewEvaluator(opt).Evaluate(tt.img(), "shard-7.tar")
		if err == nil || !IsBadInput(err) {
			t.Errorf("%s: got %v, want a bad input error", tt.name, err)
			continue
		}
		for _, w := range []string{"shard-7.tar", "sample k", tt.want} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", tt.name, err, w)
			}
		}
	}
	// Images of one run must agree on their classes.
	e := NewEvaluator(options())
	if _, err := e.Evaluate(probsImage("a", 4, 3), "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(probsImage("b", 3, 4), "s"); !errors.Is(err, lovasz.ErrBadInput) {
		t.Errorf("3-class image after a 4-class one: %v", err)
	}
}

func TestAccumulatorMergeIsOrderFree(t *testing.T) {
	parts := make([]*Accumulator, 3)
	for i := range parts {
		e := NewEvaluator(options())
		for j := range 2 {
			if _, err := e.Evaluate(probsImage("x", 4, uint64(10*i+j)), "s"); err != nil {
				t.Fatal(err)
			}
		}
		parts[i], _ = take(t, e)
	}
	merge := func(order ...int) *Accumulator {
		acc, _ := NewAccumulator(4, lovasz.DefaultBinsPerOctave, 0)
		for _, i := range order {
			if err := acc.Merge(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
		return acc
	}
	ma, mb := merge(0, 1, 2), merge(2, 0, 1)
	a, b := ma.Tally, mb.Tally
	if a.Images != 6 || a.Images != b.Images || a.ValidPixels != b.ValidPixels || a.MIoUImages != b.MIoUImages {
		t.Fatalf("merged counts differ: %d/%d images", a.Images, b.Images)
	}
	if a.LossSum != b.LossSum || a.MIoUSum != b.MIoUSum {
		t.Errorf("loss sums %v and %v, mIoU sums %v and %v", a.LossSum.Float64(), b.LossSum.Float64(), a.MIoUSum.Float64(), b.MIoUSum.Float64())
	}
	for i := range a.Counts.Confusion {
		if a.Counts.Confusion[i] != b.Counts.Confusion[i] {
			t.Fatal("confusion depends on merge order")
		}
	}
	la, _ := ma.Histogram.Loss(lovasz.ClassSet{})
	lb, _ := mb.Histogram.Loss(lovasz.ClassSet{})
	if la.Loss != lb.Loss || la.Bound != lb.Bound {
		t.Errorf("dataset loss %v ± %v vs %v ± %v by merge order", la.Loss, la.Bound, lb.Loss, lb.Bound)
	}
	if err := ma.Merge(mustAcc(t, 5)); err == nil {
		t.Error("merging accumulators of 4 and 5 classes succeeded")
	}
}

func mustAcc(t *testing.T, classes int) *Accumulator {
	acc, err := NewAccumulator(classes, lovasz.DefaultBinsPerOctave, 200)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

// The accumulator's documented size with 200 replicates: about 0.86 MB at
// C=19, 6.9 MB at C=150.
func TestAccumulatorSize(t *testing.T) {
	for _, tt := range []struct {
		classes int
		maxMB   float64
	}{{19, 0.87}, {150, 6.95}} {
		acc := mustAcc(t, tt.classes)
		tl, b := acc.Tally, acc.Bootstrap
		const sum = int(unsafe.Sizeof(exact.Sum{}))
		bytes := acc.Histogram.SizeBytes() + 8*(len(tl.Counts.Confusion)+len(tl.Counts.UnknownPred)+len(tl.ClassLossImages)+len(tl.LossBins)) +
			sum*len(tl.ClassLossSum) + 8*(len(b.Class)+len(b.LossWeight)) + sum*len(b.LossSum)
		if mb := float64(bytes) / 1e6; mb > tt.maxMB {
			t.Errorf("C=%d: accumulator %.2f MB, documented at most %v MB", tt.classes, mb, tt.maxMB)
		}
	}
}

func TestLabelAndPredictionMaps(t *testing.T) {
	// Raw labels 7 and 26 are Cityscapes' road and car: trainIds 0 and 13;
	// 0 is unlabeled: ignored. The stored prediction uses the same ids.
	labelMap := []byte(`{"0": 255, "7": 0, "26": 13, "255": 255}`)
	labels := []int32{7, 26, 0, 26}
	pred := []int32{7, 26, 26, 7}
	opt := options()
	opt.Classes, opt.LabelMap, opt.PredMap = 19, labelMap, labelMap
	res, err := NewEvaluator(opt).Evaluate(&sample.Image{Key: "k", Height: 2, Width: 2, Labels: labels, Prediction: sample.ArgmaxMap, Pred: pred}, "s")
	if err != nil {
		t.Fatal(err)
	}
	// Valid pixels: road/road, car/car, car/road -> 2 of 3 right.
	if res.ValidPixels != 3 || math.Abs(res.PixelAccuracy-2.0/3) > 1e-15 {
		t.Errorf("remapped result %+v", res)
	}
	// ADE20K: 0 is "other" (ignored), 1..N are classes 0..N-1.
	opt = options()
	opt.Classes, opt.ReduceZeroLabel = 3, true
	res, err = NewEvaluator(opt).Evaluate(&sample.Image{Key: "k", Height: 1, Width: 4, Labels: []int32{0, 1, 2, 3},
		Prediction: sample.ArgmaxMap, Pred: []int32{2, 0, 1, 2}}, "s")
	if err != nil {
		t.Fatal(err)
	}
	if res.ValidPixels != 3 || res.PixelAccuracy != 1 {
		t.Errorf("reduce_zero_label result %+v", res)
	}
	// A raw value the map does not cover is bad input, not a class.
	opt = options()
	opt.Classes, opt.LabelMap = 19, labelMap
	_, err = NewEvaluator(opt).Evaluate(&sample.Image{Key: "k", Height: 1, Width: 1, Labels: []int32{8}, Prediction: sample.ArgmaxMap, Pred: []int32{0}}, "s")
	if !IsBadInput(err) {
		t.Errorf("unmapped label: %v", err)
	}
}

// take is e.Take for a test, which fails on its error.
func take(t testing.TB, e *Evaluator) (*Accumulator, map[string]*Tally) {
	t.Helper()
	acc, slices, err := e.Take()
	if err != nil {
		t.Fatal(err)
	}
	return acc, slices
}
