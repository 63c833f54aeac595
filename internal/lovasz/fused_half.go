package lovasz

import (
	"fmt"
	"math"
)

// halfScratch holds the float16 path's per-class counts. Every count is zero
// between classes: the walk that reads a count clears it.
type halfScratch struct {
	bg  [halfBgSlots]uint32 // background pixels by magnitude bits of p
	bg2 [halfBgSlots]uint32 // binHalf's second counts, zero between calls
	fg  [halfFgSlots]uint32 // foreground pixels by fgSlot(p)
	// Small images count pixels in a halfRow, which marks what it
	// holds, so that their walk visits those instead of every slot.
	small *halfRow[uint16]
}

// halfSmallPixels is the image size below which an image is small (see
// half_small.go): its counts fit uint16, and from 128x128 down, walking the
// values it holds costs less than walking all ~48k slots and folding each
// image into the histogram's bins (README, "Performance").
const halfSmallPixels = 1 << 16

// Half evaluates an image of float16 class probabilities, given by their
// bits as probs[c*H*W+i], without converting them. It checks them as
// CheckProbabilities does at tolerance tol (0 turns the check off), adds the
// confusion of labels against their argmax to counts, adds every class's
// errors to hist when it is not nil, and returns the Lovász-Softmax loss.
//
// Each distinct float16 value is a bin of its own, so the loss is exact:
// Bound is 0.
//
// The errors of an image of fewer than 65536 pixels do not reach hist
// (but for its MaxError) until Flush: f counts them per value, over as many
// images as come, and Flush folds them all at once into the histogram it is
// given, which must be hist or one that hist is merged into. The result is
// the same, bit for bit, as folding each image into hist. Images of another
// number of classes need a Flush in between.
func (f *Fused) Half(probs []uint16, labels []int32, classes, height, width int, opt Options, tol float64, hist *Histogram, counts *Counts) (ImageLoss, error) {
	if err := checkFused(len(probs), labels, classes, height, width, opt, hist, counts); err != nil {
		return ImageLoss{}, err
	}
	p := height * width
	small := p < f.smallPixels
	if q := f.pending; small && hist != nil && q != nil && q.pixels > 0 && q.classes != classes {
		return ImageLoss{}, fmt.Errorf("the errors of %d-class images are pending: Flush them before evaluating %d-class images", q.classes, classes)
	}
	if int64(p) >= math.MaxInt32 {
		// Counts are uint32; images this large take the reference path.
		return f.halfReference(probs, labels, classes, height, width, opt, tol, hist, counts)
	}
	if !(f.rng.tol == tol) {
		f.rng = newHalfRange(tol)
	}
	t := halfTablesOnce()
	if f.half == nil {
		f.half = &halfScratch{}
	}
	f.resetConf(classes)
	if !f.halfBlocks(probs, labels, classes, p, opt, tol, t) {
		return f.halfReference(probs, labels, classes, height, width, opt, tol, hist, counts)
	}
	ev := f.ref
	if err := ev.groupByLabel(labels, classes, width, opt); err != nil {
		return ImageLoss{}, err // the blocked pass checked the labels already
	}
	ev.selectClasses(classes, opt.Classes)
	res := ImageLoss{ValidPixels: int64(ev.start[classes]), PerClass: ev.perClass}
	if res.ValidPixels == 0 {
		return res, nil
	}
	if small && hist != nil {
		if f.pending == nil {
			f.pending = &halfPending{}
		}
		f.pending.begin(classes, uint64(res.ValidPixels), t)
	}
	counted := 0
	for c := range classes {
		if !ev.inSet[c] && hist == nil {
			continue
		}
		loss := f.halfClassLoss(probs[c*p:(c+1)*p], c, classes, opt, hist, t)
		if ev.inSet[c] {
			res.PerClass[c] = loss
			res.Loss += loss
			counted++
		}
	}
	if counted > 0 {
		res.Loss /= float64(counted)
	}
	f.commit(counts)
	return res, nil
}

