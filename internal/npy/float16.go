package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Float16ToFloat32 converts an IEEE 754 half-precision value, given by its
// bits, to float32. The conversion is exact: every float16 value, including
// subnormals, infinities and NaN payloads, is representable as a float32.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: mant * 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	// Rebias the exponent from 15 to 127 and widen the mantissa.
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToFloat16 converts f to the bits of the nearest IEEE 754
// half-precision value, rounding ties to even as NumPy does. Values beyond
// the float16 range become infinities, values too small become (signed)
// zeros, and NaN stays NaN.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		// Keep the top payload bits, as NumPy does, and make sure the
		// result does not collapse into an infinity.
		payload := uint16(mant >> 13)
		if payload == 0 {
			payload = 1
		}
		return sign | 0x7c00 | payload
	}
	e := exp - 127 + 15 // the exponent rebiased for float16
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		// Subnormal result: the float16 mantissa is the full float32
		// significand shifted right by 14-e bits. Shifting 25 or more
		// bits leaves less than half of the smallest subnormal.
		shift := uint(14 - e)
		if shift > 24 {
			return sign
		}
		return sign | uint16(roundShift(mant|0x800000, shift))
	}
	// Normal result. A mantissa that rounds up to 0x400 carries into the
	// exponent, which is exactly right, up to and including infinity.
	return sign | uint16(uint32(e)<<10+roundShift(mant, 13))
}

// roundShift returns x >> s rounded to the nearest integer, ties to even.
func roundShift(x uint32, s uint) uint32 {
	q := x >> s
	rem := x & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}

// DecodeFloat16Bits decodes a .npy file of float16 elements into their bits,
// in C (row-major) order whatever the file's order, and returns them with
// the array's shape. It converts nothing: callers that work on the bits
// (a float16 value has one of 2^16 patterns) save a float32 copy twice the
// size. The bits are stored in dst when its capacity suffices.
func DecodeFloat16Bits(data []byte, lim Limits, dst []uint16) ([]uint16, []int, error) {
	a, err := parse(data, lim)
	if err != nil {
		return nil, nil, err
	}
	if a.dt.code != "f2" {
		return nil, nil, fmt.Errorf("npy: dtype %q is not float16", a.dt.descr)
	}
	out := resize(dst, a.n)
	b := a.body
	if a.dt.order == binary.LittleEndian {
		for i := range out { // a concrete byte order inlines; the interface would not
			out[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return out, a.shape, nil
	}
	for i := range out {
		out[i] = a.dt.order.Uint16(b[2*i:])
	}
	return out, a.shape, nil
}

// IsFloat16 reports whether the .npy file in data holds float16 elements,
// from its header alone.
func IsFloat16(data []byte) bool {
	h, _, err := ReadHeader(bytes.NewReader(data))
	return err == nil && len(h.Descr) == 3 && h.Descr[1:] == "f2"
}
