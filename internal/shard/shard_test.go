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

var testLimits = Limits{MaxMemberBytes: 1 << 20}

// entry is one tar member to write; typeflag defaults to a regular file,
// and format to the one archive/tar chooses.
type entry struct {
	name     string
	body     string
	typeflag byte
	format   tar.Format
	pax      map[string]string // PAX records, such as those of a global header
}

// buildTar writes entries with archive/tar and returns the archive and the
// offset of each entry's header.
func buildTar(t testing.TB, entries ...entry) ([]byte, []int64) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	offsets := make([]int64, len(entries))
	for i, e := range entries {
		if err := tw.Flush(); err != nil { // pads the previous entry's data
			t.Fatal(err)
		}
		offsets[i] = int64(buf.Len())
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typeflag, Format: e.format, PAXRecords: e.pax}
		switch e.typeflag {
		case 0:
			hdr.Typeflag = tar.TypeReg
		case tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
			hdr.Size = 0
			hdr.Linkname = "target"
		case tar.TypeXGlobalHeader:
			hdr.Mode = 0 // archive/tar takes only a name and records
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), offsets
}

// readAll returns the samples of a shard and the error that ended reading.
func readAll(data []byte, lim Limits) ([]*Sample, error) {
	r := NewReader(bytes.NewReader(data), "gs://b/x.tar", lim)
	var samples []*Sample
	for {
		s, err := r.Next()
		if err != nil {
			return samples, err
		}
		samples = append(samples, s)
	}
}

func TestReader(t *testing.T) {
	longDir := strings.Repeat("d", 120) + "/"
	data, offsets := buildTar(t,
		entry{name: "shard/", typeflag: tar.TypeDir},
		entry{name: "img1.label.png", body: "L1"},
		entry{name: "img1.probs.npy", body: "P1"},
		entry{name: "img1.jpg", body: ""},
		entry{name: ".DS_Store", body: "junk"},
		entry{name: "._img1.jpg", body: "resource fork"},
		entry{name: "a/b/img2.Label.PNG", body: "L2"},
		entry{name: "a/b/README", body: "no field"},
		entry{name: "a/b/img2.link.npy", typeflag: tar.TypeSymlink},
		entry{name: "a/b/img2.hard.npy", typeflag: tar.TypeLink},
		entry{name: "a/b/img2.pred.npy", body: "P2"},
		entry{name: "a/c/img2.json", body: "{}"},
		entry{name: longDir + "img3.tar.gz", body: strings.Repeat("x", 1000)},
	)
	want := []*Sample{
		{Key: "img1", Fields: map[string][]byte{"label.png": []byte("L1"), "probs.npy": []byte("P1"), "jpg": {}}, Offset: offsets[1]},
		{Key: "a/b/img2", Fields: map[string][]byte{"label.png": []byte("L2"), "pred.npy": []byte("P2")}, Offset: offsets[6]},
		{Key: "a/c/img2", Fields: map[string][]byte{"json": []byte("{}")}, Offset: offsets[11]},
		{Key: longDir + "img3", Fields: map[string][]byte{"tar.gz": []byte(strings.Repeat("x", 1000))}, Offset: offsets[12]},
	}
	got, err := readAll(data, testLimits)
	if err != io.EOF {
		t.Fatalf("reading stopped with %v, want io.EOF", err)
	}
	if !reflect.DeepEqual(got, want) {
		for _, s := range got {
			t.Logf("got %q at %d: %q", s.Key, s.Offset, s.Fields)
		}
		t.Fatalf("samples differ from the %d wanted", len(want))
	}
	// Each offset must be where a tar reader finds the sample's first member.
	for _, s := range got {
		hdr, err := tar.NewReader(bytes.NewReader(data[s.Offset:])).Next()
		if err != nil || !strings.HasPrefix(hdr.Name, s.Key+".") {
			t.Errorf("sample %q: header at offset %d is %v, %v", s.Key, s.Offset, hdr, err)
		}
	}
}

