package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// Limits bounds what the decoders accept, so that a hostile or corrupt file
// cannot make them allocate without bound.
type Limits struct {
	// MaxElements is the largest element count (product of the shape) a
	// decoder accepts. It must be positive: a zero limit is a configuration
	// mistake, not "unlimited".
	MaxElements int64
}

// dtype is a parsed NumPy type string such as "<f4".
type dtype struct {
	descr string
	code  string // kind and size, such as "f4": f float, i signed, u unsigned, b bool
	size  int    // bytes per element
	order binary.ByteOrder
}

// elementSizes maps the kind and size part of each supported type string to
// its size in bytes.
var elementSizes = map[string]int{
	"f2": 2, "f4": 4, "f8": 8,
	"i1": 1, "i2": 2, "i4": 4, "i8": 8,
	"u1": 1, "u2": 2, "u4": 4, "u8": 8,
	"b1": 1,
}

// parseDescr parses the type strings of the numeric dtypes this package
// decodes: a byte order ('<' little, '>' big, '=' native, '|' not
// applicable), a kind and a size in bytes.
func parseDescr(descr string) (dtype, error) {
	if len(descr) < 2 || elementSizes[descr[1:]] == 0 {
		return dtype{}, fmt.Errorf("npy: unsupported dtype %q (want bool, an integer or a float of 2, 4 or 8 bytes)", descr)
	}
	dt := dtype{descr: descr, code: descr[1:], size: elementSizes[descr[1:]]}
	switch descr[0] {
	case '<':
		dt.order = binary.LittleEndian
	case '>':
		dt.order = binary.BigEndian
	case '=':
		dt.order = binary.NativeEndian
	case '|':
		if dt.size != 1 {
			return dtype{}, fmt.Errorf("npy: dtype %q: byte order '|' is only valid for one-byte types", descr)
		}
		dt.order = binary.NativeEndian // never consulted for one-byte types
	default:
		return dtype{}, fmt.Errorf("npy: unsupported byte order in dtype %q", descr)
	}
	return dt, nil
}

// array is a validated .npy file whose elements are not yet converted.
type array struct {
	dt    dtype
	shape []int
	n     int    // element count
	body  []byte // exactly n*dt.size bytes
}

// parse reads the header of the .npy file in data and checks it against lim
// and against the bytes present, allocating nothing in proportion to the
// declared shape.
func parse(data []byte, lim Limits) (array, error) {
	if lim.MaxElements <= 0 {
		return array{}, fmt.Errorf("npy: Limits.MaxElements must be positive, got %d", lim.MaxElements)
	}
	h, offset, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		return array{}, err
	}
	dt, err := parseDescr(h.Descr)
	if err != nil {
		return array{}, err
	}
	n := int64(1)
	for _, d := range h.Shape {
		if d != 0 && n > lim.MaxElements/int64(d) {
			return array{}, fmt.Errorf("npy: shape %v exceeds the limit of %d elements", h.Shape, lim.MaxElements)
		}
		n *= int64(d)
	}
	if n > lim.MaxElements {
		return array{}, fmt.Errorf("npy: shape %v exceeds the limit of %d elements", h.Shape, lim.MaxElements)
	}
	body := data[offset:]
	if want := n * int64(dt.size); int64(len(body)) != want {
		return array{}, fmt.Errorf("npy: shape %v of %s needs %d data bytes, file has %d", h.Shape, dt.descr, want, len(body))
	}
	if h.FortranOrder {
		// numpy saves any Fortran-contiguous array (a transposed one, say)
		// as it lies in memory, and np.load reads it back: so do we, by
		// reordering its bytes once, so that every decoder below sees C
		// order and needs no second code path.
		body = fortranToC(body, h.Shape, dt.size)
	}
	return array{dt: dt, shape: h.Shape, n: int(n), body: body}, nil
}

// fortranToC returns the elements of size bytes each of the column-major
// (first index fastest) array body of the given shape in row-major (last
// index fastest) order. Arrays of fewer than two dimensions are the same
// in both orders and are returned as they are; otherwise the result is a
// new slice of len(body) bytes, which parse has checked against the shape.
func fortranToC(body []byte, shape []int, size int) []byte {
	if len(shape) < 2 || len(body) == 0 {
		return body
	}
	k := len(shape)
	// stride[j] is the byte distance in body between elements whose
	// index j differs by one.
	stride := make([]int, k)
	s := size
	for j := range shape {
		stride[j] = s
		s *= shape[j]
	}
	out := make([]byte, len(body))
	idx := make([]int, k-1) // C-order counter over all but the last index
	last, lastStride := shape[k-1], stride[k-1]
	src := 0 // offset in body of the element at idx with last index 0
	for dst := 0; dst < len(out); {
		for i, p := 0, src; i < last; i, p = i+1, p+lastStride {
			copy(out[dst:dst+size], body[p:p+size])
			dst += size
		}
		for j := k - 2; j >= 0; j-- {
			idx[j]++
			src += stride[j]
			if idx[j] < shape[j] {
				break
			}
			src -= idx[j] * stride[j]
			idx[j] = 0
		}
	}
	return out
}

