package lovasz

import "math"

// Errors are binned by their floating-point bits: a bin is an exponent and the
// top mantissa bits, so bins are narrow where errors are small and the binning
// is integer-only. Octaves run from 2^minExp up to 2^2: probabilities lie in
// [-1.5, 1.5], so background errors |p| stay below 2 and foreground errors
// |1-p| below 4. Bin 0 holds everything below 2^minExp, exact zeros included.
const (
	minExp       = -24
	octaves      = 2 - minExp // [2^-24, 2^-23), ..., [2, 4)
	fineBits     = 8          // mantissa bits per fine bin: 256 bins per octave
	fineOctave   = 1 << fineBits
	fineBins     = octaves*fineOctave + 1
	fineSlots    = 8192 // power of two >= fineBins, so masked indexes need no bounds check
	fineSlotMask = fineSlots - 1

	// fineBase32 maps float32 bits>>(23-fineBits) to the bin index; the
	// subtraction leaves the first bin of octave minExp at 1.
	fineBase32 = (127+minExp)<<fineBits - 1
	fineBase64 = (1023+minExp)<<fineBits - 1
	// offsetMask32 keeps the float32 mantissa bits below the bin's: the
	// error's offset from its bin's low edge, in units of the bin's ulp.
	offsetMask32 = 1<<(23-fineBits) - 1

	maxProbBits = 0x3fc00000 // float32 bits of 1.5, the largest |p| accepted
)

// layout describes the bins of one resolution.
type layout struct {
	perOctave int
	lo, width []float64 // per bin
}

func newLayout(perOctave int) *layout {
	n := octaves*perOctave + 1
	l := &layout{perOctave: perOctave, lo: make([]float64, n), width: make([]float64, n)}
	l.width[0] = math.Ldexp(1, minExp)
	for k := 1; k < n; k++ {
		e, m := (k-1)/perOctave+minExp, (k-1)%perOctave
		l.lo[k] = math.Ldexp(1+float64(m)/float64(perOctave), e)
		l.width[k] = math.Ldexp(1/float64(perOctave), e)
	}
	return l
}

// bins is the number of bins of the layout.
func (l *layout) bins() int { return len(l.lo) }

// layouts holds one layout per supported resolution: 1, 2, 4, ..., 256 bins
// per octave, indexed by log2.
var layouts = func() [fineBits + 1]*layout {
	var ls [fineBits + 1]*layout
	for i := range ls {
		ls[i] = newLayout(1 << i)
	}
	return ls
}()

var fine = layouts[fineBits]

// fineULP[k] is the float32 ulp of errors in fine bin k: the unit of the
// offsets summed by binBackground.
var fineULP = func() []float64 {
	u := make([]float64, fineBins)
	for k := 1; k < fineBins; k++ {
		u[k] = fine.width[k] / (offsetMask32 + 1)
	}
	return u
}()

// fineBin32 is the fine bin of a non-negative float32 error given its bits.
// Errors of 2^(octaves+minExp) and above, NaN and infinities included, land in
// the last slot, past every real bin.
func fineBin32(bits uint32) int {
	k := int(bits>>(23-fineBits)) - fineBase32
	k &^= k >> 63 // below 2^minExp: bin 0
	return min(k, fineSlots-1)
}

// maxProbBin is the bin of the largest accepted probability: a count above it
// flags a bad value.
var maxProbBin = fineBin32(maxProbBits)

// fineBin64 is the fine bin of a non-negative float64 error.
func fineBin64(e float64) int {
	k := int(math.Float64bits(e)>>(52-fineBits)) - fineBase64
	k &^= k >> 63
	return k & fineSlotMask
}

// walk returns the Lovász extension of the Jaccard loss for one class from its
// binned errors, and a bound on the distance to the exact value. g is the
// class's foreground count and must be positive; n is the number of pixels.
//
// Bins are visited from the largest errors down. Before bin k, F0 foreground
// and B0 background pixels came first. Write each error as lo+d with d in
// [0, width]. The lo parts contribute lo*(J_after-J_before) whatever the order
// inside the bin. A foreground pixel preceded by b background pixels of its
// bin has weight 1/(D+b), D = G+B0; a background pixel preceded by f
// foreground and b background pixels of its bin has weight
// (R-f)/((D+b)(D+b+1)), R = G-F0. Those weights lie in known intervals, and the
// sums of d are known (bin 0 only knows they lie in [0, n*width]), so each
// bin's share lies in an interval: the midpoint is added to the value and the
// half-width to the bound.
func walk(l *layout, g, n int64, nf, nb []int64, sf, sb []float64) (value, bound float64) {
	var f0, b0 int64
	for k := l.bins() - 1; k >= 0 && f0+b0 < n; k-- {
		cf, cb := nf[k], nb[k]
		if cf == 0 && cb == 0 {
			continue
		}
		d := float64(g + b0)
		r := float64(g - f0)
		before := float64(f0 + b0)
		fcf, fcb := float64(cf), float64(cb)
		value += l.lo[k] * ((before+fcf+fcb)/(d+fcb) - before/d)
		sfLo, sfHi, sbLo, sbHi := sf[k], sf[k], sb[k], sb[k]
		if k == 0 {
			sfLo, sfHi = 0, fcf*l.width[0]
			sbLo, sbHi = 0, fcb*l.width[0]
		}
		if cf > 0 {
			lo, hi := sfLo/(d+fcb), sfHi/d
			value += (lo + hi) / 2
			bound += (hi - lo) / 2
		}
		if cb > 0 {
			lo := sbLo * (r - fcf) / ((d + fcb - 1) * (d + fcb))
			hi := sbHi * r / (d * (d + 1))
			value += (lo + hi) / 2
			bound += (hi - lo) / 2
		}
		f0 += cf
		b0 += cb
	}
	return value, bound
}
