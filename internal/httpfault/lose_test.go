package httpfault_test

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	gcs "cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/segeval/segeval/internal/httpfault"
)

const testBucket = "httpfault-test"

// startLoseResponses starts a fake Cloud Storage server with testBucket, a
// LoseResponses in front of it, and a client of the front.
func startLoseResponses(t *testing.T, cut bool) (*fakestorage.Server, *httpfault.LoseResponses, *gcs.Client) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatalf("starting fake GCS: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	l := httpfault.NewLoseResponses(srv.HTTPHandler(), cut)
	front := httptest.NewServer(l) // loopback only
	t.Cleanup(front.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(front.URL, "http://"))
	c, err := gcs.NewClient(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, l, c
}

// An armed upload lands on the server while its client sees a failure;
// an upload of another object, and the next upload of the armed one, pass
// untouched. Uploads are multipart, or resumable in several chunks.
func TestLoseResponses(t *testing.T) {
	small := []byte("one line\n")
	large := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	for _, tt := range []struct {
		name string
		cut  bool
		data []byte
	}{
		{"503/multipart", false, small},
		{"cut/multipart", true, small},
		{"503/resumable", false, large},
		{"cut/resumable", true, large},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, l, c := startLoseResponses(t, tt.cut)
			const armed = "dir/armed"
			write := func(object string) error {
				w := c.Bucket(testBucket).Object(object).NewWriter(t.Context())
				w.ChunkSize = 256 << 10 // the minimum: large data takes three chunks
				if _, err := w.Write(tt.data); err != nil {
					w.Close()
					return err
				}
				return w.Close()
			}
			landed := func(object string) {
				t.Helper()
				obj, err := srv.GetObject(testBucket, object)
				if err != nil {
					t.Fatalf("%s did not land: %v", object, err)
				}
				if !bytes.Equal(obj.Content, tt.data) {
					t.Errorf("%s holds %d bytes, want %d", object, len(obj.Content), len(tt.data))
				}
			}

			l.Arm(armed)
			if err := write("dir/other"); err != nil {
				t.Fatalf("unarmed upload: %v", err)
			}
			landed("dir/other")
			if n := l.Lost(); n != 0 {
				t.Fatalf("%d responses lost to an unarmed upload, want 0", n)
			}

			if err := write(armed); err == nil {
				t.Fatal("armed upload succeeded, want its response lost")
			}
			landed(armed)
			if n := l.Lost(); n != 1 {
				t.Errorf("%d responses lost, want 1", n)
			}

			if err := srv.Backend().DeleteObject(testBucket, armed); err != nil {
				t.Fatal(err)
			}
			if err := write(armed); err != nil {
				t.Fatalf("upload after the lost one: %v", err)
			}
			landed(armed)
			if n := l.Lost(); n != 1 {
				t.Errorf("%d responses lost, want 1", n)
			}
		})
	}
}
