package lovasz

import (
	"math"
)

// ImageLoss is the Lovász-Softmax loss of one image.
type ImageLoss struct {
	// ValidPixels counts pixels whose label is not the ignore value. An image
	// without valid pixels has no loss: Loss is 0 and must not enter a mean.
	ValidPixels int64
	// Loss is the mean of PerClass over the class set.
	Loss float64
	// Bound bounds |Loss - exact value| (0 when every class took the exact
	// path).
	Bound float64
	// PerClass[c] is the loss of class c, NaN when c is not in the class set
	// for this image (under Present: absent from its valid labels).
	PerClass []float64
}

// Evaluator computes per-image statistics with buffers that are reused from
// one image to the next, so that a warm Evaluator allocates nothing. Results
// that hold slices are valid until the next call. An Evaluator is not safe for
// concurrent use; use one per goroutine.
type Evaluator struct {
	// Valid pixel indexes grouped by label (a counting sort): class c's
	// pixels are pixels[start[c]:start[c+1]], ignored pixels follow the last
	// class.
	pixels []int32
	start  []int

	// Fine histogram of one class: background counts and offset sums (in
	// units of the bin's ulp), foreground counts and sums of error minus the
	// bin's low edge.
	packed *[maxSlots]uint64
	nb     *[maxSlots]int64
	off    *[maxSlots]uint64
	nf     *[maxSlots]int64
	sf     *[maxSlots]float64
	sb     *[maxSlots]float64

	pairs    []errorPair
	perClass []float64
	inSet    []bool

	best []float32 // argmax scratch
	arg  []int32
	sum  []float64 // softmax scratch
}

// NewEvaluator returns an Evaluator with empty buffers.
func NewEvaluator() *Evaluator {
	return &Evaluator{
		packed: new([maxSlots]uint64),
		nb:     new([maxSlots]int64),
		off:    new([maxSlots]uint64),
		nf:     new([maxSlots]int64),
		sf:     new([maxSlots]float64),
		sb:     new([maxSlots]float64),
	}
}

// LovaszSoftmax returns the Lovász-Softmax loss of one image from class
// probabilities probs[c*H*W+i] and labels[i].
//
// Probabilities must be finite and lie in [-1.5, 1.5] (rounded softmax output
// fits easily; anything else is not a probability). Labels must lie in
// [0, classes) or equal the ignore value.
//
// When hist is not nil, the errors of every class (whether or not it is in the
// class set) are added to it, for the dataset-level loss; hist must have been
// made for the same number of classes.
func (ev *Evaluator) LovaszSoftmax(probs []float32, labels []int32, classes, height, width int, opt Options, hist *Histogram) (ImageLoss, error) {
	if classes < 2 {
		return ImageLoss{}, badInput("Lovász-Softmax needs at least 2 classes, got %d (use the Lovász hinge for binary outputs)", classes)
	}
	if err := checkShape(probs, labels, classes, height, width); err != nil {
		return ImageLoss{}, err
	}
	if err := checkClassSet(opt.Classes, classes); err != nil {
		return ImageLoss{}, err
	}
	if hist != nil && hist.Classes != classes {
		return ImageLoss{}, badInput("histogram has %d classes, image has %d", hist.Classes, classes)
	}
	if err := ev.groupByLabel(labels, classes, width, opt); err != nil {
		return ImageLoss{}, err
	}
	ev.selectClasses(classes, opt.Classes)
	p := height * width
	res := ImageLoss{ValidPixels: int64(ev.start[classes]), PerClass: ev.perClass}
	if res.ValidPixels == 0 {
		// Nothing is evaluated, but bad values are still bad input.
		for i, v := range probs {
			if !(math.Abs(float64(v)) <= 1.5) {
				return ImageLoss{}, badInput("probability %v of class %d at pixel %s is not in [-1.5, 1.5]", v, i/p, pixelAt(i%p, width))
			}
		}
		return res, nil
	}
	counted := 0
	for c := range classes {
		plane := probs[c*p : (c+1)*p]
		need := ev.inSet[c]
		if !need && hist == nil {
			continue
		}
		loss, bound, err := ev.classLoss(plane, labels, c, width, opt, hist)
		if err != nil {
			return ImageLoss{}, err
		}
		if need {
			res.PerClass[c] = loss
			res.Loss += loss
			res.Bound += bound
			counted++
		}
	}
	if counted > 0 {
		res.Loss /= float64(counted)
		res.Bound /= float64(counted)
	}
	return res, nil
}

