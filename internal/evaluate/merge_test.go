package evaluate

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segeval/segeval/internal/lovasz"
)

// part is what evaluating one image accumulates.
type part struct {
	acc    *Accumulator
	slices map[string]*Tally
}

// evaluateParts evaluates the case's images, with distinct keys, into one
// part per image, and returns the images' losses.
func evaluateParts(tb testing.TB, tc encodeCase) ([]part, []float64) {
	tb.Helper()
	e := NewEvaluator(tc.options())
	var parts []part
	var losses []float64
	for i := range tc.images {
		res, err := e.Evaluate(synthImage(tc, fmt.Sprintf("img%03d", i), uint64(i)), "s.tar")
		if err != nil {
			tb.Fatal(err)
		}
		acc, tallies := take(tb, e)
		parts = append(parts, part{acc, tallies})
		losses = append(losses, res.Loss)
	}
	return parts, losses
}

// mergeTree merges parts along a random binary tree: the parts are split at
// a random point, each side is merged the same way, and one side is merged
// into the other, either way round. Partial results travel through the
// binary encoding at random, as they do across a shuffle. The parts are
// left unchanged: a single part is copied before anything is merged into
// it, and owned reports whether the result is such a copy or a part.
func mergeTree(tb testing.TB, r *rand.Rand, parts []part) (merged part, owned bool) {
	tb.Helper()
	if len(parts) == 1 {
		return parts[0], false
	}
	k := 1 + r.IntN(len(parts)-1)
	a, ownA := mergeTree(tb, r, parts[:k])
	b, ownB := mergeTree(tb, r, parts[k:])
	if r.IntN(2) == 0 {
		a, b, ownA, ownB = b, a, ownB, ownA
	}
	if !ownA {
		a = copyPart(tb, a)
	}
	if r.IntN(3) == 0 {
		b.acc = decodeAccumulator(tb, encodeAccumulator(tb, b.acc))
	}
	if err := a.acc.Merge(b.acc); err != nil {
		tb.Fatal(err)
	}
	for key, t := range b.slices {
		if a.slices[key] == nil {
			if !ownB {
				t = copyTally(tb, t)
			}
			a.slices[key] = t
		} else if err := a.slices[key].Merge(t); err != nil {
			tb.Fatal(err)
		}
	}
	return a, true
}

// copyPart returns a copy of p that merging into does not change p.
func copyPart(tb testing.TB, p part) part {
	tb.Helper()
	h := p.acc.Histogram
	acc, err := NewAccumulator(h.Classes, h.BinsPerOctave, p.acc.Bootstrap.Replicates)
	if err == nil {
		err = acc.Merge(p.acc)
	}
	if err != nil {
		tb.Fatal(err)
	}
	c := part{acc: acc, slices: map[string]*Tally{}}
	for key, t := range p.slices {
		c.slices[key] = copyTally(tb, t)
	}
	return c
}

func copyTally(tb testing.TB, t *Tally) *Tally {
	tb.Helper()
	c := NewTally(t.Classes)
	if err := c.Merge(t); err != nil {
		tb.Fatal(err)
	}
	return c
}

// encodePart encodes the accumulator and the slices' tallies, by key.
func encodePart(tb testing.TB, p part) [][]byte {
	tb.Helper()
	out := [][]byte{encodeAccumulator(tb, p.acc)}
	for _, key := range slices.Sorted(maps.Keys(p.slices)) {
		data, err := p.slices[key].MarshalBinary()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, []byte(key), data)
	}
	return out
}

// The same images give the same accumulator and slices, bit for bit,
// whatever order they are merged in and however they are grouped, where
// float64 sums of their losses differ from order to order.
func TestMergeOrderGivesIdenticalBytes(t *testing.T) {
	tests := []encodeCase{
		{name: "19 classes, present", classes: 19, replicates: 200, images: 30, height: 24, width: 20, regions: 6},
		{name: "19 classes, all", classes: 19, replicates: 200, classSet: lovasz.ClassSet{Mode: lovasz.All},
			images: 30, height: 24, width: 20, regions: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts, losses := evaluateParts(t, tc)
			r := rand.New(rand.NewPCG(1, 2))
			var want [][]byte
			floatSums := map[float64]bool{}
			for trial := range 50 {
				r.Shuffle(len(parts), func(i, j int) {
					parts[i], parts[j] = parts[j], parts[i]
					losses[i], losses[j] = losses[j], losses[i]
				})
				merged, _ := mergeTree(t, r, parts)
				got := encodePart(t, merged)
				if trial == 0 {
					want = got
					if len(want) < 3 {
						t.Fatal("no slices")
					}
					checkLossBins(t, merged.acc.Tally.LossBins, losses)
				} else if !slices.EqualFunc(got, want, bytes.Equal) {
					t.Fatalf("merge %d gives other bytes than merge 0", trial)
				}
				var sum float64
				for _, l := range losses {
					sum += l
				}
				floatSums[sum] = true
			}
			if len(floatSums) < 2 {
				t.Error("float64 sums of the losses agree across orders: the test shows nothing")
			}
			t.Logf("%d distinct float64 sums of the per-image losses over 50 orders", len(floatSums))
		})
	}
}

// checkLossBins checks that bins are the histogram of the defined losses,
// and that they spread over several bins, so that merging them shows
// something.
func checkLossBins(t *testing.T, bins []int64, losses []float64) {
	t.Helper()
	want := make([]int64, LossBinCount)
	for _, l := range losses {
		if !math.IsNaN(l) {
			want[LossBin(l)]++
		}
	}
	if !slices.Equal(bins, want) {
		t.Errorf("loss bins %v, want %v", bins, want)
	}
	filled := 0
	for _, n := range want {
		if n > 0 {
			filled++
		}
	}
	if filled < 2 {
		t.Errorf("the losses fill %d bins: the test shows little", filled)
	}
}
