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
)

// agree checks Index and SampleReader against the sequential Reader on one
// archive. Index must find the samples Reader reads, at the same offsets,
// and SampleReader must read each from its span exactly as Reader does.
// When Reader fails, the samples it read before must be the first entries;
// and Index must report a defect (an Entry.Err, a repeated key or an error)
// exactly when Reader fails. It returns the entries and Index's error.
func agree(data []byte, lim Limits) (entries []Entry, indexErr, mismatch error) {
	const name = "gs://b/x.tar"
	samples, readErr := readAll(data, lim)
	entries, indexErr = Index(bytes.NewReader(data), name, lim)

	var e *Error
	if indexErr != nil && (!errors.As(indexErr, &e) || e.Shard != name) {
		return entries, indexErr, fmt.Errorf("Index error %v is not an *Error naming the shard", indexErr)
	}
	clean := indexErr == nil
	keys := make(map[string]bool)
	var end int64
	for i, en := range entries {
		if en.Offset < end || en.Length <= 0 || en.Length > int64(len(data))-en.Offset {
			return entries, indexErr, fmt.Errorf("entry %d (%q) spans [%d, +%d), overlapping the one before (ending at %d) or outside the %d bytes", i, en.Key, en.Offset, en.Length, end, len(data))
		}
		end = en.Offset + en.Length
		if en.Err != nil && (!errors.As(en.Err, &e) || e.Shard != name || e.Member == "") {
			return entries, indexErr, fmt.Errorf("entry %d: error %v is not an *Error naming shard and member", i, en.Err)
		}
		clean = clean && en.Err == nil && !keys[en.Key]
		keys[en.Key] = true
	}
	if ok := readErr == io.EOF; ok != clean {
		return entries, indexErr, fmt.Errorf("Reader ended with %v, but Index found %d entries and %v", readErr, len(entries), indexErr)
	}
	if len(samples) > len(entries) {
		return entries, indexErr, fmt.Errorf("Reader read %d samples, Index found only %d", len(samples), len(entries))
	}
	if readErr == io.EOF && len(samples) != len(entries) {
		return entries, indexErr, fmt.Errorf("Reader read %d samples, Index found %d", len(samples), len(entries))
	}

	sr := NewSampleReader(name, lim)
	for i, want := range samples {
		en := entries[i]
		if en.Key != want.Key || en.Offset != want.Offset || en.Err != nil {
			return entries, indexErr, fmt.Errorf("entry %d is %q at %d (%v), Reader read %q at %d", i, en.Key, en.Offset, en.Err, want.Key, want.Offset)
		}
		// Through a reader that ends with the span, and through one
		// that goes on, which Read must leave right after the span.
		r := bytes.NewReader(data)
		r.Seek(en.Offset, io.SeekStart)
		for _, from := range []io.Reader{io.LimitReader(r, en.Length), r} {
			r.Seek(en.Offset, io.SeekStart)
			got, err := sr.Read(from, en)
			if err != nil {
				return entries, indexErr, fmt.Errorf("reading entry %d (%q at %d, %d bytes): %v", i, en.Key, en.Offset, en.Length, err)
			}
			if !reflect.DeepEqual(got, want) {
				return entries, indexErr, fmt.Errorf("entry %d: read %q at %d with fields %q, Reader read %q at %d with %q", i, got.Key, got.Offset, got.Fields, want.Key, want.Offset, want.Fields)
			}
			if pos, _ := r.Seek(0, io.SeekCurrent); pos != en.Offset+en.Length {
				return entries, indexErr, fmt.Errorf("reading entry %d consumed %d bytes, want its length, %d", i, pos-en.Offset, en.Length)
			}
			sr.Release(got)
		}
		// From the span in memory, and from the shard's bytes going on.
		for _, in := range [][]byte{data[en.Offset : en.Offset+en.Length], data[en.Offset:]} {
			if err := mappedAgrees(sr, in, en); err != nil {
				return entries, indexErr, fmt.Errorf("entry %d (%q at %d, %d bytes): %v", i, en.Key, en.Offset, en.Length, err)
			}
		}
	}
	return entries, indexErr, nil
}