// DecodeFloat32 decodes a .npy file of float16, float32 or float64 elements
// into float32 values in C (row-major) order, whatever the file's order, and
// returns them with the array's shape. The values are stored in dst when its
// capacity suffices, so a caller decoding many files can reuse one buffer.
func DecodeFloat32(data []byte, lim Limits, dst []float32) ([]float32, []int, error) {
	a, err := parse(data, lim)
	if err != nil {
		return nil, nil, err
	}
	if a.dt.code[0] != 'f' {
		return nil, nil, fmt.Errorf("npy: dtype %q is not a floating-point type (want f2, f4 or f8)", a.dt.descr)
	}
	out := resize(dst, a.n)
	b, order := a.body, a.dt.order
	switch a.dt.size {
	case 2:
		decodeFloat16(out, b, order)
	case 4:
		if order == binary.LittleEndian {
			for i := range out { // a concrete byte order inlines; the interface would not
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
			break
		}
		for i := range out {
			out[i] = math.Float32frombits(order.Uint32(b[4*i:]))
		}
	case 8:
		for i := range out {
			out[i] = float32(math.Float64frombits(order.Uint64(b[8*i:])))
		}
	}
	return out, a.shape, nil
}

// float16Table maps every float16 bit pattern to its float32 value. A
// Cityscapes probability map holds 40 million float16 values: one lookup
// each, with the little-endian read inlined, is several times faster than
// converting each through an interface call.
var float16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = Float16ToFloat32(uint16(h))
	}
	return &t
})

func decodeFloat16(out []float32, b []byte, order binary.ByteOrder) {
	t := float16Table()
	if order == binary.LittleEndian {
		for i := range out {
			out[i] = t[binary.LittleEndian.Uint16(b[2*i:])]
		}
		return
	}
	for i := range out {
		out[i] = t[order.Uint16(b[2*i:])]
	}
}

// DecodeInt32 decodes a .npy file of integer or bool elements of any width
// and byte order into int32 values in C (row-major) order, whatever the
// file's order, and returns them with the array's shape. A value outside the
// int32 range is an error. The values are stored in dst when its capacity
// suffices.
func DecodeInt32(data []byte, lim Limits, dst []int32) ([]int32, []int, error) {
	a, err := parse(data, lim)
	if err != nil {
		return nil, nil, err
	}
	if a.dt.code[0] == 'f' {
		return nil, nil, fmt.Errorf("npy: dtype %q is not an integer type", a.dt.descr)
	}
	out := resize(dst, a.n)
	b, order := a.body, a.dt.order
	switch a.dt.code {
	case "b1":
		for i, v := range b {
			out[i] = 0
			if v != 0 {
				out[i] = 1
			}
		}
	case "i1":
		for i, v := range b {
			out[i] = int32(int8(v))
		}
	case "u1":
		for i, v := range b {
			out[i] = int32(v)
		}
	case "i2":
		for i := range out {
			out[i] = int32(int16(order.Uint16(b[2*i:])))
		}
	case "u2":
		for i := range out {
			out[i] = int32(order.Uint16(b[2*i:]))
		}
	case "i4":
		for i := range out {
			out[i] = int32(order.Uint32(b[4*i:]))
		}
	case "u4":
		for i := range out {
			v := order.Uint32(b[4*i:])
			if v > math.MaxInt32 {
				return nil, nil, outOfRange(i, strconv.FormatUint(uint64(v), 10))
			}
			out[i] = int32(v)
		}
	case "i8":
		for i := range out {
			v := int64(order.Uint64(b[8*i:]))
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, nil, outOfRange(i, strconv.FormatInt(v, 10))
			}
			out[i] = int32(v)
		}
	case "u8":
		for i := range out {
			v := order.Uint64(b[8*i:])
			if v > math.MaxInt32 {
				return nil, nil, outOfRange(i, strconv.FormatUint(v, 10))
			}
			out[i] = int32(v)
		}
	}
	return out, a.shape, nil
}

func outOfRange(index int, value string) error {
	return fmt.Errorf("npy: element %d has value %s, outside the int32 range", index, value)
}

// resize returns dst resliced to length n, or a new slice if dst is too small.
func resize[T any](dst []T, n int) []T {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]T, n)
}
