package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
)

// splitGCS splits gs://bucket/object into its bucket and object name. The
// object name may be empty.
func splitGCS(p string) (bucket, name string, err error) {
	bucket, name, _ = strings.Cut(strings.TrimPrefix(p, gcsScheme), "/")
	if bucket == "" {
		return "", "", errors.New("no bucket in Cloud Storage path")
	}
	return bucket, name, nil
}

// bucket returns a handle for the named bucket with the billing project
// applied.
func (s *Store) bucket(ctx context.Context, name string) (*gcs.BucketHandle, error) {
	c, err := s.gcsClient(ctx)
	if err != nil {
		return nil, err
	}
	b := c.Bucket(name)
	if s.opts.BillingProject != "" {
		b = b.UserProject(s.opts.BillingProject)
	}
	return b, nil
}

// object returns a handle for the object that path names. Object names
// ending in "/" are directory placeholders, not files, and are refused.
func (s *Store) object(ctx context.Context, path string) (*gcs.ObjectHandle, error) {
	bucket, name, err := splitGCS(path)
	if err != nil {
		return nil, err
	}
	if name == "" || strings.HasSuffix(name, "/") {
		return nil, errors.New("Cloud Storage path names no object")
	}
	b, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return b.Object(name), nil
}

// gcsError makes the client's not-found errors satisfy
// errors.Is(err, fs.ErrNotExist), as the local backend's do.
func gcsError(err error) error {
	if errors.Is(err, gcs.ErrObjectNotExist) || errors.Is(err, gcs.ErrBucketNotExist) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

func (s *Store) openGCS(ctx context.Context, path string) (*gcsReader, error) {
	obj, err := s.object(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := obj.NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, gcsError(err))
	}
	return newGCSReader(ctx, path, obj, r, -1, s.retry), nil
}

func (s *Store) readFileGCS(ctx context.Context, path string) ([]byte, error) {
	r, err := s.openGCS(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// Size the buffer for the whole object up front; MinRead spare bytes
	// let ReadFrom see the end without growing it.
	buf := bytes.NewBuffer(make([]byte, 0, r.size+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err // already names the path
	}
	return buf.Bytes(), nil
}

// maxChunkSize is the largest upload buffer a Writer allocates: the
// client's default ChunkSize. Larger objects are uploaded in several
// resumable chunks of this size.
const maxChunkSize = 16 << 20

func (s *Store) writeFileGCS(ctx context.Context, path string, data []byte) error {
	obj, err := s.object(ctx, path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	w := obj.NewWriter(ctx)
	// A Writer allocates ChunkSize bytes up front, and a chunk larger than
	// the data makes the upload a single retryable request. The client
	// rounds ChunkSize up to a multiple of 256 KiB.
	w.ChunkSize = min(len(data)+1, maxChunkSize)
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", path, gcsError(err))
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, gcsError(err))
	}
	return nil
}

func (s *Store) existsGCS(ctx context.Context, path string) (bool, error) {
	obj, err := s.object(ctx, path)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	_, err = obj.Attrs(ctx)
	switch {
	case errors.Is(err, gcs.ErrObjectNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", path, gcsError(err))
	}
	return true, nil
}

// renameGCS copies the current generation of from to to and then deletes
// that generation only, so that an object written to from during the rename
// is not deleted unseen.
func (s *Store) renameGCS(ctx context.Context, from, to string) error {
	wrap := func(err error) error {
		return fmt.Errorf("rename %s to %s: %w", from, to, gcsError(err))
	}
	src, err := s.object(ctx, from)
	if err != nil {
		return wrap(err)
	}
	dst, err := s.object(ctx, to)
	if err != nil {
		return wrap(err)
	}
	attrs, err := src.Attrs(ctx)
	if err != nil {
		return wrap(err)
	}
	if src.BucketName() == dst.BucketName() && src.ObjectName() == dst.ObjectName() {
		return nil // copying onto itself and deleting the source would lose it
	}
	src = src.Generation(attrs.Generation)
	if _, err := dst.CopierFrom(src).Run(ctx); err != nil {
		return wrap(err)
	}
	// The copied generation may already be gone when a retried delete's
	// first attempt succeeded, or when another writer replaced it; either
	// way the rename of that generation is complete.
	if err := src.Delete(ctx); err != nil && !errors.Is(err, gcs.ErrObjectNotExist) {
		return wrap(err)
	}
	return nil
}

func (s *Store) deleteGCS(ctx context.Context, path string) error {
	obj, err := s.object(ctx, path)
	if err != nil {
		return fmt.Errorf("delete %s: %w", path, err)
	}
	if err := obj.Delete(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", path, gcsError(err))
	}
	return nil
}

func (s *Store) listGCS(ctx context.Context, prefix string) ([]Object, error) {
	bucket, dir, err := splitGCS(prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	b, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	objs, err := listObjects(ctx, b, dir, func(string) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	return objs, nil
}

func (s *Store) matchGCS(ctx context.Context, pattern string) ([]Object, error) {
	bucket, namePattern, err := splitGCS(pattern)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", pattern, err)
	}
	if strings.ContainsAny(bucket, globMeta) {
		return nil, fmt.Errorf("match %s: wildcards in bucket names are not supported", pattern)
	}
	g, err := compileGlob(namePattern)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", pattern, err)
	}
	b, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", pattern, err)
	}
	objs, err := listObjects(ctx, b, literalPrefix(namePattern), g.match)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", pattern, err)
	}
	return objs, nil
}

// listObjects returns the objects of bucket b whose names start with prefix
// and satisfy keep, sorted by path. Directory placeholders are skipped.
func listObjects(ctx context.Context, b *gcs.BucketHandle, prefix string, keep func(name string) bool) ([]Object, error) {
	q := &gcs.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation"}); err != nil {
		return nil, err
	}
	objs := []Object{}
	it := b.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, gcsError(err)
		}
		if strings.HasSuffix(attrs.Name, "/") || !keep(attrs.Name) {
			continue
		}
		objs = append(objs, Object{
			Path:       gcsScheme + b.BucketName() + "/" + attrs.Name,
			Size:       attrs.Size,
			Generation: attrs.Generation,
		})
	}
	sortByPath(objs)
	return objs, nil
}
