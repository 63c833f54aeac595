package evaluate

import (
	"bytes"
	"testing"

	"github.com/segeval/segeval/internal/labelpng"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/synth"
)

// benchScenes are the images of the per-image benchmarks: realistic scenes
// (regions, confident predictions, some regions wrong, ignored boundaries)
// with float16 probabilities and a PNG label, as users store them.
var benchScenes = []struct {
	name string
	opt  synth.Options
}{
	{"cityscapes", synth.Options{Classes: 19, Height: 1024, Width: 2048, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}},
	{"voc", synth.Options{Classes: 21, Height: 512, Width: 512, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}},
	{"small32", synth.Options{Classes: 19, Height: 32, Width: 32, Regions: 4, Ignore: 255, Confidence: 3, WrongRegions: 0.1}},
}

// benchOptions are the CLI's defaults.
func benchOptions() Options {
	return Options{Mode: Multiclass, Ignore: 255, HasIgnore: true,
		BinsPerOctave: lovasz.DefaultBinsPerOctave, ProbTolerance: 0.01, Bootstrap: 200}
}

var benchLimits = sample.Options{Limits: sample.Limits{MaxPixels: 1 << 26, MaxClasses: 1024, MaxMemberBytes: 1 << 30}}

// benchBundle is how many images BenchmarkDecodeEvaluate evaluates per
// bundle, fewer than a bundle of small images holds in a pipeline.
const benchBundle = 100

// BenchmarkDecodeEvaluate is the per-image work of the pipeline on one
// core, with the CLI's defaults: one sample read from a tar in memory,
// decoded, checked and evaluated (loss, dataset histogram, counts,
// bootstrap). "converted" decodes float16 into float32 and takes the
// reference steps; "fused" keeps the float16 bits and takes lovasz.Fused.
func BenchmarkDecodeEvaluate(b *testing.B) {
	for _, sc := range benchScenes {
		data := shardOf(b, synth.NewImage("k", sc.opt, 1))
		for _, path := range []struct {
			name string
			bits bool
		}{{"converted", false}, {"fused", true}} {
			b.Run(sc.name+"/"+path.name, func(b *testing.B) {
				e := NewEvaluator(benchOptions())
				dec := sample.Decoder{Float16Bits: path.bits}
				b.SetBytes(int64(len(data)))
				images := 0
				for b.Loop() {
					s, err := shard.NewReader(bytes.NewReader(data), "mem.tar", shard.Limits{MaxMemberBytes: 1 << 30}).Next()
					if err != nil {
						b.Fatal(err)
					}
					img, err := dec.Decode(s, "mem.tar", benchLimits)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := e.Evaluate(img, "mem.tar"); err != nil {
						b.Fatal(err)
					}
					// A bundle's end, where the pipeline takes the
					// accumulator: small images' errors are folded there.
					if images++; images%benchBundle == 0 {
						take(b, e)
					}
				}
			})
		}
	}
}

// BenchmarkStages splits BenchmarkDecodeEvaluate into the stages of the
// README's per-image cost table: reading the sample from the tar, decoding
// (the label PNG alone, and the whole sample with and without the float32
// copy), the reference's checks, loss and argmax+counts, the fused
// evaluation that replaces those three, and Evaluate with and without the
// bootstrap.
func BenchmarkStages(b *testing.B) {
	for _, sc := range benchScenes {
		im := synth.NewImage("k", sc.opt, 1)
		data := shardOf(b, im)
		read := func(b *testing.B) *shard.Sample {
			s, err := shard.NewReader(bytes.NewReader(data), "mem.tar", shard.Limits{MaxMemberBytes: 1 << 30}).Next()
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
		smp := read(b)
		c, h, w := sc.opt.Classes, sc.opt.Height, sc.opt.Width
		decode := func(b *testing.B, bits bool) *sample.Image {
			dec := sample.Decoder{Float16Bits: bits}
			img, err := dec.Decode(smp, "mem.tar", benchLimits)
			if err != nil {
				b.Fatal(err)
			}
			return img
		}
		f32 := decode(b, false)
		half := decode(b, true)
		opt := benchOptions().lovasz()
		stage := func(name string, fn func(b *testing.B)) {
			b.Run(sc.name+"/"+name, func(b *testing.B) {
				for b.Loop() {
					fn(b)
				}
			})
		}
		stage("read", func(b *testing.B) { read(b) })
		stage("decode-labelpng", func(b *testing.B) {
			if _, _, _, err := labelpng.Decode(smp.Fields["label.png"], 1<<26, f32.Labels); err != nil {
				b.Fatal(err)
			}
		})
		var dec32, dec16 sample.Decoder
		dec16.Float16Bits = true
		stage("decode-float32", func(b *testing.B) {
			if _, err := dec32.Decode(smp, "mem.tar", benchLimits); err != nil {
				b.Fatal(err)
			}
		})
		stage("decode-bits", func(b *testing.B) {
			if _, err := dec16.Decode(smp, "mem.tar", benchLimits); err != nil {
				b.Fatal(err)
			}
		})
		ev := lovasz.NewEvaluator()
		hist, err := lovasz.NewHistogram(c, lovasz.DefaultBinsPerOctave)
		if err != nil {
			b.Fatal(err)
		}
		counts := lovasz.NewCounts(c)
		stage("reference-checks", func(b *testing.B) {
			if err := ev.CheckProbabilities(f32.Scores, c, w, 0.01); err != nil {
				b.Fatal(err)
			}
		})
		stage("reference-loss", func(b *testing.B) {
			if _, err := ev.LovaszSoftmax(f32.Scores, f32.Labels, c, h, w, opt, hist); err != nil {
				b.Fatal(err)
			}
		})
		stage("reference-argmax+counts", func(b *testing.B) {
			if err := ev.CountArgmax(f32.Scores, f32.Labels, h, w, opt, counts); err != nil {
				b.Fatal(err)
			}
		})
		// The fused stages flush small images' errors once per bundle
		// of benchBundle images, as a pipeline does.
		fused, images := lovasz.NewFused(), 0
		stage("fused", func(b *testing.B) {
			if _, err := fused.Half(half.Half, half.Labels, c, h, w, opt, 0.01, hist, counts); err != nil {
				b.Fatal(err)
			}
			if images++; images%benchBundle == 0 {
				if err := fused.Flush(hist); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, boot := range []int{0, 200} {
			o := benchOptions()
			o.Bootstrap = boot
			e := NewEvaluator(o)
			name := "evaluate-fused-bootstrap0"
			if boot > 0 {
				name = "evaluate-fused-bootstrap200"
			}
			images := 0
			stage(name, func(b *testing.B) {
				if _, err := e.Evaluate(half, "mem.tar"); err != nil {
					b.Fatal(err)
				}
				if images++; images%benchBundle == 0 {
					take(b, e)
				}
			})
		}
	}
}