// halfBlocks is the blocked pass over float16 planes: it checks every value
// against f.rng and, when tol > 0, every pixel's sum, and counts the
// confusion into f.conf. It reports whether the image passed every check,
// labels included.
//
// Each pixel's running maximum is one word, its key in the high half and
// 0xffff minus the class in the low half: one max per value keeps the
// largest key and, among equal keys, the lowest class.
func (f *Fused) halfBlocks(probs []uint16, labels []int32, classes, p int, opt Options, tol float64, t *halfTables) bool {
	limit := sumLimit(tol)
	// Non-negative values up to fastHi pass both checks; their key is
	// their bits. Anything else (a sign bit, a value too large) sends
	// the block through the signed loop, which tells the two apart.
	fastHi := uint16(min(max(f.rng.hi, 0), fast32Limit-1))
	// The fast path adds up to fold classes in uint32 lanes before
	// carrying the sums over to int64.
	fold := int(math.MaxUint32 / max(t.fixed32[fastHi], 1))
	f.sum32 = resize(f.sum32, fusedBlock)
	for s := 0; s < p; s += fusedBlock {
		e := min(s+fusedBlock, p)
		best, sum := f.best[:e-s], f.sum[:e-s]
		if !halfBlockFast(probs, best, sum, f.sum32[:e-s], classes, p, s, tol > 0, fold, fastHi, t) &&
			!f.halfBlockSigned(probs, best, sum, classes, p, s, tol > 0, t) {
			return false
		}
		if tol > 0 && !sumsWithin(sum, limit) {
			return false
		}
		arg := f.arg[:e-s]
		for j, m := range best {
			arg[j] = 0xffff - int32(m&0xffff)
		}
		if !countArgs(f.conf, labels[s:e], arg, classes, opt) {
			return false
		}
	}
	return true
}

// halfBlockFast runs the block of pixels starting at s through every class
// plane, assuming non-negative values, and reports whether they all were
// at most fastHi. Sums add fold classes at a time in sum32.
func halfBlockFast(probs []uint16, best []uint32, sum []int64, sum32 []uint32, classes, p, s int, sums bool, fold int, fastHi uint16, t *halfTables) bool {
	clear(best)
	clear(sum)
	n := len(best)
	for c0 := 0; c0 < classes; c0 += fold {
		clear(sum32)
		end := min(c0+fold, classes)
		// Classes go two at a time: one load and store of each
		// pixel's maximum and sum serves two values.
		c := c0
		for ; c+1 < end; c += 2 {
			a, b := probs[c*p+s:c*p+s+n], probs[(c+1)*p+s:(c+1)*p+s+n]
			if sums {
				halfMaxSum2(a, b, best, sum32, &t.fixed32, halfTag(c))
			} else {
				halfMax2(a, b, best, halfTag(c))
			}
		}
		if c < end {
			plane := probs[c*p+s : c*p+s+n]
			if sums {
				halfMaxSum(plane, best, sum32, &t.fixed32, halfTag(c))
			} else {
				halfMax(plane, best, halfTag(c))
			}
		}
		if sums {
			for j, v := range sum32 {
				sum[j] += int64(v)
			}
		}
	}
	// The largest value of the block is the largest of its pixels'
	// maxima, the key in each word's high half (a sign bit, read as
	// a large value, fails the test too).
	var hi uint32
	for _, m := range best {
		hi = max(hi, m)
	}
	return hi>>16 <= uint32(fastHi)
}

// halfTag is what halfMax adds to a key shifted up: class c's tie-breaker,
// larger for lower classes.
func halfTag(c int) uint32 { return 0xffff - uint32(c) }

// halfMax folds one class's block of non-negative values into the running
// maxima. It is kept out of line: inlined into the loop over classes, its
// counters spill to the stack.
//
//go:noinline
func halfMax(plane []uint16, best []uint32, tag uint32) {
	best = best[:len(plane)]
	for j, b := range plane {
		best[j] = max(best[j], uint32(b)<<16+tag)
	}
}

