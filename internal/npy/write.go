package npy

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Header layout constants of numpy.lib.format, which Write follows so that
// its output is byte-for-byte what numpy.save writes.
const (
	// headerAlign is the multiple the data offset is padded to.
	headerAlign = 64
	// growthAxisMaxDigits is the width NumPy reserves for the first
	// dimension, so the array can later grow in place.
	growthAxisMaxDigits = 21
)

// Write writes data as a version 1.0 .npy file of the given type string and
// shape in C (row-major) order. The accepted combinations are
//
//	[]float32 as "<f4", or as "<f2" (rounding to float16)
//	[]float64 as "<f8"
//	[]uint8   as "|u1"
//	[]uint16  as "<u2"
//	[]int32   as "<i4"
//	[]int64   as "<i8"
//
// and len(data) must equal the product of shape.
func Write(w io.Writer, descr string, shape []int, data any) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		n *= d
	}
	var length int
	var ok bool // whether descr is a valid type string for data
	switch v := data.(type) {
	case []float32:
		length, ok = len(v), descr == "<f4" || descr == "<f2"
	case []float64:
		length, ok = len(v), descr == "<f8"
	case []uint8:
		length, ok = len(v), descr == "|u1"
	case []uint16:
		length, ok = len(v), descr == "<u2"
	case []int32:
		length, ok = len(v), descr == "<i4"
	case []int64:
		length, ok = len(v), descr == "<i8"
	}
	if !ok {
		return fmt.Errorf("npy: cannot write %T as %q", data, descr)
	}
	if length != n {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", shape, n, length)
	}
	if descr == "<f2" {
		floats := data.([]float32)
		halves := make([]uint16, len(floats))
		for i, f := range floats {
			halves[i] = Float32ToFloat16(f)
		}
		data = halves
	}
	header, err := encodeHeader(descr, shape)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, header); err != nil {
		return fmt.Errorf("npy: writing header: %w", err)
	}
	if err := binary.Write(w, binary.LittleEndian, data); err != nil {
		return fmt.Errorf("npy: writing data: %w", err)
	}
	return nil
}

// encodeHeader returns the magic string, version, header length and header
// dictionary of a version 1.0 file, laid out as numpy.lib.format does: the
// dictionary's keys sorted, spare spaces for the first dimension to grow,
// and space padding and a newline so the data starts at a multiple of 64.
func encodeHeader(descr string, shape []int) (string, error) {
	var dict strings.Builder
	fmt.Fprintf(&dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, pythonTuple(shape))
	if len(shape) > 0 {
		dict.WriteString(strings.Repeat(" ", max(0, growthAxisMaxDigits-len(strconv.Itoa(shape[0])))))
	}
	const prefixLen = len(magic) + 2 + 2 // magic, version, uint16 length
	padding := headerAlign - (prefixLen+dict.Len()+1)%headerAlign
	dict.WriteString(strings.Repeat(" ", padding))
	dict.WriteByte('\n')
	if dict.Len() > 0xffff {
		return "", fmt.Errorf("npy: header of %d bytes is too long for format version 1.0", dict.Len())
	}
	return magic + "\x01\x00" + string([]byte{byte(dict.Len()), byte(dict.Len() >> 8)}) + dict.String(), nil
}

// pythonTuple formats shape as Python's repr of a tuple of ints does:
// (), (3,) or (2, 3).
func pythonTuple(shape []int) string {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	if len(dims) == 1 {
		return "(" + dims[0] + ",)"
	}
	return "(" + strings.Join(dims, ", ") + ")"
}
