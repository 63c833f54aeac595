package lovasz

import (
	"math"
	"slices"
	"sync"
)

// Float16 probabilities take one of a few thousand values in [0, 1], so the
// errors of a float16 image take few distinct values too: every valid
// background error is |p| for a float16 p, every foreground error |1-p|.
// Counting pixels per distinct value, instead of per bin of a range, gives
// the exact loss with no bound, no refinement and no sort. The tables below
// put those distinct values in one decreasing order once per process.
const (
	// halfMaxAbs is the float16 bits of 1.5, the largest |p| accepted.
	halfMaxAbs = 0x3e00
	// halfBgSlots indexes background counts by the magnitude bits of p,
	// which order background errors as their values do.
	halfBgSlots = 1 << 14
	// halfFgSlots indexes foreground counts by fgSlot(p): the sign and the
	// magnitude bits of p.
	halfFgSlots = 1 << 15
)

// fgSlot is the foreground count slot of the float16 bits b of a valid
// probability (|p| <= 1.5).
func fgSlot(b uint16) int { return int(b>>15)<<14 | int(b&(halfBgSlots-1)) }

// halfKey maps float16 bits to an integer ordered as the values are, with
// -0 and +0 equal, as float comparison has them. NaNs map beyond the
// infinities; callers reject them by range before comparing.
func halfKey(b uint16) int32 {
	s := int32(b >> 15)
	m := int32(b & 0x7fff)
	return (m ^ -s) + s
}

// halfValue is the value of float16 bits b, exact in float64.
func halfValue(b uint16) float64 {
	e := int(b>>10) & 0x1f
	m := float64(b & 0x3ff)
	var v float64
	switch e {
	case 0:
		v = math.Ldexp(m, -24)
	case 0x1f:
		v = math.Inf(1)
		if m != 0 {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(1024+m, e-25)
	}
	if b&0x8000 != 0 {
		return -v
	}
	return v
}

// halfTables are the process-wide tables of the float16 path.
type halfTables struct {
	// order lists every distinct error slot by decreasing error: a
	// background slot k as k, a foreground slot s as s|orderFg.
	order []uint32
	// err is the error of each entry of order.
	err []float64
	// bgErr is the error of each background slot, |p|.
	bgErr [halfBgSlots]float64
	// bgPos and fgPos are the positions in order of each slot, for
	// images small enough to walk only the slots they touch.
	bgPos [halfBgSlots]uint16
	fgPos [halfFgSlots]uint16
	// fixed is each magnitude's value in units of 2^-24 (exact: the
	// smallest float16 is 2^-24), so that per-pixel sums are exact
	// integer sums, equal to the reference's float64 sums.
	fixed [halfBgSlots]int64
	// fixed32 is fixed for the fast path's non-negative values below
	// fast32Limit, whose sums add in uint32 lanes (half the memory
	// traffic); larger values hold garbage and never reach it.
	fixed32 [halfBgSlots]uint32
}

// fast32Limit bounds the bits of values the fast path sums in uint32:
// below 0x5c00 (256), a value is less than 2^32 units of 2^-24.
const fast32Limit = 0x5c00

const orderFg = 1 << 16

var halfTablesOnce = sync.OnceValue(newHalfTables)

func newHalfTables() *halfTables {
	t := &halfTables{}
	type entry struct {
		slot uint32
		err  float64
	}
	var all []entry
	for k := range halfMaxAbs + 1 {
		v := halfValue(uint16(k))
		all = append(all, entry{uint32(k), v})
		t.bgErr[k] = v
		t.fixed[k] = int64(math.Ldexp(v, 24))
		t.fixed32[k] = uint32(min(t.fixed[k], math.MaxUint32))
		// Foreground errors of p = +v and p = -v (-0 included).
		all = append(all, entry{uint32(fgSlot(uint16(k))) | orderFg, math.Abs(1 - v)})
		all = append(all, entry{uint32(fgSlot(uint16(k)|0x8000)) | orderFg, 1 + v})
	}
	slices.SortStableFunc(all, func(a, b entry) int {
		switch {
		case a.err > b.err:
			return -1
		case a.err < b.err:
			return 1
		}
		return 0
	})
	t.order = make([]uint32, len(all))
	t.err = make([]float64, len(all))
	for i, e := range all {
		t.order[i], t.err[i] = e.slot, e.err
		if e.slot&orderFg != 0 {
			t.fgPos[e.slot&^orderFg] = uint16(i)
		} else {
			t.bgPos[e.slot] = uint16(i)
		}
	}
	return t
}

// halfRange is the interval of halfKey values a check accepts.
type halfRange struct {
	tol    float64
	lo, hi int32
}

// newHalfRange returns the keys of the float16 values p that pass both the
// probability check at tolerance tol (-tol <= p <= 1+tol, evaluated as
// CheckProbabilities does; tol 0 turns it off) and the kernel's |p| <= 1.5.
// Both conditions are intervals, so the accepted keys are one interval.
func newHalfRange(tol float64) halfRange {
	r := halfRange{tol: tol, lo: math.MaxInt32, hi: math.MinInt32}
	for b := range 1 << 16 {
		f := halfValue(uint16(b))
		ok := math.Abs(f) <= 1.5
		if tol > 0 {
			ok = ok && f >= -tol && f <= 1+tol
		}
		if ok {
			k := halfKey(uint16(b))
			r.lo, r.hi = min(r.lo, k), max(r.hi, k)
		}
	}
	return r
}
