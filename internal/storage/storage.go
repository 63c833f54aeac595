// Package storage reads and writes files on local disk and in Google Cloud
// Storage through one small API, so the rest of segeval never needs to know
// where its inputs and outputs live.
//
// A path that starts with "gs://" names an object as gs://bucket/object;
// any other path is a local file path. Both backends share the same
// semantics where the backends allow it: Match has identical glob rules,
// not-found errors satisfy errors.Is(err, fs.ErrNotExist), directories are
// never reported as files, and results are sorted by path.
//
// A Store is meant to be long-lived: a Beam DoFn creates one in Setup and
// reuses it for every element, and the launcher creates one for its own use.
// It opens a single Cloud Storage client on its first gs:// operation, so a
// program that only touches local files never looks for credentials. When
// the STORAGE_EMULATOR_HOST environment variable is set (as host:port or as
// a URL), the client talks to that emulator without credentials.
//
// Reads from Cloud Storage survive transient failures: requests are retried
// with exponential backoff, and a download that breaks mid-stream is resumed
// from the last delivered byte of the same object generation.
//
// OpenRange and OpenSeeker read parts of the version of a file or object
// that Match or List saw (its Generation), and fail with ErrChanged when it
// has been rewritten since, so that byte offsets planned from one version
// are never applied to another.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	gcs "cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
)

// gcsScheme is the prefix that marks a path as a Cloud Storage object.
const gcsScheme = "gs://"

// Options configures a Store.
type Options struct {
	// BillingProject is the project billed for requests to requester-pays
	// buckets. It is sent as the userProject of every bucket handle. Empty
	// means the bucket owner pays.
	BillingProject string
}

// Store reads and writes local files and Cloud Storage objects. It is safe
// for concurrent use by multiple goroutines. The zero value is not usable;
// create one with New and release it with Close.
type Store struct {
	opts  Options
	retry retryConfig

	mu     sync.Mutex
	client *gcs.Client // created on first gs:// use
	closed bool
}

// retryConfig bounds how hard a Store tries before reporting an error.
type retryConfig struct {
	// backoff paces both the client's request retries and the reopening
	// of broken downloads.
	backoff gax.Backoff
	// attempts is the number of times the client tries one request.
	attempts int
	// reopens is the number of times one download may be reopened after
	// the client has given up on continuing it.
	reopens int
}

// defaultRetry tries a request 8 times, pausing a random time below 0.2s,
// 0.4s, ... 12.8s between attempts (25s at worst in all), and lets a
// download be reopened 5 times after the client has given up on it, so a
// read outlives several such outages.
var defaultRetry = retryConfig{
	backoff:  gax.Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2},
	attempts: 8,
	reopens:  5,
}

// New returns a Store configured by opts. It does not contact Cloud Storage.
func New(opts Options) *Store {
	return &Store{opts: opts, retry: defaultRetry}
}

// Close releases the Cloud Storage client, if one was created. After Close,
// gs:// operations fail; local operations keep working. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

// errClosed is returned for gs:// operations on a closed Store.
var errClosed = errors.New("storage: store is closed")

// gcsClient returns the Store's Cloud Storage client, creating it on first
// use.
func (s *Store) gcsClient(ctx context.Context) (*gcs.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.client != nil {
		return s.client, nil
	}
	// The client may keep using this context to refresh credentials long
	// after the operation that created it is done, so it must not inherit
	// that operation's cancellation.
	c, err := gcs.NewClient(context.WithoutCancel(ctx), gcs.WithJSONReads())
	if err != nil {
		return nil, fmt.Errorf("storage: creating Cloud Storage client: %w", err)
	}
	// Every operation of this package is safe to repeat: reads and listings
	// change nothing, a write replaces the whole object with the same bytes,
	// a copy is pinned to its source generation, and a repeated delete at
	// worst reports that the object is already gone. So retry all of them,
	// not only those the client can prove idempotent, but never forever.
	c.SetRetry(
		gcs.WithPolicy(gcs.RetryAlways),
		gcs.WithBackoff(s.retry.backoff),
		gcs.WithMaxAttempts(s.retry.attempts),
	)
	s.client = c
	return c, nil
}

// Object describes a file or object found by Match or List.
type Object struct {
	// Path is gs://bucket/object, or a local path in the form of the
	// pattern or prefix that found it: relative if that was relative,
	// and cleaned as by filepath.Clean.
	Path string
	// Size is the length of the content in bytes.
	Size int64
	// Generation identifies the version of the content, for reads pinned
	// to it (OpenRange, OpenSeeker). For a Cloud Storage object it is the
	// object's generation. For a local file it is the modification time in
	// Unix nanoseconds, which changes when the file is rewritten; a rewrite
	// within the file system's timestamp granularity (a few milliseconds on
	// Linux) can go unnoticed unless it also changes the size.
	Generation int64
}

