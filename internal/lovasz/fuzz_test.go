package lovasz

import (
	"errors"
	"math"
	"testing"
)

// FuzzLovaszSoftmax feeds arbitrary small images to the kernel entry points:
// they must either return a bad-input error or a loss that agrees with the
// reference algorithm within the reported bound, and never panic.
func FuzzLovaszSoftmax(f *testing.F) {
	f.Add([]byte{3, 2, 2, 0, 1, 2, 255, 10, 200, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120}, uint8(0))
	f.Add([]byte{2, 1, 1, 1, 128, 128}, uint8(1))
	f.Add([]byte{4, 3, 1, 0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		if len(data) < 3 {
			return
		}
		classes, h, w := int(data[0]%6), int(data[1]%5), int(data[2]%5)
		data = data[3:]
		p := h * w
		if len(data) < p+classes*p {
			return
		}
		labels := make([]int32, p)
		for i := range labels {
			labels[i] = int32(data[i] % 8)
			if data[i] >= 250 {
				labels[i] = 255
			}
		}
		probs := make([]float32, classes*p)
		for i := range probs {
			// Bytes map to [-0.02, 1.6]: mostly probabilities, some not.
			probs[i] = float32(data[p+i])/160 - 0.02
		}
		opt := Options{Ignore: 255, HasIgnore: true, Classes: ClassSet{Mode: ClassMode(mode % 3), IDs: []int{0, 1}}}
		ev := NewEvaluator()
		hist, _ := NewHistogram(max(classes, 1), 8)
		got, err := ev.LovaszSoftmax(probs, labels, classes, h, w, opt, hist)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error without ErrBadInput: %v", err)
			}
			return
		}
		want, _, valid := refImageLoss(probs, labels, classes, opt)
		if valid != (got.ValidPixels > 0) {
			t.Fatalf("valid %v, reference %v", got.ValidPixels > 0, valid)
		}
		if valid && math.Abs(got.Loss-want) > got.Bound+1e-9 {
			t.Fatalf("loss %v ± %v, reference %v", got.Loss, got.Bound, want)
		}
		ds, err := hist.Loss(opt.Classes)
		if err != nil {
			t.Fatal(err)
		}
		if valid && math.Abs(ds.Loss-want) > ds.Bound+1e-9 {
			t.Fatalf("dataset loss of one image %v ± %v, reference %v", ds.Loss, ds.Bound, want)
		}
		counts := NewCounts(max(classes, 1))
		if err := ev.CountArgmax(probs, labels, h, w, opt, counts); err != nil && !errors.Is(err, ErrBadInput) {
			t.Fatal(err)
		}
	})
}

// FuzzLovaszHinge checks the hinge on arbitrary logits against the reference
// algorithm.
func FuzzLovaszHinge(f *testing.F) {
	f.Add([]byte{2, 3, 0, 1, 1, 0, 255, 1, 10, 200, 30, 140, 90, 128})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		h, w := int(data[0]%6), int(data[1]%6)
		data = data[2:]
		p := h * w
		if len(data) < 2*p {
			return
		}
		labels := make([]int32, p)
		logits := make([]float32, p)
		for i := range p {
			labels[i] = int32(data[i] % 3)
			if labels[i] == 2 {
				labels[i] = 255
			}
			logits[i] = (float32(data[p+i]) - 128) / 16
		}
		got, err := NewEvaluator().LovaszHinge(logits, labels, h, w, Options{Ignore: 255, HasIgnore: true})
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatal(err)
			}
			return
		}
		var errs []float64
		var fg []bool
		for i, l := range labels {
			if l == 255 {
				continue
			}
			errs = append(errs, math.Max(0, 1-float64(logits[i])*float64(2*l-1)))
			fg = append(fg, l == 1)
		}
		if want := refClassLoss(errs, fg); len(errs) > 0 && math.Abs(got.Loss-want) > 1e-9 {
			t.Fatalf("hinge %v, reference %v", got.Loss, want)
		}
	})
}
