package storage

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	gcs "cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/segeval/segeval/internal/httpfault"
)

// fault is what faultProxy does to one request.
type fault int

const (
	pass    fault = iota // forward the request untouched
	fail503              // answer 503 Service Unavailable without forwarding
	cutHalf              // forward, but drop the connection halfway through the body
)

// faultProxy is a reverse proxy in front of a fake Cloud Storage server
// that injects faults following two scripts: one for media downloads and
// one for all other requests. Each request takes the next fault of its
// script; once a script is used up, requests pass.
type faultProxy struct {
	url   string
	proxy *httputil.ReverseProxy
	// onCut, if set, runs when a response has been cut short, before the
	// connection is closed and so before the client can retry.
	onCut func()

	mu           sync.Mutex
	downloads    []fault
	api          []fault
	injected     int      // faults injected so far
	userProjects []string // the userProject parameter of every request
	mediaGets    int      // media downloads requested so far
}

func startFaultProxy(t *testing.T, backendURL string, downloads, api []fault) *faultProxy {
	t.Helper()
	target, err := url.Parse(backendURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		proxy: &httputil.ReverseProxy{
			Rewrite:  func(r *httputil.ProxyRequest) { r.SetURL(target) },
			ErrorLog: log.New(io.Discard, "", 0),
		},
		downloads: downloads,
		api:       api,
	}
	srv := httptest.NewServer(p) // loopback only
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.userProjects = append(p.userProjects, r.URL.Query().Get("userProject"))
	script := &p.api
	if r.URL.Query().Get("alt") == "media" {
		script = &p.downloads
		p.mediaGets++
	}
	f := pass
	if len(*script) > 0 {
		f, *script = (*script)[0], (*script)[1:]
	}
	if f != pass {
		p.injected++
	}
	p.mu.Unlock()

	switch f {
	case fail503:
		http.Error(w, "injected fault", http.StatusServiceUnavailable)
	case cutHalf:
		p.proxy.ServeHTTP(httpfault.CutHalf(w, p.onCut), r)
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

// injectedFaults returns the number of faults injected so far.
func (p *faultProxy) injectedFaults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// downloadsRequested returns the number of media downloads requested so far.
func (p *faultProxy) downloadsRequested() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mediaGets
}

// putRandomObject stores size pseudo-random bytes as object name directly
// in the fake server and returns them.
func putRandomObject(srv *fakestorage.Server, name string, size int, seed uint64) []byte {
	data := randomBytes(size, seed)
	srv.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: name},
		Content:     data,
	})
	return data
}

// randomBytes returns size pseudo-random bytes, the same for the same seed.
func randomBytes(size int, seed uint64) []byte {
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	rng.Read(data)
	return data
}

func TestOpenResumesThroughFaults(t *testing.T) {
	srv := startFakeGCS(t)
	want := putRandomObject(srv, "big.bin", 4<<20, 1)
	// The client retries 3 times (testRetry.attempts), so the three 503s
	// in a row exhaust its own attempt to continue the download and force
	// the Store's reader to reopen it.
	proxy := startFaultProxy(t, srv.URL(),
		[]fault{cutHalf, fail503, cutHalf, fail503, fail503, fail503, cutHalf, cutHalf, fail503, cutHalf},
		[]fault{fail503, pass, fail503})
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{})
	path := "gs://" + testBucket + "/big.bin"

	// Metadata requests are retried too.
	if ok, err := s.Exists(t.Context(), path); !ok || err != nil {
		t.Fatalf("Exists = %v, %v; want true, nil", ok, err)
	}
	if objs, err := s.List(t.Context(), "gs://"+testBucket); err != nil || len(objs) != 1 {
		t.Fatalf("List = %v, %v; want one object", objs, err)
	}

	rc, err := s.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes differing from the %d stored", len(got), len(want))
	}
	if n := proxy.injectedFaults(); n != 12 {
		t.Errorf("proxy injected %d faults, want all 12 of its scripts", n)
	}
	if r := rc.(*gcsReader); r.reopens == 0 {
		t.Error("the reader never had to reopen the download; the test does not exercise resumption")
	}
}

func TestOpenGivesUpAfterReopens(t *testing.T) {
	srv := startFakeGCS(t)
	putRandomObject(srv, "big.bin", 1<<20, 2)
	// The first download breaks, and every later one fails for good.
	downloads := []fault{cutHalf}
	for range 100 {
		downloads = append(downloads, fail503)
	}
	proxy := startFaultProxy(t, srv.URL(), downloads, nil)
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{})

	rc, err := s.Open(t.Context(), "gs://"+testBucket+"/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 reopens") {
		t.Fatalf("ReadAll error = %v, want one giving up after 4 reopens", err)
	}
	if len(got) != 1<<19 {
		t.Errorf("read %d bytes before failing, want the %d delivered", len(got), 1<<19)
	}
	// One cut, then testRetry.attempts failures for the client's own
	// reconnection and for each of the reader's reopens.
	if n, want := proxy.injectedFaults(), 1+testRetry.attempts*(1+testRetry.reopens); n != want {
		t.Errorf("proxy injected %d faults, want %d", n, want)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("Read after a failed Read succeeded")
	}
}

func TestOpenDetectsOverwriteDuringRead(t *testing.T) {
	srv := startFakeGCS(t)
	original := putRandomObject(srv, "changing.bin", 1<<20, 3)
	proxy := startFaultProxy(t, srv.URL(), []fault{cutHalf}, nil)
	proxy.onCut = func() { putRandomObject(srv, "changing.bin", 1<<20, 4) }
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{})

	rc, err := s.Open(t.Context(), "gs://"+testBucket+"/changing.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, gcs.ErrObjectNotExist) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadAll error = %v, want a replaced generation, which is not fs.ErrNotExist", err)
	}
	if !bytes.Equal(got, original[:len(got)]) {
		t.Error("bytes read before the error are not a prefix of the original version")
	}
}

func TestBillingProjectIsSent(t *testing.T) {
	srv := startFakeGCS(t)
	proxy := startFaultProxy(t, srv.URL(), nil, nil)
	useEmulator(t, proxy.url)
	s := newTestStore(t, Options{BillingProject: "billed-project"})
	p := "gs://" + testBucket + "/billed"
	mustWrite(t, s, p, []byte("x"))
	mustRead(t, s, p, []byte("x"))
	mustExist(t, s, p, true)
	if _, err := s.Match(t.Context(), "gs://"+testBucket+"/bill*"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(t.Context(), p, p+"2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), p+"2"); err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.userProjects) < 7 {
		t.Fatalf("proxy saw %d requests, want at least 7", len(proxy.userProjects))
	}
	for i, up := range proxy.userProjects {
		if up != "billed-project" {
			t.Errorf("request %d has userProject %q, want billed-project", i, up)
		}
	}
}
