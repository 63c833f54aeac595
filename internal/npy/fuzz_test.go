package npy

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoders. They must never panic,
// what they return must respect the element limit and agree with the shape,
// and float16 bits must be the values DecodeFloat32 returns.
func FuzzDecode(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.npy"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(rawFile(1, dict("<f2", "(2,)"), []byte{0, 0x3c, 0, 0x7c}))
	f.Add(rawFile(2, dict(">u8", "(1,)"), make([]byte, 8)))
	f.Add(rawFile(1, dict("|b1", "(100000000, 100000000)"), nil))

	lim := Limits{MaxElements: 1 << 12}
	f.Fuzz(func(t *testing.T, data []byte) {
		floats, shape, err := DecodeFloat32(data, lim, nil)
		if err == nil {
			checkDecoded(t, len(floats), shape, lim)
		}
		ints, shape, err := DecodeInt32(data, lim, nil)
		if err == nil {
			checkDecoded(t, len(ints), shape, lim)
		}
		bits, shape, err := DecodeFloat16Bits(data, lim, nil)
		if err == nil {
			checkDecoded(t, len(bits), shape, lim)
			// The bits are the float16 values DecodeFloat32 converts.
			if len(floats) != len(bits) || !IsFloat16(data) {
				t.Fatalf("%d float16 values, %d floats, IsFloat16 %v", len(bits), len(floats), IsFloat16(data))
			}
			for i, b := range bits {
				if math.Float32bits(Float16ToFloat32(b)) != math.Float32bits(floats[i]) {
					t.Fatalf("value %d: bits %#04x, float %v", i, b, floats[i])
				}
			}
		}
	})
}

func checkDecoded(t *testing.T, n int, shape []int, lim Limits) {
	t.Helper()
	want := 1
	for _, d := range shape {
		want *= d
	}
	if n != want || int64(n) > lim.MaxElements {
		t.Fatalf("decoded %d elements for shape %v with limit %d", n, shape, lim.MaxElements)
	}
}
