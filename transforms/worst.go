package transforms

import (
	"cmp"
	"math"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/top"

	"github.com/segeval/segeval/internal/evaluate"
)

func init() {
	beam.RegisterFunction(hasLoss)
	beam.RegisterFunction(hasMIoU)
	beam.RegisterFunction(lossLess)
	beam.RegisterFunction(miouLess)
}

// WorstImages returns the k images with the highest loss and the k with the
// lowest mIoU, each as a single []evaluate.Result, from the evaluation's
// candidates (each bundle's own worst k by each measure), with Beam's
// bounded top-K combine: no worker ever holds all images. Ties go to the
// smaller key, so that the lists do not depend on how the work was split.
// With k = 0 both are empty.
func WorstImages(s beam.Scope, k int, candidates beam.PCollection) (highestLoss, lowestMIoU beam.PCollection) {
	s = s.Scope("transforms.WorstImages")
	if k <= 0 {
		empty := beam.Create(s, []evaluate.Result{})
		return empty, empty
	}
	highestLoss = top.Largest(s, beam.ParDo(s, hasLoss, candidates), k, lossLess)
	lowestMIoU = top.Smallest(s, beam.ParDo(s, hasMIoU, candidates), k, miouLess)
	return highestLoss, lowestMIoU
}

func hasLoss(r evaluate.Result, emit func(evaluate.Result)) {
	if !math.IsNaN(r.Loss) {
		emit(r)
	}
}

func hasMIoU(r evaluate.Result, emit func(evaluate.Result)) {
	if !math.IsNaN(r.MIoU) {
		emit(r)
	}
}

// lossLess orders by loss; among equal losses the smaller key is the
// larger, so that top.Largest keeps it.
func lossLess(a, b evaluate.Result) bool {
	if a.Loss != b.Loss {
		return a.Loss < b.Loss
	}
	return byKey(a, b) > 0
}

// miouLess orders by mIoU; among equal values the smaller key is the
// smaller, so that top.Smallest keeps it.
func miouLess(a, b evaluate.Result) bool {
	if a.MIoU != b.MIoU {
		return a.MIoU < b.MIoU
	}
	return byKey(a, b) < 0
}

func byKey(a, b evaluate.Result) int {
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return cmp.Compare(a.Shard, b.Shard)
}
