package storage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

// seekerBackends is like testBackends, but the Cloud Storage backend is
// reached through a proxy that counts the downloads the Seeker requests.
func seekerBackends(t *testing.T) ([]backend, *faultProxy) {
	srv := startFakeGCS(t)
	proxy := startFaultProxy(t, srv.URL(), nil, nil)
	useEmulator(t, proxy.url)
	return []backend{
		{name: "local", root: t.TempDir()},
		{name: "gcs", root: "gs://" + testBucket + "/root"},
	}, proxy
}

// TestSeekerRequests reads scattered 512-byte pieces of a 4 MiB object and
// checks their content and how many range reads they cost: pieces further
// apart than the window cost one each, pieces close together share one.
func TestSeekerRequests(t *testing.T) {
	data := randomBytes(4<<20, 20)
	piecesEvery := func(step int64, n int) []int64 {
		var offsets []int64
		for i := range n {
			offsets = append(offsets, int64(i)*step)
		}
		return offsets
	}
	tests := []struct {
		name         string
		offsets      []int64
		wantRequests int64
	}{
		{"1 MiB apart", piecesEvery(1<<20, 4), 4},
		{"1 KiB apart", piecesEvery(1<<10, 100), 1},
		// The first window, at 0, is not used before it is abandoned.
		{"backwards", []int64{3 << 20, 2 << 20, 1 << 20, 0}, 5},
		{"past the first window", []int64{0, 1024, seekWindow + 10, seekWindow + 2000}, 2},
		{"the last bytes", []int64{0, 4<<20 - 512}, 2},
	}
	backends, proxy := seekerBackends(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "big.bin")
			obj := writeAndMatch(t, s, path, data)
			for _, tt := range tests {
				downloadsBefore := proxy.downloadsRequested()
				sk, err := s.OpenSeeker(t.Context(), path, obj.Generation, obj.Size)
				if err != nil {
					t.Fatal(err)
				}
				piece := make([]byte, 512)
				for _, off := range tt.offsets {
					if _, err := sk.Seek(off, io.SeekStart); err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadFull(sk, piece); err != nil {
						t.Fatalf("%s: reading at %d: %v", tt.name, off, err)
					}
					if !bytes.Equal(piece, data[off:off+512]) {
						t.Fatalf("%s: the piece at %d differs from the object's bytes there", tt.name, off)
					}
				}
				requests, n := sk.Stats()
				if requests != tt.wantRequests {
					t.Errorf("%s: %d requests, want %d", tt.name, requests, tt.wantRequests)
				}
				if max := requests * seekWindow; n < int64(512*len(tt.offsets)) || n > max {
					t.Errorf("%s: %d bytes read, want between the %d of the pieces and %d", tt.name, n, 512*len(tt.offsets), max)
				}
				if err := sk.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if downloads := int64(proxy.downloadsRequested() - downloadsBefore); IsGCS(path) && downloads != requests {
					t.Errorf("%s: the server saw %d downloads, Stats says %d", tt.name, downloads, requests)
				}
			}
		})
	}
}

func TestSeekerSeek(t *testing.T) {
	data := randomBytes(1000, 21)
	backends, _ := seekerBackends(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "small.bin")
			obj := writeAndMatch(t, s, path, data)
			sk, err := s.OpenSeeker(t.Context(), path, obj.Generation, obj.Size)
			if err != nil {
				t.Fatal(err)
			}
			requests, _ := sk.Stats()
			seeks := []struct {
				offset  int64
				whence  int
				want    int64
				wantErr bool
			}{
				{10, io.SeekStart, 10, false},
				{5, io.SeekCurrent, 15, false},
				{-5, io.SeekCurrent, 10, false},
				{-1, io.SeekEnd, 999, false},
				{100, io.SeekEnd, 1100, false},
				{-1, io.SeekStart, 0, true},
				{-1001, io.SeekEnd, 0, true},
				{0, 42, 0, true},
				{0, io.SeekCurrent, 1100, false}, // failed seeks do not move
			}
			for _, tt := range seeks {
				got, err := sk.Seek(tt.offset, tt.whence)
				if (err != nil) != tt.wantErr || err == nil && got != tt.want {
					t.Errorf("Seek(%d, %d) = %d, %v; want %d (error: %v)", tt.offset, tt.whence, got, err, tt.want, tt.wantErr)
				}
			}
			if after, _ := sk.Stats(); after != requests {
				t.Errorf("Seek made %d requests, want none", after-requests)
			}
			buf := make([]byte, 10)
			for _, pos := range []int64{1100, 1000} {
				sk.Seek(pos, io.SeekStart)
				if n, err := sk.Read(buf); n != 0 || err != io.EOF {
					t.Errorf("Read at %d = %d, %v; want 0, io.EOF", pos, n, err)
				}
			}
			sk.Seek(995, io.SeekStart)
			if got, err := io.ReadAll(sk); err != nil || !bytes.Equal(got, data[995:]) {
				t.Errorf("ReadAll at 995 = %q, %v; want the last 5 bytes", got, err)
			}
			if err := sk.Close(); err != nil {
				t.Fatal(err)
			}
			if err := sk.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := sk.Read(buf); !errors.Is(err, os.ErrClosed) {
				t.Errorf("Read after Close: error %v, want os.ErrClosed", err)
			}
		})
	}
}

