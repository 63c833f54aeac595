package lovasz

import "math"

// halfFold adds one class's float16 errors, visited from the largest down,
// to a dataset histogram, exactly. Every error of float16 probabilities is
// a multiple of 2^-24, and every histogram bin's low edge a multiple of
// 2^-32 (bins per octave are at most 2^8, octaves start at 2^-24), so each
// error's distance to its bin's edge is a whole number of 2^-32 units: the
// sums of a bin are added in integers and reach the histogram's exact sums
// once per bin. The result depends only on which errors were added, not on
// how they were grouped into calls, which lets small images be counted per
// value over many images first (halfPending) and folded in later with the
// same result, bit for bit.
type halfFold struct {
	hist  *Histogram
	lo    []float64 // low edge of each histogram bin
	shift uint      // float64 bits >> shift, minus base, is the bin
	base  int
	last  int // the histogram's last bin
	off   int // the class's first bin in the histogram's slices
	k     int // the bin being summed, -1 for none
	cf    int64
	cb    int64
	sf    uint64 // sums of (error - lo[k]) in units of 2^-32
	sb    uint64
}

// foldUnits is the exponent of the unit of halfFold's sums, 2^-32: bin
// edges are multiples of 2^(minExp-maxHistogramBits), and errors of 2^-24.
const foldUnits = maxHistogramBits - minExp

// start prepares to fold class c into hist.
func (h *halfFold) start(hist *Histogram, c int) {
	b := log2(hist.BinsPerOctave)
	l := layouts[b]
	*h = halfFold{
		hist:  hist,
		lo:    l.lo,
		shift: uint(52 - b),
		base:  (1023+minExp)<<b - 1,
		last:  l.bins() - 1,
		off:   c * l.bins(),
		k:     -1,
	}
}

// addAll folds the visited slots of one class, then flushes.
func (h *halfFold) addAll(visits []halfVisit) {
	for _, v := range visits {
		h.add(v.err, uint64(v.n), v.fg)
	}
	h.flush()
}

// add folds n pixels of error e. The sums cannot overflow: errors are at
// most 2.5, so each lies less than 1 (2^32 units) above its bin's edge,
// and fewer than 2^32 pixels of a class are folded at a time.
func (h *halfFold) add(e float64, n uint64, fg bool) {
	k := int(math.Float64bits(e)>>h.shift) - h.base
	k = min(max(k, 0), h.last)
	if k != h.k {
		h.flush()
		h.k = k
	}
	d := n * uint64((e-h.lo[k])*(1<<foldUnits)) // exact: see halfFold
	if fg {
		h.cf += int64(n)
		h.sf += d
	} else {
		h.cb += int64(n)
		h.sb += d
	}
}

// flush adds the bin being summed to the histogram. Bin 0 keeps counts
// only, as in Histogram.
func (h *halfFold) flush() {
	if h.k < 0 {
		return
	}
	i := h.off + h.k
	if h.hist.FgCount[i] == 0 && h.hist.BgCount[i] == 0 {
		h.hist.touch(i)
	}
	h.hist.FgCount[i] += h.cf
	h.hist.BgCount[i] += h.cb
	if h.k > 0 {
		h.hist.FgSum[i].AddFixed(h.sf, foldUnits)
		h.hist.BgSum[i].AddFixed(h.sb, foldUnits)
	}
	h.k, h.cf, h.cb, h.sf, h.sb = -1, 0, 0, 0, 0
}
