package results

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/exact"
)

// IntervalLevel is the confidence level of bootstrap intervals.
const IntervalLevel = 0.95

// Summarize builds metrics.json's content from a finished run.
func Summarize(run Run, set Settings, runID string, prov Provenance) (Metrics, error) {
	m := Metrics{
		SchemaVersion:  SchemaVersion,
		RunID:          runID,
		Provenance:     prov,
		Mode:           string(set.Mode),
		ClassSet:       set.ClassSet.String(),
		Classes:        []Class{},
		Confusion:      [][]int64{},
		ImagesRejected: run.Rejected,
		ImagesRead:     run.Rejected,
	}
	if set.HasIgnore {
		m.IgnoreIndex = &set.Ignore
	}
	acc := run.Acc
	if acc == nil {
		return m, nil
	}
	t := &acc.Tally
	m.NumClasses = t.Classes
	m.Images = t.Images
	m.ImagesRead += t.Images
	m.ImagesWithoutValidPixels = t.ImagesWithoutValidPixels
	m.ValidPixels = t.ValidPixels

	perImageMean := mean(t.LossSum, t.ImagesWithLoss)
	if set.Mode == evaluate.Binary {
		m.LovaszHinge = &HingeLoss{PerImageMean: perImageMean}
	} else {
		loss := &SoftmaxLoss{PerImageMean: perImageMean, PerImageMeanErrorBound: mean(t.LossBoundSum, t.ImagesWithLoss)}
		ds, err := acc.Histogram.Loss(set.ClassSet)
		if err != nil {
			return Metrics{}, err
		}
		if ds.ValidPixels > 0 {
			loss.Dataset, loss.DatasetErrorBound = number(ds.Loss), number(ds.Bound)
		}
		m.LovaszSoftmax = loss
	}

	for c := range t.Classes {
		m.Confusion = append(m.Confusion, t.Counts.Confusion[c*t.Classes:(c+1)*t.Classes])
	}
	cm := t.Counts.Metrics()
	m.MIoU = number(cm.MIoU)
	m.PixelAccuracy = number(cm.PixelAccuracy)
	m.MeanAccuracy = number(cm.MeanAccuracy)
	m.MeanDice = number(cm.MeanDice)
	m.FrequencyWeightedIoU = number(cm.FrequencyWeightedIoU)
	m.PerImageMIoUMean = mean(t.MIoUSum, t.MIoUImages)
	for c, s := range cm.Classes {
		name := strconv.Itoa(c)
		if c < len(set.ClassNames) {
			name = set.ClassNames[c]
		}
		m.Classes = append(m.Classes, Class{
			ID: c, Name: name, IoU: number(s.IoU),
			Intersection: s.Intersection, Union: s.Union, LabelPixels: s.LabelPixels, PredPixels: s.PredPixels,
			Accuracy: number(s.Accuracy), Dice: number(s.Dice),
			LovaszMean: mean(t.ClassLossSum[c], t.ClassLossImages[c]),
		})
	}
	if acc.Bootstrap.Replicates > 0 {
		m.Intervals = intervals(&acc.Bootstrap)
	}
	m.Slices = slicesOf(run.Slices)
	if run.WorstK > 0 {
		m.Worst = Worst(run.Rows, run.WorstK)
	}
	return m, nil
}

func intervals(b *evaluate.Bootstrap) *Intervals {
	iv := b.Intervals(IntervalLevel)
	out := &Intervals{Replicates: b.Replicates, Level: IntervalLevel, MIoU: interval(iv.MIoU), PerImageLoss: interval(iv.PerImageLoss)}
	for _, c := range iv.ClassIoU {
		out.ClassIoU = append(out.ClassIoU, interval(c))
	}
	return out
}

func interval(iv evaluate.Interval) Interval {
	return Interval{Low: number(iv.Low), High: number(iv.High)}
}

// slicesOf summarizes every slice, sorted by field then value.
func slicesOf(tallies map[string]*evaluate.Tally) []Slice {
	keys := slices.Sorted(maps.Keys(tallies))
	var out []Slice
	for _, k := range keys {
		t := tallies[k]
		field, value := evaluate.SplitSliceKey(k)
		cm := t.Counts.Metrics()
		sl := Slice{
			Field: field, Value: value, Images: t.Images, ValidPixels: t.ValidPixels,
			PerImageLossMean: mean(t.LossSum, t.ImagesWithLoss),
			MIoU:             number(cm.MIoU), PixelAccuracy: number(cm.PixelAccuracy), MeanAccuracy: number(cm.MeanAccuracy),
			PerImageMIoUMean: mean(t.MIoUSum, t.MIoUImages),
		}
		for _, c := range cm.Classes {
			sl.ClassIoU = append(sl.ClassIoU, number(c.IoU))
		}
		out = append(out, sl)
	}
	return out
}

// Worst lists the k images with the highest loss and the k with the lowest
// mIoU; ties go to the smaller key so that outputs are deterministic.
func Worst(rows []ImageRow, k int) *WorstImages {
	pick := func(has func(ImageRow) bool, less func(a, b ImageRow) bool) []ImageRef {
		var cand []ImageRow
		for _, r := range rows {
			if has(r) {
				cand = append(cand, r)
			}
		}
		slices.SortFunc(cand, func(a, b ImageRow) int {
			switch {
			case less(a, b):
				return -1
			case less(b, a):
				return 1
			}
			return strings.Compare(a.Key, b.Key)
		})
		refs := []ImageRef{}
		for _, r := range cand[:min(k, len(cand))] {
			refs = append(refs, ImageRef{Key: r.Key, Shard: r.Shard, LabelFile: r.LabelFile, Offset: r.Offset, Length: r.Length, Generation: r.Generation, Loss: r.Loss, MIoU: r.MIoU})
		}
		return refs
	}
	return &WorstImages{
		HighestLoss: pick(func(r ImageRow) bool { return r.Loss != nil }, func(a, b ImageRow) bool { return *a.Loss > *b.Loss }),
		LowestMIoU:  pick(func(r ImageRow) bool { return r.MIoU != nil }, func(a, b ImageRow) bool { return *a.MIoU < *b.MIoU }),
	}
}

// number maps NaN (undefined) to nil, which JSON writes as null.
func number(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// mean is sum/n, nil when n is 0 or the sum recorded a NaN. The sum is
// exact and rounded once, so the mean is the same whatever order the
// images were added in.
func mean(sum exact.Sum, n int64) *float64 {
	if n == 0 {
		return nil
	}
	return number(sum.Float64() / float64(n))
}
