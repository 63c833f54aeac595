package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	gax "github.com/googleapis/gax-go/v2"
)

// testBucket is the bucket every fake Cloud Storage server starts with.
const testBucket = "segeval-test"

// testRetry keeps retries fast so that fault tests finish in milliseconds.
var testRetry = retryConfig{
	backoff:  gax.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 2},
	attempts: 3,
	reopens:  4,
}

// startFakeGCS starts an in-process fake Cloud Storage server on loopback
// with one empty bucket, testBucket.
func startFakeGCS(t *testing.T) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http",
		Host:   "127.0.0.1",
		Port:   0, // any free port
	})
	if err != nil {
		t.Fatalf("starting fake GCS: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	return srv
}

// useEmulator points Stores created afterwards at the server at url
// (http://host:port), in the host:port form of STORAGE_EMULATOR_HOST.
func useEmulator(t *testing.T, url string) {
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(url, "http://"))
}

// newTestStore returns a Store with fast retries, closed at the end of the
// test.
func newTestStore(t *testing.T, opts Options) *Store {
	s := New(opts)
	s.retry = testRetry
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// backend is a root directory on one backend under which a test works.
type backend struct {
	name string
	root string
}

// testBackends starts a fake Cloud Storage server and returns an empty
// local directory and an empty gs:// prefix, to run the same test on both.
func testBackends(t *testing.T) []backend {
	srv := startFakeGCS(t)
	useEmulator(t, srv.URL())
	return []backend{
		{name: "local", root: t.TempDir()},
		{name: "gcs", root: "gs://" + testBucket + "/root"},
	}
}

// testLayout is the tree of files that the Match and List tests create on
// every backend.
var testLayout = []string{
	"a.txt",
	"ab.txt",
	"b.txt",
	"c.csv",
	"dir/a.txt",
	"dir/b.csv",
	"dir/sub/c.txt",
	"dir/sub/deep/d.txt",
	"dir2/a.txt",
}

// writeLayout writes testLayout under root, each file holding its own name.
func writeLayout(t *testing.T, s *Store, root string) {
	t.Helper()
	for _, name := range testLayout {
		if err := s.WriteFile(t.Context(), Join(root, name), []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
}

// relPaths returns the paths of objs relative to root, checking that each
// object's size is that of the content writeLayout gave it.
func relPaths(t *testing.T, root string, objs []Object) []string {
	t.Helper()
	rels := []string{}
	for _, o := range objs {
		rel, ok := strings.CutPrefix(o.Path, root+"/")
		if !ok {
			t.Fatalf("result %q is not under %q", o.Path, root)
		}
		if o.Size != int64(len(rel)) {
			t.Errorf("%s: size %d, want %d", o.Path, o.Size, len(rel))
		}
		rels = append(rels, rel)
	}
	return rels
}

func TestMatchSameOnBothBackends(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{"*.txt", []string{"a.txt", "ab.txt", "b.txt"}},
		{"?.txt", []string{"a.txt", "b.txt"}},
		{"[ab].txt", []string{"a.txt", "b.txt"}},
		{"[^a]*", []string{"b.txt", "c.csv"}},
		{"dir/*", []string{"dir/a.txt", "dir/b.csv"}},
		{"dir*/a.txt", []string{"dir/a.txt", "dir2/a.txt"}},
		{"*/a.txt", []string{"dir/a.txt", "dir2/a.txt"}},
		{"*/*/c.txt", []string{"dir/sub/c.txt"}},
		{"dir/**", []string{"dir/a.txt", "dir/b.csv", "dir/sub/c.txt", "dir/sub/deep/d.txt"}},
		{"**/*.csv", []string{"c.csv", "dir/b.csv"}},
		{"dir/**/*.txt", []string{"dir/a.txt", "dir/sub/c.txt", "dir/sub/deep/d.txt"}},
		{"dir/s?b/**/**/d.txt", []string{"dir/sub/deep/d.txt"}},
		{"**/d.txt", []string{"dir/sub/deep/d.txt"}},
		{"dir/a.txt", []string{"dir/a.txt"}},
		{"dir/sub", []string{}}, // a directory, never a result
		{"dir", []string{}},
		{"nothing*", []string{}},
		{"missing/**", []string{}},
	}
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			writeLayout(t, s, b.root)
			if IsGCS(b.root) {
				// Directory placeholders, as the Cloud Console creates
				// them, are not files.
				placeholders(t, b.root, "dir/", "dir/sub/")
			}
			for _, tt := range tests {
				objs, err := s.Match(t.Context(), b.root+"/"+tt.pattern)
				if err != nil {
					t.Errorf("Match(%q): %v", tt.pattern, err)
					continue
				}
				if got := relPaths(t, b.root, objs); !slices.Equal(got, tt.want) {
					t.Errorf("Match(%q) = %q, want %q", tt.pattern, got, tt.want)
				}
			}
		})
	}
}

