package storage

import (
	"context"
	"fmt"
	"io"
	"os"

	gcs "cloud.google.com/go/storage"
)

// seekWindow is the most a Seeker asks for when it starts a new range read
// (unless one Read wants more); later reads that fall inside the same window
// are served by reading on through it instead of by a new request.
//
// The size serves the hops of archive/tar from one member's header to the
// next: a hop reads about 1 KiB (the last byte of the member's data, which
// archive/tar reads to detect truncation, the padding, a 512-byte header,
// perhaps a PAX header before it), and members that follow are often small
// (a JSON document, a class label), so inside the window they are read
// through rather than requested again. A Cloud Storage request costs a round
// trip of tens of milliseconds, in which a connection transfers a few
// hundred KiB, so reading through a gap of up to 256 KiB costs no more than
// a new request would. A larger window would not pay: the range is bounded
// so that a response abandoned after a hop, whose rest the server may send
// anyway, wastes at most a window of transfer.
const seekWindow = 256 << 10

// Seeker reads scattered pieces of one version of a file or object, such as
// the tar headers of a shard, with few requests. Seek only moves the
// position; Read serves bytes from the current range read when the position
// lies within it, and otherwise starts a new range read of up to seekWindow
// bytes there, pinned to the version the Seeker was opened on.
//
// archive/tar skips the data of a member by seeking to its last byte and
// reading that byte; through a Seeker, that hop costs one request when the
// member is larger than the window and none when it is small.
//
// A Seeker is not safe for concurrent use. Create one with OpenSeeker and
// Close it when done.
type Seeker struct {
	path string
	size int64
	// open starts a range read of the length bytes at offset of the
	// version the Seeker reads.
	open func(offset, length int64) (io.ReadCloser, error)
	// release frees what the Seeker holds besides its range read, if
	// anything: the local file.
	release func() error

	pos  int64         // offset of the next byte Read delivers
	r    io.ReadCloser // the current range read, or nil
	rpos int64         // offset of the next byte r delivers
	rend int64         // offset just past the last byte r was asked for

	requests int64 // range reads started
	bytes    int64 // bytes read from them, including gaps read through
	closed   bool
}

