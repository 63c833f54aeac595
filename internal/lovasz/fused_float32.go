package lovasz

import "math"

// Probs evaluates an image of float32 class probabilities probs[c*H*W+i]
// as Half does float16 ones: the check at tolerance tol (0 turns it off),
// the argmax and the confusion in one blocked pass, then the loss of
// LovaszSoftmax, whose per-class passes it shares.
func (f *Fused) Probs(probs []float32, labels []int32, classes, height, width int, opt Options, tol float64, hist *Histogram, counts *Counts) (ImageLoss, error) {
	if err := checkFused(len(probs), labels, classes, height, width, opt, hist, counts); err != nil {
		return ImageLoss{}, err
	}
	f.resetConf(classes)
	if !f.floatBlocks(probs, labels, classes, height*width, opt, tol) {
		return f.reference(probs, labels, classes, height, width, opt, tol, hist, counts)
	}
	res, err := f.ref.LovaszSoftmax(probs, labels, classes, height, width, opt, hist)
	if err != nil {
		return ImageLoss{}, err
	}
	f.commit(counts)
	return res, nil
}

// floatBlocks is the blocked pass over float32 planes: it checks every
// value and, when tol > 0, every pixel's sum as CheckProbabilities does,
// and counts the confusion of labels against the argmax into f.conf. It
// reports whether the image passed every check, labels included.
func (f *Fused) floatBlocks(probs []float32, labels []int32, classes, p int, opt Options, tol float64) bool {
	f.fbest = resize(f.fbest, fusedBlock)
	f.fsum = resize(f.fsum, fusedBlock)
	for s := 0; s < p; s += fusedBlock {
		e := min(s+fusedBlock, p)
		best, arg, sum := f.fbest[:e-s], f.arg[:e-s], f.fsum[:e-s]
		copy(best, probs[s:e])
		clear(arg)
		clear(sum)
		ok := true
		for c := range classes {
			plane := probs[c*p+s : c*p+e]
			if tol > 0 {
				ok = floatMaxSum(plane, best, arg, sum, int32(c), tol) && ok
			} else {
				ok = floatMax(plane, best, arg, int32(c)) && ok
			}
		}
		if !ok || tol > 0 && !floatSumsWithin(sum, tol) {
			return false
		}
		if !countArgs(f.conf, labels[s:e], arg, classes, opt) {
			return false
		}
	}
	return true
}

// floatMax folds one class's block into the running argmax, ties to the
// lower class, and reports whether every value was a number.
func floatMax(plane, best []float32, arg []int32, c int32) bool {
	best = best[:len(plane)]
	arg = arg[:len(plane)]
	nan := false
	for j, x := range plane {
		nan = nan || x != x
		bj, aj := best[j], arg[j]
		if x > bj {
			bj, aj = x, c
		}
		best[j], arg[j] = bj, aj
	}
	return !nan
}

// floatMaxSum is floatMax that also adds the values to each pixel's sum in
// float64, in class order as CheckProbabilities does, and reports whether
// every value lay in [-tol, 1+tol].
func floatMaxSum(plane, best []float32, arg []int32, sum []float64, c int32, tol float64) bool {
	best = best[:len(plane)]
	arg = arg[:len(plane)]
	sum = sum[:len(plane)]
	lo, hi := -tol, 1+tol
	ok := true
	for j, x := range plane {
		v := float64(x)
		ok = ok && v >= lo && v <= hi
		bj, aj := best[j], arg[j]
		if x > bj {
			bj, aj = x, c
		}
		best[j], arg[j] = bj, aj
		sum[j] += v
	}
	return ok
}

// floatSumsWithin reports whether every sum lies within tol of 1.
func floatSumsWithin(sum []float64, tol float64) bool {
	ok := true
	for _, s := range sum {
		ok = ok && math.Abs(s-1) <= tol
	}
	return ok
}

// countArgs adds the confusion of one block's labels against its argmax to
// conf and reports whether every label is a class or the ignore value.
func countArgs(conf []int64, labels, arg []int32, classes int, opt Options) bool {
	ok := true
	hasIgnore := opt.HasIgnore && int(int32(opt.Ignore)) == opt.Ignore
	ignore := int32(opt.Ignore)
	for j, l := range labels {
		if hasIgnore && l == ignore {
			continue
		}
		if uint32(l) >= uint32(classes) {
			ok = false
			continue
		}
		conf[int(l)*classes+int(arg[j])]++
	}
	return ok
}
