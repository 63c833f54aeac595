package npz

import (
	"archive/zip"
	"path/filepath"
	"testing"
)

// FuzzMember feeds arbitrary archives and names to Member. It must never
// panic, never return more than the limit, and return the array asked for.
func FuzzMember(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.npz"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		data := readFile(f, filepath.Base(name))
		f.Add(data, "")
		f.Add(data, "softmax")
		f.Add(data, "labels")
	}
	a := readFile(f, "a.npy")
	f.Add(zipFile(f, zipMember{"arr_0.npy", zip.Deflate, make([]byte, 1<<17)}), "")
	f.Add(lyingZip(f, "arr_0.npy", make([]byte, 1<<17), 16), "arr_0")
	f.Add(lyingZip(f, "arr_0.npy", a, uint64(len(a))), "arr_0")
	f.Add(zipFile(f, zipMember{"x.npy", zip.Store, a}, zipMember{"y.npy", zip.Deflate, a}), "y")

	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		out, got, err := Member(data, name, limit)
		if err != nil {
			return
		}
		if len(out) > limit {
			t.Fatalf("Member returned %d bytes, over the limit of %d", len(out), limit)
		}
		if got == "" || name != "" && got != name {
			t.Fatalf("Member(%q) returned array %q", name, got)
		}
	})
}
