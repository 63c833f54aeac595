package lovasz

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segeval/segeval/internal/npy"
)

// toHalf rounds float32 probabilities to float16 bits, as numpy's
// astype(float16) does.
func toHalf(probs []float32) []uint16 {
	out := make([]uint16, len(probs))
	for i, v := range probs {
		out[i] = npy.Float32ToFloat16(v)
	}
	return out
}

// fromHalf is the float32 image the reference path sees for float16 bits.
func fromHalf(h []uint16) []float32 {
	out := make([]float32, len(h))
	for i, b := range h {
		out[i] = npy.Float16ToFloat32(b)
	}
	return out
}

func TestHalfValueMatchesDecoder(t *testing.T) {
	for b := range 1 << 16 {
		got, want := halfValue(uint16(b)), float64(npy.Float16ToFloat32(uint16(b)))
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("halfValue(%#04x) = %v, want %v", b, got, want)
		}
	}
}

func TestHalfKeyOrdersAsValues(t *testing.T) {
	var finite []uint16
	for b := range 1 << 16 {
		if v := halfValue(uint16(b)); !math.IsNaN(v) {
			finite = append(finite, uint16(b))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		a, b := finite[r.IntN(len(finite))], finite[r.IntN(len(finite))]
		va, vb := halfValue(a), halfValue(b)
		ka, kb := halfKey(a), halfKey(b)
		if (va < vb) != (ka < kb) || (va == vb) != (ka == kb) {
			t.Fatalf("%#04x (%v) vs %#04x (%v): keys %d, %d", a, va, b, vb, ka, kb)
		}
	}
}

// The walk relies on the order table listing every slot once by decreasing
// error, and on the position tables pointing back into it.
func TestHalfTables(t *testing.T) {
	tb := halfTablesOnce()
	if !slices.IsSortedFunc(tb.err, func(a, b float64) int { return cmp.Compare(b, a) }) {
		t.Fatal("errors are not in decreasing order")
	}
	seen := map[uint32]bool{}
	for pos, slot := range tb.order {
		if seen[slot] {
			t.Fatalf("slot %#x listed twice", slot)
		}
		seen[slot] = true
		var back uint16
		var want float64
		if slot&orderFg != 0 {
			s := slot &^ orderFg
			back = tb.fgPos[s]
			b := uint16(s&(halfBgSlots-1)) | uint16(s>>14)<<15
			want = math.Abs(1 - halfValue(b))
		} else {
			back = tb.bgPos[slot]
			want = halfValue(uint16(slot))
		}
		if int(back) != pos {
			t.Fatalf("slot %#x at %d, position table says %d", slot, pos, back)
		}
		if tb.err[pos] != want {
			t.Fatalf("slot %#x: error %v, want %v", slot, tb.err[pos], want)
		}
	}
	for k := range halfMaxAbs + 1 {
		if got, want := float64(tb.fixed[k]), math.Ldexp(halfValue(uint16(k)), 24); got != want {
			t.Fatalf("fixed[%#x] = %v, want %v", k, got, want)
		}
	}
}

// halfCase is an image evaluated by the fused float16 path and by the
// reference path on its float32 values.
type halfCase struct {
	name          string
	classes, h, w int
	probs         []uint16
	labels        []int32
}

func halfCases() []halfCase {
	var cases []halfCase
	for _, im := range variedImages() {
		cases = append(cases, halfCase{im.name, im.classes, im.h, im.w, toHalf(im.probs), im.labels})
	}
	// Past halfSmallPixels, so that the path of large images is taken too.
	for _, im := range []image{benchImage(4, 260, 256, 5), benchImage(3, 1, 70000, 6)} {
		for i := range im.labels {
			if i%17 == 0 {
				im.labels[i] = 255
			}
		}
		cases = append(cases, halfCase{"dense_" + im.name, im.classes, im.h, im.w, toHalf(im.probs), im.labels})
	}
	// Ties across classes, signed zeros and small negative values.
	ties := halfCase{name: "ties", classes: 3, h: 2, w: 3, labels: []int32{0, 1, 2, 0, 255, 1}}
	ties.probs = []uint16{
		0x3800, 0x8000, 0x3555, 0x0000, 0x3c00, 0x3800, // 0.5, -0, 1/3, 0, 1, 0.5
		0x3800, 0x0000, 0x3555, 0x8000, 0x0000, 0x3800,
		0x0000, 0x3c00, 0x3555, 0x3c00, 0x0000, 0x8001, // ..., -2^-24
	}
	return append(cases, ties)
}

// TestFusedProbsMatchesReference runs the float32 path on the float16
// cases' values and on the float32 images they were rounded from.
func TestFusedProbsMatchesReference(t *testing.T) {
	images := variedImages()
	f := NewFused()
	for i, tc := range halfCases() {
		inputs := [][]float32{fromHalf(tc.probs)}
		if i < len(images) {
			inputs = append(inputs, images[i].probs)
		}
		for _, probs := range inputs {
			for _, tol := range []float64{0, 0.01, 2} {
				opt := Options{Classes: ClassSet{Mode: All}, Ignore: 255, HasIgnore: true}
				got, want := runProbs(t, tc, probs, opt, tol, f)
				if (got.err == nil) != (want.err == nil) {
					t.Fatalf("%s tol=%v: error %v, reference %v", tc.name, tol, got.err, want.err)
				}
				if got.err != nil {
					if got.err.Error() != want.err.Error() {
						t.Errorf("%s tol=%v: error %q, reference %q", tc.name, tol, got.err, want.err)
					}
					continue
				}
				compareRuns(t, tc.name, got, want)
				if got.loss.Loss != want.loss.Loss || got.loss.Bound != want.loss.Bound {
					t.Errorf("%s: loss %v ± %v, reference %v ± %v", tc.name, got.loss.Loss, got.loss.Bound, want.loss.Loss, want.loss.Bound)
				}
			}
		}
	}
}

func TestFusedHalfMatchesReference(t *testing.T) {
	sets := []ClassSet{{Mode: Present}, {Mode: All}, {Mode: List, IDs: []int{0, 2}}}
	for _, tc := range halfCases() {
		for _, set := range sets {
			for _, tol := range []float64{0, 0.01, 2} {
				opt := Options{Classes: set, Ignore: 255, HasIgnore: true}
				got, want := runHalf(t, tc, opt, tol, NewFused())
				if (got.err == nil) != (want.err == nil) {
					t.Fatalf("%s %v tol=%v: error %v, reference %v", tc.name, set, tol, got.err, want.err)
				}
				if got.err != nil {
					continue
				}
				compareRuns(t, tc.name, got, want)
				exact, _, _ := refImageLoss(fromHalf(tc.probs), tc.labels, tc.classes, opt)
				if got.loss.ValidPixels > 0 && math.Abs(got.loss.Loss-exact) > 1e-12 {
					t.Errorf("%s %v: loss %.15g, exact %.15g", tc.name, set, got.loss.Loss, exact)
				}
				if got.loss.Bound != 0 {
					t.Errorf("%s: bound %v, want 0", tc.name, got.loss.Bound)
				}
			}
		}
	}
}

// TestHalfSmallMatchesLarge evaluates every small case on the small path
// and again on the path of large images, and checks that the two agree bit
// for bit: losses, per-class losses, counts and, once flushed, histograms
// with their largest errors. The small path visits the same values in the
// same order with the same arithmetic, so any difference is a bug (a tie
// visited in another order, say), however small.
func TestHalfSmallMatchesLarge(t *testing.T) {
	sets := []ClassSet{{Mode: Present}, {Mode: All}, {Mode: List, IDs: []int{0, 2}}}
	small, large := NewFused(), NewFused()
	large.smallPixels = 0
	for _, tc := range halfCases() {
		if tc.h*tc.w >= halfSmallPixels {
			continue
		}
		for _, set := range sets {
			for _, tol := range []float64{0, 0.01} {
				opt := Options{Classes: set, Ignore: 255, HasIgnore: true}
				name := fmt.Sprintf("%s %v tol=%v, small and large paths", tc.name, set, tol)
				sameRuns(t, name, halfRun(t, tc, opt, tol, small), halfRun(t, tc, opt, tol, large))
			}
		}
	}
}

// TestFusedHalfReusedAcrossSizes evaluates images of different sizes and
// class counts with one Fused: counts left over from an image would change
// the next one's loss.
func TestFusedHalfReusedAcrossSizes(t *testing.T) {
	f := NewFused()
	cases := halfCases()
	for range 2 {
		for _, tc := range cases {
			opt := Options{Ignore: 255, HasIgnore: true}
			got, want := runHalf(t, tc, opt, 0, f)
			if got.err != nil || want.err != nil {
				t.Fatalf("%s: %v, %v", tc.name, got.err, want.err)
			}
			compareRuns(t, tc.name, got, want)
		}
	}
}

func TestFusedHalfBadInput(t *testing.T) {
	base := halfCase{name: "base", classes: 2, h: 1, w: 3, labels: []int32{0, 1, 255},
		probs: []uint16{0x3800, 0x3400, 0x3c00, 0x3800, 0x3a00, 0x0000}} // 0.5 .25 1 | .5 .75 0
	tests := []struct {
		name string
		edit func(*halfCase)
		tol  float64
	}{
		{"label out of range", func(c *halfCase) { c.labels[1] = 7 }, 0.01},
		{"negative label", func(c *halfCase) { c.labels[0] = -1 }, 0},
		{"NaN", func(c *halfCase) { c.probs[4] = 0x7e00 }, 0},
		{"infinity", func(c *halfCase) { c.probs[1] = 0xfc00 }, 0.01},
		{"above 1.5 unchecked", func(c *halfCase) { c.probs[2] = 0x3e01 }, 0},
		{"above 1+tol", func(c *halfCase) { c.probs[2] = 0x3c40 }, 0.01},
		{"below -tol", func(c *halfCase) { c.probs[5] = 0xa200 }, 0.01},
		{"sum", func(c *halfCase) { c.probs[3] = 0x3900 }, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := base
			tc.probs, tc.labels = slices.Clone(base.probs), slices.Clone(base.labels)
			tt.edit(&tc)
			opt := Options{Ignore: 255, HasIgnore: true}
			gotHalf, want := runHalf(t, tc, opt, tt.tol, NewFused())
			gotProbs, _ := runProbs(t, tc, fromHalf(tc.probs), opt, tt.tol, NewFused())
			for _, got := range []run{gotHalf, gotProbs} {
				if got.err == nil || !errors.Is(got.err, ErrBadInput) {
					t.Fatalf("error %v, want bad input", got.err)
				}
				if want.err == nil || got.err.Error() != want.err.Error() {
					t.Errorf("error %q, reference %q", got.err, want.err)
				}
			}
		})
	}
}