// OpenSeeker opens version gen of a file or object of size bytes, as Match
// or List reported them, for reading pieces of it with Seek and Read. gen 0
// reads the current version (and, on Cloud Storage, pins the Seeker to the
// generation its first request sees). If that version is gone or its size is
// not size, OpenSeeker, or a later Read, fails with an error wrapping
// ErrChanged that names the path. ctx governs all reads of the Seeker.
//
// On Cloud Storage, OpenSeeker starts the first range read at offset 0 at
// once, so that a changed object fails here rather than at the first Read;
// it serves the first header of a shard. Each range read is retried and
// resumed like a read from Open. A local file is checked once, when it is
// opened, as by OpenRange; its Seeker reads the open file, and Stats counts
// the windows it reads as on Cloud Storage, though they cost no request.
func (s *Store) OpenSeeker(ctx context.Context, path string, gen, size int64) (*Seeker, error) {
	if size < 0 {
		return nil, fmt.Errorf("read %s: invalid size %d", path, size)
	}
	if !IsGCS(path) {
		f, info, err := openLocalVersion(path, gen)
		if err != nil {
			return nil, err
		}
		if info.Size() != size {
			f.Close()
			return nil, sizeChanged(path, localGeneration(info), info.Size(), size)
		}
		open := func(offset, length int64) (io.ReadCloser, error) {
			return io.NopCloser(&localRange{f: f, path: path, off: offset, end: offset + length}), nil
		}
		sk := &Seeker{path: path, size: size, open: open, release: f.Close}
		if size > 0 {
			// As on Cloud Storage, so that Stats counts the same.
			sk.start(0, min(size, seekWindow))
		}
		return sk, nil
	}
	obj, err := s.object(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	ranges := &gcsRanges{ctx: ctx, path: path, obj: obj, gen: gen, retry: s.retry}
	sk := &Seeker{path: path, size: size, open: ranges.open}
	if size == 0 {
		// There is no byte to ask for, so check the version with a
		// metadata request.
		attrs, err := statGCS(ctx, path, obj, gen)
		if err != nil {
			return nil, err
		}
		if attrs.Size != 0 {
			return nil, sizeChanged(path, attrs.Generation, attrs.Size, size)
		}
		return sk, nil
	}
	if err := sk.start(0, min(size, seekWindow)); err != nil {
		return nil, err
	}
	if r := sk.r.(*gcsReader); r.size != size {
		sk.Close()
		return nil, sizeChanged(path, r.gen, r.size, size)
	}
	return sk, nil
}

// sizeChanged describes a version of got bytes that was expected to have
// want bytes.
func sizeChanged(path string, gen, got, want int64) error {
	return fmt.Errorf("read %s: the object has %d bytes (version %d), not the %d it had when matched: %w", path, got, gen, want, ErrChanged)
}

// gcsRanges starts range reads of one generation of a Cloud Storage object.
type gcsRanges struct {
	ctx   context.Context
	path  string
	obj   *gcs.ObjectHandle
	gen   int64 // 0 until the first read when no generation was given
	retry retryConfig
}

func (g *gcsRanges) open(offset, length int64) (io.ReadCloser, error) {
	r, err := openRangeGCS(g.ctx, g.path, g.obj, g.gen, offset, length, g.retry)
	if err != nil {
		return nil, err // not a nil *gcsReader in a non-nil interface
	}
	if g.gen == 0 && r.gen != 0 {
		// Later ranges must come from the generation the first came
		// from, or a rewrite could splice two versions together.
		g.gen = r.gen
	}
	return r, nil
}

// Read implements io.Reader. At or past the end of the content it returns
// io.EOF.
func (s *Seeker) Read(p []byte) (int, error) {
	if s.closed {
		return 0, fmt.Errorf("read %s: %w", s.path, os.ErrClosed)
	}
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.r != nil && (s.pos < s.rpos || s.pos >= s.rend) {
		s.drop()
	}
	if s.r == nil {
		if err := s.start(s.pos, min(s.size-s.pos, max(seekWindow, int64(len(p))))); err != nil {
			return 0, err
		}
	}
	if gap := s.pos - s.rpos; gap > 0 {
		n, err := io.CopyN(io.Discard, s.r, gap)
		s.rpos += n
		s.bytes += n
		if err != nil {
			s.drop()
			return 0, s.short(err)
		}
	}
	if int64(len(p)) > s.rend-s.pos {
		p = p[:s.rend-s.pos]
	}
	n, err := s.r.Read(p)
	s.rpos += int64(n)
	s.pos += int64(n)
	s.bytes += int64(n)
	if err == io.EOF && s.rpos == s.rend {
		err = nil
	}
	if err != nil || s.rpos == s.rend {
		s.drop()
	}
	return n, s.short(err)
}

// start starts the range read of the length bytes at offset.
func (s *Seeker) start(offset, length int64) error {
	r, err := s.open(offset, length)
	if err != nil {
		return err
	}
	s.requests++
	s.r, s.rpos, s.rend = r, offset, offset+length
	return nil
}

// drop closes the current range read.
func (s *Seeker) drop() {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}

// short turns an io.EOF from a range read that ended before the bytes it
// was asked for into io.ErrUnexpectedEOF. (The range readers of this
// package report that themselves; this guards the Seeker's own accounting.)
func (s *Seeker) short(err error) error {
	if err == io.EOF {
		return fmt.Errorf("read %s: range ended at offset %d, before %d: %w", s.path, s.rpos, s.rend, io.ErrUnexpectedEOF)
	}
	return err
}

// Seek implements io.Seeker. It only sets the position of the next Read,
// relative to the start, the current position or the end of the content,
// and fails for a negative position. A position past the end is allowed;
// Read there returns io.EOF.
func (s *Seeker) Seek(offset int64, whence int) (int64, error) {
	if s.closed {
		return 0, fmt.Errorf("seek %s: %w", s.path, os.ErrClosed)
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = s.pos
	case io.SeekEnd:
		base = s.size
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", s.path, whence)
	}
	pos := base + offset
	if pos < 0 || offset > 0 && pos < base { // negative, or overflowed
		return 0, fmt.Errorf("seek %s: invalid position %d%+d", s.path, base, offset)
	}
	s.pos = pos
	return pos, nil
}

// Stats returns the number of range reads the Seeker started (each is one
// request on Cloud Storage) and the bytes it read from them, including the
// gaps it read through. A range abandoned after a seek may have transferred
// up to its window over the network without those bytes being counted.
func (s *Seeker) Stats() (requests, bytes int64) {
	return s.requests, s.bytes
}

// Close implements io.Closer. Close is idempotent; Read and Seek fail after
// it.
func (s *Seeker) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.drop()
	if s.release != nil {
		return s.release()
	}
	return nil
}
