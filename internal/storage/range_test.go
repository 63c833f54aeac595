package storage

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	gcs "cloud.google.com/go/storage"
)

// writeAndMatch writes data at path and returns the Object that Match
// reports for it.
func writeAndMatch(t *testing.T, s *Store, path string, data []byte) Object {
	t.Helper()
	mustWrite(t, s, path, data)
	objs, err := s.Match(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Path != path || objs[0].Size != int64(len(data)) || objs[0].Generation == 0 {
		t.Fatalf("Match(%s) = %+v, want one object of %d bytes with a generation", path, objs, len(data))
	}
	return objs[0]
}

// rewrite replaces the content at path with data, as a new version: on
// Cloud Storage a new generation, locally a file with a later modification
// time than before, set explicitly so that the test does not depend on the
// file system's timestamp granularity.
func rewrite(t *testing.T, s *Store, path string, data []byte) {
	t.Helper()
	var before time.Time
	if !IsGCS(path) {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		before = info.ModTime()
	}
	mustWrite(t, s, path, data)
	if !IsGCS(path) {
		later := before.Add(time.Second)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRange(t *testing.T) {
	data := randomBytes(300000, 10)
	size := int64(len(data))
	tests := []struct {
		name           string
		offset, length int64
	}{
		{"whole object", 0, size},
		{"head", 0, 10},
		{"middle", 123457, 70000},
		{"last byte", size - 1, 1},
		{"empty at start", 0, 0},
		{"empty at end", size, 0},
	}
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "blob")
			obj := writeAndMatch(t, s, path, data)
			for _, tt := range tests {
				for _, gen := range []int64{obj.Generation, 0} {
					r, err := s.OpenRange(t.Context(), path, gen, tt.offset, tt.length)
					if err != nil {
						t.Fatalf("%s, generation %d: %v", tt.name, gen, err)
					}
					got, err := io.ReadAll(r)
					if err != nil {
						t.Errorf("%s, generation %d: ReadAll: %v", tt.name, gen, err)
					}
					if !bytes.Equal(got, data[tt.offset:tt.offset+tt.length]) {
						t.Errorf("%s, generation %d: read %d bytes that differ from the %d of the range", tt.name, gen, len(got), tt.length)
					}
					if err := r.Close(); err != nil {
						t.Errorf("%s: Close: %v", tt.name, err)
					}
				}
			}
		})
	}
}

// TestOpenRangeChecksCRCOfWholeObject checks that the object's checksum is
// verified exactly when the range is the whole object: it covers nothing
// less.
func TestOpenRangeChecksCRCOfWholeObject(t *testing.T) {
	useEmulator(t, startFakeGCS(t).URL())
	s := newTestStore(t, Options{})
	path := "gs://" + testBucket + "/crc"
	data := randomBytes(5000, 11)
	obj := writeAndMatch(t, s, path, data)
	for _, tt := range []struct {
		offset, length int64
		want           bool
	}{
		{0, 5000, true},
		{0, 4999, false},
		{1, 4999, false},
	} {
		r, err := s.OpenRange(t.Context(), path, obj.Generation, tt.offset, tt.length)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.(*gcsReader).checkCRC; got != tt.want {
			t.Errorf("range [%d, %d): checkCRC = %v, want %v", tt.offset, tt.offset+tt.length, got, tt.want)
		}
		if _, err := io.ReadAll(r); err != nil {
			t.Errorf("range [%d, %d): %v", tt.offset, tt.offset+tt.length, err)
		}
		r.Close()
	}
}

func TestOpenRangePastEnd(t *testing.T) {
	data := randomBytes(1000, 12)
	tests := []struct {
		name           string
		offset, length int64
	}{
		{"ends past the end", 990, 20},
		{"starts at the end", 1000, 1},
		{"starts past the end", 1500, 10},
		{"empty past the end", 1001, 0},
	}
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "short")
			obj := writeAndMatch(t, s, path, data)
			for _, tt := range tests {
				for _, gen := range []int64{obj.Generation, 0} {
					r, err := s.OpenRange(t.Context(), path, gen, tt.offset, tt.length)
					if err == nil {
						r.Close()
					}
					if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), path) {
						t.Errorf("%s, generation %d: error %v, want ErrChanged naming %s", tt.name, gen, err, path)
					}
				}
			}
			if _, err := s.OpenRange(t.Context(), path, 0, -1, 10); err == nil || errors.Is(err, ErrChanged) {
				t.Errorf("negative offset: error %v, want an invalid range", err)
			}
		})
	}
}