// run is one path's outcome on an image.
type run struct {
	loss   ImageLoss
	counts *Counts
	hist   *Histogram
	err    error
}

// newRun returns a run with empty counts and histogram.
func newRun(t *testing.T, classes int) run {
	h, err := NewHistogram(max(classes, 1), 32)
	if err != nil {
		t.Fatal(err)
	}
	return run{counts: NewCounts(max(classes, 1)), hist: h}
}

// runHalf evaluates tc with f and with the reference steps on its float32
// values.
func runHalf(t *testing.T, tc halfCase, opt Options, tol float64, f *Fused) (got, want run) {
	t.Helper()
	got, want = halfRun(t, tc, opt, tol, f), newRun(t, tc.classes)
	want.loss, want.err = NewFused().reference(fromHalf(tc.probs), tc.labels, tc.classes, tc.h, tc.w, opt, tol, want.hist, want.counts)
	return got, want
}

// halfRun evaluates tc with f.Half, and flushes into the run's histogram.
func halfRun(t *testing.T, tc halfCase, opt Options, tol float64, f *Fused) run {
	t.Helper()
	r := newRun(t, tc.classes)
	r.loss, r.err = f.Half(tc.probs, tc.labels, tc.classes, tc.h, tc.w, opt, tol, r.hist, r.counts)
	r.loss.PerClass = slices.Clone(r.loss.PerClass)
	if err := f.Flush(r.hist); err != nil {
		t.Fatal(err)
	}
	return r
}

