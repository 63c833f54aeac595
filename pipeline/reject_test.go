package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/transforms"
)

// defectiveDataset writes good samples and, beside them, one of each kind of
// defect; clean is the same dataset without any defective sample.
func defectiveDataset(t *testing.T) (dir, clean string) {
	t.Helper()
	dir, clean = t.TempDir(), t.TempDir()
	opt := synth.Options{Classes: classes, Height: 16, Width: 20, Regions: 4, Ignore: 255, Confidence: 2}
	good := func(key string, seed uint64) synth.Image {
		im := synth.NewImage(key, opt, seed)
		im.RoundToFloat16()
		return im
	}
	type member struct {
		name string
		data []byte
	}
	write := func(dir, name string, images []synth.Image, extra []member) {
		var b bytes.Buffer
		sw := synth.NewShardWriter(&b)
		for _, im := range images {
			if err := sw.Write(im); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range extra {
			if err := sw.Member(m.name, m.data); err != nil {
				t.Fatal(err)
			}
		}
		sw.Close()
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	badLabel := good("bad-label", 3)
	badLabel.Labels[0] = 9
	unnormalized := good("unnormalized", 4)
	for i := range unnormalized.Probs {
		unnormalized.Probs[i] *= 2
	}
	pngOnly, err := synth.EncodeLabelPNG(good("x", 5).Labels, 16, 20)
	if err != nil {
		t.Fatal(err)
	}
	ok1, ok2, ok3 := good("ok1", 1), good("ok2", 2), good("ok3", 6)
	dup := good("dup", 7)
	write(dir, "s1.tar", []synth.Image{ok1, badLabel, dup}, []member{
		{"no-prediction.label.png", pngOnly},
		{"corrupt.label.png", pngOnly},
		{"corrupt.probs.npy", []byte("\x93NUMPY garbage")},
	})
	write(dir, "s2.tar", []synth.Image{ok2, unnormalized, dup, ok3}, nil)
	write(clean, "s1.tar", []synth.Image{ok1}, nil)
	write(clean, "s2.tar", []synth.Image{ok2, ok3}, nil)
	return dir, clean
}

func TestRejectedSamplesAreListedAndLeftOut(t *testing.T) {
	dir, clean := defectiveDataset(t)
	cfg := config([]string{filepath.Join(dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Eval.ProbTolerance = 0.01
	cfg.Policy = transforms.Policy{MaxRejected: 10}
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	cleanCfg := config([]string{filepath.Join(clean, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	if _, err := runPipeline(t, cleanCfg); err != nil {
		t.Fatal(err)
	}
	store := storage.New(storage.Options{})
	got, want := readOutput(t, store, cfg.Output), readOutput(t, store, cleanCfg.Output)

	data, err := os.ReadFile(filepath.Join(cfg.Output, results.RejectedFile))
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r results.Rejection
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		reasons[filepath.Base(r.Shard)+":"+r.Key] += r.Reason
	}
	wantReasons := map[string]string{
		"s1.tar:bad-label":     "label 9",
		"s1.tar:no-prediction": "prediction",
		"s1.tar:corrupt":       "corrupt.probs.npy",
		"s2.tar:unnormalized":  "outside [0, 1]",
		"s1.tar:dup":           "s2.tar",
		"s2.tar:dup":           "s1.tar",
	}
	for k, w := range wantReasons {
		if !strings.Contains(reasons[k], w) {
			t.Errorf("rejection %s: reason %q does not mention %q", k, reasons[k], w)
		}
	}
	if len(reasons) != len(wantReasons) {
		t.Errorf("rejected %v, want exactly %d samples", reasons, len(wantReasons))
	}

	m := got.metrics
	if m.Images != 3 || m.ImagesRejected != int64(len(wantReasons)) || m.ImagesRead != m.Images+m.ImagesRejected {
		t.Errorf("images %d, rejected %d, read %d", m.Images, m.ImagesRejected, m.ImagesRead)
	}
	// What was evaluated equals a run over the good samples alone.
	for _, c := range []struct {
		name      string
		got, want *float64
	}{
		{"miou", m.MIoU, want.metrics.MIoU},
		{"per-image loss", m.LovaszSoftmax.PerImageMean, want.metrics.LovaszSoftmax.PerImageMean},
		{"dataset loss", m.LovaszSoftmax.Dataset, want.metrics.LovaszSoftmax.Dataset},
	} {
		if c.got == nil || c.want == nil || math.Abs(*c.got-*c.want) > 1e-12 {
			t.Errorf("%s: %v, clean run %v", c.name, deref(c.got), deref(c.want))
		}
	}
	if len(got.rows) != 3 {
		t.Errorf("%d per-image rows, want 3", len(got.rows))
	}
}

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}

func TestTooManyRejectionsFailTheRun(t *testing.T) {
	dir, _ := defectiveDataset(t)
	cfg := config([]string{filepath.Join(dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Eval.ProbTolerance = 0.01
	cfg.Policy = transforms.Policy{MaxRejected: 2}
	_, err := runPipeline(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "6 samples rejected, more than --max_rejected=2") {
		t.Fatalf("got %v", err)
	}
	ctx := context.Background()
	store := storage.New(storage.Options{})
	if ok, _ := store.Exists(ctx, storage.Join(cfg.Output, results.RejectedFile)); !ok {
		t.Error("rejected.jsonl was not written")
	}
	for _, name := range []string{results.SuccessFile, results.MetricsFile} {
		if ok, _ := store.Exists(ctx, storage.Join(cfg.Output, name)); ok {
			t.Errorf("%s written by a failed run", name)
		}
	}
}

// TestDuplicateKeyWithinShard rejects both copies of a key that appears
// twice in one shard, before anything is evaluated, and evaluates the rest.
func TestDuplicateKeyWithinShard(t *testing.T) {
	dir := t.TempDir()
	opt := synth.Options{Classes: classes, Height: 16, Width: 20, Regions: 4, Ignore: 255, Confidence: 2}
	var b bytes.Buffer
	sw := synth.NewShardWriter(&b)
	for i, key := range []string{"a", "b", "a", "c"} {
		im := synth.NewImage(key, opt, uint64(i+1))
		if err := sw.Write(im); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s.tar"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config([]string{filepath.Join(dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Policy = transforms.Policy{MaxRejected: 5}
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	out := readOutput(t, storage.New(storage.Options{}), cfg.Output)
	m := out.metrics
	if m.Images != 2 || m.ImagesRejected != 2 || m.ImagesRead != 4 {
		t.Errorf("images %d, rejected %d, read %d; want 2, 2, 4", m.Images, m.ImagesRejected, m.ImagesRead)
	}
	data, err := os.ReadFile(filepath.Join(cfg.Output, results.RejectedFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("rejected.jsonl: %q", data)
	}
	for _, line := range lines {
		var r results.Rejection
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Key != "a" || !strings.Contains(r.Reason, "duplicate key") || !strings.Contains(r.Reason, "this shard at offset") {
			t.Errorf("rejection %+v", r)
		}
	}

	// At --max_rejected=0 the duplicate fails the run, naming the shard.
	cfg.Policy = transforms.Policy{}
	cfg.Output = filepath.Join(t.TempDir(), "out")
	if _, err := runPipeline(t, cfg); err == nil || !strings.Contains(err.Error(), "duplicate key: sample a") || !strings.Contains(err.Error(), "s.tar") {
		t.Errorf("got %v, want the duplicate named", err)
	}
}
