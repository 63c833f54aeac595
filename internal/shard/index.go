package shard

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
)

// Entry locates one sample of a shard, as found by Index.
type Entry struct {
	// Key is the sample's key. Index reports a key that reappears after
	// other keys as a second Entry with the same key.
	Key string
	// Offset is the byte offset in the shard of the tar header of the
	// sample's first member: of the first PAX or GNU extension header
	// when the member has one.
	Offset int64
	// Length is the number of bytes from Offset through the padded data
	// of the sample's last member, including any skipped members (such as
	// directories) between its members.
	Length int64
	// Err, if not nil, is a defect of this sample alone, an *Error naming
	// the shard and member: a field given twice, or a member larger than
	// Limits.MaxMemberBytes. The sample cannot be evaluated, but the shard
	// is readable past it.
	Err error
}

// ErrChanged reports that the bytes at an Entry's span are not the sample
// Index found there: the shard changed after it was indexed.
var ErrChanged = errors.New("the shard changed after it was indexed")

// Index reads the tar headers of a shard from r, which must be positioned at
// the start of the shard, and returns its samples in order without reading
// member data: r is an io.ReadSeeker so that archive/tar skips the data of
// each member by seeking. Offsets are relative to the start of the shard.
//
// Consecutive members sharing a key form one sample, as for Reader, and
// members that Reader skips (directories, links, hidden files, names
// without a field) belong to no sample. Unlike Reader, Index does not
// reject the whole shard for a defect of one sample: it sets the sample's
// Entry.Err, and a key that reappears after other keys yields another Entry
// for the caller to reject.
//
// If the stream itself is broken (a corrupt or truncated header, a member
// whose data runs past the end of the shard, a sparse member), Index returns
// the entries of the samples completed before the one in progress, along
// with an *Error saying from which byte offset the shard is unreadable and,
// when there is one, which member; the rest of the shard cannot be read. (A
// sample is complete once a member of another key follows it, even if that
// member is broken.) An empty archive yields no entries and no error.
//
// An error of r itself, such as a failed download, is not an *Error: Index
// returns it wrapped with the shard's name, along with the entries so far,
// so that the caller can tell a failing input, which may be retried, from a
// broken shard, which may not.
func Index(r io.ReadSeeker, shardName string, lim Limits) ([]Entry, error) {
	errorf := func(member, format string, args ...any) error {
		return &Error{Shard: shardName, Member: member, Err: fmt.Errorf(format, args...)}
	}
	if lim.MaxMemberBytes <= 0 {
		return nil, errorf("", "Limits.MaxMemberBytes must be positive, got %d", lim.MaxMemberBytes)
	}
	in := &inputReader{r: r}
	// inputError describes a failure of r at offset.
	inputError := func(offset int64) error {
		return fmt.Errorf("indexing shard %s at offset %d: %w", shardName, offset, in.err)
	}
	base, _ := in.Seek(0, io.SeekCurrent)
	end, _ := in.Seek(0, io.SeekEnd)
	in.Seek(base, io.SeekStart)
	if in.err != nil {
		return nil, inputError(0)
	}
	size := end - base

	tr := tar.NewReader(in)
	var (
		entries []Entry
		cur     *Entry          // the sample in progress, or nil
		fields  map[string]bool // the fields of cur so far
		next    int64           // offset of the next member's first header block
	)
	for {
		// archive/tar reads exactly the header blocks of a member
		// (no read-ahead) and skips the data of the one before by
		// seeking, so the reader's position after Next is where the
		// member's data starts.
		offset := next
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil // as in Reader.nextMember
		}
		if in.err != nil {
			return entries, inputError(offset)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return entries, errorf("", "unreadable from offset %d: reading tar header: %w", offset, err)
		}
		pos, _ := in.Seek(0, io.SeekCurrent)
		if in.err != nil {
			return entries, inputError(offset)
		}
		start := pos - base
		key, field, ok := splitName(hdr.Name)
		ok = ok && hdr.Typeflag == tar.TypeReg
		if ok && cur != nil && key != cur.Key {
			// A member of another sample: the one in progress is
			// complete, whether or not this member can be read.
			entries = append(entries, *cur)
			cur = nil
		}
		if isSparse(hdr) {
			// Its data in the archive is shorter than its size, which
			// would make the offsets of the headers after it unknown.
			return entries, errorf(hdr.Name, "unreadable from offset %d: sparse members are not supported", offset)
		}
		n := dataSize(hdr)
		if n > size-start {
			return entries, errorf(hdr.Name, "unreadable from offset %d: truncated: its %d bytes of data at offset %d run past the end of the shard at %d: %w",
				offset, n, start, size, io.ErrUnexpectedEOF)
		}
		next = (start + n + blockSize - 1) / blockSize * blockSize
		if !ok {
			continue // not a sample's member; in a sample's span if between two
		}
		if cur == nil {
			cur = &Entry{Key: key, Offset: offset}
			fields = make(map[string]bool)
		}
		// Report the first defect of a sample, in the order Reader
		// would meet them.
		switch {
		case cur.Err != nil:
		case hdr.Size > lim.MaxMemberBytes:
			cur.Err = errorf(hdr.Name, "size %d bytes exceeds the limit of %d", hdr.Size, lim.MaxMemberBytes)
		case fields[field]:
			cur.Err = errorf(hdr.Name, "field %q appears twice in sample %q", field, key)
		}
		fields[field] = true
		cur.Length = next - cur.Offset
	}
	if cur != nil {
		// archive/tar takes an archive that ends inside the padding of
		// its last member as complete, so the span must end there too.
		cur.Length = min(cur.Length, size-cur.Offset)
		entries = append(entries, *cur)
	}
	return entries, nil
}

