// Package exact provides a fixed-point sum of float64 values whose addition
// is exact, so that it is associative and commutative: the same values give
// the same sum, bit for bit, in any order and any grouping. Float64 sums
// are not: their rounding depends on the order of the additions, and so a
// sum merged from parts in whatever order workers finish differs in its
// last bits from run to run.
package exact

import (
	"math"
	"math/bits"
)

// Sum is a sum of float64 values in fixed point: a signed 128-bit two's
// complement integer Hi*2^64 + Lo counting units of 2^-64. The zero value is
// an empty sum.
//
// Resolution and range: a value is added exactly when it is a multiple of
// 2^-64 of magnitude below 2^63: in particular every float64 whose
// magnitude lies in [2^-12, 2^63) (its last mantissa bit weighs at least
// 2^-64), every float32 in [2^-41, 2^63), and zero. Any other finite value
// below 2^63 in magnitude is first rounded to the nearest multiple of
// 2^-64, ties to even, so that each Add is off by at most 2^-65; values of
// magnitude 2^-65 or less add nothing. Every addition after that rounding
// is exact, so the result depends only on the set of values added
// (counting repeats), never on their order or on how partial sums were
// merged.
//
// Sums are exact as long as every partial sum stays below 2^63 - 1 in
// magnitude. Beyond that the arithmetic wraps around modulo 2^64 (in value)
// without notice. segeval's sums cannot get there: they add losses and
// errors below 4, and bootstrap weights below 16 times those, over far
// fewer than 2^58 images or pixels.
//
// Values that have no place in a fixed-point sum (NaN, infinities, and
// finite values of magnitude 2^63 or more, which count as infinities of
// their sign) are not added but recorded, so that a pipeline never panics
// on them and never reports a number for a sum that had one: the Sum then
// holds one of the reserved values below, which Add and Merge keep, and
// Float64 returns NaN, or ±Inf when only infinities of one sign were
// recorded (as float64 addition would). The reserved values are
// Hi = math.MinInt64 with Lo = 1 (+Inf), 2 (-Inf) or 3 (NaN): sums of
// -2^63 plus a few units, outside the range above. What a reserved value
// records is a set of flags, merged by union, so it too is independent of
// the order of the additions.
//
// Fields are exported so that a Sum can travel in a Beam accumulator, whose
// schema coder drops unexported fields.
type Sum struct {
	Hi int64
	Lo uint64
}

// Flags of the reserved values, in Lo.
const (
	posInf = 1
	negInf = 2
	nan    = posInf | negInf
)

// special reports whether s is a reserved value.
func (s Sum) special() bool { return s.Hi == math.MinInt64 && s.Lo-1 < nan }

// flags are the non-finite values s records, 0 for a finite sum.
func (s Sum) flags() uint64 {
	if s.special() {
		return s.Lo
	}
	return 0
}

// record makes s the reserved value recording f on top of what it held.
func (s *Sum) record(f uint64) {
	*s = Sum{Hi: math.MinInt64, Lo: s.flags() | f}
}

