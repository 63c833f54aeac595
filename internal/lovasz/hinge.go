package lovasz

import "math"

// HingeLoss is the Lovász hinge loss of one binary image.
type HingeLoss struct {
	ValidPixels int64 // 0: no loss
	Loss        float64
}

// LovaszHinge returns the Lovász hinge loss (the binary case of the Lovász
// extension) of one image from logits[i] and labels[i] in {0, 1} or the
// ignore value. With sign = 2*label-1 the error of a pixel is
// 1 - logit*sign and the loss is the extension at max(error, 0), class 1 being
// the foreground. Errors are unbounded, so the loss is computed exactly by
// sorting.
func (ev *Evaluator) LovaszHinge(logits []float32, labels []int32, height, width int, opt Options) (HingeLoss, error) {
	if err := checkShape(logits, labels, 1, height, width); err != nil {
		return HingeLoss{}, err
	}
	for i, x := range logits {
		if !finite(x) {
			return HingeLoss{}, badInput("logit %v at pixel %s is not finite", x, pixelAt(i, width))
		}
	}
	ev.pairs = ev.pairs[:0]
	for i, l := range labels {
		if opt.HasIgnore && int(l) == opt.Ignore {
			continue
		}
		if l != 0 && l != 1 {
			return HingeLoss{}, badInput("label %d at pixel %s is not 0, 1 or the ignore value%s", l, pixelAt(i, width), ignoreNote(opt))
		}
		sign := float64(2*l - 1)
		ev.pairs = append(ev.pairs, errorPair{err: math.Max(1-float64(logits[i])*sign, 0), fg: l == 1})
	}
	return HingeLoss{ValidPixels: int64(len(ev.pairs)), Loss: lovaszExtension(ev.pairs)}, nil
}

// BinaryPrediction writes the class map of a binary image, 1 where the logit
// is positive, into dst (reused when large enough) and returns it.
func BinaryPrediction(logits []float32, dst []int32) []int32 {
	dst = resize(dst, len(logits))
	for i, x := range logits {
		dst[i] = 0
		if x > 0 {
			dst[i] = 1
		}
	}
	return dst
}