// sameRuns checks that two runs of Half agree bit for bit: the same error
// or none, losses, counts and histograms.
func sameRuns(t *testing.T, name string, a, b run) {
	t.Helper()
	if (a.err == nil) != (b.err == nil) || a.err != nil && a.err.Error() != b.err.Error() {
		t.Fatalf("%s: error %v, and %v", name, a.err, b.err)
	}
	if a.err != nil {
		return
	}
	same := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || math.IsNaN(x) && math.IsNaN(y)
	}
	if a.loss.ValidPixels != b.loss.ValidPixels || !same(a.loss.Loss, b.loss.Loss) ||
		!slices.EqualFunc(a.loss.PerClass, b.loss.PerClass, same) {
		t.Errorf("%s: loss %v %v, and %v %v", name, a.loss.Loss, a.loss.PerClass, b.loss.Loss, b.loss.PerClass)
	}
	if !slices.Equal(a.counts.Confusion, b.counts.Confusion) {
		t.Errorf("%s: confusion differs", name)
	}
	if !histogramsEqual(a.hist, b.hist) {
		t.Errorf("%s: histograms differ", name)
	}
}

// runProbs evaluates float32 probabilities with f.Probs and with the
// reference steps.
func runProbs(t *testing.T, tc halfCase, probs []float32, opt Options, tol float64, f *Fused) (got, want run) {
	t.Helper()
	got, want = newRun(t, tc.classes), newRun(t, tc.classes)
	got.loss, got.err = f.Probs(probs, tc.labels, tc.classes, tc.h, tc.w, opt, tol, got.hist, got.counts)
	got.loss.PerClass = slices.Clone(got.loss.PerClass)
	want.loss, want.err = NewFused().reference(probs, tc.labels, tc.classes, tc.h, tc.w, opt, tol, want.hist, want.counts)
	return got, want
}