// halfMax2 is halfMax for two consecutive classes, a of tag and b of
// tag-1 (see halfTag). It is kept out of line, as halfMax.
//
//go:noinline
func halfMax2(a, b []uint16, best []uint32, tag uint32) {
	best = best[:len(a)]
	b = b[:len(a)]
	for j, x := range a {
		best[j] = max(best[j], uint32(x)<<16+tag, uint32(b[j])<<16+tag-1)
	}
}

// halfMaxSum2 is halfMaxSum for two consecutive classes, as halfMax2.
//
//go:noinline
func halfMaxSum2(a, b []uint16, best []uint32, sum []uint32, fixed *[halfBgSlots]uint32, tag uint32) {
	best = best[:len(a)]
	sum = sum[:len(a)]
	b = b[:len(a)]
	_ = fixed[0] // one nil check, not one per value
	for j, x := range a {
		y := b[j]
		best[j] = max(best[j], uint32(x)<<16+tag, uint32(y)<<16+tag-1)
		sum[j] += fixed[x&(halfBgSlots-1)] + fixed[y&(halfBgSlots-1)]
	}
}

// halfMaxSum is halfMax that also adds the values, in units of 2^-24, to
// each pixel's sum. It is kept out of line, as halfMax.
//
//go:noinline
func halfMaxSum(plane []uint16, best []uint32, sum []uint32, fixed *[halfBgSlots]uint32, tag uint32) {
	best = best[:len(plane)]
	sum = sum[:len(plane)]
	_ = fixed[0] // one nil check, not one per value
	for j, b := range plane {
		best[j] = max(best[j], uint32(b)<<16+tag)
		sum[j] += fixed[b&(halfBgSlots-1)]
	}
}

// halfBlockSigned runs the block of pixels starting at s through every class
// plane with signed keys and sums, and reports whether every value lies in
// f.rng.
func (f *Fused) halfBlockSigned(probs []uint16, best []uint32, sum []int64, classes, p, s int, sums bool, t *halfTables) bool {
	clear(best)
	clear(sum)
	for c := range classes {
		plane := probs[c*p+s : c*p+s+len(best)]
		tag := halfTag(c)
		for j, b := range plane {
			k := halfKey(b)
			if k < f.rng.lo || k > f.rng.hi {
				return false
			}
			best[j] = max(best[j], uint32(k+0x8000)<<16+tag)
			if sums {
				neg := int64(int16(b) >> 15) // 0 or -1
				sum[j] += (t.fixed[b&(halfBgSlots-1)] ^ neg) - neg
			}
		}
	}
	return true
}

// sumLimit is the largest |sum - 1| a pixel's sum may have at tolerance tol,
// in units of 2^-24: CheckProbabilities accepts an exact sum s when
// |s-1| <= tol, that is |S - 2^24| <= tol*2^24 for S = s*2^24, an integer.
func sumLimit(tol float64) int64 {
	return int64(math.Floor(min(tol, 1<<30) * (1 << 24)))
}

// sumsWithin reports whether every sum is within limit of 1 (2^24 units).
func sumsWithin(sum []int64, limit int64) bool {
	ok := true
	for _, s := range sum {
		d := s - 1<<24
		ok = ok && d <= limit && d >= -limit
	}
	return ok
}

// halfClassLoss bins class c's errors on a checked float16 plane, walks them
// from the largest down and returns the class's exact loss, adding its
// errors to hist when it is not nil. Small images take halfSmallLoss.
func (f *Fused) halfClassLoss(plane []uint16, c, classes int, opt Options, hist *Histogram, t *halfTables) float64 {
	ev, sc := f.ref, f.half
	fg := ev.pixels[ev.start[c]:ev.start[c+1]]
	ignored := ev.pixels[ev.start[classes]:]
	if len(plane) < f.smallPixels {
		return f.halfSmallLoss(plane, c, fg, ignored, opt, hist, t)
	}
	binHalf(plane, &sc.bg, &sc.bg2)
	for _, i := range ignored {
		sc.bg[plane[i]&(halfBgSlots-1)]--
	}
	for _, i := range fg {
		b := plane[i]
		sc.bg[b&(halfBgSlots-1)]--
		sc.fg[fgSlot(b)&(halfFgSlots-1)]++
	}
	visits := gatherDense(sc, t, int64(ev.start[classes]), f.visits[:0])
	f.visits = visits
	g := int64(len(fg))
	if hist != nil {
		f.fold.start(hist, c)
		f.fold.addAll(visits)
		if g == 0 && opt.Classes.Mode != Present && len(visits) > 0 {
			hist.noteMaxError(c, visits[0].err)
		}
	}
	if len(visits) == 0 {
		return math.NaN() // no valid pixel: never asked for
	}
	if g == 0 {
		// Every pixel is background: J = 1 from the first pixel on.
		return visits[0].err
	}
	return halfExtension(visits, g)
}

