// Package npz extracts arrays from NumPy's .npz archives.
//
// An .npz file is a zip archive of .npy files, one per array, as written by
// numpy.savez (members stored) and numpy.savez_compressed (members
// deflated). An array saved positionally is named arr_0, arr_1, ...; one
// saved by keyword, such as nnU-Net's softmax, carries its keyword; the
// member's name is the array's name followed by .npy.
//
// [Member] returns one member's .npy bytes for package npy to decode. The
// archive is untrusted input: a member's declared size is checked against
// a limit before anything is inflated, and inflation stops at the declared
// size, so a zip bomb is an error rather than an exhausted memory.
package npz

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ErrSeveralArrays is returned, wrapped with the arrays' names, when Member is
// asked for the only array of an archive that holds more than one.
var ErrSeveralArrays = errors.New("npz: the archive holds more than one array")

// suffix ends the name of every member that holds an array.
const suffix = ".npy"

// Member returns the .npy file of the array called name in the .npz archive
// data, and the array's name. When name is "" it returns the archive's only
// array, whatever its name; an archive of several arrays is then an error
// wrapping [ErrSeveralArrays] that lists their names. Members whose names do
// not end in .npy are not arrays and are ignored.
//
// The member may be stored or deflated. Its declared uncompressed size must
// not exceed maxBytes, which must be positive; the bytes returned are
// exactly the declared size, and their CRC-32 is checked.
func Member(data []byte, name string, maxBytes int64) ([]byte, string, error) {
	if maxBytes <= 0 {
		return nil, "", fmt.Errorf("npz: the size limit must be positive, got %d", maxBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// An array name is not a file path, so an "insecure" one (absolute,
		// say) is no danger here: the archive is never extracted to disk.
		return nil, "", fmt.Errorf("npz: reading the archive: %w", err)
	}
	arrays := make(map[string]*zip.File)
	var names []string
	for _, f := range zr.File {
		array, ok := strings.CutSuffix(f.Name, suffix)
		if !ok || f.FileInfo().IsDir() {
			continue
		}
		if arrays[array] != nil {
			return nil, "", fmt.Errorf("npz: the archive has two members named %s", f.Name)
		}
		arrays[array] = f
		names = append(names, array)
	}
	slices.Sort(names)
	list := strings.Join(names, ", ")
	var f *zip.File
	switch {
	case len(names) == 0:
		return nil, "", errors.New("npz: the archive holds no array (no member named *.npy)")
	case name != "":
		if f = arrays[name]; f == nil {
			return nil, "", fmt.Errorf("npz: no array named %q; the archive holds %s", name, list)
		}
	case len(names) > 1:
		return nil, "", fmt.Errorf("%w: %s; name the one to read", ErrSeveralArrays, list)
	default:
		name = names[0]
		f = arrays[name]
	}
	out, err := read(f, maxBytes)
	if err != nil {
		return nil, "", fmt.Errorf("npz: member %s: %w", f.Name, err)
	}
	return out, name, nil
}

// read inflates f, which must declare at most maxBytes, into a buffer of its
// declared size. It reads at most one byte past that size, so a member that
// inflates beyond what it declares costs no more than it declared.
func read(f *zip.File, maxBytes int64) ([]byte, error) {
	size := f.UncompressedSize64
	if size > uint64(maxBytes) {
		return nil, fmt.Errorf("declared size %d bytes exceeds the limit of %d", size, maxBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(rc, out); err != nil {
		return nil, fmt.Errorf("inflating %d declared bytes: %w", size, err)
	}
	// Reading on to the end checks that nothing follows and, there, the
	// CRC-32. The zip reader reports data beyond the declared size as
	// zip.ErrFormat.
	var extra [1]byte
	n, err := io.ReadFull(rc, extra[:])
	switch {
	case n > 0 || errors.Is(err, zip.ErrFormat):
		return nil, fmt.Errorf("inflates to more than its declared size of %d bytes", size)
	case err != io.EOF:
		return nil, err
	}
	return out, nil
}
