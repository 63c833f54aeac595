package lovasz_test

import (
	"testing"

	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/synth"
)

// BenchmarkLovaszSoftmaxFloat16 evaluates a VOC-sized synthetic scene
// (regions, confident predictions, some regions wrong) with probabilities
// stored as float16, as users store them. Quantized errors put several
// distinct values in a first-pass bin; classes whose bound is then too wide
// are binned again finer instead of sorted.
func BenchmarkLovaszSoftmaxFloat16(b *testing.B) {
	const classes, h, w = 21, 512, 512
	im := synth.NewImage("bench", synth.Options{Classes: classes, Height: h, Width: w, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}, 1)
	im.RoundToFloat16()
	opt := lovasz.Options{Ignore: 255, HasIgnore: true}
	ev := lovasz.NewEvaluator()
	res, err := ev.LovaszSoftmax(im.Probs, im.Labels, classes, h, w, opt, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, err = ev.LovaszSoftmax(im.Probs, im.Labels, classes, h, w, opt, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(res.Bound*1e9, "bound-1e-9")
}
