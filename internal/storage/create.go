package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	gcs "cloud.google.com/go/storage"
)

// Create returns a writer of a new file or object at path, for content too
// large to hold in memory. Nothing appears at path until Close succeeds:
// locally the data goes to a temporary file in the same directory that
// Close renames into place; on Cloud Storage the object is created when the
// upload completes. A writer whose Abort is called (or whose context ends)
// leaves nothing behind.
func (s *Store) Create(ctx context.Context, path string) (Writer, error) {
	if IsGCS(path) {
		obj, err := s.object(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		ctx, cancel := context.WithCancel(ctx)
		w := obj.NewWriter(ctx)
		w.ChunkSize = maxChunkSize
		return &gcsWriter{w: w, cancel: cancel, path: path}, nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &localWriter{tmp: tmp, path: path}, nil
}

// Writer is a file or object being written by Create.
type Writer interface {
	io.Writer
	// Close completes the file; only then does it appear at its path.
	Close() error
	// Abort discards what was written. It is a no-op after Close.
	Abort()
}

type localWriter struct {
	tmp  *os.File
	path string
	done bool
}

func (w *localWriter) Write(p []byte) (int, error) { return w.tmp.Write(p) }

func (w *localWriter) Close() error {
	if w.done {
		return errors.New("storage: writer already closed")
	}
	w.done = true
	err := w.tmp.Chmod(0o644)
	if err == nil {
		err = w.tmp.Sync()
	}
	if closeErr := w.tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(w.tmp.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.tmp.Name())
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

func (w *localWriter) Abort() {
	if !w.done {
		w.done = true
		w.tmp.Close()
		os.Remove(w.tmp.Name())
	}
}

type gcsWriter struct {
	w      *gcs.Writer
	cancel context.CancelFunc
	path   string
	done   bool
}

func (w *gcsWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		err = fmt.Errorf("write %s: %w", w.path, gcsError(err))
	}
	return n, err
}

func (w *gcsWriter) Close() error {
	if w.done {
		return errors.New("storage: writer already closed")
	}
	w.done = true
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", w.path, gcsError(err))
	}
	return nil
}

// Abort cancels the upload, which the client then never completes.
func (w *gcsWriter) Abort() {
	if !w.done {
		w.done = true
		w.cancel()
		w.w.Close()
	}
}