// compareRuns checks a fused run against the reference: the same counts, the
// loss within the reference's bound, and a dataset histogram that gives the
// same loss within the two bounds.
func compareRuns(t *testing.T, name string, got, want run) {
	t.Helper()
	if got.loss.ValidPixels != want.loss.ValidPixels {
		t.Fatalf("%s: %d valid pixels, reference %d", name, got.loss.ValidPixels, want.loss.ValidPixels)
	}
	if d := math.Abs(got.loss.Loss - want.loss.Loss); d > want.loss.Bound+got.loss.Bound+1e-12 {
		t.Errorf("%s: loss %.15g ± %.3g, reference %.15g ± %.3g", name, got.loss.Loss, got.loss.Bound, want.loss.Loss, want.loss.Bound)
	}
	for c := range got.loss.PerClass {
		g, w := got.loss.PerClass[c], want.loss.PerClass[c]
		if math.IsNaN(g) != math.IsNaN(w) || math.Abs(g-w) > 1e-6 {
			t.Errorf("%s: class %d loss %v, reference %v", name, c, g, w)
		}
	}
	if !slices.Equal(got.counts.Confusion, want.counts.Confusion) || !slices.Equal(got.counts.UnknownPred, want.counts.UnknownPred) {
		t.Errorf("%s: confusion %v, reference %v", name, got.counts.Confusion, want.counts.Confusion)
	}
	if !slices.Equal(got.hist.FgCount, want.hist.FgCount) || !slices.Equal(got.hist.BgCount, want.hist.BgCount) {
		t.Errorf("%s: histogram counts differ from the reference", name)
	}
	for c := range got.hist.MaxError {
		g, w := got.hist.MaxError[c], want.hist.MaxError[c]
		if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
			t.Errorf("%s: class %d max error %v, reference %v", name, c, g, w)
		}
	}
	for _, set := range []ClassSet{{Mode: Present}, {Mode: All}} {
		gl, err1 := got.hist.Loss(set)
		wl, err2 := want.hist.Loss(set)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if d := math.Abs(gl.Loss - wl.Loss); d > gl.Bound+wl.Bound+1e-12 {
			t.Errorf("%s %v: dataset loss %.15g ± %.3g, reference %.15g ± %.3g", name, set, gl.Loss, gl.Bound, wl.Loss, wl.Bound)
		}
	}
}

// TestExp32 compares exp32 with math.Exp on a dense grid of [-90, 0] and at
// its edges.
func TestExp32(t *testing.T) {
	var worst float64
	check := func(x float32) {
		got, want := float64(exp32(x)), math.Exp(float64(x))
		if want < 0x1p-126 {
			if got != 0 && math.Abs(got-want) > 0x1p-147 {
				t.Fatalf("exp32(%v) = %v, want 0 below the normal range", x, got)
			}
			return
		}
		ulp := float64(math.Nextafter32(float32(want), 2)) - float64(float32(want))
		if d := math.Abs(got-want) / ulp; d > worst {
			worst = d
		}
	}
	for x := float32(-90); x <= 0; x += 1.0 / 4096 {
		check(x)
	}
	for _, x := range []float32{0, -0x1p-30, -87.33654, -87.3365, -87.3, float32(math.Inf(-1))} {
		check(x)
	}
	if worst > 2 {
		t.Errorf("exp32 is %.2f ulps off at worst, want at most 2", worst)
	}
}