// placeholders creates directory placeholder objects under the gs:// root
// through the emulator, bypassing the Store, which refuses such names.
func placeholders(t *testing.T, root string, names ...string) {
	t.Helper()
	s := newTestStore(t, Options{})
	_, prefix, err := splitGCS(root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.gcsClient(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		w := c.Bucket(testBucket).Object(prefix + "/" + name).NewWriter(t.Context())
		if err := w.Close(); err != nil {
			t.Fatalf("creating placeholder %s: %v", name, err)
		}
	}
}

func TestMatchMalformedPattern(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			for _, pattern := range []string{"[a", "dir/[", `x\`, "**/[z-"} {
				if _, err := s.Match(t.Context(), b.root+"/"+pattern); !errors.Is(err, path.ErrBadPattern) {
					t.Errorf("Match(%q) error = %v, want ErrBadPattern", pattern, err)
				}
			}
		})
	}
}

func TestMatchGCSBucketMustBeLiteral(t *testing.T) {
	useEmulator(t, startFakeGCS(t).URL())
	s := newTestStore(t, Options{})
	if _, err := s.Match(t.Context(), "gs://segeval-*/x"); err == nil {
		t.Error("Match with a wildcard bucket succeeded")
	}
}

func TestMatchLocalPathForms(t *testing.T) {
	dir := t.TempDir()
	s := newTestStore(t, Options{})
	writeLayout(t, s, dir)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		chdir   string
		pattern string
		want    []string
	}{
		{"relative", dir, "dir/*.txt", []string{"dir/a.txt"}},
		{"dot-relative", dir, "./dir/*.txt", []string{"dir/a.txt"}},
		{"current directory", dir, "*.csv", []string{"c.csv"}},
		{"parent", filepath.Join(dir, "dir2"), "../dir/*.txt", []string{"../dir/a.txt"}},
		{"doubled slash", "", dir + "//dir//*.txt", []string{dir + "/dir/a.txt"}},
		{"symlinked root", "", link + "/dir/*.txt", []string{link + "/dir/a.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chdir != "" {
				t.Chdir(tt.chdir)
			}
			objs, err := s.Match(t.Context(), tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Match(%q) = %q, want %q", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestListSameOnBothBackends(t *testing.T) {
	tests := []struct {
		prefix string
		want   []string
	}{
		{"dir", []string{"dir/a.txt", "dir/b.csv", "dir/sub/c.txt", "dir/sub/deep/d.txt"}},
		{"dir/", []string{"dir/a.txt", "dir/b.csv", "dir/sub/c.txt", "dir/sub/deep/d.txt"}},
		{"dir/sub/deep", []string{"dir/sub/deep/d.txt"}},
		{"di", []string{}}, // a directory prefix, not a name prefix
		{"a.txt", []string{}},
		{"missing", []string{}},
	}
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			writeLayout(t, s, b.root)
			for _, tt := range tests {
				objs, err := s.List(t.Context(), b.root+"/"+tt.prefix)
				if err != nil {
					t.Errorf("List(%q): %v", tt.prefix, err)
					continue
				}
				if got := relPaths(t, b.root, objs); !slices.Equal(got, tt.want) {
					t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
				}
			}
			all, err := s.List(t.Context(), b.root)
			if err != nil {
				t.Fatal(err)
			}
			if got := relPaths(t, b.root, all); !slices.Equal(got, testLayout) {
				t.Errorf("List(root) = %q, want %q", got, testLayout)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := newTestStore(t, Options{})
			file := Join(b.root, "rt", "nested", "file.bin")
			renamed := Join(b.root, "rt", "other", "renamed.bin")
			first, second := []byte("first version"), bytes.Repeat([]byte("second "), 1000)

			mustWrite(t, s, file, first)
			mustExist(t, s, file, true)
			mustRead(t, s, file, first)
			mustWrite(t, s, file, second) // overwrite
			mustRead(t, s, file, second)

			r, err := s.Open(ctx, file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, second) {
				t.Errorf("Open+ReadAll = %d bytes, %v; want %d bytes", len(got), err, len(second))
			}
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}

			objs, err := s.List(ctx, Join(b.root, "rt"))
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 1 || objs[0].Path != file || objs[0].Size != int64(len(second)) {
				t.Fatalf("List = %+v, want only %s with size %d", objs, file, len(second))
			}
			if gen := objs[0].Generation; gen == 0 {
				t.Error("Generation = 0; want the version of the content")
			}
			if !IsGCS(file) {
				info, err := os.Stat(file)
				if err != nil {
					t.Fatal(err)
				}
				if gen, want := objs[0].Generation, info.ModTime().UnixNano(); gen != want {
					t.Errorf("Generation = %d; want the modification time in ns, %d", gen, want)
				}
			}

			if err := s.Rename(ctx, file, renamed); err != nil {
				t.Fatal(err)
			}
			mustExist(t, s, file, false)
			mustRead(t, s, renamed, second)
			if err := s.Rename(ctx, renamed, renamed); err != nil {
				t.Fatalf("Rename onto itself: %v", err)
			}
			mustRead(t, s, renamed, second)

			if err := s.Delete(ctx, renamed); err != nil {
				t.Fatal(err)
			}
			mustExist(t, s, renamed, false)
			if objs, err := s.List(ctx, Join(b.root, "rt")); err != nil || len(objs) != 0 {
				t.Errorf("List after Delete = %+v, %v; want nothing", objs, err)
			}

			empty := Join(b.root, "empty")
			mustWrite(t, s, empty, nil)
			mustExist(t, s, empty, true)
			mustRead(t, s, empty, nil)

			// A directory, or a prefix with objects under it, is not a
			// file.
			mustWrite(t, s, Join(b.root, "d", "x"), first)
			mustExist(t, s, Join(b.root, "d"), false)
		})
	}
}

func mustWrite(t *testing.T, s *Store, path string, data []byte) {
	t.Helper()
	if err := s.WriteFile(t.Context(), path, data); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, s *Store, path string, want []byte) {
	t.Helper()
	got, err := s.ReadFile(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ReadFile(%s) = %q, want %q", path, got, want)
	}
}

func mustExist(t *testing.T, s *Store, path string, want bool) {
	t.Helper()
	got, err := s.Exists(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Exists(%s) = %v, want %v", path, got, want)
	}
}

func TestNotFound(t *testing.T) {
	backends := testBackends(t)
	backends = append(backends, backend{name: "gcs missing bucket", root: "gs://no-such-bucket"})
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := newTestStore(t, Options{})
			missing := Join(b.root, "missing", "file.txt")
			ops := []struct {
				name string
				do   func() error
			}{
				{"Open", func() error {
					r, err := s.Open(ctx, missing)
					if r != nil {
						t.Error("Open returned a non-nil reader with its error")
					}
					return err
				}},
				{"ReadFile", func() error { _, err := s.ReadFile(ctx, missing); return err }},
				{"Rename", func() error { return s.Rename(ctx, missing, Join(b.root, "to")) }},
				{"Delete", func() error { return s.Delete(ctx, missing) }},
			}
			for _, op := range ops {
				err := op.do()
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: error %v, want fs.ErrNotExist", op.name, err)
				}
				if err != nil && !strings.Contains(err.Error(), missing) {
					t.Errorf("%s: error %q does not name the path", op.name, err)
				}
			}
			if ok, err := s.Exists(ctx, missing); ok || err != nil {
				t.Errorf("Exists = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestRenameBetweenBackendsFails(t *testing.T) {
	s := New(Options{})
	local := filepath.Join(t.TempDir(), "x")
	if err := s.Rename(t.Context(), local, "gs://b/x"); err == nil {
		t.Error("Rename from local disk to Cloud Storage succeeded")
	}
	if err := s.Rename(t.Context(), "gs://b/x", local); err == nil {
		t.Error("Rename from Cloud Storage to local disk succeeded")
	}
}

// TestInvalidGCSPaths checks that paths naming no object, including
// directory names, are refused before any request is made.
func TestInvalidGCSPaths(t *testing.T) {
	s := New(Options{})
	for _, p := range []string{"gs://", "gs:///object", "gs://bucket", "gs://bucket/", "gs://bucket/dir/"} {
		if _, err := s.ReadFile(t.Context(), p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("ReadFile(%q) error = %v, want one naming the path", p, err)
		}
		if err := s.WriteFile(t.Context(), p, nil); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("WriteFile(%q) error = %v, want one naming the path", p, err)
		}
	}
}

// TestEmulatorHostForms checks both forms of STORAGE_EMULATOR_HOST that
// the client accepts, and that no credentials are needed with either.
func TestEmulatorHostForms(t *testing.T) {
	srv := startFakeGCS(t)
	for _, host := range []string{strings.TrimPrefix(srv.URL(), "http://"), srv.URL()} {
		t.Run(host, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", host)
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
			s := newTestStore(t, Options{})
			p := "gs://" + testBucket + "/forms/" + strings.NewReplacer(":", "_", "/", "_").Replace(host)
			mustWrite(t, s, p, []byte(host))
			mustRead(t, s, p, []byte(host))
		})
	}
}

func TestConcurrentUseOfOneStore(t *testing.T) {
	useEmulator(t, startFakeGCS(t).URL())
	s := newTestStore(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			p := fmt.Sprintf("gs://%s/concurrent/%d", testBucket, i)
			data := bytes.Repeat([]byte{byte(i)}, 1000*i)
			if err := s.WriteFile(t.Context(), p, data); err != nil {
				errs <- err
				return
			}
			got, err := s.ReadFile(t.Context(), p)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("%s: read back %d bytes, want %d", p, len(got), len(data))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestClose(t *testing.T) {
	useEmulator(t, startFakeGCS(t).URL())
	s := New(Options{})
	p := "gs://" + testBucket + "/closing"
	mustWrite(t, s, p, []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.ReadFile(t.Context(), p); !errors.Is(err, errClosed) {
		t.Errorf("ReadFile after Close: error %v, want errClosed", err)
	}
	local := filepath.Join(t.TempDir(), "still-works")
	mustWrite(t, s, local, []byte("y"))
	mustRead(t, s, local, []byte("y"))
}

func TestWriteFileLocalLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := New(Options{})
	p := filepath.Join(dir, "new", "out.txt")
	mustWrite(t, s, p, []byte("data"))
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "out.txt" {
		t.Errorf("directory holds %v, want only out.txt", entries)
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o644 {
		t.Errorf("permissions %v, want 0644", perm)
	}
}

func TestJoinAndIsGCS(t *testing.T) {
	tests := []struct {
		base string
		elem []string
		want string
		gcs  bool
	}{
		{"gs://bucket", []string{"a", "b.txt"}, "gs://bucket/a/b.txt", true},
		{"gs://bucket/", []string{"a/"}, "gs://bucket/a", true},
		{"gs://bucket/dir", []string{"../x"}, "gs://bucket/x", true},
		{"gs://bucket/dir", nil, "gs://bucket/dir", true},
		{"/tmp/x", []string{"y", "z"}, "/tmp/x/y/z", false},
		{"rel", []string{"y"}, "rel/y", false},
		{"gs:/not-gcs", []string{"y"}, "gs:/not-gcs/y", false},
	}
	for _, tt := range tests {
		if got := Join(tt.base, tt.elem...); got != tt.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tt.base, tt.elem, got, tt.want)
		}
		if got := IsGCS(tt.base); got != tt.gcs {
			t.Errorf("IsGCS(%q) = %v, want %v", tt.base, got, tt.gcs)
		}
	}
}

func TestCreate(t *testing.T) {
	ctx := t.Context()
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "dir", "big.jsonl")
			w, err := s.Create(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for i := range 1000 {
				line := fmt.Appendf(nil, "line %d\n", i)
				want = append(want, line...)
				if _, err := w.Write(line); err != nil {
					t.Fatal(err)
				}
			}
			mustExist(t, s, path, false) // not before Close
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			mustRead(t, s, path, want)

			aborted := Join(b.root, "dir", "aborted")
			w, err = s.Create(ctx, aborted)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("partial"))
			w.Abort()
			mustExist(t, s, aborted, false)
			objs, err := s.List(ctx, Join(b.root, "dir"))
			if err != nil || len(objs) != 1 {
				t.Errorf("after an abort the folder holds %v (%v), want only big.jsonl", objs, err)
			}
		})
	}
}
