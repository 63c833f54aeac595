package evaluate

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/synth"
)

// modelRun evaluates the images of keys as a model of the given
// confidence predicts them (the labels depend on the key only) and returns
// its bootstrap replicates and per-image results by key.
func modelRun(t *testing.T, keys []string, confidence float64, replicates int) (*Bootstrap, map[string]Result) {
	t.Helper()
	opt := options()
	opt.Bootstrap = replicates
	e := NewEvaluator(opt)
	rows := map[string]Result{}
	for i, k := range keys {
		im := synth.NewImage(k, synth.Options{Classes: 4, Height: 12, Width: 10, Regions: 4, Ignore: 255, Confidence: confidence, WrongRegions: 0.3}, uint64(i+1))
		res, err := e.Evaluate(&sample.Image{Key: k, Height: 12, Width: 10, Labels: im.Labels, Prediction: sample.Probs, Classes: 4, Scores: im.Probs}, "s")
		if err != nil {
			t.Fatal(err)
		}
		rows[k] = res
	}
	acc, _ := take(t, e)
	return &acc.Bootstrap, rows
}

func keysN(n int) []string {
	var keys []string
	for i := range n {
		keys = append(keys, fmt.Sprintf("k%03d", i))
	}
	return keys
}

func TestWeightIsOneFunctionOfKeyAndReplicate(t *testing.T) {
	for _, k := range []string{"", "a", "img/0001", strings.Repeat("x", 300)} {
		for r := range 50 {
			if Weight(k, r) != weightOf(keyHash(k), r) {
				t.Fatalf("Weight(%q, %d) differs from its hashed form", k, r)
			}
		}
	}
}