// logitsOf returns logits whose softmax is close to probs, with ties added
// in every fifth pixel between its first two classes.
func logitsOf(probs []float32, classes int) []float32 {
	p := len(probs) / classes
	out := make([]float32, len(probs))
	for i, v := range probs {
		out[i] = float32(math.Log(float64(v) + 1e-6))
	}
	for i := 0; i < p; i += 5 {
		out[p+i] = out[i]
	}
	return out
}

func TestFusedLogitsMatchesReference(t *testing.T) {
	f := NewFused()
	var dst []float32
	for _, im := range variedImages() {
		logits := logitsOf(im.probs, im.classes)
		opt := Options{Classes: ClassSet{Mode: Present}, Ignore: 255, HasIgnore: true}
		var gotLoss, wantLoss ImageLoss
		var err1, err2 error
		got, want := NewCounts(im.classes), NewCounts(im.classes)
		gotLoss, dst, err1 = f.Logits(logits, im.labels, im.classes, im.h, im.w, opt, nil, got, dst)
		gotLoss.PerClass = slices.Clone(gotLoss.PerClass)
		wantLoss, _, err2 = NewFused().logitsReference(logits, im.labels, im.classes, im.h, im.w, opt, nil, want, nil)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, reference %v", im.name, err1, err2)
		}
		if d := math.Abs(gotLoss.Loss - wantLoss.Loss); d > 1e-6+gotLoss.Bound+wantLoss.Bound {
			t.Errorf("%s: loss %v, reference %v", im.name, gotLoss.Loss, wantLoss.Loss)
		}
		if !slices.Equal(got.Confusion, want.Confusion) {
			t.Errorf("%s: confusion %v, reference %v", im.name, got.Confusion, want.Confusion)
		}
	}
}

// TestLogitsArgmaxTies checks that a tie in the logits goes to the lower
// class, and that the argmax comes from the logits where their
// probabilities round to a tie in float32.
func TestLogitsArgmaxTies(t *testing.T) {
	tests := []struct {
		name   string
		logits []float32 // 2 classes x 1 pixel
		want   int       // predicted class
	}{
		{"tie", []float32{0.5, 0.5}, 0},
		{"second higher by less than a float32 probability tells", []float32{0, 1e-8}, 1},
		{"first higher", []float32{-20.000002, -20.000004}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == 1 {
				probs, err := NewEvaluator().Softmax(tt.logits, 2, nil)
				if err != nil || probs[0] != probs[1] {
					t.Fatalf("probabilities %v (%v): the case needs a float32 tie", probs, err)
				}
			}
			counts := NewCounts(2)
			if _, _, err := NewFused().Logits(tt.logits, []int32{0}, 2, 1, 1, Options{}, nil, counts, nil); err != nil {
				t.Fatal(err)
			}
			if counts.Confusion[tt.want] != 1 {
				t.Errorf("confusion %v, want the pixel predicted %d", counts.Confusion, tt.want)
			}
		})
	}
}

// TestGoldenFused runs every per-image golden case through Fused.Probs
// against the expected value, and through Fused.Half on the values rounded
// to float16 against the exact loss of those values.
func TestGoldenFused(t *testing.T) {
	f := NewFused()
	for _, g := range loadGolden(t) {
		if g.Kind != "lovasz_softmax" || !g.PerImage {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			opt := g.options(t)
			p := g.H * g.W
			var sum float64
			for img := range g.B {
				probs, labels := g.Probs[img*g.C*p:(img+1)*g.C*p], g.Labels[img*p:(img+1)*p]
				res, err := f.Probs(probs, labels, g.C, g.H, g.W, opt, 0, nil, NewCounts(g.C))
				if err != nil {
					t.Fatal(err)
				}
				sum += res.Loss
				half := toHalf(probs)
				got, err := f.Half(half, labels, g.C, g.H, g.W, opt, 0, nil, NewCounts(g.C))
				if err != nil {
					t.Fatal(err)
				}
				if exact, _, valid := refImageLoss(fromHalf(half), labels, g.C, opt); valid && math.Abs(got.Loss-exact) > 1e-12 {
					t.Errorf("image %d as float16: got %.15g, exact %.15g", img, got.Loss, exact)
				}
			}
			if got := sum / float64(g.B); math.Abs(got-g.Expected) > goldenTolerance {
				t.Errorf("got %.12g, want %.12g", got, g.Expected)
			}
		})
	}
}