func TestSeekerEmptyObject(t *testing.T) {
	backends, _ := seekerBackends(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "empty")
			mustWrite(t, s, path, nil)
			objs, err := s.Match(t.Context(), path)
			if err != nil || len(objs) != 1 {
				t.Fatalf("Match = %v, %v", objs, err)
			}
			sk, err := s.OpenSeeker(t.Context(), path, objs[0].Generation, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer sk.Close()
			if n, err := sk.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Read = %d, %v; want 0, io.EOF", n, err)
			}
			if _, err := s.OpenSeeker(t.Context(), path, objs[0].Generation, 1); !errors.Is(err, ErrChanged) {
				t.Errorf("OpenSeeker with size 1: error %v, want ErrChanged", err)
			}
		})
	}
}

// TestSeekerTarHops reads the headers of a tar archive through a Seeker, as
// the shard planner does, and checks that archive/tar's skipping of member
// data costs one request per hop over a member larger than the window and
// none for small members.
func TestSeekerTarHops(t *testing.T) {
	const large, small = 4, 12
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range large {
		for j, size := range []int{1 << 20, 300, 200, 100} {
			body := bytes.Repeat([]byte{byte(i)}, size)
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("s%d.%d", i, j), Mode: 0o644, Size: int64(size)}); err != nil {
				t.Fatal(err)
			}
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	backends, proxy := seekerBackends(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "shard.tar")
			obj := writeAndMatch(t, s, path, data)
			downloadsBefore := proxy.downloadsRequested()
			sk, err := s.OpenSeeker(t.Context(), path, obj.Generation, obj.Size)
			if err != nil {
				t.Fatal(err)
			}
			defer sk.Close()
			tr := tar.NewReader(sk)
			members := 0
			for {
				_, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				members++
			}
			if members != large+small {
				t.Fatalf("read %d headers, want %d", members, large+small)
			}
			// The first request serves the first header; each hop over
			// a 1 MiB member needs another, and serves the small
			// members after it.
			requests, n := sk.Stats()
			if want := int64(1 + large); requests != want {
				t.Errorf("%d requests, want %d", requests, want)
			}
			// Everything but the data of the large members is read,
			// and the last byte of each, which archive/tar reads to
			// detect truncation.
			if want := int64(len(data) - large*(1<<20-1)); n != want {
				t.Errorf("%d bytes read, want %d", n, want)
			}
			t.Logf("%d headers of a %d-byte archive: %d requests, %d bytes", members, len(data), requests, n)
			if downloads := int64(proxy.downloadsRequested() - downloadsBefore); IsGCS(path) && downloads != requests {
				t.Errorf("the server saw %d downloads, Stats says %d", downloads, requests)
			}
		})
	}
}

// TestSeekerResumesThroughFaults reads across a window of a Seeker through
// a download that breaks and fails.
func TestSeekerResumesThroughFaults(t *testing.T) {
	srv := startFakeGCS(t)
	want := putRandomObject(srv, "big.bin", 2<<20, 22)
	proxy := startFaultProxy(t, srv.URL(),
		[]fault{pass, cutHalf, fail503, fail503, fail503, cutHalf}, nil)
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{})
	path := "gs://" + testBucket + "/big.bin"
	sk, err := s.OpenSeeker(t.Context(), path, 0, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	const offset = 1 << 20
	sk.Seek(offset, io.SeekStart)
	got := make([]byte, 600<<10)
	if _, err := io.ReadFull(sk, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[offset:offset+len(got)]) {
		t.Fatal("the bytes read differ from the object's")
	}
	if n := proxy.injectedFaults(); n != 5 {
		t.Errorf("proxy injected %d faults, want all 5 of its script", n)
	}
}