// inputReader passes reads and seeks on to r, keeping r's first error
// other than io.EOF, so that Index can tell r failing from the shard's
// bytes being broken.
type inputReader struct {
	r   io.ReadSeeker
	err error
}

func (in *inputReader) Read(p []byte) (int, error) {
	n, err := in.r.Read(p)
	if err != nil && err != io.EOF && in.err == nil {
		in.err = err
	}
	return n, err
}

func (in *inputReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := in.r.Seek(offset, whence)
	if err != nil && in.err == nil {
		in.err = err
	}
	return pos, err
}

// dataSize returns the number of data bytes that follow the header of a
// member in the archive: none for the types that archive/tar treats as
// header-only, whatever size their header states.
func dataSize(hdr *tar.Header) int64 {
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return 0
	}
	return hdr.Size
}

// SampleReader reads single samples located by Index, reusing the buffers
// of released samples as Reader does, or viewing members where they lie in
// memory (ReadMapped).
type SampleReader struct {
	shardName string
	lim       Limits
}

// NewSampleReader returns a SampleReader of samples of the named shard,
// which must be read with the Limits the shard was indexed with. The shard
// name is only used in errors.
func NewSampleReader(shardName string, lim Limits) *SampleReader {
	return &SampleReader{shardName: shardName, lim: lim}
}

// Reset makes the SampleReader read samples of another shard, with that
// shard's Limits.
func (sr *SampleReader) Reset(shardName string, lim Limits) {
	sr.shardName, sr.lim = shardName, lim
}

// Read reads sample e from r, which must be positioned at e.Offset of the
// shard, and consumes exactly e.Length bytes of r. The returned sample has
// the Key, Fields and Offset that Reader gives for it.
//
// If e.Err is not nil, Read returns it without reading. If the bytes of the
// span are not sample e (a member of another key or a field given twice,
// a member truncated by the end of the span, or a span that ends elsewhere
// than after the sample's last member), Read returns an *Error wrapping
// ErrChanged: the shard changed after it was indexed. If r fails, or ends
// before the span does, the error is not an *Error but wraps r's error, or
// io.ErrUnexpectedEOF: the input failed, not the shard.
func (sr *SampleReader) Read(r io.Reader, e Entry) (*Sample, error) {
	return sr.read(&spanReader{r: r, spanState: spanState{left: e.Length}}, e, false)
}