func TestReaderEmpty(t *testing.T) {
	onlySkipped, _ := buildTar(t, entry{name: "dir/", typeflag: tar.TypeDir}, entry{name: ".hidden", body: "x"})
	for name, data := range map[string][]byte{
		"no bytes":      nil,
		"end marker":    make([]byte, 1024),
		"only skipped":  onlySkipped,
		"no end marker": onlySkipped[:512*3],
	} {
		if got, err := readAll(data, testLimits); err != io.EOF || len(got) != 0 {
			t.Errorf("%s: got %d samples and %v, want none and io.EOF", name, len(got), err)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	good, offsets := buildTar(t,
		entry{name: "img1.probs.npy", body: "0123456789"},
		entry{name: "img1.label.png", body: "label"},
	)
	corrupt := bytes.Clone(good)
	corrupt[offsets[1]+148] ^= 1 // the header checksum field

	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	if err := tw.WriteHeader(&tar.Header{Name: "img1.probs.npy", Typeflag: tar.TypeReg, Size: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	duplicateKey, _ := buildTar(t, entry{name: "a.jpg", body: "1"}, entry{name: "b.jpg", body: "2"}, entry{name: "a.png", body: "3"})
	duplicateField, _ := buildTar(t, entry{name: "a.jpg", body: "1"}, entry{name: "a.JPG", body: "2"})
	hidden, _ := buildTar(t, entry{name: ".hidden", body: strings.Repeat("h", 600)})
	sparse := asSparse(buildTar(t, entry{name: "img1.probs.npy", body: "data"}))
	var paxSparse bytes.Buffer
	tw = tar.NewWriter(&paxSparse)
	if err := tw.WriteHeader(&tar.Header{
		Name: "img1.probs.npy", Typeflag: tar.TypeReg, Size: 4, Format: tar.FormatPAX,
		// archive/tar does not write GNU.sparse records; XYZ is replaced below.
		PAXRecords: map[string]string{"XYZ.sparse.major": "0", "XYZ.sparse.minor": "1", "XYZ.sparse.numblocks": "1", "XYZ.sparse.map": "0,4", "XYZ.sparse.size": "4"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		data        []byte
		lim         Limits
		wantSamples int
		wantMember  string
		wantErr     string
		wantIs      error
	}{
		{
			name: "truncated member", data: good[:offsets[0]+512+3], lim: testLimits,
			wantMember: "img1.probs.npy", wantErr: "truncated: read 3 of 10 bytes: unexpected EOF", wantIs: io.ErrUnexpectedEOF,
		},
		{
			name: "truncated skipped member", data: hidden[:512+100], lim: testLimits,
			wantMember: ".hidden", wantErr: "truncated", wantIs: io.ErrUnexpectedEOF,
		},
		{
			name: "truncated header", data: good[:offsets[1]+100], lim: testLimits,
			wantErr: "reading tar header at offset 1024", wantIs: io.ErrUnexpectedEOF,
		},
		{
			name: "corrupt header", data: corrupt, lim: testLimits,
			wantErr: "reading tar header at offset 1024", wantIs: tar.ErrHeader,
		},
		{
			name: "member over limit", data: good, lim: Limits{MaxMemberBytes: 9},
			wantMember: "img1.probs.npy", wantErr: "size 10 bytes exceeds the limit of 9",
		},
		{
			name: "huge declared size", data: huge.Bytes(), lim: testLimits,
			wantMember: "img1.probs.npy", wantErr: "size 1099511627776 bytes exceeds the limit of 1048576",
		},
		{
			name: "non-adjacent duplicate key", data: duplicateKey, lim: testLimits, wantSamples: 2,
			wantMember: "a.png", wantErr: `key "a" appears again after other keys`,
		},
		{
			name: "duplicate field", data: duplicateField, lim: testLimits,
			wantMember: "a.JPG", wantErr: `field "jpg" appears twice in sample "a"`,
		},
		{
			name: "sparse member", data: sparse, lim: testLimits,
			wantMember: "img1.probs.npy", wantErr: "sparse members are not supported",
		},
		{
			name: "PAX sparse member", data: bytes.ReplaceAll(paxSparse.Bytes(), []byte("XYZ.sparse."), []byte("GNU.sparse.")), lim: testLimits,
			wantMember: "img1.probs.npy", wantErr: "sparse members are not supported",
		},
		{
			name: "zero limit", data: good, lim: Limits{},
			wantErr: "Limits.MaxMemberBytes must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.data), "gs://b/x.tar", tt.lim)
			for i := range tt.wantSamples {
				if _, err := r.Next(); err != nil {
					t.Fatalf("sample %d: %v", i, err)
				}
			}
			_, err := r.Next()
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
			if _, again := r.Next(); again != err {
				t.Errorf("next call returned %v, want the same error again", again)
			}
		})
	}
}

// TestReaderNonLocalNames checks that names archive/tar calls insecure are
// read as keys even when GODEBUG asks archive/tar to report them: nothing is
// written to disk.
func TestReaderNonLocalNames(t *testing.T) {
	t.Setenv("GODEBUG", "tarinsecurepath=0")
	data, _ := buildTar(t, entry{name: "../up.jpg", body: "1"}, entry{name: "/abs/img.jpg", body: "2"})
	got, err := readAll(data, testLimits)
	if err != io.EOF || len(got) != 2 || got[0].Key != "../up" || got[1].Key != "/abs/img" {
		t.Fatalf("got %d samples and %v, want ../up and /abs/img then io.EOF", len(got), err)
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{
			&Error{Shard: "gs://b/x.tar", Member: "img1.probs.npy", Err: errors.New("truncated: read 3 of 10 bytes")},
			"shard gs://b/x.tar, member img1.probs.npy: truncated: read 3 of 10 bytes",
		},
		{
			&Error{Shard: "gs://b/x.tar", Err: errors.New("reading tar header")},
			"shard gs://b/x.tar: reading tar header",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct {
		name, key, field string
		ok               bool
	}{
		{"img1.jpg", "img1", "jpg", true},
		{"a/b/img1.label.png", "a/b/img1", "label.png", true},
		{"a.b/img1.PROBS.Npy", "a.b/img1", "probs.npy", true},
		{"./img1.json", "./img1", "json", true},
		{"a/.hidden.jpg", "", "", false},
		{"README", "", "", false},
		{"img1.", "", "", false},
	}
	for _, tt := range tests {
		key, field, ok := splitName(tt.name)
		if key != tt.key || field != tt.field || ok != tt.ok {
			t.Errorf("splitName(%q) = %q, %q, %t; want %q, %q, %t", tt.name, key, field, ok, tt.key, tt.field, tt.ok)
		}
	}
}

// FuzzReader reads arbitrary bytes as a shard. The Reader must not panic,
// must respect the member size limit and must stop after an error.
func FuzzReader(f *testing.F) {
	good, _ := buildTar(f,
		entry{name: "img1.label.png", body: "L1"},
		entry{name: "img1.probs.npy", body: "P1"},
		entry{name: "dir/", typeflag: tar.TypeDir},
		entry{name: "img2.label.png", body: strings.Repeat("L", 700)},
	)
	f.Add(good)
	f.Add(good[:700])
	f.Add([]byte{})

	lim := Limits{MaxMemberBytes: 1 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz.tar", lim)
		for i := 0; ; i++ {
			s, err := r.Next()
			if err != nil {
				if _, again := r.Next(); again != err {
					t.Fatalf("error %v was followed by %v", err, again)
				}
				return
			}
			if i > len(data)/512 {
				t.Fatalf("%d samples from %d bytes", i+1, len(data))
			}
			for field, b := range s.Fields {
				if int64(len(b)) > lim.MaxMemberBytes || field == "" || field != strings.ToLower(field) {
					t.Fatalf("sample %q: field %q of %d bytes", s.Key, field, len(b))
				}
			}
		}
	})
}

// asSparse turns the first member of a tar archive into an old-format GNU
// sparse file with an empty sparse map (all hole), which archive/tar reads
// but cannot write, by changing its type flag and checksum.
func asSparse(archive []byte, _ []int64) []byte {
	return withHeader(archive, 0, func(hdr []byte) {
		hdr[156] = tar.TypeGNUSparse
		copy(hdr[257:265], "ustar  \x00") // the GNU magic and version
	})
}

// Released buffers are reused for later members, and what they hold then is
// the later member's data.
func TestReleaseReusesBuffers(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 4 {
		for _, m := range []struct {
			field string
			size  int
		}{{"probs.npy", 4096}, {"json", 10}} {
			data := bytes.Repeat([]byte{byte(i)}, m.size)
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("k%d.%s", i, m.field), Mode: 0o644, Size: int64(len(data))}); err != nil {
				t.Fatal(err)
			}
			tw.Write(data)
		}
	}
	tw.Close()
	r := NewReader(&buf, "mem.tar", Limits{MaxMemberBytes: 1 << 20})
	seen := map[*byte]bool{}
	for i := range 4 {
		s, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		probs := s.Fields["probs.npy"]
		if len(probs) != 4096 || probs[0] != byte(i) || probs[4095] != byte(i) || len(s.Fields["json"]) != 10 {
			t.Fatalf("sample %d holds the wrong data", i)
		}
		seen[&probs[0]] = true
		r.Release(s)
	}
	if len(seen) > 2 {
		t.Errorf("%d distinct probability buffers for 4 samples: released buffers were not reused", len(seen))
	}
}

// The shared pool hands a released buffer to any reader, but only for a
// member at least half its size, and keeps the larger buffers when full.
func TestBufferPool(t *testing.T) {
	tests := []struct {
		name   string
		pooled []int // capacities put, in order
		max    int
		get    int64
		want   int // capacity got; 0 for a new buffer
	}{
		{"fits", []int{4096}, 4, 4000, 4096},
		{"smallest that fits", []int{9000, 5000, 3000}, 4, 2600, 3000},
		{"too large for a small member", []int{4096}, 4, 100, 0},
		{"too small", []int{4096}, 4, 5000, 0},
		{"full keeps the larger", []int{100, 8000, 9000}, 2, 7000, 8000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := bufferPool{max: tt.max}
			mine := map[*byte]bool{}
			for _, n := range tt.pooled {
				b := make([]byte, n)
				mine[&b[:1][0]] = true
				p.put(b)
			}
			got := p.get(tt.get)
			if int64(len(got)) != tt.get {
				t.Fatalf("got %d bytes, want %d", len(got), tt.get)
			}
			switch reused := mine[&got[:1][0]]; {
			case tt.want == 0 && reused:
				t.Errorf("got a pooled buffer of %d bytes, want a new one", cap(got))
			case tt.want != 0 && (!reused || cap(got) != tt.want):
				t.Errorf("got a buffer of %d bytes (pooled: %v), want the pooled one of %d", cap(got), reused, tt.want)
			}
		})
	}
}

// Buffers released by one SampleReader are read into by another: readers
// come and go with a runner's bundles.
func TestSampleReaderSharesBuffers(t *testing.T) {
	const size = 3 << 20 // larger than other tests' members
	data, _ := buildTar(t, entry{name: "k.probs.npy", body: strings.Repeat("p", size)})
	index, err := Index(bytes.NewReader(data), "mem.tar", Limits{MaxMemberBytes: 1 << 30})
	if err != nil || len(index) != 1 {
		t.Fatalf("index %v, %v", index, err)
	}
	read := func() *Sample {
		s, err := NewSampleReader("mem.tar", Limits{MaxMemberBytes: 1 << 30}).Read(bytes.NewReader(data), index[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Fields["probs.npy"]; len(got) != size || got[size-1] != 'p' {
			t.Fatalf("read %d bytes", len(got))
		}
		return s
	}
	first := read()
	buf := &first.Fields["probs.npy"][0]
	NewSampleReader("other.tar", Limits{MaxMemberBytes: 1}).Release(first)
	if second := read(); &second.Fields["probs.npy"][0] != buf {
		t.Errorf("the second reader allocated a new buffer instead of the released one")
	}
}
