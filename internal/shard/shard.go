package shard

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// blockSize is the unit in which tar archives store headers and data.
const blockSize = 512

// Sample is the group of consecutive members of a shard that share a key.
type Sample struct {
	// Key is the member path up to the first dot of the base name.
	Key string
	// Fields maps each field name, such as "label.png", to the member's
	// contents.
	Fields map[string][]byte
	// Offset is the byte offset in the shard of the tar header of the
	// sample's first member.
	Offset int64

	// mapped says that Fields are slices of the caller's bytes (see
	// SampleReader.ReadMapped), not buffers of the pool: releasing the
	// sample drops them instead of pooling them.
	mapped bool
}

// Limits bounds what a Reader accepts.
type Limits struct {
	// MaxMemberBytes is the largest member a Reader reads into memory. It
	// must be positive: a zero limit is a configuration mistake, not
	// "unlimited".
	MaxMemberBytes int64
}

// Error reports a problem with a shard, and with a member of it when
// Member is not empty.
type Error struct {
	Shard  string // the shard's name, as given to NewReader
	Member string // the member's path in the archive, or ""
	Err    error
}

func (e *Error) Error() string {
	if e.Member == "" {
		return fmt.Sprintf("shard %s: %v", e.Shard, e.Err)
	}
	return fmt.Sprintf("shard %s, member %s: %v", e.Shard, e.Member, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Reader reads the samples of a shard in order.
type Reader struct {
	tr        *tar.Reader
	counter   *countingReader
	shardName string
	lim       Limits

	pending *member         // first member of the next sample, already read
	seen    map[string]bool // keys of the samples started so far
	err     error           // sticky: returned by every call after the first
}

// member is one regular file of the archive, read into memory.
type member struct {
	name   string
	key    string
	field  string
	data   []byte
	offset int64 // of its tar header
}

// NewReader returns a Reader of the tar archive r. The shard name is only
// used in errors.
func NewReader(r io.Reader, shardName string, lim Limits) *Reader {
	counter := &countingReader{r: r}
	return &Reader{
		tr:        tar.NewReader(counter),
		counter:   counter,
		shardName: shardName,
		lim:       lim,
		seen:      make(map[string]bool),
	}
}

// Next returns the next sample of the shard, or io.EOF after the last one.
// Any other error is an *Error, after which the Reader returns the same
// error again.
func (r *Reader) Next() (*Sample, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.lim.MaxMemberBytes <= 0 {
		r.err = r.errorf("", "Limits.MaxMemberBytes must be positive, got %d", r.lim.MaxMemberBytes)
		return nil, r.err
	}
	var s *Sample
	if r.pending != nil {
		if s, r.err = r.start(r.pending); r.err != nil {
			return nil, r.err
		}
		r.pending = nil
	}
	for {
		m, err := r.nextMember()
		if err == io.EOF && s != nil {
			return s, nil
		}
		if err != nil {
			r.err = err
			return nil, err
		}
		switch {
		case s == nil:
			if s, r.err = r.start(m); r.err != nil {
				return nil, r.err
			}
		case m.key != s.Key:
			r.pending = m
			return s, nil
		case s.Fields[m.field] != nil: // member data is never nil, even when empty
			r.err = r.errorf(m.name, "field %q appears twice in sample %q", m.field, s.Key)
			return nil, r.err
		default:
			s.Fields[m.field] = m.data
		}
	}
}

// start begins a sample with its first member.
func (r *Reader) start(m *member) (*Sample, error) {
	if r.seen[m.key] {
		return nil, r.errorf(m.name, "key %q appears again after other keys (members of a sample must be adjacent)", m.key)
	}
	r.seen[m.key] = true
	return &Sample{Key: m.key, Fields: map[string][]byte{m.field: m.data}, Offset: m.offset}, nil
}

// nextMember reads the next member that belongs to a sample, skipping
// directories, links and other non-regular entries, hidden files and files
// without a field. It returns io.EOF at the end of the archive.
func (r *Reader) nextMember() (*member, error) {
	for {
		// Every member's data has been read to its end, so the next
		// header starts at the next block boundary.
		offset := (r.counter.n + blockSize - 1) / blockSize * blockSize
		hdr, err := r.tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			// Set by GODEBUG=tarinsecurepath=0 for names such as
			// "../x" or "/x". Nothing is written to disk, so the
			// name is just a key like any other.
			err = nil
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, r.errorf("", "reading tar header at offset %d: %w", offset, err)
		}
		if isSparse(hdr) {
			// Its data in the archive is shorter than its size, which
			// would make the offsets of the headers after it unknown.
			return nil, r.errorf(hdr.Name, "sparse members are not supported")
		}
		key, field, ok := splitName(hdr.Name)
		if !ok || hdr.Typeflag != tar.TypeReg {
			// Drain the data, so the next header's offset is known.
			if _, err := io.Copy(io.Discard, r.tr); err != nil {
				return nil, r.errorf(hdr.Name, "truncated: %w", err)
			}
			continue
		}
		if hdr.Size > r.lim.MaxMemberBytes {
			return nil, r.errorf(hdr.Name, "size %d bytes exceeds the limit of %d", hdr.Size, r.lim.MaxMemberBytes)
		}
		data := shared.get(hdr.Size)
		if n, err := io.ReadFull(r.tr, data); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, r.errorf(hdr.Name, "truncated: read %d of %d bytes: %w", n, hdr.Size, err)
		}
		return &member{name: hdr.Name, key: key, field: field, data: data, offset: offset}, nil
	}
}

