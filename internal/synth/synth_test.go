package synth

import (
	"bytes"
	"io"
	"math"
	"testing"

	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
)

// Written shards decode back to the generated images (probabilities at
// float16 precision), and the same seed gives the same image.
func TestShardRoundTrip(t *testing.T) {
	opt := Options{Classes: 4, Height: 12, Width: 20, Regions: 5, Ignore: 255, Confidence: 2, WrongRegions: 0.2}
	images := []Image{NewImage("a", opt, 1), NewImage("b", opt, 2)}
	again := NewImage("a", opt, 1)
	for i := range again.Probs {
		if again.Probs[i] != images[0].Probs[i] {
			t.Fatal("the same seed gave another image")
		}
	}
	var buf bytes.Buffer
	sw := NewShardWriter(&buf)
	for _, im := range images {
		if err := sw.Write(im); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	r := shard.NewReader(&buf, "mem.tar", shard.Limits{MaxMemberBytes: 1 << 20})
	var dec sample.Decoder
	lim := sample.Limits{MaxPixels: 1 << 20, MaxClasses: 16, MaxMemberBytes: 1 << 20}
	ignored := 0
	for _, want := range images {
		want.RoundToFloat16()
		smp, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		img, err := dec.Decode(smp, "mem.tar", sample.Options{Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if img.Key != want.Key || img.Classes != 4 || img.Meta["weather"] == nil {
			t.Errorf("decoded %s with %d classes and meta %v", img.Key, img.Classes, img.Meta)
		}
		for i, l := range img.Labels {
			if l != want.Labels[i] {
				t.Fatalf("label %d: %d, want %d", i, l, want.Labels[i])
			}
			if l == 255 {
				ignored++
			}
		}
		for i, p := range img.Scores {
			if p != want.Probs[i] {
				t.Fatalf("probability %d: %v, want %v", i, p, want.Probs[i])
			}
		}
		for i := range 12 * 20 {
			var sum float64
			for c := range 4 {
				sum += float64(img.Scores[c*240+i])
			}
			if math.Abs(sum-1) > 4e-3 {
				t.Fatalf("pixel %d: probabilities sum to %v", i, sum)
			}
		}
	}
	if ignored == 0 {
		t.Error("no boundary pixel is ignored")
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last sample: %v", err)
	}
}
