//go:build unix

package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMapRange maps ranges of a local file, aligned to pages or not, and
// checks them against the file's bytes.
func TestMapRange(t *testing.T) {
	page := int64(os.Getpagesize())
	data := randomBytes(int(3*page+100), 20)
	size := int64(len(data))
	tests := []struct {
		name           string
		offset, length int64
	}{
		{"whole file", 0, size},
		{"head", 0, 10},
		{"from a page boundary", page, page + 1},
		{"across pages, unaligned", page - 7, 2*page + 3},
		{"tail", 3*page + 50, 50},
		{"last byte", size - 1, 1},
		{"empty at start", 0, 0},
		{"empty inside", page + 3, 0},
		{"empty at end", size, 0},
	}
	s := newTestStore(t, Options{})
	path := filepath.Join(t.TempDir(), "shard.tar")
	obj := writeAndMatch(t, s, path, data)
	for _, tt := range tests {
		for _, gen := range []int64{obj.Generation, 0} {
			t.Run(fmt.Sprintf("%s, generation %d", tt.name, gen), func(t *testing.T) {
				m, err := s.MapRange(t.Context(), path, gen, tt.offset, tt.length)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				if err := m.Guard(func() error { got = bytes.Clone(m.Bytes()); return nil }); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[tt.offset:tt.offset+tt.length]) {
					t.Errorf("mapped %d bytes that differ from the %d of the range", len(got), tt.length)
				}
				for range 2 { // Close is idempotent
					if err := m.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}
			})
		}
	}
}

func TestMapRangeErrors(t *testing.T) {
	s := newTestStore(t, Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "shard.tar")
	obj := writeAndMatch(t, s, path, randomBytes(1000, 21))
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name           string
		ctx            context.Context
		path           string
		gen            int64
		offset, length int64
		wantIs         error  // or nil
		wantErr        string // in the message
	}{
		{"another version", t.Context(), path, obj.Generation + 1, 0, 10, ErrChanged, "version"},
		{"ends past the end", t.Context(), path, obj.Generation, 990, 20, ErrChanged, "end past the end"},
		{"empty past the end", t.Context(), path, 0, 1001, 0, ErrChanged, "end past the end"},
		{"pinned version gone", t.Context(), filepath.Join(dir, "gone.tar"), obj.Generation, 0, 10, ErrChanged, "is gone"},
		{"missing file", t.Context(), filepath.Join(dir, "gone.tar"), 0, 0, 10, fs.ErrNotExist, "gone.tar"},
		{"directory", t.Context(), dir, 0, 0, 10, nil, "not a regular file"},
		{"negative offset", t.Context(), path, 0, -1, 10, nil, "invalid range"},
		{"Cloud Storage", t.Context(), "gs://b/shard.tar", 0, 0, 10, ErrNotMappable, "gs://b/shard.tar"},
		{"cancelled", cancelled, path, 0, 0, 10, context.Canceled, path},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := s.MapRange(tt.ctx, tt.path, tt.gen, tt.offset, tt.length)
			if err == nil {
				m.Close()
				t.Fatal("MapRange succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one wrapping %v and containing %q", err, tt.wantIs, tt.wantErr)
			}
			if errors.Is(err, ErrNotMappable) != (tt.wantIs == ErrNotMappable) {
				t.Errorf("error %v: ErrNotMappable is %v", err, !(tt.wantIs == ErrNotMappable))
			}
		})
	}
	if Mappable("gs://b/shard.tar") || !Mappable(path) {
		t.Errorf("Mappable: gs:// %v, local %v; want false, true", Mappable("gs://b/shard.tar"), Mappable(path))
	}
}

// TestGuardTruncated really truncates a mapped file, so that touching the
// bytes it lost raises SIGBUS: Guard must turn that into an error instead of
// a crash, and restore the goroutine's setting.
func TestGuardTruncated(t *testing.T) {
	page := int64(os.Getpagesize())
	data := randomBytes(int(4*page), 22)
	for _, tt := range []struct {
		name    string
		cut     func(path string) error
		wantErr string
	}{
		{"truncated", func(path string) error { return os.Truncate(path, page+10) }, fmt.Sprintf("it was cut to %d bytes", page+10)},
		{"truncated and removed", func(path string) error {
			if err := os.Truncate(path, 0); err != nil {
				return err
			}
			return os.Remove(path)
		}, "it was cut to 0 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := filepath.Join(t.TempDir(), "shard.tar")
			obj := writeAndMatch(t, s, path, data)
			m, err := s.MapRange(t.Context(), path, obj.Generation, page+100, 3*page-100)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := tt.cut(path); err != nil {
				t.Fatal(err)
			}
			var sum byte
			err = m.Guard(func() error {
				for _, b := range m.Bytes() {
					sum += b
				}
				return nil
			})
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), path) ||
				!strings.Contains(err.Error(), "changed while being read") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Guard = %v, want ErrChanged naming %s, saying it changed while being read and %q", err, path, tt.wantErr)
			}
			if debug.SetPanicOnFault(false) {
				t.Error("Guard left the goroutine panicking on faults")
			}
		})
	}
}

// TestGuardPassesOn checks that Guard returns read's own error and lets
// every panic that is not a truncated file's fault go on: a fault in the
// mapping while the file is intact, such as a write to its read-only bytes,
// is a bug.
func TestGuardPassesOn(t *testing.T) {
	s := newTestStore(t, Options{})
	path := filepath.Join(t.TempDir(), "shard.tar")
	obj := writeAndMatch(t, s, path, randomBytes(10000, 23))
	m, err := s.MapRange(t.Context(), path, obj.Generation, 100, 9000)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	errRead := errors.New("bad member")
	if err := m.Guard(func() error { return errRead }); err != errRead {
		t.Errorf("Guard = %v, want read's error", err)
	}
	var nilMap map[string]*int
	for _, tt := range []struct {
		name string
		read func() error
	}{
		{"a panic", func() error { panic("boom") }},
		{"a write to the mapping", func() error { m.Bytes()[10] ^= 1; return nil }},
		{"a nil pointer", func() error { *nilMap["x"]++; return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("Guard returned")
				}
				if _, ok := r.(runtime.Error); !ok && r != "boom" {
					t.Errorf("Guard panicked with %v, want the panic of read", r)
				}
			}()
			m.Guard(tt.read)
		})
	}
	if debug.SetPanicOnFault(false) {
		t.Error("Guard left the goroutine panicking on faults")
	}
}
