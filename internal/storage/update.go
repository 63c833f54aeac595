package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	gcs "cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
)

// maxUpdateRounds bounds the read-modify-write rounds of one Update when
// other writers keep winning the race for the same object.
const maxUpdateRounds = 20

// maxUnsureWrites bounds the rounds of one Update that are redone after a
// write failed with a transient error that the client did not or could no
// longer retry. Such a write may have landed, and a fresh read tells; but
// when the service is down, each of these rounds has already waited
// through the client's whole retry budget.
const maxUnsureWrites = 2

// updateBackoff paces the rounds of an Update after a conflict: a random
// pause below 10ms, 20ms, ... 1s, so that writers that collided spread
// out instead of colliding again, and 20 rounds take 15s at worst. It is
// much shorter than the request backoff: a conflict means another writer
// just succeeded, not that the service is unwell.
var updateBackoff = gax.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 2}

// lockSuffix is appended to a local path to name the lock file that Update
// holds while it reads, modifies and replaces the file. The lock file is
// created when first needed and never removed: removing it would let two
// writers lock two different files of the same name.
const lockSuffix = ".lock"

// Update replaces the content of the file or object at path with what
// modify makes of its current content, as one atomic read-modify-write:
// of several concurrent Updates of one path each sees the result of the
// ones before it, and none is lost.
//
// modify receives the current content and whether the file exists (old is
// nil when it does not). It returns the new content and write=true, or
// write=false to leave the file as it is (then Update creates nothing and
// returns nil), or an error, which Update returns wrapped with the path
// without writing.
//
// modify may be called several times in one Update, each time with the
// content as it then is: after another writer won the race, and also when
// this Update's own write landed but its response was lost, so that the
// write looked failed and was redone. It must therefore decide from old
// alone, be free of side effects, and be idempotent: given content that
// already holds its change it must return write=false (or the same
// content). That is what makes Update safe to repeat: an Update retried
// by its caller, or a write retried by the client, finds its change made
// and stops, instead of making it twice.
//
// On Cloud Storage the object is read together with its generation, and
// the new content is written on the condition that the generation is
// still the same (that the object still does not exist, if it did not).
// A write that fails that condition (412 Precondition Failed) starts the
// next round from a fresh read, after a short random pause; after
// maxUpdateRounds rounds Update gives up. Failed requests are retried by
// the client as any request is; a write that still fails with a transient
// error, such as a connection cut before the response, may nevertheless
// have landed, so it too starts a new round, a few times at most. Other
// failures are returned.
//
// A local file is updated under an exclusive lock (flock(2)) on the file
// path+".lock" beside it, created if needed: the file is read, modified
// and replaced by a temporary file renamed into place, so readers that
// take no lock still see the old or the new content whole. The lock
// excludes other Updates in this and other processes of the same machine;
// file systems that do not honor flock across machines (some network file
// systems) give no such guarantee. Waiting for the lock ends when ctx
// does. Missing parent directories are created.
func (s *Store) Update(ctx context.Context, path string, modify func(old []byte, exists bool) (data []byte, write bool, err error)) error {
	if IsGCS(path) {
		return s.updateGCS(ctx, path, modify)
	}
	return updateLocal(ctx, path, modify)
}

func (s *Store) updateGCS(ctx context.Context, path string, modify func([]byte, bool) ([]byte, bool, error)) error {
	obj, err := s.object(ctx, path)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	backoff := updateBackoff
	unsure := 0 // rounds redone after a write of unknown outcome
	for round := range maxUpdateRounds {
		if round > 0 {
			if err := gax.Sleep(ctx, backoff.Pause()); err != nil {
				return fmt.Errorf("update %s: %w", path, err)
			}
		}
		old, gen, err := s.readGeneration(ctx, path, obj)
		if errors.Is(err, errReplaced) {
			continue // another writer got in during the read
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", path, err)
		}
		data, write, err := modify(old, gen != 0)
		if err != nil {
			return fmt.Errorf("update %s: %w", path, err)
		}
		if !write {
			return nil
		}
		err = writeIfGeneration(ctx, obj, gen, data)
		switch {
		case err == nil:
			return nil
		case isPreconditionFailed(err):
			// The object is not the version modify saw: another
			// writer replaced it, or this round's own write landed
			// and the client's retry of it found it so. The next
			// round tells which.
		case gcs.ShouldRetry(err) && unsure < maxUnsureWrites:
			// The write failed in a way that leaves open whether it
			// landed (its connection broke before the response), and
			// the client did not retry it. The next round tells.
			unsure++
		default:
			return fmt.Errorf("update %s: %w", path, gcsError(err))
		}
	}
	return fmt.Errorf("update %s: still conflicting with other writers after %d rounds", path, maxUpdateRounds)
}

// errReplaced reports that the object was replaced while it was being read.
var errReplaced = errors.New("object replaced during the read")

// readGeneration reads the whole object and returns it with its generation,
// or nil and generation 0 when it does not exist. A download that breaks is
// resumed from the same generation; if that generation has been replaced
// meanwhile, the error wraps errReplaced.
func (s *Store) readGeneration(ctx context.Context, path string, obj *gcs.ObjectHandle) ([]byte, int64, error) {
	r, err := obj.NewReader(ctx)
	if errors.Is(err, gcs.ErrObjectNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, gcsError(err)
	}
	gen := r.Attrs.Generation
	if gen == 0 {
		r.Close()
		return nil, 0, errors.New("the server did not report the object's generation")
	}
	gr := newGCSReader(ctx, path, obj, r, -1, s.retry)
	defer gr.Close()
	data, err := io.ReadAll(gr)
	if errors.Is(err, gcs.ErrObjectNotExist) {
		return nil, 0, fmt.Errorf("%w: %w", errReplaced, err)
	}
	if err != nil {
		return nil, 0, err // names the path already
	}
	return data, gen, nil
}

// writeIfGeneration writes data to obj if its generation is still gen, or
// if it still does not exist when gen is 0.
func writeIfGeneration(ctx context.Context, obj *gcs.ObjectHandle, gen int64, data []byte) error {
	cond := gcs.Conditions{GenerationMatch: gen}
	if gen == 0 {
		cond = gcs.Conditions{DoesNotExist: true}
	}
	w := obj.If(cond).NewWriter(ctx)
	// A chunk larger than the data buffers it whole and uploads it in one
	// request that the client can retry; with ChunkSize 0 the client
	// streams the data and cannot retry at all.
	w.ChunkSize = min(len(data)+1, maxChunkSize)
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// isPreconditionFailed reports whether a conditional request failed on
// its condition.
func isPreconditionFailed(err error) bool {
	var apiErr *googleapi.Error
	return errors.As(err, &apiErr) && apiErr.Code == http.StatusPreconditionFailed
}

func updateLocal(ctx context.Context, path string, modify func([]byte, bool) ([]byte, bool, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	unlock, err := lockLocal(ctx, path+lockSuffix)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	defer unlock()
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("update %s: %w", path, err)
	}
	data, write, err := modify(old, exists)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	if !write {
		return nil
	}
	if err := writeFileLocal(path, data); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return nil
}

// lockPoll bounds the pause between attempts to take a local lock that
// another writer holds.
const lockPoll = 20 * time.Millisecond

// lockLocal takes an exclusive flock(2) lock on the file at path, creating
// it if needed, and returns the function that releases it. It polls rather
// than blocks so that it can give up when ctx ends. Each call opens the
// file anew, so calls from goroutines of one process exclude each other
// as calls from different processes do.
func lockLocal(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	pause := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", path, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, lockPoll)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
