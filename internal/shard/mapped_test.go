package shard

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// mappedAgrees reads e from in, the bytes of a shard from e.Offset on,
// both with Read and with ReadMapped. The samples must be the same, with
// the mapped one's fields slices of in with no room to append into it, or
// the errors must be: the same message, the same kind (*Error or not) and
// the same sentinels.
func mappedAgrees(sr *SampleReader, in []byte, e Entry) error {
	streamed, streamErr := sr.Read(bytes.NewReader(in), e)
	mapped, mappedErr := sr.ReadMapped(in, e)
	defer func() {
		for _, s := range []*Sample{streamed, mapped} {
			if s != nil {
				sr.Release(s)
			}
		}
	}()
	if (streamErr == nil) != (mappedErr == nil) || streamErr != nil && streamErr.Error() != mappedErr.Error() {
		return fmt.Errorf("Read: %v; ReadMapped: %v", streamErr, mappedErr)
	}
	var se, me *Error
	if errors.As(streamErr, &se) != errors.As(mappedErr, &me) {
		return fmt.Errorf("Read's error %v is an *Error: %v; ReadMapped's: %v", streamErr, se != nil, me != nil)
	}
	for _, target := range []error{ErrChanged, io.ErrUnexpectedEOF} {
		if errors.Is(streamErr, target) != errors.Is(mappedErr, target) {
			return fmt.Errorf("Read's error %v wraps %v: %v; ReadMapped's: %v", streamErr, target, errors.Is(streamErr, target), errors.Is(mappedErr, target))
		}
	}
	if streamErr != nil {
		return nil
	}
	if mapped.Key != streamed.Key || mapped.Offset != streamed.Offset || !reflect.DeepEqual(mapped.Fields, streamed.Fields) {
		return fmt.Errorf("ReadMapped read %q at %d with fields %q, Read %q at %d with %q",
			mapped.Key, mapped.Offset, mapped.Fields, streamed.Key, streamed.Offset, streamed.Fields)
	}
	for f, data := range mapped.Fields {
		if len(data) > 0 && !within(data, in) {
			return fmt.Errorf("field %s was copied out of the bytes", f)
		}
		if cap(data) != len(data) {
			return fmt.Errorf("field %s has room to append into the bytes after it", f)
		}
	}
	return nil
}

// within reports whether the non-empty b is a slice of buf.
func within(b, buf []byte) bool {
	p, start := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= start && p-start < uintptr(len(buf))
}

// TestReadMappedAgreesWithRead reads spans of well-formed and broken
// archives, right and wrong ones (other keys, lengths off by a little or a
// block, inputs cut short), with Read and ReadMapped: see mappedAgrees.
func TestReadMappedAgreesWithRead(t *testing.T) {
	members := []entry{
		{name: "dir/", typeflag: tar.TypeDir},
		{name: "img1.label.png", body: "L1"},
		{name: "img1.probs.npy", body: strings.Repeat("p", 600)},
		{name: "img1.jpg", body: ""},
		{name: "sub/", typeflag: tar.TypeDir},
		{name: "._img1.jpg", body: "resource fork"},
		{name: strings.Repeat("n", 120) + ".json", body: "{}"},
		{name: "img2.json", body: "2"},
		{name: "img2.JSON", body: "again"},
		{name: "pax_global_header", typeflag: tar.TypeXGlobalHeader, pax: map[string]string{"comment": strings.Repeat("c", 600)}},
		{name: "img3.npy", body: strings.Repeat("3", 2000)},
		{name: "img3.json", body: "3", format: tar.FormatGNU},
	}
	good, offsets := buildTar(t, members...)
	offsets = append(offsets, int64(len(good)-1024), int64(len(good)))
	badSum := bytes.Clone(good)
	badSum[offsets[7]+148] ^= 1
	archives := []struct {
		name string
		data []byte
	}{
		{"well-formed", good},
		{"truncated inside a member", good[:offsets[2]+512+300]},
		{"truncated inside a header", good[:offsets[10]+100]},
		{"no end-of-archive blocks", good[:len(good)-1024]},
		{"bad checksum", badSum},
		{"sparse member", asSparse(good[offsets[1]:], nil)},
	}
	keys := []string{"img1", "img2", "img3", strings.Repeat("n", 120)}
	lim := Limits{MaxMemberBytes: 1000} // img3.npy is over it
	sr := NewSampleReader("gs://b/x.tar", lim)
	for _, a := range archives {
		t.Run(a.name, func(t *testing.T) {
			var compared, samples int
			for _, start := range offsets {
				if start >= int64(len(a.data)) {
					continue
				}
				for _, end := range offsets {
					for _, delta := range []int64{0, -1, 1, -512, 512} {
						length := end + delta - start
						if length < 0 {
							continue
						}
						for _, key := range keys {
							e := Entry{Key: key, Offset: start, Length: length}
							// The shard from the span on, and inputs
							// cut inside it.
							for _, cut := range []int64{int64(len(a.data)) - start, length / 2, length - 1} {
								if cut < 0 || cut > int64(len(a.data))-start {
									continue
								}
								in := a.data[start : start+cut]
								if err := mappedAgrees(sr, in, e); err != nil {
									t.Fatalf("%q at %d, %d bytes, from %d bytes of input: %v", key, start, length, cut, err)
								}
								if s, err := sr.ReadMapped(in, e); err == nil {
									samples++
									sr.Release(s)
								}
								compared++
							}
						}
					}
				}
			}
			t.Logf("%d reads compared, %d of them samples", compared, samples)
		})
	}
	if s, err := sr.ReadMapped(good[offsets[1]:], Entry{Key: "img1", Offset: offsets[1], Length: offsets[6] - offsets[1]}); err != nil || len(s.Fields) != 3 {
		t.Errorf("ReadMapped of img1 = %+v, %v; want its 3 fields: the test reads no sample", s, err)
	}
}

// TestReadMappedRelease checks that the fields of a mapped sample, which
// are not the reader's, are dropped but never pooled: neither when the
// caller releases the sample, nor when reading it fails.
func TestReadMappedRelease(t *testing.T) {
	const size = 5 << 20 // larger than other tests' members
	body := strings.Repeat("m", size)
	data, offsets := buildTar(t,
		entry{name: "k.probs.npy", body: body},
		entry{name: "k.label.npy", body: body},
		entry{name: "k.json", body: "{}"},
	)
	lim := Limits{MaxMemberBytes: 1 << 30}
	sr := NewSampleReader("mem.tar", lim)
	whole := Entry{Key: "k", Offset: 0, Length: int64(len(data) - 1024)}
	s, err := sr.ReadMapped(data, whole)
	if err != nil {
		t.Fatal(err)
	}
	sr.Release(s)
	if len(s.Fields) != 0 {
		t.Errorf("a released sample keeps %d fields", len(s.Fields))
	}
	// A span that ends inside the second member: the first is read,
	// then the read fails.
	cut := Entry{Key: "k", Offset: 0, Length: offsets[1] + 512 + 100}
	if _, err := sr.ReadMapped(data, cut); !errors.Is(err, ErrChanged) {
		t.Fatalf("ReadMapped of a cut span: %v, want ErrChanged", err)
	}
	for range 4 {
		if buf := shared.get(size); within(buf, data) {
			t.Fatal("the pool handed out a slice of the mapped bytes")
		}
	}
}