// binHalf counts every value of plane as a background pixel. Neighbouring
// pixels often hold the same value (a confident region), and counting them
// all in bg would make each increment wait for the previous one: odd
// pixels are counted in bg2, added to bg at the end.
func binHalf(plane []uint16, bg, bg2 *[halfBgSlots]uint32) {
	n := len(plane) &^ 1
	for j := 0; j < n; j += 2 {
		pair := plane[j : j+2 : j+2]
		bg[pair[0]&(halfBgSlots-1)]++
		bg2[pair[1]&(halfBgSlots-1)]++
	}
	if n < len(plane) {
		bg[plane[n]&(halfBgSlots-1)]++
	}
	for k, v := range bg2 {
		bg[k] += v
	}
	clear(bg2[:])
}

// halfVisit is a slot of halfTables.order that holds pixels: its error,
// whether it is a foreground slot, and its number of pixels. Gathering
// them once keeps the walks that follow off the large tables.
type halfVisit struct {
	err float64
	n   uint32
	fg  bool
}

// take returns the count of an entry of halfTables.order and clears it.
func (sc *halfScratch) take(slot uint32) (n uint32) {
	if slot&orderFg != 0 {
		s := slot & (halfFgSlots - 1)
		n, sc.fg[s] = sc.fg[s], 0
	} else {
		s := slot & (halfBgSlots - 1)
		n, sc.bg[s] = sc.bg[s], 0
	}
	return n
}

// gatherDense lists the non-empty slots in order, clearing their counts. It
// stops once valid pixels are found: every later count is zero.
func gatherDense(sc *halfScratch, t *halfTables, valid int64, dst []halfVisit) []halfVisit {
	var seen int64
	for pos, slot := range t.order {
		if n := sc.take(slot); n != 0 {
			dst = append(dst, halfVisit{t.err[pos], n, slot&orderFg != 0})
			if seen += int64(n); seen == valid {
				break
			}
		}
	}
	return dst
}

// halfExtension is the Lovász extension of the Jaccard loss over the
// visited slots, largest error first, for g > 0 foreground pixels. With
// G foreground pixels and, after k pixels, B_k background ones, the prefix
// loss is k/(G+B_k) (exact.go); the pixels of one error value add the error
// times its increase, whatever their order.
func halfExtension(visits []halfVisit, g int64) float64 {
	var seen, b0 int64
	var value, prev float64
	for _, v := range visits {
		seen += int64(v.n)
		if !v.fg {
			b0 += int64(v.n)
		}
		j := float64(seen) / float64(g+b0)
		value += v.err * (j - prev)
		prev = j
	}
	return value
}

// halfReference evaluates a float16 image through the reference steps, on a
// float32 copy: the path of images that fail a check, so that their error is
// the reference's, and of images too large for uint32 counts.
func (f *Fused) halfReference(probs []uint16, labels []int32, classes, height, width int, opt Options, tol float64, hist *Histogram, counts *Counts) (ImageLoss, error) {
	f.f32 = resize(f.f32, len(probs))
	for i, b := range probs {
		f.f32[i] = float32(halfValue(b))
	}
	return f.reference(f.f32, labels, classes, height, width, opt, tol, hist, counts)
}
