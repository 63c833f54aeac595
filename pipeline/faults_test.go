package pipeline_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segeval/segeval/internal/httpfault"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
)

// Every failEvery-th request reaching the fault proxy is answered 503, and
// every cutEvery-th media download among the others is cut short.
const (
	failEvery = 5
	cutEvery  = 3
)

// faultProxy is a reverse proxy in front of a fake Cloud Storage server
// that injects faults deterministically: every failEvery-th request is
// answered 503 Service Unavailable without being forwarded, and every
// cutEvery-th media download that is forwarded has its body cut short,
// halfway, by closing the connection under it.
type faultProxy struct {
	url   string
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	enabled   bool
	requests  int // requests seen while enabled
	downloads int // media downloads forwarded while enabled
	failed    int // requests answered 503
	cut       int // downloads cut short
}

func startFaultProxy(t *testing.T, backendURL string) *faultProxy {
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
		enabled: true,
	}
	srv := httptest.NewServer(p) // loopback only
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	fail, cut := false, false
	if p.enabled {
		p.requests++
		switch {
		case p.requests%failEvery == 0:
			fail = true
			p.failed++
		case r.URL.Query().Get("alt") == "media":
			p.downloads++
			cut = p.downloads%cutEvery == 0
		}
	}
	p.mu.Unlock()

	switch {
	case fail:
		http.Error(w, "injected fault", http.StatusServiceUnavailable)
	case cut:
		p.proxy.ServeHTTP(httpfault.CutHalf(w, p.countCut), r)
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

func (p *faultProxy) countCut() {
	p.mu.Lock()
	p.cut++
	p.mu.Unlock()
}

// faultCounts is what a faultProxy did while it was enabled.
type faultCounts struct {
	requests, downloads, failed, cut int
}

// disable makes the proxy forward every later request untouched and
// returns what it did until then.
func (p *faultProxy) disable() faultCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enabled = false
	return faultCounts{p.requests, p.downloads, p.failed, p.cut}
}

// TestGCSFaultsDoNotChangeResults runs the same gs:// shards into a gs://
// output twice: directly against a fake Cloud Storage server, and through a
// proxy that fails requests and breaks downloads. The storage layer must
// retry and resume its way to outputs identical to the fault-free run's.
func TestGCSFaultsDoNotChangeResults(t *testing.T) {
	d := writeDataset(t)
	srv := startFakeGCS(t)
	proxy := startFaultProxy(t, srv.URL())

	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL())
	upload := storage.New(storage.Options{})
	defer upload.Close()
	shardBytes := d.upload(t, upload, "gs://evals/preds/")
	cfg := func(output string) pipeline.Config {
		c := config([]string{"gs://evals/preds/*.tar"}, output)
		c.WorstK = 2 // thumbnails read the worst samples' shards again
		return c
	}

	if _, err := runPipeline(t, cfg("gs://evals/runs/direct")); err != nil {
		t.Fatalf("fault-free run: %v", err)
	}

	t.Setenv("STORAGE_EMULATOR_HOST", proxy.url)
	start := time.Now()
	pr, err := runPipeline(t, cfg("gs://evals/runs/faulty"))
	took := time.Since(start)
	faults := proxy.disable()
	t.Logf("run through the fault proxy: %s, %d requests (%d media downloads forwarded), %d failed with 503, %d downloads cut short",
		took.Round(time.Millisecond), faults.requests, faults.downloads, faults.failed, faults.cut)
	if err != nil {
		t.Fatalf("run through the fault proxy: %v", err)
	}
	if faults.failed == 0 || faults.cut == 0 {
		t.Errorf("the proxy failed %d requests and cut %d downloads; the test must inject both kinds of fault", faults.failed, faults.cut)
	}

	// Resumed downloads count each byte once: every sample's span, which
	// is all of a shard but its two end-of-archive blocks.
	counters := map[string]int64{}
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace == "segeval" {
			counters[c.Key.Name] += c.Committed
		}
	}
	if counters["images"] != int64(len(d.images)) || counters["shards"] != int64(len(d.shards)) || counters["bytes_read"] != shardBytes-1024*int64(len(d.shards)) {
		t.Errorf("counters %v; want %d images, %d shards, %d bytes read", counters, len(d.images), len(d.shards), shardBytes-1024*int64(len(d.shards)))
	}

	direct, faulty := readOutput(t, upload, "gs://evals/runs/direct"), readOutput(t, upload, "gs://evals/runs/faulty")
	if !slices.Equal(direct.metrics.Provenance.Shards, faulty.metrics.Provenance.Shards) {
		t.Errorf("shard provenance differs:\ndirect %+v\nfaulty %+v", direct.metrics.Provenance.Shards, faulty.metrics.Provenance.Shards)
	}
	for _, m := range []*results.Metrics{&direct.metrics, &faulty.metrics} {
		m.RunID, m.Provenance = "", results.Provenance{}
	}
	dj, err := json.Marshal(direct.metrics)
	if err != nil {
		t.Fatal(err)
	}
	fj, err := json.Marshal(faulty.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dj, fj) {
		t.Errorf("metrics.json differs:\ndirect %s\nfaulty %s", dj, fj)
	}
	if direct.csv != faulty.csv {
		t.Errorf("per_class.csv differs:\ndirect %s\nfaulty %s", direct.csv, faulty.csv)
	}
	if len(direct.rows) != len(d.images) || len(faulty.rows) != len(direct.rows) {
		t.Fatalf("per_image.jsonl has %d rows direct and %d through faults, want %d", len(direct.rows), len(faulty.rows), len(d.images))
	}
	for i := range direct.rows {
		delete(direct.rows[i], "shard")
		delete(faulty.rows[i], "shard")
		a, _ := json.Marshal(direct.rows[i])
		b, _ := json.Marshal(faulty.rows[i])
		if !bytes.Equal(a, b) {
			t.Errorf("per_image.jsonl row %d differs:\ndirect %s\nfaulty %s", i, a, b)
		}
	}
}
