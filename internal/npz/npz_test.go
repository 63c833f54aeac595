package npz

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zipMember is one member of an archive built by zipFile.
type zipMember struct {
	name   string
	method uint16
	data   []byte
}

// zipFile writes the members with archive/zip, as Python's zipfile would.
func zipFile(t testing.TB, members ...zipMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: m.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lyingZip writes one deflated member holding data whose header declares
// declared bytes instead of len(data).
func lyingZip(t testing.TB, name string, data []byte, declared uint64) []byte {
	t.Helper()
	var compressed bytes.Buffer
	fw, err := flate.NewWriter(&compressed, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return rawZip(t, name, compressed.Bytes(), declared, crc32.ChecksumIEEE(data))
}

// rawZip writes one member whose deflated bytes and header fields are
// given as they are, true or not.
func rawZip(t testing.TB, name string, compressed []byte, declared uint64, crc uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               name,
		Method:             zip.Deflate,
		CRC32:              crc,
		CompressedSize64:   uint64(len(compressed)),
		UncompressedSize64: declared,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(compressed); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFixtures checks that the archives numpy wrote store their members the
// way the tests say they do.
func TestFixtures(t *testing.T) {
	tests := []struct {
		file   string
		method uint16
		names  []string
	}{
		{"stored_positional.npz", zip.Store, []string{"arr_0.npy"}},
		{"deflated_positional.npz", zip.Deflate, []string{"arr_0.npy"}},
		{"deflated_named.npz", zip.Deflate, []string{"softmax.npy"}},
		{"stored_two.npz", zip.Store, []string{"probabilities.npy", "labels.npy"}},
	}
	for _, tt := range tests {
		data := readFile(t, tt.file)
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
			if f.Method != tt.method {
				t.Errorf("%s: member %s has method %d, want %d", tt.file, f.Name, f.Method, tt.method)
			}
		}
		if strings.Join(names, " ") != strings.Join(tt.names, " ") {
			t.Errorf("%s has members %v, want %v", tt.file, names, tt.names)
		}
	}
}

func TestMember(t *testing.T) {
	a, b := readFile(t, "a.npy"), readFile(t, "b.npy")
	tests := []struct {
		desc     string
		archive  []byte
		name     string
		want     []byte
		wantName string
	}{
		{"np.savez, only array", readFile(t, "stored_positional.npz"), "", a, "arr_0"},
		{"np.savez, named arr_0", readFile(t, "stored_positional.npz"), "arr_0", a, "arr_0"},
		{"np.savez_compressed, only array", readFile(t, "deflated_positional.npz"), "", a, "arr_0"},
		{"np.savez_compressed, keyword", readFile(t, "deflated_named.npz"), "softmax", a, "softmax"},
		{"np.savez_compressed, keyword as only array", readFile(t, "deflated_named.npz"), "", a, "softmax"},
		{"np.savez, two arrays", readFile(t, "stored_two.npz"), "labels", b, "labels"},
		{"np.savez, two arrays, other", readFile(t, "stored_two.npz"), "probabilities", a, "probabilities"},
		{
			"members that are not arrays",
			zipFile(t,
				zipMember{"notes/", zip.Store, nil},
				zipMember{"README.txt", zip.Deflate, []byte("two arrays? no, one")},
				zipMember{"probs.npy", zip.Deflate, a},
			),
			"", a, "probs",
		},
		{"empty member", zipFile(t, zipMember{"empty.npy", zip.Deflate, nil}), "", []byte{}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, name, err := Member(tt.archive, tt.name, 1<<20)
			if err != nil {
				t.Fatalf("Member: %v", err)
			}
			if !bytes.Equal(got, tt.want) || name != tt.wantName {
				t.Errorf("Member = %d bytes, %q; want %d bytes, %q", len(got), name, len(tt.want), tt.wantName)
			}
		})
	}
}

func TestMemberErrors(t *testing.T) {
	a := readFile(t, "a.npy")
	zeros := make([]byte, 1<<20)

	// A stored member with one data byte changed fails its CRC-32.
	corrupt := bytes.Clone(readFile(t, "stored_positional.npz"))
	i := bytes.Index(corrupt, a)
	if i < 0 {
		t.Fatal("stored_positional.npz does not hold a.npy verbatim")
	}
	corrupt[i+len(a)-1] ^= 1

	tests := []struct {
		desc     string
		archive  []byte
		name     string
		maxBytes int64
		want     string
		wantIs   error
	}{
		{
			desc:    "several arrays, no name",
			archive: readFile(t, "stored_two.npz"),
			want:    "npz: the archive holds more than one array: labels, probabilities; name the one to read",
			wantIs:  ErrSeveralArrays,
		},
		{
			desc:    "no such array",
			archive: readFile(t, "deflated_named.npz"),
			name:    "probabilities",
			want:    `npz: no array named "probabilities"; the archive holds softmax`,
		},
		{
			desc:    "name given with its suffix",
			archive: readFile(t, "deflated_named.npz"),
			name:    "softmax.npy",
			want:    `npz: no array named "softmax.npy"; the archive holds softmax`,
		},
		{
			desc:    "no arrays",
			archive: zipFile(t, zipMember{"README.txt", zip.Store, []byte("hi")}),
			want:    "npz: the archive holds no array (no member named *.npy)",
		},
		{
			desc:    "two members of one name",
			archive: zipFile(t, zipMember{"x.npy", zip.Store, a}, zipMember{"x.npy", zip.Deflate, a}),
			want:    "npz: the archive has two members named x.npy",
		},
		{
			desc:    "not a zip archive",
			archive: a,
			want:    "npz: reading the archive: zip: not a valid zip file",
			wantIs:  zip.ErrFormat,
		},
		{
			desc:    "truncated archive",
			archive: readFile(t, "deflated_named.npz")[:100],
			want:    "npz: reading the archive: ",
		},
		{
			desc:     "member over the limit",
			archive:  readFile(t, "stored_positional.npz"),
			maxBytes: int64(len(a) - 1),
			want:     "npz: member arr_0.npy: declared size 152 bytes exceeds the limit of 151",
		},
		{
			desc:     "zip bomb",
			archive:  zipFile(t, zipMember{"arr_0.npy", zip.Deflate, zeros}),
			maxBytes: 1 << 16,
			want:     "npz: member arr_0.npy: declared size 1048576 bytes exceeds the limit of 65536",
		},
		{
			// The deflated bytes are garbage: the size check must come
			// before anything is inflated.
			desc:     "size checked before inflating",
			archive:  rawZip(t, "arr_0.npy", []byte("not deflate data"), 1<<40, 0),
			maxBytes: 1 << 16,
			want:     "npz: member arr_0.npy: declared size 1099511627776 bytes exceeds the limit of 65536",
		},
		{
			desc:     "zip bomb declaring a small size",
			archive:  lyingZip(t, "arr_0.npy", zeros, 16),
			maxBytes: 1 << 16,
			want:     "npz: member arr_0.npy: inflates to more than its declared size of 16 bytes",
		},
		{
			desc:    "member shorter than declared",
			archive: lyingZip(t, "arr_0.npy", a, uint64(len(a)+1)),
			want:    "npz: member arr_0.npy: inflating 153 declared bytes: unexpected EOF",
		},
		{
			desc:    "bad checksum",
			archive: corrupt,
			want:    "npz: member arr_0.npy: zip: checksum error",
			wantIs:  zip.ErrChecksum,
		},
		{
			desc:     "zero limit",
			archive:  readFile(t, "stored_positional.npz"),
			maxBytes: -1,
			want:     "npz: the size limit must be positive, got -1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			maxBytes := tt.maxBytes
			if maxBytes == 0 {
				maxBytes = 1 << 20
			}
			got, name, err := Member(tt.archive, tt.name, maxBytes)
			if err == nil {
				t.Fatalf("Member = %d bytes, %q; want an error", len(got), name)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to start with %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
			if got != nil || name != "" {
				t.Errorf("Member returned %d bytes and name %q with its error", len(got), name)
			}
		})
	}
}
