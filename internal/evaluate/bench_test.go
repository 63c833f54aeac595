package evaluate

import (
	"bytes"
	"testing"

	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/synth"
)

// BenchmarkDecodeEvaluate is the per-image work of the pipeline on one
// core, with the CLI's defaults: one Cityscapes-sized sample (float16
// probabilities, PNG label) read from a tar in memory, decoded, checked and
// evaluated (loss, dataset histogram, counts, bootstrap).
func BenchmarkDecodeEvaluate(b *testing.B) {
	im := synth.NewImage("k", synth.Options{Classes: 19, Height: 1024, Width: 2048, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}, 1)
	var buf bytes.Buffer
	sw := synth.NewShardWriter(&buf)
	if err := sw.Write(im); err != nil {
		b.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		b.Fatal(err)
	}
	e := NewEvaluator(Options{Mode: Multiclass, Ignore: 255, HasIgnore: true,
		BinsPerOctave: lovasz.DefaultBinsPerOctave, ProbTolerance: 0.01, Bootstrap: 200})
	var dec sample.Decoder
	opt := sample.Options{Limits: sample.Limits{MaxPixels: 1 << 26, MaxClasses: 1024, MaxMemberBytes: 1 << 30}}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		s, err := shard.NewReader(bytes.NewReader(buf.Bytes()), "mem.tar", shard.Limits{MaxMemberBytes: 1 << 30}).Next()
		if err != nil {
			b.Fatal(err)
		}
		img, err := dec.Decode(s, "mem.tar", opt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Evaluate(img, "mem.tar"); err != nil {
			b.Fatal(err)
		}
	}
}
