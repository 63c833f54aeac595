package npy

import (
	"math"
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