// withHeader changes the tar header block at offset with edit and fixes its
// checksum.
func withHeader(archive []byte, offset int64, edit func(hdr []byte)) []byte {
	b := bytes.Clone(archive)
	hdr := b[offset : offset+blockSize]
	edit(hdr)
	copy(hdr[148:156], "        ") // the checksum is computed with spaces here
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func TestIndexAgreesWithReader(t *testing.T) {
	longBase := strings.Repeat("b", 120)
	mixed, _ := buildTar(t,
		entry{name: "shard/", typeflag: tar.TypeDir},
		entry{name: "img1.label.png", body: "L1"},
		entry{name: "img1.probs.npy", body: "P1"},
		entry{name: "shard/sub/", typeflag: tar.TypeDir}, // inside a sample
		entry{name: "img1.jpg", body: ""},
		entry{name: ".DS_Store", body: "junk"},
		entry{name: "._img1.jpg", body: "resource fork"},
		entry{name: "a/b/img2.Label.PNG", body: "L2"},
		entry{name: "a/b/README", body: "no field"},
		entry{name: "a/b/img2.link.npy", typeflag: tar.TypeSymlink},
		entry{name: "a/b/img2.hard.npy", typeflag: tar.TypeLink},
		entry{name: "a/b/img2.pred.npy", body: "P2"},
		entry{name: "a/c/img2.json", body: "{}"},
		entry{name: "img3.tar.gz", body: strings.Repeat("x", 1000)},
	)
	longNames, _ := buildTar(t,
		entry{name: longBase + ".label.png", body: "L1"},
		entry{name: longBase + ".probs.npy", body: strings.Repeat("p", 513)},
		entry{name: "données/échantillon.label.png", body: "L2"},
		entry{name: "数据/样本.json", body: "{}"},
		entry{name: strings.Repeat("d", 120) + "/", typeflag: tar.TypeDir},
		entry{name: strings.Repeat("d", 120) + "/img3.jpg", body: "J"},
	)
	gnu, _ := buildTar(t,
		entry{name: longBase + ".label.png", body: "L1", format: tar.FormatGNU},
		entry{name: longBase + ".probs.npy", body: "P1", format: tar.FormatGNU},
		entry{name: strings.Repeat("d", 120) + "/", typeflag: tar.TypeDir, format: tar.FormatGNU},
		entry{name: "img2.json", body: strings.Repeat("j", 700), format: tar.FormatGNU},
	)
	global, globalOffsets := buildTar(t,
		entry{name: "img1.label.png", body: "L1"},
		entry{name: "pax_global_header", typeflag: tar.TypeXGlobalHeader, pax: map[string]string{"comment": strings.Repeat("c", 600)}},
		entry{name: "img1.probs.npy", body: "P1"},
		entry{name: "pax_global_header", typeflag: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "short"}},
		entry{name: "img2.probs.npy", body: "P2"},
	)
	emptyMembers, _ := buildTar(t,
		entry{name: "img1.json", body: ""},
		entry{name: "img2.json", body: ""},
		entry{name: "img2.png", body: ""},
		entry{name: "img3.png", body: "3"},
	)
	// A symbolic link whose header states a size has no data all the
	// same, for archive/tar: the next sample starts right after it.
	linkWithSize, linkOffsets := buildTar(t,
		entry{name: "img1.json", body: "{}"},
		entry{name: "img1.link", typeflag: tar.TypeSymlink},
		entry{name: "img2.png", body: "P"},
	)
	linkWithSize = withHeader(linkWithSize, linkOffsets[1], func(hdr []byte) { copy(hdr[124:136], "00000001000\x00") })
	endsInPadding := mixed[:len(mixed)-1024-10] // img3 has 1000 bytes of data, padded to 1024

	tests := []struct {
		name        string
		data        []byte
		wantEntries int
	}{
		{"mixed", mixed, 4},
		{"PAX long and non-ASCII names", longNames, 4},
		{"GNU long names", gnu, 2},
		{"PAX global headers", global, 2},
		{"empty members", emptyMembers, 3},
		{"link header with a size", linkWithSize, 2},
		{"no end-of-archive blocks", mixed[:len(mixed)-1024], 4},
		{"end inside the last padding", endsInPadding, 4},
		{"no bytes", nil, 0},
		{"only the end-of-archive blocks", make([]byte, 1024), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := readAll(tt.data, testLimits); err != io.EOF {
				t.Fatalf("Reader fails on the archive: %v", err)
			}
			entries, indexErr, err := agree(tt.data, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			if indexErr != nil || len(entries) != tt.wantEntries {
				t.Fatalf("Index = %d entries, %v; want %d and no error", len(entries), indexErr, tt.wantEntries)
			}
		})
	}
	if globalOffsets[2]-globalOffsets[1] != 3*blockSize {
		t.Errorf("the first global header takes %d bytes, want a header and 2 blocks of records, which the test relies on", globalOffsets[2]-globalOffsets[1])
	}
}

