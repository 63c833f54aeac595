package lovasz

import "math"

// halfFold adds one class's exact errors, visited from the largest down, to a
// dataset histogram. Consecutive errors of one histogram bin are summed in
// float64 and added to the bin's exact sums once, as addFine does with the
// fine bins of the float32 path.
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
	sf    float64 // sums of (error - lo[k])
	sb    float64
}

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
		h.add(v.err, v.n, v.fg)
	}
	h.flush()
}

// add folds n pixels of error e.
func (h *halfFold) add(e float64, n uint32, fg bool) {
	k := int(math.Float64bits(e)>>h.shift) - h.base
	k = min(max(k, 0), h.last)
	if k != h.k {
		h.flush()
		h.k = k
	}
	d := float64(n) * (e - h.lo[k])
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
		if h.sf != 0 {
			h.hist.FgSum[i].Add(h.sf)
		}
		if h.sb != 0 {
			h.hist.BgSum[i].Add(h.sb)
		}
	}
	h.k, h.cf, h.cb, h.sf, h.sb = -1, 0, 0, 0, 0
}