func TestPairedDeltasOfIdenticalRunsAreZero(t *testing.T) {
	b, _ := modelRun(t, keysN(30), 2, 100)
	d, err := PairedDeltas(b, b, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if d.Replicates != 100 || d.MIoU != (Interval{0, 0}) || d.PerImageLoss != (Interval{0, 0}) {
		t.Errorf("identical runs: %+v, want zero-width intervals at 0", d)
	}
	for c, iv := range d.ClassIoU {
		if iv != (Interval{0, 0}) {
			t.Errorf("class %d: %+v", c, iv)
		}
	}
}

// TestPairedDeltasSubtractReplicates checks the paired interval against
// its definition, replicate r of each run recomputed here from the
// per-replicate counts, and checks that pairing narrows the interval.
func TestPairedDeltasSubtractReplicates(t *testing.T) {
	keys := keysN(60)
	cand, _ := modelRun(t, keys, 1.2, 200)
	base, _ := modelRun(t, keys, 2.5, 200)
	d, err := PairedDeltas(cand, base, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	miou := func(b *Bootstrap, r int) float64 {
		var sum float64
		var n int
		for c := range b.Classes {
			i := (r*b.Classes + c) * 3
			if u := b.Class[i+1] + b.Class[i+2] - b.Class[i]; u > 0 {
				sum += float64(b.Class[i]) / float64(u)
				n++
			}
		}
		return sum / float64(n)
	}
	var diffs []float64
	for r := range 200 {
		diffs = append(diffs, miou(cand, r)-miou(base, r))
	}
	if want := Percentiles(diffs, 0.95); math.Abs(want.Low-d.MIoU.Low) > 1e-15 || math.Abs(want.High-d.MIoU.High) > 1e-15 {
		t.Errorf("paired mIoU interval %+v, want %+v", d.MIoU, want)
	}
	if !(d.MIoU.High < 0) {
		t.Errorf("a much less confident model: mIoU change %+v, want below 0", d.MIoU)
	}
	// Unpaired, the widths add up (roughly); paired, the noise the runs
	// share cancels.
	ci, bi := cand.Intervals(0.95), base.Intervals(0.95)
	if paired, unpaired := d.MIoU.High-d.MIoU.Low, (ci.MIoU.High-ci.MIoU.Low)+(bi.MIoU.High-bi.MIoU.Low); !(paired < unpaired/2) {
		t.Errorf("paired width %.4f, unpaired %.4f: pairing should narrow it", paired, unpaired)
	}

	// Replicates beyond those both runs have are not used.
	short, _ := modelRun(t, keys, 2.5, 50)
	if d, err := PairedDeltas(cand, short, 0.95); err != nil || d.Replicates != 50 {
		t.Errorf("200 against 50 replicates: %d paired (%v)", d.Replicates, err)
	}
	other := newBootstrap(3, 50)
	if _, err := PairedDeltas(cand, &other, 0.95); err == nil {
		t.Error("runs of 4 and 3 classes paired")
	}
}

func TestPairedRunsLossDelta(t *testing.T) {
	keys := keysN(40)
	_, candRows := modelRun(t, keys, 1.2, 0)
	_, baseRows := modelRun(t, keys, 2.5, 0)
	p := NewPairedRuns(100, 3)
	var sum float64
	for _, k := range keys {
		c, b := candRows[k], baseRows[k]
		p.AddPaired(k, c.Loss, b.Loss, c.MIoU, b.MIoU)
		sum += c.Loss - b.Loss
	}
	p.AddOnly(true)
	p.AddOnly(false)
	p.AddOnly(false)
	mean, iv := p.LossDelta(0.95)
	if p.Paired != 40 || p.OnlyCandidate != 1 || p.OnlyBaseline != 2 || math.Abs(mean-sum/40) > 1e-15 {
		t.Errorf("paired %d, only %d/%d, mean %v; want 40, 1/2, %v", p.Paired, p.OnlyCandidate, p.OnlyBaseline, mean, sum/40)
	}
	// Replicate r, by its definition.
	var reps []float64
	for r := range 100 {
		var s, w float64
		for _, k := range keys {
			wt := float64(Weight(k, r))
			s += wt * (candRows[k].Loss - baseRows[k].Loss)
			w += wt
		}
		reps = append(reps, s/w)
	}
	if want := Percentiles(reps, 0.95); math.Abs(want.Low-iv.Low) > 1e-12 || math.Abs(want.High-iv.High) > 1e-12 {
		t.Errorf("loss interval %+v, want %+v", iv, want)
	}

	// The lists: the largest changes each way, each image once.
	up := slices.SortedFunc(slices.Values(keys), func(a, b string) int {
		return -cmpF(candRows[a].Loss-baseRows[a].Loss, candRows[b].Loss-baseRows[b].Loss)
	})
	reg := p.MostRegressed()
	if len(reg) == 0 || len(reg) > 6 || reg[0].Key != up[0] {
		t.Fatalf("most regressed %+v, the largest rise is %s", reg, up[0])
	}
	seen := map[string]bool{}
	for _, d := range reg {
		if seen[d.Key] {
			t.Errorf("%s listed twice", d.Key)
		}
		seen[d.Key] = true
		if !(d.LossDelta > 0 || d.MIoUDelta < 0) {
			t.Errorf("%+v listed as regressed", d)
		}
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestPairedRunsMergeInAnyOrder merges shuffled parts and expects the same
// accumulator, bit for bit.
func TestPairedRunsMergeInAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	type img struct {
		key            string
		cl, bl, cm, bm float64
	}
	var imgs []img
	for i := range 200 {
		im := img{fmt.Sprintf("k%03d", i), rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64()}
		if i%17 == 0 {
			im.cl = math.NaN() // no loss in one run
		}
		if i%23 == 0 {
			im.cm, im.bm = 0.5, 0.5 // ties
		}
		imgs = append(imgs, im)
	}
	build := func(order []int, parts int) []byte {
		accs := make([]*PairedRuns, parts)
		for i := range accs {
			accs[i] = NewPairedRuns(20, 4)
		}
		for n, i := range order {
			im := imgs[i]
			accs[n%parts].AddPaired(im.key, im.cl, im.bl, im.cm, im.bm)
		}
		for _, a := range accs[1:] {
			if err := accs[0].Merge(a); err != nil {
				t.Fatal(err)
			}
		}
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(accs[0]); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	order := make([]int, len(imgs))
	for i := range order {
		order[i] = i
	}
	want := build(order, 1)
	for _, parts := range []int{2, 5, 13} {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		if got := build(order, parts); !bytes.Equal(got, want) {
			t.Errorf("%d parts in another order merge to another accumulator", parts)
		}
	}
	if err := NewPairedRuns(20, 4).Merge(NewPairedRuns(10, 4)); err == nil {
		t.Error("merged paired runs of 20 and 10 replicates")
	}
}
