package lovasz

// halfFold adds one class's exact errors, visited from the largest down, to a
// dataset histogram. Consecutive errors of one histogram bin are summed in
// float64 and added to the bin's exact sums once, as addFine does with the
// fine bins of the float32 path.
type halfFold struct {
	hist  *Histogram
	lo    []float64 // low edge of each histogram bin
	binOf []uint16  // the bin of each entry of halfTables.order
	off   int       // the class's first bin in the histogram's slices
	k     int       // the bin being summed, -1 for none
	cf    int64
	cb    int64
	sf    float64 // sums of (error - lo[k])
	sb    float64
}

// start prepares to fold class c into hist.
func (h *halfFold) start(hist *Histogram, c int, t *halfTables) {
	b := log2(hist.BinsPerOctave)
	l := layouts[b]
	*h = halfFold{
		hist:  hist,
		lo:    l.lo,
		binOf: t.binsFor(b),
		off:   c * l.bins(),
		k:     -1,
	}
}

// addAll folds the visited slots of one class, then flushes.
func (h *halfFold) addAll(visits []halfVisit) {
	for _, v := range visits {
		h.add(v)
	}
	h.flush()
}

// add folds the pixels of a visited slot.
func (h *halfFold) add(v halfVisit) {
	k := int(h.binOf[v.pos])
	if k != h.k {
		h.flush()
		h.k = k
	}
	d := float64(v.n) * (v.err - h.lo[k])
	if v.fg {
		h.cf += int64(v.n)
		h.sf += d
	} else {
		h.cb += int64(v.n)
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