// TestChangedAfterMatch rewrites an object after Match and checks that reads
// pinned to the matched version fail with ErrChanged, while unpinned ones
// read the new version.
func TestChangedAfterMatch(t *testing.T) {
	original, replacement := randomBytes(100000, 13), randomBytes(100000, 14)
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := newTestStore(t, Options{})
			path := Join(b.root, "shard.tar")
			obj := writeAndMatch(t, s, path, original)
			rewrite(t, s, path, replacement) // same size, new version

			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), path) {
					t.Errorf("%s: error %v, want ErrChanged naming %s", what, err, path)
				}
				if errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: error %v is fs.ErrNotExist, but only the version is gone", what, err)
				}
			}
			_, err := s.OpenRange(ctx, path, obj.Generation, 10, 100)
			check("OpenRange", err)
			_, err = s.OpenRange(ctx, path, obj.Generation, 10, 0)
			check("OpenRange of no bytes", err)
			_, err = s.OpenSeeker(ctx, path, obj.Generation, obj.Size)
			check("OpenSeeker", err)

			r, err := s.OpenRange(ctx, path, 0, 10, 100)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, replacement[10:110]) {
				t.Errorf("unpinned OpenRange read %d bytes, %v; want the new version's", len(got), err)
			}
			r.Close()

			// A size other than the one matched is a change even when
			// the read is not pinned.
			_, err = s.OpenSeeker(ctx, path, 0, obj.Size+1)
			check("OpenSeeker of another size", err)

			if err := s.Delete(ctx, path); err != nil {
				t.Fatal(err)
			}
			_, err = s.OpenRange(ctx, path, obj.Generation, 10, 100)
			check("OpenRange after Delete", err)
			_, err = s.OpenSeeker(ctx, path, obj.Generation, obj.Size)
			check("OpenSeeker after Delete", err)
			if _, err := s.OpenRange(ctx, path, 0, 10, 100); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("unpinned OpenRange after Delete: error %v, want fs.ErrNotExist", err)
			}
		})
	}
}

func TestOpenRangeResumesThroughFaults(t *testing.T) {
	srv := startFakeGCS(t)
	want := putRandomObject(srv, "big.bin", 4<<20, 15)
	// As in TestOpenResumesThroughFaults, three 503s in a row exhaust the
	// client's own attempts and make the reader reopen the range.
	proxy := startFaultProxy(t, srv.URL(),
		[]fault{cutHalf, fail503, cutHalf, fail503, fail503, fail503, cutHalf, cutHalf, fail503, cutHalf}, nil)
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{})
	path := "gs://" + testBucket + "/big.bin"
	objs, err := s.Match(t.Context(), path)
	if err != nil || len(objs) != 1 {
		t.Fatalf("Match = %v, %v", objs, err)
	}

	const offset, length = 1000, 3 << 20
	rc, err := s.OpenRange(t.Context(), path, objs[0].Generation, offset, length)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want[offset:offset+length]) {
		t.Fatalf("read %d bytes differing from the %d of the range", len(got), length)
	}
	if n := proxy.injectedFaults(); n != 10 {
		t.Errorf("proxy injected %d faults, want all 10 of its script", n)
	}
	if r := rc.(*gcsReader); r.reopens == 0 {
		t.Error("the reader never had to reopen the range; the test does not exercise resumption")
	}
}

// TestOpenRangeDetectsOverwriteDuringRead checks that a range read pinned
// to a generation that is replaced while it is being read fails with
// ErrChanged when it resumes.
func TestOpenRangeDetectsOverwriteDuringRead(t *testing.T) {
	srv := startFakeGCS(t)
	original := putRandomObject(srv, "changing.bin", 1<<20, 16)
	proxy := startFaultProxy(t, srv.URL(), []fault{cutHalf}, nil)
	proxy.onCut = func() { putRandomObject(srv, "changing.bin", 1<<20, 17) }
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{})
	path := "gs://" + testBucket + "/changing.bin"
	objs, err := s.Match(t.Context(), path)
	if err != nil || len(objs) != 1 {
		t.Fatalf("Match = %v, %v", objs, err)
	}

	rc, err := s.OpenRange(t.Context(), path, objs[0].Generation, 100, 500000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, ErrChanged) || !errors.Is(err, gcs.ErrObjectNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("ReadAll error = %v, want ErrChanged naming %s", err, path)
	}
	if !bytes.Equal(got, original[100:100+len(got)]) {
		t.Error("bytes read before the error are not from the original version")
	}
}
