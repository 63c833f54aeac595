package lovasz

import "math"

// Softmax turns logits[c*P+i] into class probabilities over the classes at
// every pixel, writing them to dst (which may be logits itself) and returning
// it. It subtracts each pixel's largest logit before exponentiating, so large
// logits do not overflow, and accumulates in float64.
func (ev *Evaluator) Softmax(logits []float32, classes int, dst []float32) ([]float32, error) {
	if classes < 1 || len(logits)%classes != 0 {
		return nil, badInput("%d logits do not split into %d classes", len(logits), classes)
	}
	for i, x := range logits {
		if !finite(x) {
			p := len(logits) / classes
			return nil, badInput("logit %v of class %d at pixel %d is not finite", x, i/p, i%p)
		}
	}
	p := len(logits) / classes
	dst = resize(dst, len(logits))
	ev.best = resize(ev.best, p)
	ev.sum = resize(ev.sum, p)
	peak, sum := ev.best, ev.sum
	copy(peak, logits[:p])
	for c := 1; c < classes; c++ {
		maxInto(peak, logits[c*p:(c+1)*p])
	}
	clear(sum)
	for c := range classes {
		expInto(dst[c*p:(c+1)*p], logits[c*p:(c+1)*p], peak, sum)
	}
	for c := range classes {
		plane := dst[c*p : (c+1)*p]
		for i := range plane {
			plane[i] = float32(float64(plane[i]) / sum[i])
		}
	}
	return dst, nil
}

func maxInto(peak, plane []float32) {
	for i, x := range plane {
		peak[i] = max(peak[i], x)
	}
}

func expInto(dst, plane, peak []float32, sum []float64) {
	for i, x := range plane {
		e := math.Exp(float64(x) - float64(peak[i]))
		sum[i] += e
		dst[i] = float32(e)
	}
}
