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

// CheckProbabilities verifies that scores[c*P+i] look like probabilities: each
// value within [-tol, 1+tol] and each pixel's sum over classes within tol of
// 1. Float16 storage rounds each value by at most 2^-11 and a sum by about as
// much, so a tolerance of 1e-2 accepts it and still rejects unnormalized
// scores (logits saved as "probs").
func (ev *Evaluator) CheckProbabilities(scores []float32, classes, width int, tol float64) error {
	if classes < 1 || len(scores)%classes != 0 {
		return badInput("%d scores do not split into %d classes", len(scores), classes)
	}
	p := len(scores) / classes
	ev.sum = resize(ev.sum, p)
	clear(ev.sum)
	for c := range classes {
		plane := scores[c*p : (c+1)*p]
		if i := addPlane(ev.sum, plane, tol); i >= 0 {
			return badInput("probability %v of class %d at pixel %s is outside [0, 1] by more than %v", plane[i], c, pixelAt(i, width), tol)
		}
	}
	for i, s := range ev.sum {
		if math.Abs(s-1) > tol {
			return badInput("probabilities at pixel %s sum to %v, not 1 within %v (logits stored as probabilities?)", pixelAt(i, width), s, tol)
		}
	}
	return nil
}

// addPlane adds plane into sum and returns the index of a value outside
// [-tol, 1+tol], or -1.
func addPlane(sum []float64, plane []float32, tol float64) int {
	bad := -1
	for i, v := range plane {
		f := float64(v)
		if !(f >= -tol && f <= 1+tol) && bad < 0 {
			bad = i
		}
		sum[i] += f
	}
	return bad
}