// Release hands the field buffers of a sample the caller is done with to
// the readers of the process, which read later members into them (see
// shared): a shard of 80 MB samples then costs a few buffers, not a new
// 80 MB per sample for the garbage collector to catch up with. The sample
// must not be used after.
func (r *Reader) Release(s *Sample) {
	shared.release(s)
}

// shared holds the member buffers of released samples for any reader of
// the process. Readers come and go with a runner's bundles (one per
// Cityscapes sample under prism); without the pool each 80 MB member would
// be a fresh allocation, which the kernel zeroes page by page (a quarter
// of the CPU of a run), and garbage that keeps the heap, and the RSS,
// large. It holds a bounded number of buffers, two members for each sample
// a process holds at once: GOMAXPROCS evaluated while the next is read,
// and one spare.
var shared = bufferPool{max: 2 * (runtime.GOMAXPROCS(0) + 2)}

// bufferPool is a bounded, concurrency-safe set of buffers.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
	max  int
}

// release pools the field buffers of s, unless they are not buffers of
// the pool but views of mapped bytes, leaving it without fields.
func (p *bufferPool) release(s *Sample) {
	for f, data := range s.Fields {
		if !s.mapped {
			p.put(data)
		}
		delete(s.Fields, f)
	}
}

// get returns a buffer of n bytes: the smallest pooled one that is large
// enough, unless it is more than twice as large (a label PNG must not take
// the buffer of the next probability member), or a new one.
func (p *bufferPool) get(n int64) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := -1
	for i, buf := range p.free {
		if c := int64(cap(buf)); c >= n && c/2 <= n && (best < 0 || cap(buf) < cap(p.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]byte, n)
	}
	buf := p.free[best]
	p.free = slices.Delete(p.free, best, best+1)
	return buf[:n]
}

// put pools buf, or when the pool is full keeps the larger buffers, whose
// allocation costs the most.
func (p *bufferPool) put(buf []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < p.max {
		p.free = append(p.free, buf[:0])
		return
	}
	small := 0
	for i, b := range p.free {
		if cap(b) < cap(p.free[small]) {
			small = i
		}
	}
	if cap(p.free[small]) < cap(buf) {
		p.free[small] = buf[:0]
	}
}

// isSparse reports whether hdr describes a GNU sparse file, in either the old
// GNU format or the PAX one.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// splitName splits a member path into its sample key and field name. It
// reports false for names that are not sample fields: hidden files (base
// name starting with a dot) and names without a dot in the base name.
func splitName(name string) (key, field string, ok bool) {
	dir, base := path.Split(name)
	if strings.HasPrefix(base, ".") {
		return "", "", false
	}
	stem, field, ok := strings.Cut(base, ".")
	if !ok || field == "" {
		return "", "", false
	}
	return dir + stem, strings.ToLower(field), true
}

func (r *Reader) errorf(member, format string, args ...any) error {
	return &Error{Shard: r.shardName, Member: member, Err: fmt.Errorf(format, args...)}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