// ReadMapped reads sample e from data, the bytes of the shard from
// e.Offset on, such as its span mapped into memory (see storage.MapRange),
// without copying: the fields of the sample are slices of data, valid as
// long as data is. It reads only the first e.Length bytes of data, and
// checks and reports everything as Read does, with the same errors; data
// shorter than the span is an input that ends early.
//
// Release does not pool the fields of the sample, which are not the
// reader's but the caller's: the caller may unmap data once it has
// released the sample.
func (sr *SampleReader) ReadMapped(data []byte, e Entry) (*Sample, error) {
	return sr.read(&spanBytes{data: data, spanState: spanState{left: e.Length}}, e, true)
}

// read reads sample e from span, whose fields are views of the caller's
// bytes when mapped is true, or else pooled buffers.
func (sr *SampleReader) read(span span, e Entry, mapped bool) (*Sample, error) {
	if sr.lim.MaxMemberBytes <= 0 {
		return nil, sr.errorf("", "Limits.MaxMemberBytes must be positive, got %d", sr.lim.MaxMemberBytes)
	}
	if e.Err != nil {
		return nil, e.Err
	}
	st := span.state()
	tr := tar.NewReader(span)
	s := &Sample{Key: e.Key, Fields: make(map[string][]byte), Offset: e.Offset, mapped: mapped}
	// fail gives up on the sample. Unless the input is at fault, the
	// bytes of the span are not what Index found there.
	fail := func(member, format string, args ...any) (*Sample, error) {
		sr.Release(s)
		err := fmt.Errorf(format, args...)
		switch {
		case st.err != nil: // wrapped by err
			return nil, fmt.Errorf("reading sample %q of shard %s at offset %d: %w", e.Key, sr.shardName, e.Offset, err)
		case st.short:
			return nil, fmt.Errorf("reading sample %q of shard %s at offset %d: the input ended after %d of its %d bytes: %w",
				e.Key, sr.shardName, e.Offset, st.read, e.Length, err)
		}
		return nil, &Error{Shard: sr.shardName, Member: member, Err: fmt.Errorf("%w: %w", err, ErrChanged)}
	}
	for {
		// As in Reader, every member's data has been read to its end,
		// or is about to be skipped.
		offset := e.Offset + (st.read+st.unread+blockSize-1)/blockSize*blockSize
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil // as in Reader.nextMember
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail("", "reading tar header at offset %d: %w", offset, err)
		}
		if isSparse(hdr) {
			return fail(hdr.Name, "sparse member at offset %d", offset)
		}
		key, field, ok := splitName(hdr.Name)
		switch {
		case len(s.Fields) == 0 && (!ok || hdr.Typeflag != tar.TypeReg):
			return fail(hdr.Name, "the span of sample %q at offset %d starts with a member that is not one of its fields", e.Key, e.Offset)
		case !ok || hdr.Typeflag != tar.TypeReg:
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return fail(hdr.Name, "truncated: %w", err)
			}
			continue
		case key != e.Key:
			return fail(hdr.Name, "member at offset %d belongs to sample %q, not %q", offset, key, e.Key)
		case s.Fields[field] != nil: // member data is never nil, even when empty
			return fail(hdr.Name, "field %q appears twice in sample %q", field, e.Key)
		case hdr.Size > sr.lim.MaxMemberBytes:
			// Index, given the same Limits, would have said so in
			// e.Err; this is no sign of a change.
			sr.Release(s)
			return nil, sr.errorf(hdr.Name, "size %d bytes exceeds the limit of %d", hdr.Size, sr.lim.MaxMemberBytes)
		}
		data, n, err := span.member(tr, hdr.Size)
		s.Fields[field] = data // released by fail
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fail(hdr.Name, "truncated: read %d of %d bytes: %w", n, hdr.Size, err)
		}
	}
	switch {
	case len(s.Fields) == 0:
		return fail("", "no member of sample %q at offset %d", e.Key, e.Offset)
	case st.left > 0:
		return fail("", "the archive ends at offset %d, inside the %d-byte span of sample %q at offset %d", e.Offset+st.read, e.Length, e.Key, e.Offset)
	}
	return s, nil
}