func TestFusedNoAllocationsWhenWarm(t *testing.T) {
	im := benchImage(6, 260, 256, 9) // past halfSmallPixels: the path of large images
	small := benchImage(6, 8, 8, 9)  // the small path
	f := NewFused()
	hist, err := NewHistogram(6, DefaultBinsPerOctave)
	if err != nil {
		t.Fatal(err)
	}
	counts := NewCounts(6)
	var probs []float32
	for _, im := range []image{im, small} {
		half := toHalf(im.probs)
		run := func() {
			if _, err := f.Half(half, im.labels, 6, im.h, im.w, Options{}, 0.01, hist, counts); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Probs(im.probs, im.labels, 6, im.h, im.w, Options{}, 0.01, hist, counts); err != nil {
				t.Fatal(err)
			}
			if _, probs, err = f.Logits(im.probs, im.labels, 6, im.h, im.w, Options{}, hist, counts, probs); err != nil {
				t.Fatal(err)
			}
		}
		run()
		if n := testing.AllocsPerRun(5, run); n != 0 {
			t.Errorf("%dx%d: %v allocations per warm run, want 0", im.h, im.w, n)
		}
	}
}

// TestHistogramTrackedReset evaluates a sequence of images into one
// histogram, Reset before each and merged after each, as an Evaluator does,
// and checks that the merged histogram equals the one built from a fresh
// histogram per image, and that every Reset leaves every bin empty: the
// float16 fold lists the bins it fills (only those are cleared and merged),
// and the float32 path, which does not, makes the next Reset clear them
// all.
func TestHistogramTrackedReset(t *testing.T) {
	const classes = 3
	var images []halfCase
	for _, tc := range halfCases() {
		if tc.classes == classes {
			images = append(images, tc)
		}
	}
	if len(images) < 3 {
		t.Fatalf("%d 3-class cases, want at least 3", len(images))
	}
	// Float16 twice, float32 between, float16 again: the float32 image
	// leaves the histogram untracked for one Reset.
	kinds := []string{"half", "half", "float32", "half", "half"}
	newHist := func() *Histogram {
		h, err := NewHistogram(classes, DefaultBinsPerOctave)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	reused, got, want := newHist(), newHist(), newHist()
	f := NewFused()
	empty := newHist()
	for n, kind := range kinds {
		tc := images[n%len(images)]
		opt := Options{Classes: ClassSet{Mode: All}, Ignore: 255, HasIgnore: true}
		eval := func(h *Histogram) {
			var err error
			if kind == "half" {
				if _, err = f.Half(tc.probs, tc.labels, classes, tc.h, tc.w, opt, 0, h, NewCounts(classes)); err == nil {
					err = f.Flush(h)
				}
			} else {
				_, err = f.Probs(fromHalf(tc.probs), tc.labels, classes, tc.h, tc.w, opt, 0, h, NewCounts(classes))
			}
			if err != nil {
				t.Fatalf("image %d (%s): %v", n, tc.name, err)
			}
		}
		reused.Reset()
		if !histogramsEqual(reused, empty) {
			t.Fatalf("before image %d: Reset left bins filled", n)
		}
		eval(reused)
		if err := got.Merge(reused); err != nil {
			t.Fatal(err)
		}
		fresh := newHist()
		eval(fresh)
		if err := want.Merge(fresh); err != nil {
			t.Fatal(err)
		}
		if !histogramsEqual(got, want) {
			t.Fatalf("after image %d (%s, %s): merged histogram differs from the one of fresh histograms", n, kind, tc.name)
		}
	}
}

// histogramsEqual reports whether a and b hold the same counts, sums and
// largest errors.
func histogramsEqual(a, b *Histogram) bool {
	return slices.Equal(a.FgCount, b.FgCount) && slices.Equal(a.BgCount, b.BgCount) &&
		slices.Equal(a.FgSum, b.FgSum) && slices.Equal(a.BgSum, b.BgSum) &&
		slices.EqualFunc(a.MaxError, b.MaxError, func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })
}

