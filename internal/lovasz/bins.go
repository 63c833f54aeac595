package lovasz

import "math"

// Errors are binned by their floating-point bits: a bin is an exponent and the
// top mantissa bits, so bins are narrow where errors are small and the binning
// is integer-only. Octaves run from 2^minExp up to 2^2: probabilities lie in
// [-1.5, 1.5], so background errors |p| stay below 2 and foreground errors
// |1-p| below 4. Bin 0 holds everything below 2^minExp, exact zeros included.
const (
	minExp  = -24
	octaves = 2 - minExp // [2^-24, 2^-23), ..., [2, 4)
	// maxSlots is the slot count of the finest resolution: a power of two
	// past its last bin, so that masked indexes need no bounds check.
	maxSlots = 1 << 15

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

// maxHistogramBits bounds the dataset histogram's resolution: 256 bins per
// octave, the per-image pass's, which it is folded from.
const maxHistogramBits = 8

// layouts holds one layout per resolution the dataset histogram supports:
// 1, 2, 4, ..., 256 bins per octave, indexed by log2.
var layouts = func() [maxHistogramBits + 1]*layout {
	var ls [maxHistogramBits + 1]*layout
	for i := range ls {
		ls[i] = newLayout(1 << i)
	}
	return ls
}()

// A resolution bins per-image errors straight from their float bits, with
// 2^bits bins per octave.
type resolution struct {
	bits   uint
	layout *layout
	// base32 and base64 map float bits >> (mantissa bits - bits) to the
	// bin index; the subtraction puts the first bin of octave minExp at 1.
	base32, base64 int
	last           int    // the overflow slot, past every real bin
	offsetMask     uint32 // float32 mantissa bits below the bin's
	// ulp[k] is the float32 ulp of errors in bin k: the unit of the
	// offsets that binBackground sums.
	ulp []float64
}

func newResolution(bits uint, l *layout) *resolution {
	r := &resolution{
		bits:       bits,
		layout:     l,
		base32:     (127+minExp)<<bits - 1,
		base64:     (1023+minExp)<<bits - 1,
		offsetMask: 1<<(23-bits) - 1,
	}
	r.last = l.bins()
	r.ulp = make([]float64, l.bins())
	for k := 1; k < l.bins(); k++ {
		r.ulp[k] = l.width[k] / float64(r.offsetMask+1)
	}
	return r
}

var (
	// perImage is the first pass: 256 bins per octave keep the hot loop's
	// bins within 64 KB, and the bound below 1e-7 on float32 softmax
	// outputs.
	perImage = newResolution(perImageBits, layouts[perImageBits])
	// refined is the second pass, for classes whose bound is too wide:
	// with 1024 bins per octave every float16 value has a bin of its own,
	// and a bin whose errors are all equal adds nothing to the bound.
	refined = newResolution(10, newLayout(1024))
)

// bin32 is the bin of a non-negative float32 error given its bits. Errors of
// 2^(octaves+minExp) and above, NaN and infinities included, land in the
// overflow slot r.last.
func (r *resolution) bin32(bits uint32) int {
	k := int(bits>>(23-r.bits)) - r.base32
	return min(max(k, 0), r.last) & (maxSlots - 1) // below 2^minExp: bin 0
}

// bin64 is the bin of a non-negative float64 error.
func (r *resolution) bin64(e float64) int {
	k := int(math.Float64bits(e)>>(52-r.bits)) - r.base64
	return min(max(k, 0), r.last) & (maxSlots - 1)
}

// maxProbBin is the bin of the largest accepted probability: a count above it
// flags a bad value.
func (r *resolution) maxProbBin() int { return r.bin32(maxProbBits) }

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
		increment := (before+fcf+fcb)/(d+fcb) - before/d
		value += l.lo[k] * increment
		sfLo, sfHi, sbLo, sbHi := sf[k], sf[k], sb[k], sb[k]
		if k == 0 {
			sfLo, sfHi = 0, fcf*l.width[0]
			sbLo, sbHi = 0, fcb*l.width[0]
		}
		// The bin adds sum(w_i * (e_i - lo)) to the value. Limits on
		// each pixel's weight bound it, foreground and background apart.
		var lo, hi float64
		if cf > 0 {
			lo += sfLo / (d + fcb)
			hi += sfHi / d
		}
		if cb > 0 {
			lo += sbLo * (r - fcf) / ((d + fcb - 1) * (d + fcb))
			hi += sbHi * r / (d * (d + 1))
		}
		// And whatever the order inside the bin, its weights are
		// non-negative and sum to its Jaccard increment while every
		// offset lies in [0, width): the bin adds at most width x
		// increment. This caps the background limit, which is loose when
		// many background pixels share a bin before few foreground ones.
		hi = max(min(hi, l.width[k]*increment), lo)
		value += (lo + hi) / 2
		bound += (hi - lo) / 2
		f0 += cf
		b0 += cb
	}
	return value, bound
}
