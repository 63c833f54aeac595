package npy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to both decoders. They must never panic,
// and what they return must respect the element limit and agree with the
// shape.
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
