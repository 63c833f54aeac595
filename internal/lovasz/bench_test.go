package lovasz

import (
	"math/rand/v2"
	"testing"
)

// The benchmark images follow refbench.py's distribution (see benchImage), so
// figures compare with the reference's timing on the same machine.
var benchSizes = []struct {
	name          string
	classes, h, w int
}{
	{"voc", 21, 512, 512},
	{"cityscapes", 19, 1024, 2048},
}

func BenchmarkLovaszSoftmax(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			im := benchImage(sz.classes, sz.h, sz.w, 1)
			ev := NewEvaluator()
			b.SetBytes(int64(len(im.probs)) * 4)
			b.ReportAllocs()
			res, err := ev.LovaszSoftmax(im.probs, im.labels, sz.classes, sz.h, sz.w, Options{}, nil) // warm the buffers
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if res, err = ev.LovaszSoftmax(im.probs, im.labels, sz.classes, sz.h, sz.w, Options{}, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(res.Bound*1e9, "bound-1e-9")
		})
	}
}

// BenchmarkLovaszSoftmaxExact times the sort-based path the histogram falls
// back to, for comparison.
func BenchmarkLovaszSoftmaxExact(b *testing.B) {
	sz := benchSizes[0]
	im := benchImage(sz.classes, sz.h, sz.w, 1)
	ev := NewEvaluator()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.LovaszSoftmax(im.probs, im.labels, sz.classes, sz.h, sz.w, Options{Tolerance: -1}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLovaszSoftmaxWithHistogram adds the dataset histogram (every class
// binned, fine bins folded), as the pipeline runs it.
func BenchmarkLovaszSoftmaxWithHistogram(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			im := benchImage(sz.classes, sz.h, sz.w, 1)
			ev := NewEvaluator()
			hist, err := NewHistogram(sz.classes, DefaultBinsPerOctave)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ev.LovaszSoftmax(im.probs, im.labels, sz.classes, sz.h, sz.w, Options{}, hist); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCountArgmax(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			im := benchImage(sz.classes, sz.h, sz.w, 1)
			ev := NewEvaluator()
			counts := NewCounts(sz.classes)
			if err := ev.CountArgmax(im.probs, im.labels, sz.h, sz.w, Options{}, counts); err != nil { // warm the buffers
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := ev.CountArgmax(im.probs, im.labels, sz.h, sz.w, Options{}, counts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLovaszHinge(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			p := sz.h * sz.w
			logits, labels := make([]float32, p), make([]int32, p)
			for i := range p {
				labels[i] = int32(r.IntN(2))
				logits[i] = float32(r.NormFloat64() + 3*float64(2*labels[i]-1))
			}
			ev := NewEvaluator()
			if _, err := ev.LovaszHinge(logits, labels, sz.h, sz.w, Options{}); err != nil { // warm the buffers
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ev.LovaszHinge(logits, labels, sz.h, sz.w, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSoftmax(b *testing.B) {
	sz := benchSizes[0]
	r := rand.New(rand.NewPCG(1, 1))
	logits := make([]float32, sz.classes*sz.h*sz.w)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	ev := NewEvaluator()
	dst := make([]float32, len(logits))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.Softmax(logits, sz.classes, dst); err != nil {
			b.Fatal(err)
		}
	}
}
