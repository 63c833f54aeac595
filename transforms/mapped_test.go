//go:build unix

package transforms

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

// TestEvaluateMappedAsStreamed evaluates the same shard, local and thus
// mapped, and on Cloud Storage and thus streamed, with a planned sample
// left out so that there is a gap to skip: both must evaluate the same
// samples into the same accumulator.
func TestEvaluateMappedAsStreamed(t *testing.T) {
	mapAll(t)
	cfg := testConfig()
	local := writeShard(t, 7)
	data, err := os.ReadFile(local.Path)
	if err != nil {
		t.Fatal(err)
	}
	store := storage.New(storage.Options{})
	defer store.Close()
	remotePath := publishBackends(t)["gcs"] + "/shard.tar"
	if err := store.WriteFile(t.Context(), remotePath, data); err != nil {
		t.Fatal(err)
	}
	objs, err := store.Match(t.Context(), remotePath)
	if err != nil || len(objs) != 1 {
		t.Fatalf("Match(%s) = %v, %v", remotePath, objs, err)
	}
	remote := results.Shard{Path: objs[0].Path, Size: objs[0].Size, Generation: objs[0].Generation}

	var keys [2][]string
	var accs [2][]byte
	for i, sh := range []results.Shard{local, remote} {
		plan := planOf(t, cfg, sh)
		plan.Samples = slices.Delete(plan.Samples, 3, 4)
		fn := newEvaluateFn(t, cfg)
		got, acc, err := bundleRun(t, fn, plan, offsetrange.NewTracker(offsetrange.Restriction{Start: 0, End: int64(len(plan.Samples))}))
		fn.Teardown()
		if err != nil {
			t.Fatalf("%s: %v", sh.Path, err)
		}
		slices.Sort(got)
		keys[i] = got
		if accs[i], err = acc.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"k000", "k001", "k002", "k004", "k005", "k006"}; !slices.Equal(keys[0], want) || !slices.Equal(keys[1], want) {
		t.Errorf("mapped evaluated %v, streamed %v; want %v", keys[0], keys[1], want)
	}
	if !bytes.Equal(accs[0], accs[1]) {
		t.Error("the mapped and the streamed evaluations accumulated differently")
	}
}

// TestWorkerShardTruncated truncates a mapped shard after its sample is
// read and before it is evaluated: the worker must report the shard
// changed, as an infrastructure error, instead of crashing, and go on with
// a new evaluator.
func TestWorkerShardTruncated(t *testing.T) {
	cfg := testConfig()
	sh := writeShard(t, 1)
	plan := planOf(t, cfg, sh)
	span := plan.Samples[0]
	store := storage.New(storage.Options{})
	defer store.Close()
	sr := shard.NewSampleReader(sh.Path, shard.Limits{MaxMemberBytes: 1 << 20})
	smp, m, err := mapSample(t.Context(), store, sr, sh.Path, sh.Generation, shard.Entry{Key: span.Key, Offset: span.Offset, Length: span.Length})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Truncate(sh.Path, 0); err != nil {
		t.Fatal(err)
	}
	eval := evaluate.NewEvaluator(cfg.Eval)
	w := &worker{opt: cfg.Eval, eval: eval}
	oc := w.run(job{sample: smp, shard: sh.Path, length: span.Length, generation: sh.Generation, decode: cfg.Decode, mapping: m})
	if !errors.Is(oc.err, storage.ErrChanged) || evaluate.IsBadInput(oc.err) ||
		!strings.Contains(oc.err.Error(), sh.Path) || !strings.Contains(oc.err.Error(), "changed while being read") {
		t.Errorf("error %v, want one naming %s, saying it changed while being read, wrapping storage.ErrChanged and not bad input", oc.err, sh.Path)
	}
	if w.eval == eval {
		t.Error("the worker kept the evaluator the fault interrupted")
	}
}

// mapAll maps the samples of local shards whatever their size, for the
// rest of the test: test shards are smaller than minMappedSample.
func mapAll(t *testing.T) {
	old := minMappedSample
	minMappedSample = 0
	t.Cleanup(func() { minMappedSample = old })
}

// TestMapSamples checks which samples are mapped: large ones of local
// shards only.
func TestMapSamples(t *testing.T) {
	tests := []struct {
		path  string
		bytes int64
		want  bool
	}{
		{"/data/shard.tar", minMappedSample, true},
		{"/data/shard.tar", 80 << 20, true},
		{"/data/shard.tar", minMappedSample - 1, false},
		{"gs://bucket/shard.tar", 80 << 20, false},
	}
	for _, tt := range tests {
		if got := mapSamples(tt.path, tt.bytes); got != tt.want {
			t.Errorf("mapSamples(%q, %d) = %v, want %v", tt.path, tt.bytes, got, tt.want)
		}
	}
}

// TestThumbnailFindMapped reads a sample again for its thumbnail from a
// local shard, mapped and streamed: the fields must be the same bytes, and
// only the mapped read returns a mapping.
func TestThumbnailFindMapped(t *testing.T) {
	cfg := testConfig()
	sh := writeShard(t, 3)
	span := planOf(t, cfg, sh).Samples[1]
	ref := results.ImageRef{Key: span.Key, Shard: sh.Path, Generation: sh.Generation, Offset: span.Offset, Length: span.Length}
	fn := &thumbnailFn{EvalConfig: cfg}
	fn.Setup()
	defer fn.Teardown()

	streamed, m, release, err := fn.find(t.Context(), ref)
	if err != nil || m != nil {
		t.Fatalf("streamed find: mapping %v, error %v", m, err)
	}
	want := map[string][]byte{}
	for field, data := range streamed.Fields {
		want[field] = bytes.Clone(data)
	}
	release()

	mapAll(t)
	mapped, m, release, err := fn.find(t.Context(), ref)
	if err != nil || m == nil {
		t.Fatalf("mapped find: mapping %v, error %v", m, err)
	}
	defer release()
	if mapped.Key != span.Key || len(mapped.Fields) != len(want) {
		t.Fatalf("mapped find read sample %q with %d fields, want %q with %d", mapped.Key, len(mapped.Fields), span.Key, len(want))
	}
	err = m.Guard(func() error {
		for field, data := range mapped.Fields {
			if !bytes.Equal(data, want[field]) {
				t.Errorf("field %s differs between the mapped and the streamed read", field)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
