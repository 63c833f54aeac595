package lovasz

import "math"

// Fused evaluates one image (probability check, argmax, confusion counts,
// Lovász-Softmax and dataset histogram) in as few passes over its prediction
// planes as the math allows: Half for float16 probabilities, kept as their
// bits, and Probs for float32 ones. Its results equal those of the separate steps
// it replaces, which stay the readable reference it is tested and fuzzed
// against: CheckProbabilities, LovaszSoftmax and CountArgmax.
//
// The planes are read twice. A blocked pass takes a block of pixels across
// every class plane while the block's running maximum, argmax and sum stay in
// cache: it validates the values, checks each pixel's sum and counts the
// confusion. A pass per class then bins the class's errors for the loss.
// Any invalid input sends the image through the reference steps, so that
// errors, and which of them is reported first, are the reference's.
//
// A Fused reuses its buffers from image to image; use one per goroutine.
type Fused struct {
	ref *Evaluator

	// Per block of pixels: the running maximum (key and class, see
	// halfBlocks) and the sum of the probabilities.
	best []uint32
	sum  []int64
	// sum32 holds float16 sums over a few classes (see halfBlockFast).
	sum32 []uint32
	arg   []int32 // the block's argmax
	// The same for float32 probabilities: largest value and sum.
	fbest []float32
	fsum  []float64
	conf  []int64 // this image's confusion, added to the caller's on success

	half    *halfScratch
	fold    halfFold
	visits  []halfVisit  // one class's non-empty float16 slots
	pending *halfPending // small images' errors, until Flush
	// smallPixels is halfSmallPixels; tests lower it to send small
	// images down the path of large ones, to compare the two.
	smallPixels int
	rng         halfRange
	f32         []float32 // float32 copy of a bad float16 image, for its error
}

// fusedBlock is the number of pixels the blocked pass holds in cache across
// the class planes: their maxima, classes and sums take 24 to 40 KB.
const fusedBlock = 2048

// NewFused returns a Fused with empty buffers.
func NewFused() *Fused {
	return &Fused{
		ref:  NewEvaluator(),
		best: make([]uint32, fusedBlock),
		arg:  make([]int32, fusedBlock),
		sum:  make([]int64, fusedBlock),
		rng:  halfRange{tol: math.NaN()},

		smallPixels: halfSmallPixels,
	}
}

// checkFused validates the arguments every Fused entry point shares.
func checkFused(n int, labels []int32, classes, height, width int, opt Options, hist *Histogram, counts *Counts) error {
	if classes < 2 {
		return badInput("Lovász-Softmax needs at least 2 classes, got %d (use the Lovász hinge for binary outputs)", classes)
	}
	if height <= 0 || width <= 0 {
		return badInput("image size %dx%d is empty", height, width)
	}
	p := height * width
	if len(labels) != p {
		return badInput("labels hold %d values, want %d (%dx%d)", len(labels), p, height, width)
	}
	if n != classes*p {
		return badInput("scores hold %d values, want %d (%d classes x %dx%d)", n, classes*p, classes, height, width)
	}
	if err := checkClassSet(opt.Classes, classes); err != nil {
		return err
	}
	if hist != nil && hist.Classes != classes {
		return badInput("histogram has %d classes, image has %d", hist.Classes, classes)
	}
	if counts.Classes != classes {
		return badInput("counts have %d classes, image has %d", counts.Classes, classes)
	}
	return nil
}

// commit adds the image's confusion to dst.
func (f *Fused) commit(dst *Counts) {
	for i, v := range f.conf {
		dst.Confusion[i] += v
	}
}

// resetConf sizes and clears the per-image confusion.
func (f *Fused) resetConf(classes int) {
	f.conf = resize(f.conf, classes*classes)
	clear(f.conf)
}

// reference evaluates an image of float32 probabilities through the
// reference steps, in the order the fused passes stand for.
func (f *Fused) reference(probs []float32, labels []int32, classes, height, width int, opt Options, tol float64, hist *Histogram, counts *Counts) (ImageLoss, error) {
	ev := f.ref
	if tol > 0 {
		if err := ev.CheckProbabilities(probs, classes, width, tol); err != nil {
			return ImageLoss{}, err
		}
	}
	res, err := ev.LovaszSoftmax(probs, labels, classes, height, width, opt, hist)
	if err != nil {
		return ImageLoss{}, err
	}
	if err := ev.CountArgmax(probs, labels, height, width, opt, counts); err != nil {
		return ImageLoss{}, err
	}
	return res, nil
}
