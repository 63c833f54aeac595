package pipeline_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
)

// writeLayout writes the same images into shards of perShard images each
// (the last may hold fewer), and returns the shards' glob.
func writeLayout(t *testing.T, images []synth.Image, perShard int) string {
	t.Helper()
	dir := t.TempDir()
	for start := 0; start < len(images); start += perShard {
		var b bytes.Buffer
		sw := synth.NewShardWriter(&b)
		for _, im := range images[start:min(start+perShard, len(images))] {
			if err := sw.Write(im); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s-%04d.tar", start)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "*.tar")
}

// counter returns a counter of the segeval namespace from a run's metrics.
func counter(pr beam.PipelineResult, name string) int64 {
	var total int64
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace == "segeval" && c.Key.Name == name {
			total += c.Committed
		}
	}
	return total
}

// TestOneShardSplitEqualsManyShards evaluates the same images as one shard
// cut into a restriction per sample, and as a shard per image: the work is
// split differently, the results must not be.
func TestOneShardSplitEqualsManyShards(t *testing.T) {
	opt := synth.Options{Classes: classes, Height: 24, Width: 32, Regions: 6, Ignore: 255, Confidence: 2.5, WrongRegions: 0.2}
	var images []synth.Image
	for i := range 12 {
		im := synth.NewImage(fmt.Sprintf("img%02d", i), opt, uint64(i+1))
		im.RoundToFloat16()
		images = append(images, im)
	}
	store := storage.New(storage.Options{})
	run := func(glob string, restrictionBytes int64) (output, beam.PipelineResult) {
		cfg := config([]string{glob}, filepath.Join(t.TempDir(), "out"))
		cfg.Eval.Bootstrap = 50
		cfg.RestrictionBytes = restrictionBytes
		pr, err := runPipeline(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return readOutput(t, store, cfg.Output), pr
	}
	one, onePR := run(writeLayout(t, images, len(images)), 1)
	many, manyPR := run(writeLayout(t, images, 1), 0)

	if n := counter(onePR, "restrictions"); n != int64(len(images)) {
		t.Errorf("one shard ran as %d restrictions, want one per sample (%d)", n, len(images))
	}
	if n := counter(manyPR, "restrictions"); n != int64(len(images)) {
		t.Errorf("%d shards ran as %d restrictions", len(images), n)
	}
	a, b := one.metrics, many.metrics
	if a.Images != int64(len(images)) || b.Images != a.Images || a.ValidPixels != b.ValidPixels {
		t.Fatalf("images %d and %d, valid pixels %d and %d", a.Images, b.Images, a.ValidPixels, b.ValidPixels)
	}
	if !slices.EqualFunc(a.Confusion, b.Confusion, slices.Equal) {
		t.Errorf("confusion differs:\n%v\n%v", a.Confusion, b.Confusion)
	}
	for _, c := range []struct {
		name string
		x, y *float64
	}{
		{"miou", a.MIoU, b.MIoU},
		{"per-image loss", a.LovaszSoftmax.PerImageMean, b.LovaszSoftmax.PerImageMean},
		{"dataset loss", a.LovaszSoftmax.Dataset, b.LovaszSoftmax.Dataset},
		{"per-image miou", a.PerImageMIoUMean, b.PerImageMIoUMean},
		{"miou interval low", a.Intervals.MIoU.Low, b.Intervals.MIoU.Low},
		{"miou interval high", a.Intervals.MIoU.High, b.Intervals.MIoU.High},
	} {
		if c.x == nil || c.y == nil || math.Abs(*c.x-*c.y) > 1e-12 {
			t.Errorf("%s: %v (one shard) and %v (a shard per image)", c.name, deref(c.x), deref(c.y))
		}
	}
	keys := func(o output) []string {
		var k []string
		for _, r := range o.rows {
			k = append(k, r["key"].(string))
		}
		return k
	}
	if !slices.Equal(keys(one), keys(many)) || len(one.rows) != len(images) {
		t.Errorf("per-image keys %v and %v", keys(one), keys(many))
	}
}
