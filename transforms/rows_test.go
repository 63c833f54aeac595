package transforms

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
)

// TestBundleCandidatesHoldTheWorst feeds images to bundles of random sizes
// and checks that the worst k of all images, by each measure and with ties
// to the smaller key, are among the bundles' candidates: what WorstImages
// relies on.
func TestBundleCandidatesHoldTheWorst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const k = 4
	var all []evaluate.Result
	for i := range 300 {
		r := evaluate.Result{Key: fmt.Sprintf("k%03d", rng.IntN(1000)), Shard: fmt.Sprint(i), Loss: float64(rng.IntN(20)) / 20, MIoU: float64(rng.IntN(20)) / 20}
		if i%17 == 0 {
			r.Loss, r.MIoU = math.NaN(), math.NaN() // no valid pixels
		}
		all = append(all, r)
	}
	var candidates []evaluate.Result
	for start := 0; start < len(all); {
		b := bundleRows{spec: RowSpec{RunID: "r", Mode: evaluate.Multiclass, WorstK: k}}
		end := min(len(all), start+1+rng.IntN(40))
		for _, r := range all[start:end] {
			if err := b.add(r); err != nil {
				t.Fatal(err)
			}
		}
		got := b.candidates()
		if len(got) > 2*k {
			t.Fatalf("a bundle sent %d candidates, more than 2k", len(got))
		}
		candidates = append(candidates, got...)
		start = end
	}
	rows := func(rs []evaluate.Result) []results.ImageRow {
		var out []results.ImageRow
		for _, r := range rs {
			out = append(out, results.NewImageRow("r", evaluate.Multiclass, r))
		}
		return out
	}
	want, got := results.Worst(rows(all), k), results.Worst(rows(candidates), k)
	keys := func(refs []results.ImageRef) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.Key+"/"+r.Shard)
		}
		return out
	}
	if !slices.Equal(keys(got.HighestLoss), keys(want.HighestLoss)) || !slices.Equal(keys(got.LowestMIoU), keys(want.LowestMIoU)) {
		t.Errorf("worst from candidates %v %v, from all images %v %v", keys(got.HighestLoss), keys(got.LowestMIoU), keys(want.HighestLoss), keys(want.LowestMIoU))
	}
}