// groupByLabel validates labels and sorts valid pixel indexes by label.
func (ev *Evaluator) groupByLabel(labels []int32, classes, width int, opt Options) error {
	ev.start = resize(ev.start, classes+2)
	clear(ev.start)
	count := ev.start[1:] // count[c] for class c, count[classes] for ignored
	// Both passes take the labels a run of equal values at a time: a
	// region's pixels along a row. Counting or placing a run keeps its
	// cursor in a register, where a pixel at a time chains every pixel's
	// update to the previous one's store.
	for i := 0; i < len(labels); {
		l, j := labels[i], i+1
		for j < len(labels) && labels[j] == l {
			j++
		}
		switch {
		case opt.HasIgnore && int(l) == opt.Ignore:
			count[classes] += j - i
		case l < 0 || int(l) >= classes:
			return badInput("label %d at pixel %s is outside [0, %d) and is not the ignore value%s", l, pixelAt(i, width), classes, ignoreNote(opt))
		default:
			count[l] += j - i
		}
		i = j
	}
	for c := 1; c < len(ev.start); c++ {
		ev.start[c] += ev.start[c-1]
	}
	ev.pixels = resize(ev.pixels, len(labels))
	next := ev.start[:classes+1] // fill cursors; restored below
	for i := 0; i < len(labels); {
		l := labels[i]
		c := classes
		if !(opt.HasIgnore && int(l) == opt.Ignore) {
			c = int(l)
		}
		at := next[c]
		for ; i < len(labels) && labels[i] == l; i++ {
			ev.pixels[at] = int32(i)
			at++
		}
		next[c] = at
	}
	// The cursors now point at each group's end, i.e. the next group's start.
	copy(ev.start[1:], ev.start[:classes+1])
	ev.start[0] = 0
	return nil
}

func ignoreNote(opt Options) string {
	if opt.HasIgnore {
		return ""
	}
	return " (no ignore value is set)"
}

// selectClasses marks the classes the image's loss averages over and resets
// the per-class losses.
func (ev *Evaluator) selectClasses(classes int, set ClassSet) {
	ev.inSet = resize(ev.inSet, classes)
	ev.perClass = resize(ev.perClass, classes)
	for c := range classes {
		ev.perClass[c] = math.NaN()
		switch set.Mode {
		case Present:
			ev.inSet[c] = ev.start[c+1] > ev.start[c]
		case All:
			ev.inSet[c] = true
		default:
			ev.inSet[c] = false
		}
	}
	if set.Mode == List {
		for _, id := range set.IDs {
			ev.inSet[id] = true
		}
	}
}

// classLoss returns the loss of class c, the bound on its error, and adds the
// class's errors to hist when it is not nil.
//
// It bins the errors at the per-image resolution first. When the bound is
// wider than the tolerance, which happens with quantized inputs (float16
// probabilities put several distinct values in one bin), it bins them again
// four times finer, where each float16 value has a bin of its own; only if
// that is still too wide does it sort.
func (ev *Evaluator) classLoss(plane []float32, labels []int32, c, width int, opt Options, hist *Histogram) (loss, bound float64, err error) {
	fg := ev.pixels[ev.start[c]:ev.start[c+1]]
	ignored := ev.pixels[ev.start[len(ev.start)-2]:]
	g := int64(len(fg))
	n := int64(ev.start[len(ev.start)-2])

	if i := ev.bin(perImage, plane, fg, ignored); i >= 0 {
		return 0, 0, badInput("probability %v of class %d at pixel %s is not in [-1.5, 1.5]", plane[i], c, pixelAt(i, width))
	}
	// An absent class costs its largest error, under All or a list; under
	// Present it never counts, here or in the dataset histogram, so the
	// pass that finds the maximum is skipped.
	maxErr := math.NaN()
	if g == 0 && n > 0 && opt.Classes.Mode != Present {
		maxErr = ev.maxBackgroundError(plane, labels, len(ignored) > 0, opt)
	}
	bins := perImage.layout.bins()
	if hist != nil {
		hist.addFine(c, ev.nf[:bins], ev.nb[:bins], ev.sf[:bins], ev.sb[:bins], maxErr)
	}
	if n == 0 {
		return 0, 0, nil
	}
	if g == 0 {
		// Every pixel is background: J = 1 from the first pixel on.
		return maxErr, 0, nil
	}
	tol := opt.tolerance()
	for _, r := range []*resolution{perImage, refined} {
		if r != perImage {
			ev.bin(r, plane, fg, ignored)
		}
		bins := r.layout.bins()
		loss, bound = walk(r.layout, g, n, ev.nf[:bins], ev.nb[:bins], ev.sf[:bins], ev.sb[:bins])
		if bound <= tol {
			return loss, bound, nil
		}
	}
	return ev.exactClassLoss(plane, labels, c, opt), 0, nil
}