// Add adds x to s, rounded to a multiple of 2^-64 (see Sum). NaN,
// infinities and values of magnitude 2^63 or more are recorded instead, and
// make Float64 return NaN or an infinity. It does not allocate.
func (s *Sum) Add(x float64) {
	b := math.Float64bits(x)
	e := int(b>>52) & 0x7ff
	m := b & (1<<52 - 1)
	const (
		bias  = 1023
		limit = bias + 63 // the biased exponent of 2^63
	)
	if e >= limit {
		switch {
		case e == 0x7ff && m != 0:
			s.record(nan)
		case b>>63 != 0:
			s.record(negInf)
		default:
			s.record(posInf)
		}
		return
	}
	if s.special() {
		return
	}
	// |x| = m * 2^(e-1075) with the implicit bit, e = 1 for subnormals; in
	// units of 2^-64 that is m * 2^(e-1011). Shift m left by t = e-947 into
	// a 192-bit integer hi:lo:frac, the units and 64 bits of fraction. t is
	// clamped at 0: below, |x| < 2^-75 rounds to 0, and so does m alone in
	// the fraction. The shifts need no branches, which matters when
	// magnitudes vary: Go shifts by 64 or more give 0, and counts such as
	// t-64 wrap around to those when negative.
	if e == 0 {
		e = 1
	} else {
		m |= 1 << 52
	}
	t := uint(max(e-(bias+52-128), 0))
	frac := m << t
	lo := m>>(64-t) | m<<(t-64)
	hi := m>>(128-t) | m<<(t-128)
	// Round to nearest, ties to even: up when the fraction is above one
	// half, or exactly one half and the units odd.
	up := frac >> 63 & (lo | b2u(frac<<1 != 0))
	var c uint64
	lo, c = bits.Add64(lo, up, 0)
	hi += c
	// Add or subtract: -v = ^v + 1.
	neg := -(b >> 63)
	s.Lo, c = bits.Add64(s.Lo, lo^neg, neg&1)
	s.Hi += int64(hi^neg) + int64(c)
}

// AddFixed adds v × 2^-frac to s, exactly: an integer count of units of
// 2^-frac, such as a sum of many values on that grid that was added up in
// integers first. frac must be at most 64, and v × 2^-frac below 2^63, as
// every partial sum must be (see Sum). Added to a Sum holding a non-finite
// value, it changes nothing.
func (s *Sum) AddFixed(v uint64, frac uint) {
	if frac > 64 {
		panic("exact: AddFixed with a unit finer than 2^-64")
	}
	if s.special() {
		return
	}
	// v × 2^(64-frac) units of 2^-64 as a 128-bit integer hi:lo; Go shifts
	// by 64 give 0, which makes frac 0 and 64 need no branch.
	lo := v << (64 - frac)
	hi := v >> frac
	var c uint64
	s.Lo, c = bits.Add64(s.Lo, lo, 0)
	s.Hi += int64(hi) + int64(c)
}

// b2u is 1 for true and 0 for false.
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Merge adds o to s. Both are exact, so merging partial sums in any order
// and grouping gives the same Sum as adding every value to one.
func (s *Sum) Merge(o Sum) {
	if s.special() || o.special() {
		s.record(o.flags())
		return
	}
	var c uint64
	s.Lo, c = bits.Add64(s.Lo, o.Lo, 0)
	s.Hi += o.Hi + int64(c)
}

// Float64 returns the sum rounded to the nearest float64, ties to even; NaN
// or ±Inf when a non-finite value was recorded (see Sum).
func (s Sum) Float64() float64 {
	if s.special() {
		switch s.Lo {
		case posInf:
			return math.Inf(1)
		case negInf:
			return math.Inf(-1)
		}
		return math.NaN()
	}
	hi, lo := uint64(s.Hi), s.Lo
	neg := s.Hi < 0
	if neg {
		var b uint64
		lo, b = bits.Sub64(0, lo, 0)
		hi, _ = bits.Sub64(0, hi, b)
	}
	// The magnitude is hi*2^64 + lo, below 2^127 but for wrapped sums,
	// where it may reach 2^127 and is still read as unsigned. Keep its top
	// 64 bits; bits shifted out below them only matter as a sticky bit
	// that breaks ties, ORed into the last bit, which lies below the 53
	// bits a float64 keeps. Converting a uint64 to float64 rounds to
	// nearest even, and scaling by a power of two is exact.
	var v float64
	if hi == 0 {
		v = float64(lo) * 0x1p-64
	} else {
		z := uint(bits.LeadingZeros64(hi))
		top := hi<<z | lo>>(64-z)
		if lo<<z != 0 {
			top |= 1
		}
		v = float64(top) * math.Float64frombits(uint64(1023-z)<<52) // 2^-z
	}
	if neg {
		v = -v
	}
	return v
}

// IsZero reports whether s is zero: an empty sum, or one whose values
// cancel out exactly.
func (s Sum) IsZero() bool { return s.Hi == 0 && s.Lo == 0 }