// Release hands the field buffers of a sample the caller is done with to
// the readers of the process, as Reader.Release does; the fields of a
// sample from ReadMapped are only dropped. The sample must not be used
// after.
func (sr *SampleReader) Release(s *Sample) {
	shared.release(s)
}

func (sr *SampleReader) errorf(member, format string, args ...any) error {
	return &Error{Shard: sr.shardName, Member: member, Err: fmt.Errorf(format, args...)}
}

// span is the input of SampleReader: the bytes of one sample's span, read
// from a stream or found in memory. It reports io.EOF at the end of the
// span.
type span interface {
	io.Reader
	state() *spanState
	// member returns the data of the member whose header tr has just
	// read, size bytes, or the n bytes of it there are and an error.
	member(tr *tar.Reader, size int64) (data []byte, n int, err error)
}

// spanState is how far a span has been read, and whether its input failed.
type spanState struct {
	left   int64 // bytes of the span not read yet
	read   int64 // bytes of the span read
	unread int64 // bytes of the last member's data, returned by spanBytes.member, that archive/tar is yet to skip
	short  bool  // the input ended before the span did
	err    error // the input's error other than io.EOF
}

// consume records that n bytes of the span were read or skipped.
func (s *spanState) consume(n int64) {
	s.left -= n
	s.read += n
	s.unread = max(s.unread-n, 0)
}

func (s *spanState) state() *spanState { return s }

// spanReader reads the span of one sample from r, reading members into
// pooled buffers.
type spanReader struct {
	spanState
	r io.Reader
}

func (s *spanReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.consume(int64(n))
	switch {
	case err == io.EOF && s.left > 0:
		s.short = true
		err = io.ErrUnexpectedEOF
	case err == io.EOF:
		err = nil // the next call reports the end of the span
	case err != nil:
		s.err = err
	}
	return n, err
}

func (s *spanReader) member(tr *tar.Reader, size int64) ([]byte, int, error) {
	data := shared.get(size)
	n, err := io.ReadFull(tr, data)
	return data, n, err
}

// spanBytes is the span of one sample in memory, from the start of data:
// a member is a slice of data, and archive/tar skips over it by seeking.
// It behaves as a spanReader of a bytes.Reader of data would.
type spanBytes struct {
	spanState
	data []byte
}

func (s *spanBytes) Read(p []byte) (int, error) {
	switch {
	case s.left <= 0:
		return 0, io.EOF
	case s.read == int64(len(s.data)):
		s.short = true
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p[:min(int64(len(p)), s.left)], s.data[s.read:])
	s.consume(int64(n))
	return n, nil
}

// Seek moves forward from the current position, as far as the span and
// data go, for archive/tar to skip a member's data without reading it. It
// supports nothing else, which archive/tar does not ask for.
func (s *spanBytes) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || offset < 0 {
		return s.read, errors.New("shard: a span in memory only seeks forward from where it is")
	}
	s.consume(min(offset, s.left, int64(len(s.data))-s.read))
	return s.read, nil
}

// member returns the member's data as a slice of s.data, with no room to
// append into, leaving it unread: tr skips it, by seeking, on its next
// header. A member cut short by the end of the span or of data is read to
// that end, as spanReader would.
func (s *spanBytes) member(_ *tar.Reader, size int64) ([]byte, int, error) {
	n := min(size, s.left, int64(len(s.data))-s.read)
	data := s.data[s.read : s.read+n : s.read+n]
	if n == size {
		s.unread = n
		return data, int(n), nil
	}
	s.consume(n)
	s.short = s.left > 0
	return data, int(n), io.ErrUnexpectedEOF
}
