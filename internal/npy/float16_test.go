package npy

import (
	"math"
	"slices"
	"testing"
)

func TestFloat16ToFloat32(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0},
		{0x8000, float32(math.Copysign(0, -1))},
		{0x0001, 0x1p-24},   // smallest subnormal
		{0x03ff, 0x3ffp-24}, // largest subnormal
		{0x0400, 0x1p-14},   // smallest normal
		{0x3c00, 1},
		{0x3c01, 1 + 0x1p-10},
		{0xc000, -2},
		{0x7bff, 65504},
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		got := Float16ToFloat32(tt.h)
		if math.Float32bits(got) != math.Float32bits(tt.want) {
			t.Errorf("Float16ToFloat32(%#04x) = %g, want %g", tt.h, got, tt.want)
		}
	}
	for _, h := range []uint16{0x7c01, 0x7e00, 0xfe00, 0x7fff} {
		if got := Float16ToFloat32(h); !math.IsNaN(float64(got)) {
			t.Errorf("Float16ToFloat32(%#04x) = %g, want NaN", h, got)
		}
	}
}

// TestFloat16RoundTrip converts every float16 value to float32 and back.
func TestFloat16RoundTrip(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		if got := Float32ToFloat16(Float16ToFloat32(h)); got != h {
			t.Errorf("Float32ToFloat16(Float16ToFloat32(%#04x)) = %#04x", h, got)
		}
	}
}

// TestFloat32ToFloat16Rounding checks, for every pair of adjacent
// non-negative finite float16 values, that their midpoint rounds to the one
// with the even mantissa and that the float32 values just beside the
// midpoint round to the nearer one.
func TestFloat32ToFloat16Rounding(t *testing.T) {
	for h := uint16(0); h < 0x7bff; h++ { // the midpoint above 0x7bff is tested in TestFloat32ToFloat16
		lo, hi := Float16ToFloat32(h), Float16ToFloat32(h+1)
		mid := (lo + hi) / 2 // exact: float16 values have 11 significant bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		cases := []struct {
			f    float32
			want uint16
		}{
			{mid, even},
			{math.Nextafter32(mid, 0), h},
			{math.Nextafter32(mid, float32(math.Inf(1))), h + 1},
		}
		for _, c := range cases {
			if got := Float32ToFloat16(c.f); got != c.want {
				t.Fatalf("Float32ToFloat16(%g) = %#04x, want %#04x", c.f, got, c.want)
			}
			if got := Float32ToFloat16(-c.f); got != c.want|0x8000 {
				t.Fatalf("Float32ToFloat16(%g) = %#04x, want %#04x", -c.f, got, c.want|0x8000)
			}
		}
	}
}

func TestFloat32ToFloat16(t *testing.T) {
	tests := []struct {
		f    float32
		want uint16
	}{
		{0x1p-25, 0x0000},        // half the smallest subnormal: tie to even zero
		{0x1.000002p-25, 0x0001}, // just above half
		{0x1p-26, 0x0000},        // far below
		{math.SmallestNonzeroFloat32, 0x0000},
		{65519.998, 0x7bff}, // below the midpoint to infinity
		{65520, 0x7c00},     // midpoint: ties to even, which is infinity
		{1e10, 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{float32(math.NaN()), 0x7e00},              // NumPy's NaN
		{math.Float32frombits(0x7f800001), 0x7c01}, // payload lost in the low bits stays NaN
		{math.Float32frombits(0xffc02000), 0xfe01},
	}
	for _, tt := range tests {
		if got := Float32ToFloat16(tt.f); got != tt.want {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", tt.f, got, tt.want)
		}
	}
}

func TestDecodeFloat16Bits(t *testing.T) {
	bits := []uint16{0x0000, 0x8000, 0x3c00, 0x0001, 0x7e00, 0xbc00}
	tests := []struct {
		name string
		data []byte
		want []uint16 // nil: an error
	}{
		{"little-endian", rawFile(1, dict("<f2", "(2, 3)"), littleEndian(bits)), bits},
		{"big-endian", rawFile(1, dict(">f2", "(6,)"), bigEndian(bits)), bits},
		{"fortran order", rawFile(1, fortranDict("<f2", "(2, 3)"), littleEndian([]uint16{0, 1, 2, 3, 4, 5})), []uint16{0, 2, 4, 1, 3, 5}},
		{"float32", rawFile(1, dict("<f4", "(1,)"), littleEndian([]float32{1})), nil},
		{"integers", rawFile(1, dict("<u2", "(1,)"), littleEndian([]uint16{1})), nil},
		{"truncated", rawFile(1, dict("<f2", "(4,)"), littleEndian(bits[:3])), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := DecodeFloat16Bits(tt.data, testLimits, nil)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("decoded %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %#04x, want %#04x", got, tt.want)
			}
			if !IsFloat16(tt.data) {
				t.Error("IsFloat16 is false")
			}
		})
	}
	if IsFloat16(rawFile(1, dict("<f4", "(1,)"), littleEndian([]float32{1}))) {
		t.Error("IsFloat16 is true for float32")
	}
}

func TestViewFloat16(t *testing.T) {
	bits := []uint16{0x0000, 0x8000, 0x3c00, 0x0001, 0x7e00, 0xbc00}
	le := rawFile(1, dict("<f2", "(2, 3)"), littleEndian(bits))
	got, ok := ViewFloat16(le, testLimits)
	if !ok || !slices.Equal(got, bits) {
		t.Fatalf("view %#04x, %v; want %#04x", got, ok, bits)
	}
	le[len(le)-1] ^= 0x80 // the view aliases the file
	if got[5] != bits[5]^0x8000 {
		t.Errorf("view does not alias the file: %#04x", got[5])
	}
	for name, data := range map[string][]byte{
		"big-endian":    rawFile(1, dict(">f2", "(6,)"), bigEndian(bits)),
		"fortran order": rawFile(1, fortranDict("<f2", "(2, 3)"), littleEndian(bits)),
		"float32":       rawFile(1, dict("<f4", "(1,)"), littleEndian([]float32{1})),
		"truncated":     rawFile(1, dict("<f2", "(6,)"), littleEndian(bits[:5])),
		"misaligned":    append([]byte{0}, le...)[1:],
	} {
		if _, ok := ViewFloat16(data, testLimits); ok {
			t.Errorf("%s: viewed, want false", name)
		}
	}
}
