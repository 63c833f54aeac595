package lovasz

import (
	"fmt"
	"testing"
)

// fusedSizes are the images of the fused benchmarks: the two standard ones
// and small ones, whose cost per pixel shows what an image costs beyond its
// pixels. On refbench's distribution nearly every float16 value of a small
// image is distinct, so small32 and medium128 show the cost per distinct
// value too, which a large image shares among the pixels of each value.
var fusedSizes = append(benchSizes[:len(benchSizes):len(benchSizes)], []struct {
	name          string
	classes, h, w int
}{
	{"small32", 19, 32, 32},
	{"medium128", 19, 128, 128},
	{"binary16", 2, 16, 16},
}...)

// BenchmarkFusedHalf is the whole per-image evaluation of float16
// probabilities (check at tolerance 0.01, argmax and confusion, loss, dataset
// histogram) on refbench.py's distribution rounded to float16. ns/px is the
// cost per pixel, to compare image sizes. Small images' errors reach the
// histogram at Flush, which the pipeline calls once per bundle of samples;
// the benchmark flushes every benchFlushEvery images, and so counts that
// cost too.
func BenchmarkFusedHalf(b *testing.B) {
	for _, sz := range fusedSizes {
		b.Run(sz.name, func(b *testing.B) {
			im := benchImage(sz.classes, sz.h, sz.w, 1)
			probs := toHalf(im.probs)
			f := NewFused()
			counts := NewCounts(sz.classes)
			hist, err := NewHistogram(sz.classes, DefaultBinsPerOctave)
			if err != nil {
				b.Fatal(err)
			}
			images := 0
			run := func() {
				counts.Reset()
				if _, err := f.Half(probs, im.labels, sz.classes, sz.h, sz.w, Options{}, 0.01, hist, counts); err != nil {
					b.Fatal(err)
				}
				if images++; images%benchFlushEvery == 0 {
					if err := f.Flush(hist); err != nil {
						b.Fatal(err)
					}
				}
			}
			run() // warm the buffers
			b.SetBytes(int64(len(probs)) * 2)
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sz.h*sz.w), "ns/px")
		})
	}
}

// benchFlushEvery is how many images BenchmarkFusedHalf evaluates between
// flushes: fewer than a bundle of small images holds (a bundle reads at
// least one shard's restriction, hundreds of samples or more).
const benchFlushEvery = 100

// BenchmarkReferenceHalf is what BenchmarkFusedHalf replaces: the same image
// as float32 values through CheckProbabilities, LovaszSoftmax and
// CountArgmax.
func BenchmarkReferenceHalf(b *testing.B) {
	for _, sz := range fusedSizes {
		b.Run(sz.name, func(b *testing.B) {
			im := benchImage(sz.classes, sz.h, sz.w, 1)
			probs := fromHalf(toHalf(im.probs))
			f := NewFused()
			counts := NewCounts(sz.classes)
			hist, err := NewHistogram(sz.classes, DefaultBinsPerOctave)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				counts.Reset()
				if _, err := f.reference(probs, im.labels, sz.classes, sz.h, sz.w, Options{}, 0.01, hist, counts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sz.h*sz.w), "ns/px")
		})
	}
}

// BenchmarkFusedHalfStages times the fused path's two passes apart: the
// blocked pass (range check, argmax, confusion, and the per-pixel sums when
// the probability check is on) and the per-class loss, and the reference's
// argmax and confusion on the same values beside them.
func BenchmarkFusedHalfStages(b *testing.B) {
	for _, sz := range fusedSizes[:2] {
		im := benchImage(sz.classes, sz.h, sz.w, 1)
		probs := toHalf(im.probs)
		f := NewFused()
		if _, err := f.Half(probs, im.labels, sz.classes, sz.h, sz.w, Options{}, 0.01, nil, NewCounts(sz.classes)); err != nil {
			b.Fatal(err)
		}
		p := sz.h * sz.w
		f32 := fromHalf(probs)
		b.Run(fmt.Sprintf("%s/reference-argmax+counts", sz.name), func(b *testing.B) {
			counts := NewCounts(sz.classes)
			for b.Loop() {
				if err := f.ref.CountArgmax(f32, im.labels, sz.h, sz.w, Options{}, counts); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The blocked pass with the probability check (tolerance 0.01,
		// the default) and without it (0), which leaves what the
		// reference's argmax and confusion do.
		for _, tol := range []float64{0.01, 0} {
			name := "argmax+counts+checks"
			if tol == 0 {
				name = "argmax+counts"
			}
			b.Run(fmt.Sprintf("%s/%s", sz.name, name), func(b *testing.B) {
				f.rng = newHalfRange(tol)
				for b.Loop() {
					f.resetConf(sz.classes)
					if !f.halfBlocks(probs, im.labels, sz.classes, p, Options{}, tol, halfTablesOnce()) {
						b.Fatal("check failed")
					}
				}
			})
		}
		b.Run(fmt.Sprintf("%s/loss", sz.name), func(b *testing.B) {
			hist, err := NewHistogram(sz.classes, DefaultBinsPerOctave)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				for c := range sz.classes {
					f.halfClassLoss(probs[c*p:(c+1)*p], c, sz.classes, Options{}, hist, halfTablesOnce())
				}
			}
		})
	}
}

// BenchmarkFusedHalfDistinct is BenchmarkFusedHalf's small32 on 64 distinct
// images in turn, as a pipeline sees them: an image's planes, and the
// counts held back for the histogram, are no longer in cache from the
// previous iteration, and a flush folds the values of many images.
func BenchmarkFusedHalfDistinct(b *testing.B) {
	const classes, h, w, distinct = 19, 32, 32, 64
	var probs [][]uint16
	var labels [][]int32
	for i := range distinct {
		im := benchImage(classes, h, w, uint64(i+1))
		probs, labels = append(probs, toHalf(im.probs)), append(labels, im.labels)
	}
	f := NewFused()
	counts := NewCounts(classes)
	hist, err := NewHistogram(classes, DefaultBinsPerOctave)
	if err != nil {
		b.Fatal(err)
	}
	images := 0
	run := func() {
		counts.Reset()
		i := images % distinct
		if _, err := f.Half(probs[i], labels[i], classes, h, w, Options{}, 0.01, hist, counts); err != nil {
			b.Fatal(err)
		}
		if images++; images%benchFlushEvery == 0 {
			if err := f.Flush(hist); err != nil {
				b.Fatal(err)
			}
		}
	}
	run() // warm the buffers
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(h*w), "ns/px")
}
