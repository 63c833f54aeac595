package npy

import (
	"encoding/binary"
	"unsafe"
)

// ViewFloat16 returns the bits of a .npy file of float16 elements without
// copying them: a slice that aliases data, valid as long as data is and
// changing with it. It works for little-endian files in C order, on a
// little-endian machine, when the elements are 2-byte aligned in memory, and
// returns false otherwise, and for any file DecodeFloat16Bits rejects: use
// DecodeFloat16Bits then. A Cityscapes probability map is 80 MB of float16:
// the view saves a copy of that size and the pass that makes it.
func ViewFloat16(data []byte, lim Limits) ([]uint16, bool) {
	a, err := parse(data, lim)
	if err != nil || a.dt.code != "f2" || a.dt.order != binary.LittleEndian || !littleEndianHost {
		return nil, false
	}
	if a.n == 0 || len(a.body) != 2*a.n || &a.body[0] != &data[len(data)-len(a.body)] {
		return nil, false // empty, or reordered from Fortran order into a copy
	}
	p := unsafe.Pointer(unsafe.SliceData(a.body))
	if uintptr(p)%2 != 0 {
		return nil, false
	}
	return unsafe.Slice((*uint16)(p), a.n), true
}

// littleEndianHost reports whether the machine stores the low byte first.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