// bin fills the Evaluator's bins with one class's errors at resolution r:
// plane's pixels but the ignored ones, those in fg as foreground. It returns
// the index of a value whose magnitude exceeds 1.5, or -1.
func (ev *Evaluator) bin(r *resolution, plane []float32, fg, ignored []int32) int {
	slots := r.last + 1
	clear(ev.nb[:slots])
	clear(ev.off[:slots])
	clear(ev.nf[:slots])
	clear(ev.sf[:slots])
	if i := binBackground(r, plane, ev.packed, ev.nb, ev.off); i >= 0 {
		return i
	}
	unbin(r, plane, ignored, ev.nb, ev.off)
	binForeground(r, plane, fg, ev.nb, ev.off, ev.nf, ev.sf)
	for k := 1; k < r.layout.bins(); k++ {
		ev.sb[k] = float64(ev.off[k]) * r.ulp[k]
	}
	return -1
}

// binBackground counts every pixel of plane as background (error |p|) into
// the bins of r. It returns the index of a value whose magnitude exceeds 1.5
// (NaN and infinities included), or -1.
//
// The hot loop updates one packed word per pixel, the count in the high bits
// and the offset sum in the low ones, instead of two arrays: half the memory
// traffic. Chunks of at most packedPixels keep both parts from overflowing.
// Values are range-checked afterwards from the bins they fell in, which keeps
// the loop free of comparisons.
func binBackground(r *resolution, plane []float32, packed *[maxSlots]uint64, nb *[maxSlots]int64, off *[maxSlots]uint64) int {
	slots := r.last + 1
	for start := 0; start < len(plane); start += packedPixels {
		clear(packed[:slots])
		binPacked(r, plane[start:min(start+packedPixels, len(plane))], packed)
		for k, w := range packed[:slots] {
			nb[k] += int64(w >> packedCountShift)
			off[k] += w & (1<<packedCountShift - 1)
		}
	}
	// The bin of 1.5 also holds values a little above it: those are
	// told apart by the exact check below.
	bad := false
	for _, n := range nb[r.maxProbBin():slots] {
		bad = bad || n != 0
	}
	if !bad {
		return -1
	}
	for i, p := range plane {
		if !(math.Abs(float64(p)) <= 1.5) {
			return i
		}
	}
	return -1
}

const (
	packedCountShift = 40        // offsets sum below 2^40: 2^24 pixels x 2^15
	packedPixels     = 1<<24 - 1 // counts, all in one bin at worst, fit the 24 high bits
)

// binPacked is binBackground's inner loop, kept small so that its counters
// stay in registers. The first pass, which every class of every image takes,
// has a copy with constant shifts and bounds: with variable ones the compiler
// adds a shift-range check and turns the clamp into a branch, 40% slower.
func binPacked(r *resolution, plane []float32, packed *[maxSlots]uint64) {
	if r == perImage {
		binPackedPerImage(plane, packed)
		return
	}
	shift, base, last, mask := (23-r.bits)&31, r.base32, r.last, r.offsetMask
	for _, p := range plane {
		abs := math.Float32bits(p) &^ (1 << 31)
		k := min(max(int(abs>>shift)-base, 0), last)
		packed[k&(maxSlots-1)] += 1<<packedCountShift | uint64(abs&mask)
	}
}