// TestIndexOffsets checks the offsets and lengths of entries against those
// at which archive/tar wrote the members, including members whose names
// need PAX or GNU extension headers: a sample starts at its first
// extension header, and ends where the next member's headers start.
func TestIndexOffsets(t *testing.T) {
	long := strings.Repeat("n", 150)
	members := []struct {
		entry
		firstBlock byte // the type of the member's first header block
	}{
		{entry{name: "plain.json", body: "{}"}, tar.TypeReg},
		{entry{name: long + ".png", body: strings.Repeat("x", 512)}, tar.TypeXHeader},
		{entry{name: "ünïcödé.png", body: strings.Repeat("x", 513)}, tar.TypeXHeader},
		{entry{name: long + "2.png", body: "g", format: tar.FormatGNU}, tar.TypeGNULongName},
		{entry{name: "empty.json"}, tar.TypeReg},
		{entry{name: "dir/" + long + ".npy", body: strings.Repeat("y", 2000), format: tar.FormatPAX}, tar.TypeXHeader},
	}
	var entries []entry
	for _, m := range members {
		entries = append(entries, m.entry)
	}
	data, offsets := buildTar(t, entries...)
	got, err := Index(bytes.NewReader(data), "gs://b/x.tar", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(members) {
		t.Fatalf("Index found %d entries, want %d", len(got), len(members))
	}
	offsets = append(offsets, int64(len(data)-1024)) // the end-of-archive blocks
	for i, m := range members {
		if typ := data[offsets[i]+156]; typ != m.firstBlock {
			t.Fatalf("%s: archive/tar wrote a first header block of type %q, want %q: the test does not cover what it means to", m.name, typ, m.firstBlock)
		}
		if got[i].Offset != offsets[i] || got[i].Length != offsets[i+1]-offsets[i] {
			t.Errorf("%s: entry spans %d bytes at %d, want %d at %d", m.name, got[i].Length, got[i].Offset, offsets[i+1]-offsets[i], offsets[i])
		}
	}
}

// TestIndexFromOffset checks that offsets are relative to where r is
// positioned when Index starts.
func TestIndexFromOffset(t *testing.T) {
	data, offsets := buildTar(t, entry{name: "a.json", body: "1"}, entry{name: "b.json", body: "2"})
	r := bytes.NewReader(append(bytes.Repeat([]byte{0xff}, 100), data...))
	r.Seek(100, io.SeekStart)
	got, err := Index(r, "x.tar", testLimits)
	if err != nil || len(got) != 2 || got[0].Offset != 0 || got[1].Offset != offsets[1] {
		t.Fatalf("Index = %+v, %v; want entries at 0 and %d", got, err, offsets[1])
	}
}

func TestIndexDefects(t *testing.T) {
	data, offsets := buildTar(t,
		entry{name: "img1.json", body: "1"},
		entry{name: "img2.json", body: "2"},
		entry{name: "img2.png", body: strings.Repeat("p", 100)},
		entry{name: "img2.JSON", body: "again"},
		entry{name: "img3.json", body: "3"},
		entry{name: "img4.npy", body: strings.Repeat("n", 2000)},
		entry{name: "img4.json", body: "4"},
		entry{name: "img1.png", body: "reappears"},
	)
	lim := Limits{MaxMemberBytes: 1000}
	got, err := Index(bytes.NewReader(data), "gs://b/x.tar", lim)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key        string
		offset     int64
		end        int64
		wantMember string
		wantErr    string
	}{
		{"img1", offsets[0], offsets[1], "", ""},
		{"img2", offsets[1], offsets[4], "img2.JSON", `field "json" appears twice in sample "img2"`},
		{"img3", offsets[4], offsets[5], "", ""},
		{"img4", offsets[5], offsets[7], "img4.npy", "size 2000 bytes exceeds the limit of 1000"},
		{"img1", offsets[7], int64(len(data) - 1024), "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("Index found %d entries, want %d: %+v", len(got), len(want), got)
	}
	sr := NewSampleReader("gs://b/x.tar", lim)
	for i, w := range want {
		e := got[i]
		if e.Key != w.key || e.Offset != w.offset || e.Offset+e.Length != w.end {
			t.Errorf("entry %d = %q at [%d, %d), want %q at [%d, %d)", i, e.Key, e.Offset, e.Offset+e.Length, w.key, w.offset, w.end)
		}
		if w.wantErr == "" {
			if e.Err != nil {
				t.Errorf("entry %d (%q): unexpected error %v", i, e.Key, e.Err)
			}
			continue
		}
		var ie *Error
		if !errors.As(e.Err, &ie) || ie.Shard != "gs://b/x.tar" || ie.Member != w.wantMember || !strings.Contains(ie.Err.Error(), w.wantErr) {
			t.Errorf("entry %d (%q): error %v, want one naming member %s and saying %q", i, e.Key, e.Err, w.wantMember, w.wantErr)
		}
		if s, err := sr.Read(bytes.NewReader(data[e.Offset:]), e); s != nil || err != e.Err {
			t.Errorf("Read of entry %d = %v, %v; want its error", i, s, err)
		}
		if s, err := sr.ReadMapped(data[e.Offset:], e); s != nil || err != e.Err {
			t.Errorf("ReadMapped of entry %d = %v, %v; want its error", i, s, err)
		}
	}
}

func TestIndexBrokenStream(t *testing.T) {
	good, offsets := buildTar(t,
		entry{name: "img1.probs.npy", body: "0123456789"},
		entry{name: "img1.label.png", body: "label"},
		entry{name: "img2.probs.npy", body: strings.Repeat("2", 600)},
		entry{name: ".hidden", body: strings.Repeat("h", 600)},
		entry{name: "img3.probs.npy", body: "3"},
	)
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	if err := tw.WriteHeader(&tar.Header{Name: "img1.probs.npy", Typeflag: tar.TypeReg, Size: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	sparse := asSparse(buildTar(t, entry{name: "img1.probs.npy", body: "data"}))
	inSecond := asSparse(good[offsets[2]:], nil)
	sparseSecond := append(bytes.Clone(good[:offsets[2]]), inSecond...)

	tests := []struct {
		name        string
		data        []byte
		wantEntries int
		wantMember  string
		wantErr     string
		wantIs      error
	}{
		{
			name: "truncated member", data: good[:offsets[2]+512+300], wantEntries: 1,
			wantMember: "img2.probs.npy",
			wantErr:    fmt.Sprintf("unreadable from offset %d: truncated: its 600 bytes of data at offset %d run past the end of the shard at %d", offsets[2], offsets[2]+512, offsets[2]+812),
			wantIs:     io.ErrUnexpectedEOF,
		},
		{
			name: "truncated second member of a sample", data: good[:offsets[1]+512+2],
			wantMember: "img1.label.png", wantErr: fmt.Sprintf("unreadable from offset %d: truncated", offsets[1]), wantIs: io.ErrUnexpectedEOF,
		},
		{
			// img2 is in progress: it might go on after .hidden.
			name: "truncated skipped member", data: good[:offsets[3]+512+100], wantEntries: 1,
			wantMember: ".hidden", wantErr: fmt.Sprintf("unreadable from offset %d: truncated", offsets[3]), wantIs: io.ErrUnexpectedEOF,
		},
		{
			name: "truncated header", data: good[:offsets[2]+100], wantEntries: 0,
			wantErr: fmt.Sprintf("unreadable from offset %d: reading tar header", offsets[2]), wantIs: io.ErrUnexpectedEOF,
		},
		{
			name: "bad checksum", data: func() []byte { b := bytes.Clone(good); b[offsets[4]+148] ^= 1; return b }(), wantEntries: 1,
			wantErr: fmt.Sprintf("unreadable from offset %d: reading tar header", offsets[4]), wantIs: tar.ErrHeader,
		},
		{
			name: "huge declared size", data: huge.Bytes(),
			wantMember: "img1.probs.npy", wantErr: "unreadable from offset 0: truncated: its 1099511627776 bytes", wantIs: io.ErrUnexpectedEOF,
		},
		{
			name: "sparse member", data: sparse,
			wantMember: "img1.probs.npy", wantErr: "unreadable from offset 0: sparse members are not supported",
		},
		{
			// An old-format GNU sparse member is not a regular file,
			// so img1 might go on after it, like after a directory.
			name: "sparse member after a sample", data: sparseSecond, wantEntries: 0,
			wantMember: "img2.probs.npy", wantErr: fmt.Sprintf("unreadable from offset %d: sparse members are not supported", offsets[2]),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := Index(bytes.NewReader(tt.data), "gs://b/x.tar", testLimits)
			if len(entries) != tt.wantEntries {
				t.Errorf("Index returned %d entries, want the %d completed before the break", len(entries), tt.wantEntries)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v (%T), want an *Error", err, err)
			}
			if e.Shard != "gs://b/x.tar" || e.Member != tt.wantMember || !strings.Contains(e.Err.Error(), tt.wantErr) {
				t.Errorf("error = %#v (%v), want shard gs://b/x.tar, member %q and an error containing %q", e, e.Err, tt.wantMember, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if _, _, err := agree(tt.data, testLimits); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := Index(bytes.NewReader(good), "gs://b/x.tar", Limits{}); err == nil || !strings.Contains(err.Error(), "Limits.MaxMemberBytes must be positive") {
		t.Errorf("Index with zero limits: error %v, want one about the limit", err)
	}
}

// TestIndexRepeatedKey checks that a key that reappears after other keys
// is not an error for Index, but a second entry for the caller to reject.
func TestIndexRepeatedKey(t *testing.T) {
	data, offsets := buildTar(t, entry{name: "a.jpg", body: "1"}, entry{name: "b.jpg", body: "2"}, entry{name: "a.png", body: "3"})
	got, err := Index(bytes.NewReader(data), "x.tar", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Key: "a", Offset: offsets[0], Length: 1024},
		{Key: "b", Offset: offsets[1], Length: 1024},
		{Key: "a", Offset: offsets[2], Length: 1024},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Index = %+v, want %+v", got, want)
	}
	sr := NewSampleReader("x.tar", testLimits)
	for i, field := range []string{"jpg", "jpg", "png"} {
		s, err := sr.Read(bytes.NewReader(data[got[i].Offset:]), got[i])
		if err != nil || s.Key != want[i].Key || len(s.Fields) != 1 || s.Fields[field] == nil {
			t.Errorf("Read of entry %d = %+v, %v; want sample %q with field %s", i, s, err, want[i].Key, field)
		}
	}
}

// TestSampleReaderWrongSpan reads entries whose spans do not hold their
// sample, as after the shard changed, and inputs that fail.
func TestSampleReaderWrongSpan(t *testing.T) {
	data, offsets := buildTar(t,
		entry{name: "dir/", typeflag: tar.TypeDir},
		entry{name: "img1.json", body: "1"},
		entry{name: "img1.png", body: strings.Repeat("p", 600)},
		entry{name: "img2.json", body: "2"},
		entry{name: "img2.JSON", body: "again"},
		entry{name: "img3.json", body: "3"},
	)
	img1 := Entry{Key: "img1", Offset: offsets[1], Length: offsets[3] - offsets[1]}
	end := int64(len(data) - 1024)
	errInput := errors.New("connection reset")
	tests := []struct {
		name    string
		e       Entry
		input   io.Reader // nil: data from e.Offset on
		wantErr string
		wantIs  error
	}{
		{"another key", Entry{Key: "img9", Offset: img1.Offset, Length: img1.Length}, nil, `belongs to sample "img1", not "img9"`, ErrChanged},
		{"span of two samples", Entry{Key: "img1", Offset: img1.Offset, Length: offsets[4] - offsets[1]}, nil, `belongs to sample "img2", not "img1"`, ErrChanged},
		{"span cutting a member short", Entry{Key: "img1", Offset: img1.Offset, Length: img1.Length - 512}, nil, "truncated: read 512 of 600 bytes", ErrChanged},
		{"span ending inside a header", Entry{Key: "img1", Offset: img1.Offset, Length: img1.Length + 100}, nil, "reading tar header", ErrChanged},
		{"span starting at a directory", Entry{Key: "img1", Offset: offsets[0], Length: offsets[3]}, nil, "starts with a member that is not one of its fields", ErrChanged},
		{"span starting inside a member", Entry{Key: "img1", Offset: offsets[2] + 512, Length: 1024}, nil, "reading tar header", ErrChanged},
		{"field twice", Entry{Key: "img2", Offset: offsets[3], Length: offsets[5] - offsets[3]}, nil, `field "json" appears twice`, ErrChanged},
		{"span past the end of the archive", Entry{Key: "img3", Offset: offsets[5], Length: end - offsets[5] + 1024 + 512}, nil, "the archive ends at offset", ErrChanged},
		{"input ending early", img1, bytes.NewReader(data[img1.Offset : img1.Offset+700]), fmt.Sprintf("the input ended after 700 of its %d bytes", img1.Length), io.ErrUnexpectedEOF},
		{"input failing", img1, io.MultiReader(bytes.NewReader(data[img1.Offset:img1.Offset+700]), iotestErrReader(errInput)), "connection reset", errInput},
	}
	sr := NewSampleReader("gs://b/x.tar", testLimits)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.input
			if in == nil {
				in = bytes.NewReader(data[tt.e.Offset:])
			}
			s, err := sr.Read(in, tt.e)
			if s != nil || err == nil || !strings.Contains(err.Error(), "gs://b/x.tar") {
				t.Fatalf("Read = %v, %v; want an error naming the shard", s, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q, want one containing %q and wrapping %v", err, tt.wantErr, tt.wantIs)
			}
			if tt.input == nil {
				if err := mappedAgrees(sr, data[tt.e.Offset:], tt.e); err != nil {
					t.Error(err)
				}
			}
			// Only a problem with the shard's bytes is an *Error; a
			// failing input is not the shard's fault.
			var e *Error
			if changed := tt.wantIs == ErrChanged; errors.As(err, &e) != changed || errors.Is(err, ErrChanged) != changed {
				t.Errorf("error %q: *Error and ErrChanged = %v, want %v", err, !changed, changed)
			}
		})
	}
	// The SampleReader is still usable after errors.
	s, err := sr.Read(bytes.NewReader(data[img1.Offset:]), img1)
	if err != nil || len(s.Fields["png"]) != 600 || string(s.Fields["json"]) != "1" {
		t.Errorf("Read of img1 = %+v, %v", s, err)
	}
	if _, err := NewSampleReader("x.tar", Limits{}).Read(bytes.NewReader(data[img1.Offset:]), img1); err == nil {
		t.Error("Read with zero limits succeeded")
	}
}

// failingReadSeeker reads from data but fails once a read or seek reaches
// offset failAt.
type failingReadSeeker struct {
	*bytes.Reader
	failAt int64
	err    error
}

func (f *failingReadSeeker) Read(p []byte) (int, error) {
	pos, _ := f.Reader.Seek(0, io.SeekCurrent)
	if pos+int64(len(p)) > f.failAt {
		return 0, f.err
	}
	return f.Reader.Read(p)
}

func (f *failingReadSeeker) Seek(offset int64, whence int) (int64, error) {
	pos, err := f.Reader.Seek(offset, whence)
	if err == nil && whence != io.SeekEnd && pos > f.failAt {
		return 0, f.err
	}
	return pos, err
}

// TestIndexFailingInput checks that a failure of the input is reported as
// such, not as a broken shard.
func TestIndexFailingInput(t *testing.T) {
	data, offsets := buildTar(t,
		entry{name: "img1.json", body: "1"},
		entry{name: "img2.json", body: "2"},
		entry{name: "img3.png", body: strings.Repeat("p", 5000)},
		entry{name: "img4.json", body: "4"},
	)
	errInput := errors.New("connection reset")
	for _, tt := range []struct {
		name        string
		failAt      int64
		wantEntries int
	}{
		{"reading a header", offsets[1] + 100, 0}, // img1 might have gone on
		{"reading a later header", offsets[2] + 100, 1},
		{"seeking over data", offsets[2] + 1000, 2},
		{"at once", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &failingReadSeeker{Reader: bytes.NewReader(data), failAt: tt.failAt, err: errInput}
			entries, err := Index(r, "gs://b/x.tar", testLimits)
			var e *Error
			if !errors.Is(err, errInput) || errors.As(err, &e) || !strings.Contains(err.Error(), "gs://b/x.tar") {
				t.Errorf("error %v, want the input's error naming the shard, and no *Error", err)
			}
			if len(entries) != tt.wantEntries {
				t.Errorf("%d entries, want the %d before the failure", len(entries), tt.wantEntries)
			}
		})
	}
}

// iotestErrReader returns a reader that always fails with err.
func iotestErrReader(err error) io.Reader {
	return readerFunc(func([]byte) (int, error) { return 0, err })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// countingReadSeeker counts the bytes read through it.
type countingReadSeeker struct {
	io.ReadSeeker
	n int64
}

func (c *countingReadSeeker) Read(p []byte) (int, error) {
	n, err := c.ReadSeeker.Read(p)
	c.n += int64(n)
	return n, err
}

// TestIndexReadsNoMemberData checks that Index seeks over member data
// rather than reading it.
func TestIndexReadsNoMemberData(t *testing.T) {
	const samples = 5
	var entries []entry
	for i := range samples {
		entries = append(entries,
			entry{name: fmt.Sprintf("img%d.probs.npy", i), body: strings.Repeat("p", 1<<20)},
			entry{name: fmt.Sprintf("img%d.label.png", i), body: strings.Repeat("l", 1<<20+1)},
			entry{name: fmt.Sprintf("img%d.json", i), body: "{}"},
		)
	}
	data, _ := buildTar(t, entries...)
	r := &countingReadSeeker{ReadSeeker: bytes.NewReader(data)}
	got, err := Index(r, "x.tar", Limits{MaxMemberBytes: 2 << 20})
	if err != nil || len(got) != samples {
		t.Fatalf("Index = %d entries, %v; want %d", len(got), err, samples)
	}
	// A header block per member, then the last byte of its data (which
	// archive/tar reads to detect truncation) and the padding after it,
	// and the two end-of-archive blocks.
	var want int64
	for _, e := range entries {
		want += blockSize
		if n := int64(len(e.body)); n > 0 {
			want += 1 + (blockSize-n%blockSize)%blockSize
		}
	}
	want += 2 * blockSize
	if r.n != want {
		t.Errorf("Index read %d of the %d bytes, want %d", r.n, len(data), want)
	}
}

// Released buffers are reused for later samples.
func TestSampleReaderReleaseReusesBuffers(t *testing.T) {
	var entries []entry
	for i := range 4 {
		entries = append(entries,
			entry{name: fmt.Sprintf("k%d.probs.npy", i), body: strings.Repeat(string(rune('a'+i)), 4096)},
			entry{name: fmt.Sprintf("k%d.json", i), body: "{}"},
		)
	}
	data, _ := buildTar(t, entries...)
	index, err := Index(bytes.NewReader(data), "mem.tar", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	sr := NewSampleReader("mem.tar", testLimits)
	seen := map[*byte]bool{}
	for i, e := range index {
		s, err := sr.Read(bytes.NewReader(data[e.Offset:]), e)
		if err != nil {
			t.Fatal(err)
		}
		probs := s.Fields["probs.npy"]
		if len(probs) != 4096 || probs[0] != byte('a'+i) || probs[4095] != byte('a'+i) {
			t.Fatalf("sample %d holds the wrong data", i)
		}
		seen[&probs[0]] = true
		sr.Release(s)
	}
	if len(seen) > 2 {
		t.Errorf("%d distinct probability buffers for 4 samples: released buffers were not reused", len(seen))
	}
}

// FuzzIndex indexes arbitrary bytes as a shard. Index must not panic, and
// must agree with Reader: see agree.
func FuzzIndex(f *testing.F) {
	good, offsets := buildTar(f,
		entry{name: "img1.label.png", body: "L1"},
		entry{name: "dir/", typeflag: tar.TypeDir},
		entry{name: "img1.probs.npy", body: "P1"},
		entry{name: strings.Repeat("l", 110) + ".label.png", body: strings.Repeat("L", 700)},
		entry{name: "img3.json", body: "{}", format: tar.FormatGNU},
		entry{name: "img3.json", body: "again"},
		entry{name: "img1.png", body: "back"},
	)
	f.Add(good)
	f.Add(good[:offsets[3]+700])
	f.Add(good[:len(good)-1024])
	f.Add(good[:len(good)-1024-300])
	f.Add([]byte{})
	f.Add(asSparse(good, nil))

	lim := Limits{MaxMemberBytes: 1 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := agree(data, lim); err != nil {
			t.Fatal(err)
		}
	})
}