// TestHalfPendingFlush evaluates a sequence of small float16 images and
// checks that their histogram is the same, bit for bit, whether each image
// is flushed on its own (and merged), all are flushed once at the end, or
// the pending counts are full after two images, so that later images are
// folded one by one: halfFold is exact, so how images are grouped must not
// show.
func TestHalfPendingFlush(t *testing.T) {
	const classes = 3
	var images []halfCase
	for _, tc := range halfCases() {
		if tc.classes == classes && tc.h*tc.w < halfSmallPixels {
			images = append(images, tc, tc) // twice: counts of one value add up
		}
	}
	if len(images) < 6 {
		t.Fatalf("%d small 3-class cases, want at least 6", len(images))
	}
	opt := Options{Classes: ClassSet{Mode: All}, Ignore: 255, HasIgnore: true}
	newHist := func() *Histogram {
		h, err := NewHistogram(classes, DefaultBinsPerOctave)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	eval := func(f *Fused, tc halfCase, h *Histogram) int64 {
		res, err := f.Half(tc.probs, tc.labels, classes, tc.h, tc.w, opt, 0, h, NewCounts(classes))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		return res.ValidPixels
	}
	flush := func(f *Fused, h *Histogram) {
		if err := f.Flush(h); err != nil {
			t.Fatal(err)
		}
	}

	each, f := newHist(), NewFused()
	var valid int64
	for _, tc := range images {
		h := newHist()
		valid += eval(f, tc, h)
		flush(f, h)
		if err := each.Merge(h); err != nil {
			t.Fatal(err)
		}
	}
	var binned int64
	for i := range each.FgCount {
		binned += each.FgCount[i] + each.BgCount[i]
	}
	if binned != classes*valid {
		t.Fatalf("histogram holds %d errors, want %d (%d valid pixels x %d classes)", binned, classes*valid, valid, classes)
	}

	once, f := newHist(), NewFused()
	for _, tc := range images {
		eval(f, tc, once)
	}
	for i := range once.FgCount {
		if once.FgCount[i] != 0 || once.BgCount[i] != 0 {
			t.Fatal("errors of small images reached the histogram before Flush")
		}
	}
	flush(f, once)
	if !histogramsEqual(once, each) {
		t.Error("one Flush for every image differs from a Flush per image")
	}

	old := pendingPixels
	t.Cleanup(func() { pendingPixels = old })
	pendingPixels = uint64(2 * images[0].h * images[0].w)
	capped, f := newHist(), NewFused()
	for _, tc := range images {
		eval(f, tc, capped)
	}
	flush(f, capped)
	if !histogramsEqual(capped, each) {
		t.Error("images folded one by one once the counts were full differ from a Flush per image")
	}
}

// TestHalfPendingOtherClasses checks that counts pending for some number of
// classes are neither flushed into a histogram of another nor mixed with
// the counts of images of another.
func TestHalfPendingOtherClasses(t *testing.T) {
	small := benchImage(3, 8, 8, 1)
	other := benchImage(4, 8, 8, 2)
	f := NewFused()
	h3, err := NewHistogram(3, DefaultBinsPerOctave)
	if err != nil {
		t.Fatal(err)
	}
	h4, err := NewHistogram(4, DefaultBinsPerOctave)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Half(toHalf(small.probs), small.labels, 3, 8, 8, Options{}, 0, h3, NewCounts(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Half(toHalf(other.probs), other.labels, 4, 8, 8, Options{}, 0, h4, NewCounts(4)); err == nil {
		t.Error("a 4-class image was evaluated while 3-class errors were pending")
	}
	if err := f.Flush(h4); err == nil {
		t.Error("3-class errors were flushed into a 4-class histogram")
	}
	if err := f.Flush(h3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Half(toHalf(other.probs), other.labels, 4, 8, 8, Options{}, 0, h4, NewCounts(4)); err != nil {
		t.Errorf("after a Flush: %v", err)
	}
}
