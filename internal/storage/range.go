package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
)

// ErrChanged reports that a file or object is no longer the version a read
// was pinned to: it was rewritten, deleted or shortened since Match or List
// saw it. Byte offsets planned from that version no longer apply, so
// retrying the same read is pointless; the caller must plan again or give up
// on the file.
var ErrChanged = errors.New("the object changed since it was matched")

// OpenRange opens the length bytes at offset of a file or object for
// reading. The caller must Close the reader. A read delivers exactly length
// bytes and then io.EOF.
//
// gen pins the read to the version of the content that Match or List
// reported as Object.Generation; 0 reads whatever version is current. If
// that version is gone, or the range ends past its end, OpenRange (or,
// should the change happen during the read, Read) fails with an error
// wrapping ErrChanged that names the path.
//
// On Cloud Storage the read is retried and resumed mid-stream like one from
// Open. A local file is checked once, when it is opened; its version is the
// modification time in nanoseconds. A file replaced by WriteFile or Rename
// after that keeps being read as the version opened, since those replace the
// file rather than write into it.
func (s *Store) OpenRange(ctx context.Context, path string, gen, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("read %s: invalid range of %d bytes at offset %d", path, length, offset)
	}
	if !IsGCS(path) {
		f, _, err := openLocalRange(path, gen, offset, length)
		if err != nil {
			return nil, err
		}
		return &localRange{f: f, path: path, off: offset, end: offset + length}, nil
	}
	obj, err := s.object(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if length == 0 {
		// A request for no bytes would fetch the whole object, so check
		// the version with a metadata request instead.
		attrs, err := statGCS(ctx, path, obj, gen)
		if err != nil {
			return nil, err
		}
		if offset > attrs.Size {
			return nil, pastEnd(path, attrs.Generation, offset, length, attrs.Size)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	r, err := openRangeGCS(ctx, path, obj, gen, offset, length, s.retry)
	if err != nil {
		return nil, err // not a nil *gcsReader in a non-nil interface
	}
	return r, nil
}

// openRangeGCS starts reading the length (> 0) bytes at offset of obj,
// pinned to generation gen unless gen is 0.
func openRangeGCS(ctx context.Context, path string, obj *gcs.ObjectHandle, gen, offset, length int64, retry retryConfig) (*gcsReader, error) {
	if gen != 0 {
		obj = obj.Generation(gen)
	}
	r, err := obj.NewRangeReader(ctx, offset, length)
	if err != nil {
		return nil, rangeError(path, gen, offset, length, err)
	}
	a := r.Attrs
	if a.Decompressed {
		// The server ignores the range and sends the whole object
		// decompressed, so offsets in the stored bytes mean nothing.
		r.Close()
		return nil, fmt.Errorf("read %s: the object is stored gzip-encoded and served decompressed: byte ranges of it cannot be read", path)
	}
	if a.Size-offset < length {
		// The server sends what there is of a range that ends past the
		// object's end; a version that short is not the one planned from.
		r.Close()
		return nil, pastEnd(path, a.Generation, offset, length, a.Size)
	}
	g := newGCSReader(ctx, path, obj, r, length, retry)
	g.pinned = gen != 0
	return g, nil
}

// statGCS returns the attributes of generation gen of obj, or of the
// current one when gen is 0.
func statGCS(ctx context.Context, path string, obj *gcs.ObjectHandle, gen int64) (*gcs.ObjectAttrs, error) {
	if gen != 0 {
		obj = obj.Generation(gen)
	}
	attrs, err := obj.Attrs(ctx)
	if err != nil {
		return nil, rangeError(path, gen, 0, 0, err)
	}
	return attrs, nil
}

// rangeError describes a failure to start reading length bytes at offset of
// generation gen of the object at path.
func rangeError(path string, gen, offset, length int64, err error) error {
	var apiErr *googleapi.Error
	switch {
	case gen != 0 && errors.Is(err, gcs.ErrObjectNotExist):
		// The object may well exist in another generation, so this is
		// not a missing file and is deliberately not fs.ErrNotExist.
		return fmt.Errorf("read %s: generation %d is gone: %w (%w)", path, gen, ErrChanged, err)
	case errors.As(err, &apiErr) && apiErr.Code == http.StatusRequestedRangeNotSatisfiable:
		// The range starts at or past the object's end.
		return fmt.Errorf("read %s: bytes [%d, %d) start past the end of the object: %w", path, offset, offset+length, ErrChanged)
	}
	return fmt.Errorf("read %s at offset %d: %w", path, offset, gcsError(err))
}

// pastEnd describes a range that ends past the end of version gen, of size
// bytes.
func pastEnd(path string, gen, offset, length, size int64) error {
	return fmt.Errorf("read %s: bytes [%d, %d) end past the end of the object, which has %d bytes (version %d): %w",
		path, offset, offset+length, size, gen, ErrChanged)
}

// localGeneration is the version of a local file: its modification time in
// nanoseconds, which a rewrite changes.
func localGeneration(info fs.FileInfo) int64 {
	return info.ModTime().UnixNano()
}

// openLocalVersion opens the local file at path for reading and checks that
// it is version gen, unless gen is 0.
func openLocalVersion(path string, gen int64) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		if gen != 0 && errors.Is(err, fs.ErrNotExist) {
			// As on Cloud Storage, a pinned version that is gone is
			// a change, not a missing file.
			return nil, nil, fmt.Errorf("read %s: version %d is gone: %w (%v)", path, gen, ErrChanged, err)
		}
		return nil, nil, err // a *fs.PathError naming the path
	}
	info, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, nil, err
	case !info.Mode().IsRegular():
		f.Close()
		return nil, nil, fmt.Errorf("read %s: not a regular file", path)
	case gen != 0 && localGeneration(info) != gen:
		f.Close()
		return nil, nil, fmt.Errorf("read %s: version %d is gone: the file was modified at %s (version %d): %w",
			path, gen, info.ModTime().Format(time.RFC3339Nano), localGeneration(info), ErrChanged)
	}
	return f, info, nil
}

// openLocalRange opens version gen of the local file at path (see
// openLocalVersion) and checks that it holds the length bytes at offset.
func openLocalRange(path string, gen, offset, length int64) (*os.File, fs.FileInfo, error) {
	f, info, err := openLocalVersion(path, gen)
	if err != nil {
		return nil, nil, err
	}
	if size := info.Size(); size-offset < length {
		f.Close()
		return nil, nil, pastEnd(path, localGeneration(info), offset, length, size)
	}
	return f, info, nil
}

// localRange reads the bytes [off, end) of a local file.
type localRange struct {
	f    *os.File
	path string
	off  int64 // offset of the next byte to read
	end  int64
}

// Read implements io.Reader.
func (l *localRange) Read(p []byte) (int, error) {
	if l.off >= l.end {
		return 0, io.EOF
	}
	if int64(len(p)) > l.end-l.off {
		p = p[:l.end-l.off]
	}
	n, err := l.f.ReadAt(p, l.off)
	l.off += int64(n)
	switch {
	case err == io.EOF && n < len(p):
		// The file was checked to hold the range when opened, so it
		// was truncated in place since.
		return n, fmt.Errorf("read %s: the file ended at offset %d, before the end of the range at %d: %w (%w)",
			l.path, l.off, l.end, ErrChanged, io.ErrUnexpectedEOF)
	case err == io.EOF:
		return n, nil
	}
	return n, err
}

// Close implements io.Closer.
func (l *localRange) Close() error {
	return l.f.Close()
}