// sortByPath sorts objs by Path, the order Match and List promise.
func sortByPath(objs []Object) {
	slices.SortFunc(objs, func(x, y Object) int { return strings.Compare(x.Path, y.Path) })
}

// IsGCS reports whether path names a Cloud Storage object (gs://...).
func IsGCS(path string) bool {
	return strings.HasPrefix(path, gcsScheme)
}

// Join joins path elements like path/filepath.Join but keeps the "gs://"
// prefix of a Cloud Storage base intact (filepath.Join would collapse it
// to "gs:/").
func Join(base string, elem ...string) string {
	if IsGCS(base) {
		return gcsScheme + path.Join(append([]string{strings.TrimPrefix(base, gcsScheme)}, elem...)...)
	}
	return filepath.Join(append([]string{base}, elem...)...)
}

// Match returns the files or objects whose paths match pattern, sorted by
// path. The syntax is that of path.Match applied segment by segment: '*'
// and '?' never match '/', "[...]" is a character class ("[^...]" negates),
// and a segment that is exactly "**" matches any number of segments,
// including none. The bucket of a gs:// pattern must be literal.
//
// Matching nothing is not an error: the result is empty. A malformed
// pattern is an error wrapping path.ErrBadPattern. Directories (and
// directory placeholder objects whose names end in "/") are never returned,
// and symbolic links to directories are not followed.
func (s *Store) Match(ctx context.Context, pattern string) ([]Object, error) {
	if IsGCS(pattern) {
		return s.matchGCS(ctx, pattern)
	}
	return matchLocal(pattern)
}

// Open opens a file or object for reading. The caller must Close it.
//
// A Cloud Storage reader retries failed requests and, if the download
// breaks mid-stream, transparently resumes it from the next undelivered
// byte of the object generation it started with. If the object is replaced
// or deleted before a resumed read, Read returns an error rather than mixing
// two versions.
func (s *Store) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	if IsGCS(path) {
		r, err := s.openGCS(ctx, path)
		if err != nil {
			return nil, err // not a nil *gcsReader in a non-nil interface
		}
		return r, nil
	}
	return openLocal(path)
}

// ReadFile returns the whole content of a file or object.
func (s *Store) ReadFile(ctx context.Context, path string) ([]byte, error) {
	if IsGCS(path) {
		return s.readFileGCS(ctx, path)
	}
	return readFileLocal(path)
}

// WriteFile creates or replaces a file or object with data. Readers see
// either the old or the new content, never a partial write: local files
// are written to a temporary file in the same directory and renamed into
// place, and missing parent directories are created.
func (s *Store) WriteFile(ctx context.Context, path string, data []byte) error {
	if IsGCS(path) {
		return s.writeFileGCS(ctx, path, data)
	}
	return writeFileLocal(path, data)
}

// Exists reports whether a file or object exists at path. A directory is
// not a file, so Exists reports false for it.
func (s *Store) Exists(ctx context.Context, path string) (bool, error) {
	if IsGCS(path) {
		return s.existsGCS(ctx, path)
	}
	return existsLocal(path)
}

// Rename moves a file or object, replacing any existing one at to and
// creating missing local parent directories. On Cloud Storage, which has no
// rename, the object is copied and the source generation then deleted.
// Renaming between local disk and Cloud Storage is not supported.
func (s *Store) Rename(ctx context.Context, from, to string) error {
	switch {
	case IsGCS(from) && IsGCS(to):
		return s.renameGCS(ctx, from, to)
	case !IsGCS(from) && !IsGCS(to):
		return renameLocal(from, to)
	default:
		return fmt.Errorf("rename %s to %s: cannot rename between local disk and Cloud Storage", from, to)
	}
}

// List returns every file or object under the directory prefix, at any
// depth, sorted by path. prefix names a directory: listing "gs://b/dir"
// returns "gs://b/dir/x" but not "gs://b/dir2". A missing directory yields
// an empty result. Directories themselves are never returned.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	if IsGCS(prefix) {
		return s.listGCS(ctx, prefix)
	}
	return listLocal(prefix)
}

// Delete removes a file or object.
func (s *Store) Delete(ctx context.Context, path string) error {
	if IsGCS(path) {
		return s.deleteGCS(ctx, path)
	}
	return deleteLocal(path)
}
