package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
)

// maxAppendAttempts bounds the read-modify-write rounds of AppendLine when
// other writers keep winning.
const maxAppendAttempts = 20

// AppendLine adds one line to the file at path, creating it if needed.
// Object stores cannot append, so on gs:// the object is read, extended and
// written back on the condition that its generation did not change, and the
// round is retried on conflict: concurrent writers lose no line. Locally the
// line is written with O_APPEND in one write, which the kernel keeps whole.
func (s *Store) AppendLine(ctx context.Context, path string, line []byte) error {
	line = append(bytes.TrimRight(line, "\n"), '\n')
	if !IsGCS(path) {
		return appendLocal(path, line)
	}
	obj, err := s.object(ctx, path)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	for attempt := range maxAppendAttempts {
		var data []byte
		var gen int64
		r, err := obj.NewReader(ctx)
		switch {
		case errors.Is(err, gcs.ErrObjectNotExist):
		case err != nil:
			return fmt.Errorf("append to %s: %w", path, gcsError(err))
		default:
			gen = r.Attrs.Generation
			data, err = io.ReadAll(r)
			r.Close()
			if err != nil {
				return fmt.Errorf("append to %s: %w", path, err)
			}
		}
		cond := gcs.Conditions{GenerationMatch: gen}
		if gen == 0 {
			cond = gcs.Conditions{DoesNotExist: true}
		}
		w := obj.If(cond).NewWriter(ctx)
		w.ChunkSize = 0 // one request, so a precondition failure is reported at once
		w.Write(append(data, line...))
		err = w.Close()
		if err == nil {
			return nil
		}
		var apiErr *googleapi.Error
		if !errors.As(err, &apiErr) || apiErr.Code != http.StatusPreconditionFailed {
			return fmt.Errorf("append to %s: %w", path, gcsError(err))
		}
		// Another writer got in between: back off a little and redo.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return fmt.Errorf("append to %s: still conflicting after %d attempts", path, maxAppendAttempts)
}

func appendLocal(path string, line []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return f.Close()
}
