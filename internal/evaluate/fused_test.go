package evaluate

import (
	"bytes"
	"math"
	"reflect"
	"testing"

	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/synth"
)

// shardOf writes images into an in-memory tar shard.
func shardOf(tb testing.TB, images ...synth.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	sw := synth.NewShardWriter(&buf)
	for _, im := range images {
		if err := sw.Write(im); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// evaluateShard decodes and evaluates every sample of data, keeping float16
// probabilities as bits when bits is set, and returns the results and the
// accumulator.
func evaluateShard(tb testing.TB, data []byte, opt Options, bits bool) ([]Result, *Accumulator) {
	tb.Helper()
	dec := sample.Decoder{Float16Bits: bits}
	e := NewEvaluator(opt)
	r := shard.NewReader(bytes.NewReader(data), "mem.tar", shard.Limits{MaxMemberBytes: 1 << 30})
	lim := sample.Options{Limits: sample.Limits{MaxPixels: 1 << 26, MaxClasses: 1024, MaxMemberBytes: 1 << 30}}
	var out []Result
	for {
		s, err := r.Next()
		if err != nil {
			break
		}
		img, err := dec.Decode(s, "mem.tar", lim)
		if err != nil {
			tb.Fatal(err)
		}
		if bits != (img.Half != nil) {
			tb.Fatalf("Float16Bits %v, decoded Half %v", bits, img.Half != nil)
		}
		res, err := e.Evaluate(img, "mem.tar")
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, res)
	}
	acc, _ := take(tb, e)
	return out, acc
}

// TestFusedFloat16MatchesReference evaluates float16 shards twice: decoded
// to float32 and through the reference steps, and kept as bits through the
// fused path. Counts, histograms and bootstrap draws must agree exactly, and
// losses within the reference's bound (the fused loss is exact).
func TestFusedFloat16MatchesReference(t *testing.T) {
	sizes := []synth.Options{
		{Classes: 5, Height: 40, Width: 30, Regions: 6, Ignore: 255, Confidence: 3, WrongRegions: 0.2},
		{Classes: 19, Height: 32, Width: 32, Regions: 8, Ignore: 255, Confidence: 2, WrongRegions: 0.1},
		{Classes: 3, Height: 150, Width: 130, Regions: 10, Ignore: 255, Confidence: 4, WrongRegions: 0.3},
	}
	for _, so := range sizes {
		images := []synth.Image{synth.NewImage("a", so, 1), synth.NewImage("b", so, 2), synth.NewImage("c", so, 3)}
		data := shardOf(t, images...)
		opt := options()
		opt.ProbTolerance = 0.01
		opt.Bootstrap = 20
		ref, refAcc := evaluateShard(t, data, opt, false)
		got, gotAcc := evaluateShard(t, data, opt, true)
		for i := range ref {
			g, w := got[i], ref[i]
			if g.ValidPixels != w.ValidPixels || g.MIoU != w.MIoU || g.PixelAccuracy != w.PixelAccuracy {
				t.Errorf("%dx%dx%d image %d: %+v, reference %+v", so.Classes, so.Height, so.Width, i, g, w)
			}
			if math.Abs(g.Loss-w.Loss) > w.LossBound+1e-12 || g.LossBound != 0 {
				t.Errorf("%dx%dx%d image %d: loss %v ± %v, reference %v ± %v", so.Classes, so.Height, so.Width, i, g.Loss, g.LossBound, w.Loss, w.LossBound)
			}
		}
		if !reflect.DeepEqual(gotAcc.Tally.Counts, refAcc.Tally.Counts) {
			t.Errorf("%dx%dx%d: counts differ from the reference", so.Classes, so.Height, so.Width)
		}
		if !reflect.DeepEqual(gotAcc.Histogram.FgCount, refAcc.Histogram.FgCount) || !reflect.DeepEqual(gotAcc.Histogram.BgCount, refAcc.Histogram.BgCount) {
			t.Errorf("%dx%dx%d: histogram counts differ from the reference", so.Classes, so.Height, so.Width)
		}
	}
}

// TestPredictionAtFloat16 checks the classes of a float16 image kept as
// bits against the ones of its float32 values, at every pixel.
func TestPredictionAtFloat16(t *testing.T) {
	im := synth.NewImage("a", synth.Options{Classes: 6, Height: 20, Width: 24, Regions: 5, Ignore: 255, Confidence: 1}, 4)
	data := shardOf(t, im)
	maps := make([][]int32, 2)
	for i, bits := range []bool{false, true} {
		s, err := shard.NewReader(bytes.NewReader(data), "mem.tar", shard.Limits{MaxMemberBytes: 1 << 30}).Next()
		if err != nil {
			t.Fatal(err)
		}
		dec := sample.Decoder{Float16Bits: bits}
		img, err := dec.Decode(s, "mem.tar", sample.Options{Limits: sample.Limits{MaxPixels: 1 << 20, MaxClasses: 64, MaxMemberBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		pixels := make([]int, img.Height*img.Width)
		for i := range pixels {
			pixels[i] = i
		}
		pred, classes, err := NewEvaluator(options()).PredictionAt(img, pixels)
		if err != nil || classes != 6 {
			t.Fatalf("%v classes, %v", classes, err)
		}
		maps[i] = append([]int32(nil), pred...)
	}
	if !reflect.DeepEqual(maps[0], maps[1]) {
		t.Error("classes of float32 and float16 bits differ")
	}
}

// TestReleaseFlushesSmallImages evaluates small float16 images, whose
// errors the fused path holds back until a flush, and releases the buffers
// before taking the accumulator: the accumulator must still hold every
// error, and the next Evaluator to take the released buffers none of them.
func TestReleaseFlushesSmallImages(t *testing.T) {
	so := synth.Options{Classes: 7, Height: 24, Width: 20, Regions: 5, Ignore: 255, Confidence: 2, WrongRegions: 0.2}
	data := shardOf(t, synth.NewImage("a", so, 1), synth.NewImage("b", so, 2))
	opt := options()
	_, want := evaluateShard(t, data, opt, true)

	var images []*sample.Image
	r := shard.NewReader(bytes.NewReader(data), "mem.tar", shard.Limits{MaxMemberBytes: 1 << 30})
	for {
		s, err := r.Next()
		if err != nil {
			break
		}
		img, err := (&sample.Decoder{Float16Bits: true}).Decode(s, "mem.tar", sample.Options{Limits: sample.Limits{MaxPixels: 1 << 20, MaxClasses: 64, MaxMemberBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	released := NewEvaluator(opt)
	for _, img := range images {
		if _, err := released.Evaluate(img, "mem.tar"); err != nil {
			t.Fatal(err)
		}
	}
	released.Release()
	got, _ := take(t, released)
	g, w := got.Histogram, want.Histogram
	if !reflect.DeepEqual(g.FgCount, w.FgCount) || !reflect.DeepEqual(g.BgCount, w.BgCount) ||
		!reflect.DeepEqual(g.FgSum, w.FgSum) || !reflect.DeepEqual(g.BgSum, w.BgSum) {
		t.Error("the histogram taken after Release differs from the one taken before")
	}

	next := NewEvaluator(opt) // takes the released buffers
	if _, err := next.Evaluate(images[0], "mem.tar"); err != nil {
		t.Fatal(err)
	}
	gotNext, _ := take(t, next)
	var binned int64
	for i := range gotNext.Histogram.FgCount {
		binned += gotNext.Histogram.FgCount[i] + gotNext.Histogram.BgCount[i]
	}
	valid := gotNext.Tally.ValidPixels
	if binned != int64(so.Classes)*valid {
		t.Errorf("the next Evaluator's histogram holds %d errors, want %d (%d valid pixels x %d classes)", binned, int64(so.Classes)*valid, valid, so.Classes)
	}
}
