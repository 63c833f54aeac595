package lovasz

import "fmt"

// The argmax at listed pixels serves a report thumbnail, which shows the
// prediction at about one pixel in 64 of a Cityscapes image: reading the
// classes' values at those pixels alone costs a small part of an argmax
// over every pixel.

// ArgmaxHalfAt returns the class of the highest float16 probability of
// probs[c*P+i] (bits) at each listed pixel index, dst[k] the class at
// pixels[k], ties to the lowest class index: Argmax's class at those
// pixels. It reuses dst's storage when it is large enough, and reads only
// the listed pixels' values. Like Argmax, it rejects NaN, but only at
// the listed pixels: the error names the lowest class with one and, of
// that class, the lowest pixel listed, which is Argmax's error when
// every pixel is listed.
//
// It takes the classes' planes one at a time, so that its reads go forward
// through each when the pixels are sorted, and keeps each pixel's running
// maximum in dst as one word, the key offset to be positive in the high
// half and the tie-breaker in the low half, as Fused.Half's blocked pass
// does: at most 1<<16 classes.
func ArgmaxHalfAt(probs []uint16, classes, width int, pixels []int, dst []int32) ([]int32, error) {
	if classes < 1 || len(probs)%classes != 0 {
		return nil, badInput("%d scores do not split into %d classes", len(probs), classes)
	}
	if classes > 1<<16 {
		return nil, badInput("%d classes, more than the %d of a float16 argmax", classes, 1<<16)
	}
	p := len(probs) / classes
	if err := checkPixels(pixels, p); err != nil {
		return nil, err
	}
	dst = resize(dst, len(pixels))
	clear(dst)     // below every offset key
	var mag uint16 // the largest magnitude's bits, above 0x7c00 for a NaN
	for c := range classes {
		plane := probs[c*p : (c+1)*p]
		tag := halfTag(c)
		for k, i := range pixels {
			b := plane[i]
			mag = max(mag, b&0x7fff)
			dst[k] = int32(max(uint32(dst[k]), uint32(halfKey(b)+0x8000)<<16+tag))
		}
	}
	if mag > 0x7c00 {
		nan := noNaN(classes)
		for c := range classes {
			for _, i := range pixels {
				if probs[c*p+i]&0x7fff > 0x7c00 {
					nan.see(c, i)
				}
			}
		}
		return nil, nan.err(classes, width)
	}
	for k, m := range dst {
		dst[k] = 0xffff - int32(uint32(m)&0xffff)
	}
	return dst, nil
}

// ArgmaxAt is ArgmaxHalfAt for float32 scores (probabilities or logits):
// Evaluator.Argmax's class at the listed pixels, and its NaN error when
// every pixel is listed. It takes the pixels one at a time, through every
// class, keeping no scratch.
func ArgmaxAt(scores []float32, classes, width int, pixels []int, dst []int32) ([]int32, error) {
	if classes < 1 || len(scores)%classes != 0 {
		return nil, badInput("%d scores do not split into %d classes", len(scores), classes)
	}
	p := len(scores) / classes
	if err := checkPixels(pixels, p); err != nil {
		return nil, err
	}
	dst = resize(dst, len(pixels))
	nan := noNaN(classes)
	for k, i := range pixels {
		// A NaN never wins a comparison: it is kept aside and reported
		// below.
		best, arg := scores[i], 0
		for c := range classes {
			x := scores[c*p+i]
			if x != x {
				nan.see(c, i)
			}
			if x > best {
				best, arg = x, c
			}
		}
		dst[k] = int32(arg)
	}
	if err := nan.err(classes, width); err != nil {
		return nil, err
	}
	return dst, nil
}

// BinaryPredictionAt is BinaryPrediction at the listed pixel indices of
// logits: dst[k] is 1 where logits[pixels[k]] is positive, else 0.
func BinaryPredictionAt(logits []float32, pixels []int, dst []int32) ([]int32, error) {
	if err := checkPixels(pixels, len(logits)); err != nil {
		return nil, err
	}
	dst = resize(dst, len(pixels))
	for k, i := range pixels {
		dst[k] = 0
		if logits[i] > 0 {
			dst[k] = 1
		}
	}
	return dst, nil
}

// checkPixels reports an index of pixels outside an image of p pixels: it
// would read another class's value, or none.
func checkPixels(pixels []int, p int) error {
	for k, i := range pixels {
		if i < 0 || i >= p {
			return fmt.Errorf("lovasz: pixel index %d (entry %d of the list) is outside the image's %d pixels", i, k, p)
		}
	}
	return nil
}

// firstNaN is the NaN an argmax at listed pixels reports: of the lowest
// class that has one at a listed pixel, at the lowest such pixel.
type firstNaN struct{ class, pixel int }

// noNaN is the firstNaN of an image of the given classes without one.
func noNaN(classes int) firstNaN { return firstNaN{class: classes} }

// see notes a NaN of class c at pixel i.
func (f *firstNaN) see(c, i int) {
	if c < f.class || c == f.class && i < f.pixel {
		f.class, f.pixel = c, i
	}
}

// err is the error for the NaN seen, nil without one.
func (f firstNaN) err(classes, width int) error {
	if f.class == classes {
		return nil
	}
	return badInput("score NaN of class %d at pixel %s", f.class, pixelAt(f.pixel, width))
}