// The per-image resolution's constants, for binPackedPerImage.
const (
	perImageBits   = 8
	perImageShift  = 23 - perImageBits
	perImageBase32 = (127+minExp)<<perImageBits - 1
	perImageLast   = octaves<<perImageBits + 1
	perImageMask   = 1<<perImageShift - 1
)

// binPackedPerImage is binPacked at the per-image resolution. It takes
// pixels two at a time, and both bins are clamped only when either falls
// outside the bins, which errors seldom do: the common path is one
// untaken branch per pair, where a clamp per pixel (two branches, taken
// or not depending on the code layout) made the loop 18% slower on VOC.
func binPackedPerImage(plane []float32, packed *[maxSlots]uint64) {
	n := len(plane) &^ 1
	for j := 0; j < n; j += 2 {
		pair := plane[j : j+2 : j+2]
		a := math.Float32bits(pair[0]) &^ (1 << 31)
		b := math.Float32bits(pair[1]) &^ (1 << 31)
		k := int(a>>perImageShift) - perImageBase32
		l := int(b>>perImageShift) - perImageBase32
		if uint(k) > perImageLast || uint(l) > perImageLast {
			k, l = min(max(k, 0), perImageLast), min(max(l, 0), perImageLast)
		}
		packed[k&(maxSlots-1)] += 1<<packedCountShift | uint64(a&perImageMask)
		packed[l&(maxSlots-1)] += 1<<packedCountShift | uint64(b&perImageMask)
	}
	if n < len(plane) {
		a := math.Float32bits(plane[n]) &^ (1 << 31)
		k := min(max(int(a>>perImageShift)-perImageBase32, 0), perImageLast)
		packed[k&(maxSlots-1)] += 1<<packedCountShift | uint64(a&perImageMask)
	}
}

// unbin removes the given pixels from the background bins.
func unbin(r *resolution, plane []float32, pixels []int32, nb *[maxSlots]int64, off *[maxSlots]uint64) {
	for _, i := range pixels {
		abs := math.Float32bits(plane[i]) &^ (1 << 31)
		k := r.bin32(abs)
		nb[k]--
		off[k] -= uint64(abs & r.offsetMask)
	}
}

// binForeground moves the class's own pixels from the background bins, where
// binBackground counted them, to the foreground ones, where their error is
// |1-p|, exact in float64. One loop does both: the pixels are scattered
// over the plane, and each is read once.
func binForeground(r *resolution, plane []float32, fg []int32, nb *[maxSlots]int64, off *[maxSlots]uint64, nf *[maxSlots]int64, sf *[maxSlots]float64) {
	lo := r.layout.lo
	for _, i := range fg {
		p := plane[i]
		abs := math.Float32bits(p) &^ (1 << 31)
		k := r.bin32(abs)
		nb[k]--
		off[k] -= uint64(abs & r.offsetMask)
		e := math.Abs(1 - float64(p))
		k = r.bin64(e)
		nf[k]++
		if k < len(lo) {
			sf[k] += e - lo[k]
		}
	}
}

// maxBackgroundError is the largest |p| over valid pixels: the loss of a
// class absent from the image.
func (ev *Evaluator) maxBackgroundError(plane []float32, labels []int32, anyIgnored bool, opt Options) float64 {
	var m float32
	for i, p := range plane {
		if anyIgnored && int(labels[i]) == opt.Ignore {
			continue
		}
		m = max(m, float32(math.Abs(float64(p))))
	}
	return float64(m)
}

// exactClassLoss computes class c's loss by sorting its errors.
func (ev *Evaluator) exactClassLoss(plane []float32, labels []int32, c int, opt Options) float64 {
	ev.pairs = ev.pairs[:0]
	for i, l := range labels {
		if opt.HasIgnore && int(l) == opt.Ignore {
			continue
		}
		fg := int(l) == c
		target := 0.0
		if fg {
			target = 1
		}
		ev.pairs = append(ev.pairs, errorPair{err: math.Abs(target - float64(plane[i])), fg: fg})
	}
	return lovaszExtension(ev.pairs)
}

// resize returns s with length n, reusing its storage when large enough.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
