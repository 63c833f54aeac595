package lovasz

import "math"

// Logits evaluates an image of logits[c*H*W+i]: the softmax over classes,
// with float32 exponentials (exp32), the argmax taken on the logits
// themselves (ties to the lowest class, as numpy's on the logits:
// probabilities rounded to float32 can tie where the logits do not), the
// confusion, and the loss of LovaszSoftmax on the probabilities. Those are
// written to dst, resized and returned. A block of pixels stays in cache
// through the maxima, the exponentials, their sums and the normalization.
//
// The probabilities are within a few float32 ulps of Softmax's, so the loss
// is within about 1e-6 of the reference's, which takes Softmax,
// LovaszSoftmax and CountArgmax on the logits.
func (f *Fused) Logits(logits []float32, labels []int32, classes, height, width int, opt Options, hist *Histogram, counts *Counts, dst []float32) (ImageLoss, []float32, error) {
	if err := checkFused(len(logits), labels, classes, height, width, opt, hist, counts); err != nil {
		return ImageLoss{}, dst, err
	}
	p := height * width
	dst = resize(dst, len(logits))
	f.resetConf(classes)
	f.fbest = resize(f.fbest, fusedBlock)
	f.fsum = resize(f.fsum, fusedBlock)
	for s := 0; s < p; s += fusedBlock {
		e := min(s+fusedBlock, p)
		peak, arg, sum := f.fbest[:e-s], f.arg[:e-s], f.fsum[:e-s]
		copy(peak, logits[s:e])
		clear(arg)
		clear(sum)
		finite := true
		for c := range classes {
			finite = floatMaxFinite(logits[c*p+s:c*p+e], peak, arg, int32(c)) && finite
		}
		if !finite || !countArgs(f.conf, labels[s:e], arg, classes, opt) {
			return f.logitsReference(logits, labels, classes, height, width, opt, hist, counts, dst)
		}
		for c := range classes {
			expBlock(dst[c*p+s:c*p+e], logits[c*p+s:c*p+e], peak, sum)
		}
		for j, v := range sum {
			sum[j] = 1 / v
		}
		for c := range classes {
			scaleBlock(dst[c*p+s:c*p+e], sum)
		}
	}
	res, err := f.ref.LovaszSoftmax(dst, labels, classes, height, width, opt, hist)
	if err != nil {
		return ImageLoss{}, dst, err
	}
	f.commit(counts)
	return res, dst, nil
}

// logitsReference evaluates logits through the reference steps: the path of
// images with a non-finite logit or a bad label, so that their error is the
// reference's.
func (f *Fused) logitsReference(logits []float32, labels []int32, classes, height, width int, opt Options, hist *Histogram, counts *Counts, dst []float32) (ImageLoss, []float32, error) {
	ev := f.ref
	dst, err := ev.Softmax(logits, classes, dst)
	if err != nil {
		return ImageLoss{}, dst, err
	}
	res, err := ev.LovaszSoftmax(dst, labels, classes, height, width, opt, hist)
	if err != nil {
		return ImageLoss{}, dst, err
	}
	if err := ev.CountArgmax(logits, labels, height, width, opt, counts); err != nil {
		return ImageLoss{}, dst, err
	}
	return res, dst, nil
}

// floatMaxFinite is floatMax that reports whether every value is finite.
func floatMaxFinite(plane, best []float32, arg []int32, c int32) bool {
	best = best[:len(plane)]
	arg = arg[:len(plane)]
	bad := false
	for j, x := range plane {
		bad = bad || x-x != 0 // NaN for NaN and the infinities
		bj, aj := best[j], arg[j]
		if x > bj {
			bj, aj = x, c
		}
		best[j], arg[j] = bj, aj
	}
	return !bad
}

// expBlock writes exp(x - peak) for one class's block of logits to dst and
// adds it to each pixel's sum.
func expBlock(dst, plane, peak []float32, sum []float64) {
	dst = dst[:len(plane)]
	peak = peak[:len(plane)]
	sum = sum[:len(plane)]
	for j, x := range plane {
		v := exp32(x - peak[j])
		dst[j] = v
		sum[j] += float64(v)
	}
}

// scaleBlock multiplies one class's block of exponentials by each pixel's
// inverse sum.
func scaleBlock(dst []float32, inv []float64) {
	inv = inv[:len(dst)]
	for j, v := range dst {
		dst[j] = float32(float64(v) * inv[j])
	}
}

// exp32 returns e^x for x <= 0 within 2 ulps, in float32 arithmetic; results
// below the smallest normal float32 (x < -87.33654, ln 2^-126) are 0. It writes x as
// n*ln2 + r with |r| <= ln2/2 and evaluates e^r with a degree-7 polynomial
// (the coefficients of Cephes's expf), then scales by 2^n through the
// exponent bits: several times faster than math.Exp in float64.
func exp32(x float32) float32 {
	if !(x >= -87.33654) {
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // ln2 split so that n*ln2hi is exact
		ln2lo = -2.12194440e-4
	)
	n := float32(int32(x*log2e - 0.5)) // nearest integer, x <= 0
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}
