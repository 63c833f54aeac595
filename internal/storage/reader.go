package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	gcs "cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
)

// castagnoli is the CRC-32C table Cloud Storage checksums use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// gcsReader reads a byte range of one Cloud Storage object, or all of it,
// and resumes the download when it breaks.
//
// The client already retries failed requests and reconnects broken
// downloads on its own, but only within one retry budget; an outage longer
// than that surfaces as a Read error. gcsReader then waits and reopens the
// object at the next undelivered byte, pinned to the generation it started
// with, so a concurrent overwrite fails the read instead of splicing two
// versions together. Since resumed ranges carry no checksum of their own,
// it verifies the CRC-32C of the whole object at the end of a read that
// covers all of it.
type gcsReader struct {
	ctx  context.Context
	path string
	obj  *gcs.ObjectHandle // pinned to generation gen
	gen  int64             // generation first read
	r    *gcs.Reader       // nil after a failure, until reopened
	// pinned is true when the caller chose the generation, as the one it
	// matched: losing it then means ErrChanged.
	pinned bool

	// resumable is false when offsets cannot be resumed: the server
	// decompresses the object on the fly, or did not name its generation.
	// Such a reader passes errors through.
	resumable bool
	size      int64 // object size in bytes
	end       int64 // offset just past the last byte of the range read
	off       int64 // offset of the next byte to deliver to the caller

	wantCRC  uint32
	checkCRC bool
	crc      uint32 // CRC-32C of the bytes delivered

	backoff    gax.Backoff
	reopens    int   // reopens done
	maxReopens int   // reopens allowed
	lastErr    error // why the download last broke
	err        error // sticky error returned by every later Read
}

// newGCSReader wraps r, the first reader of obj, for the Store's path.
// length is the number of bytes r was asked for, or -1 for the rest of the
// object; a range must not end past the object's end (openRangeGCS checks).
func newGCSReader(ctx context.Context, path string, obj *gcs.ObjectHandle, r *gcs.Reader, length int64, retry retryConfig) *gcsReader {
	a := r.Attrs
	resumable := a.Generation != 0 && !a.Decompressed
	end := a.Size
	if length >= 0 {
		end = a.StartOffset + length
	}
	return &gcsReader{
		ctx:       ctx,
		path:      path,
		obj:       obj.Generation(a.Generation),
		gen:       a.Generation,
		r:         r,
		resumable: resumable,
		size:      a.Size,
		end:       end,
		off:       a.StartOffset,
		wantCRC:   a.CRC32C,
		// The object's checksum covers it whole: a read of only part
		// of it cannot be checked against it.
		checkCRC:   resumable && a.CRC32C != 0 && a.StartOffset == 0 && end == a.Size,
		backoff:    retry.backoff,
		maxReopens: retry.reopens,
	}
}

// Read implements io.Reader.
func (g *gcsReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if g.r == nil {
			if g.off == g.end {
				// The break came after the last byte; there is
				// nothing left to ask for.
				return 0, g.finish()
			}
			if err := g.reopen(); err != nil {
				g.err = err
				return 0, err
			}
		}
		n, err := g.r.Read(p)
		g.off += int64(n)
		if g.checkCRC {
			g.crc = crc32.Update(g.crc, castagnoli, p[:n])
		}
		switch {
		case err == nil:
			return n, nil
		case !g.resumable:
			if err != io.EOF {
				g.err = fmt.Errorf("read %s: %w", g.path, gcsError(err))
				err = g.err
			}
			return n, err
		case err == io.EOF && g.off == g.end:
			return n, g.finish()
		case err == io.EOF:
			err = fmt.Errorf("download ended at offset %d, before %d: %w", g.off, g.end, io.ErrUnexpectedEOF)
		}
		g.r.Close()
		g.r = nil
		if !g.transient(err) {
			g.err = g.fail(err)
			return n, g.err
		}
		g.lastErr = err
		if n > 0 {
			return n, nil // reopen on the next call
		}
	}
}

// finish ends a read that delivered its whole range, checking the content
// against the object's checksum when the range is the whole object.
func (g *gcsReader) finish() error {
	g.err = io.EOF
	if g.checkCRC && g.crc != g.wantCRC {
		g.err = fmt.Errorf("read %s: CRC-32C mismatch: got %08x, want %08x", g.path, g.crc, g.wantCRC)
	}
	return g.err
}

// reopen starts a new download of the rest of the range at offset g.off,
// after a pause that grows with each reopen, until one succeeds, an error
// is not transient, or the reopens are used up.
func (g *gcsReader) reopen() error {
	for {
		if g.reopens == g.maxReopens {
			return fmt.Errorf("read %s: giving up after %d reopens at offset %d: %w", g.path, g.reopens, g.off, gcsError(g.lastErr))
		}
		if err := gax.Sleep(g.ctx, g.backoff.Pause()); err != nil {
			return fmt.Errorf("read %s: %w", g.path, err)
		}
		g.reopens++
		r, err := g.obj.NewRangeReader(g.ctx, g.off, g.end-g.off)
		if err == nil {
			g.r = r
			return nil
		}
		if !g.transient(err) {
			return g.fail(err)
		}
		g.lastErr = err
	}
}

// transient reports whether a read that failed with err is worth resuming.
func (g *gcsReader) transient(err error) bool {
	return g.ctx.Err() == nil && gcs.ShouldRetry(err)
}

// fail describes a read that cannot go on.
func (g *gcsReader) fail(err error) error {
	if errors.Is(err, gcs.ErrObjectNotExist) {
		// The object existed at Open, so its pinned generation was
		// replaced or deleted while being read. That is not a missing
		// file, so it is deliberately not mapped to fs.ErrNotExist.
		if g.pinned {
			return fmt.Errorf("read %s: generation %d is gone: %w (%w)", g.path, g.gen, ErrChanged, err)
		}
		return fmt.Errorf("read %s: generation %d was replaced or deleted during the read: %w", g.path, g.gen, err)
	}
	return fmt.Errorf("read %s at offset %d: %w", g.path, g.off, gcsError(err))
}

// Close implements io.Closer. Reads after Close fail with os.ErrClosed.
func (g *gcsReader) Close() error {
	if g.err == nil || g.err == io.EOF {
		g.err = fmt.Errorf("read %s: %w", g.path, os.ErrClosed)
	}
	if g.r == nil {
		return nil
	}
	err := g.r.Close()
	g.r = nil
	return err
}
