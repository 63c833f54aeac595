package evaluate

import (
	"fmt"
	"math"

	"github.com/segeval/segeval/internal/lovasz"
)

// Accumulator holds everything about a set of images that merges across
// workers: confusion counts, loss sums and the dataset-level error
// histogram. Accumulators of disjoint image sets merge by addition, in any
// order. Fields are exported because Beam encodes accumulators with a
// schema coder that drops unexported fields.
//
// Its size is dominated by the histogram (see lovasz.DefaultBinsPerOctave)
// and the C x C confusion counts: about 0.5 MB at C=19 and 4.2 MB at C=150.
type Accumulator struct {
	Classes int
	// Images counts every image evaluated, including those without valid
	// pixels, which are also counted in ImagesWithoutValidPixels and left
	// out of every mean.
	Images                   int64
	ImagesWithoutValidPixels int64
	ValidPixels              int64
	// Sums over images with valid pixels and a loss.
	ImagesWithLoss int64
	LossSum        float64
	LossBoundSum   float64
	// Per class: the sum of the class's per-image loss over the images where
	// it counted, and the number of those images.
	ClassLossSum    []float64
	ClassLossImages []int64
	// Per-image mIoU (torchmetrics MeanIoU style) summed over images where
	// it is defined.
	MIoUSum    float64
	MIoUImages int64
	Counts     lovasz.Counts
	Histogram  *lovasz.Histogram
}

// NewAccumulator returns an empty accumulator for the given number of
// classes and histogram resolution.
func NewAccumulator(classes, binsPerOctave int) (*Accumulator, error) {
	hist, err := lovasz.NewHistogram(classes, binsPerOctave)
	if err != nil {
		return nil, err
	}
	return &Accumulator{
		Classes:         classes,
		ClassLossSum:    make([]float64, classes),
		ClassLossImages: make([]int64, classes),
		Counts:          *lovasz.NewCounts(classes),
		Histogram:       hist,
	}, nil
}

// add folds one image's result into the accumulator. perClass holds the
// image's per-class losses (NaN where a class did not count), or nil.
func (a *Accumulator) add(res Result, perClass []float64, counts *lovasz.Counts, hist *lovasz.Histogram) error {
	a.Images++
	a.ValidPixels += res.ValidPixels
	if res.ValidPixels == 0 {
		a.ImagesWithoutValidPixels++
	}
	if !math.IsNaN(res.Loss) {
		a.ImagesWithLoss++
		a.LossSum += res.Loss
		a.LossBoundSum += res.LossBound
	}
	for c, l := range perClass {
		if !math.IsNaN(l) {
			a.ClassLossSum[c] += l
			a.ClassLossImages[c]++
		}
	}
	if !math.IsNaN(res.MIoU) {
		a.MIoUSum += res.MIoU
		a.MIoUImages++
	}
	if err := a.Counts.Merge(counts); err != nil {
		return err
	}
	return a.Histogram.Merge(hist)
}

// Merge adds o into a. A nil o is a no-op.
func (a *Accumulator) Merge(o *Accumulator) error {
	if o == nil {
		return nil
	}
	if a.Classes != o.Classes {
		return fmt.Errorf("%w: images disagree on the number of classes: %d and %d", lovasz.ErrBadInput, a.Classes, o.Classes)
	}
	a.Images += o.Images
	a.ImagesWithoutValidPixels += o.ImagesWithoutValidPixels
	a.ValidPixels += o.ValidPixels
	a.ImagesWithLoss += o.ImagesWithLoss
	a.LossSum += o.LossSum
	a.LossBoundSum += o.LossBoundSum
	for c := range a.ClassLossSum {
		a.ClassLossSum[c] += o.ClassLossSum[c]
		a.ClassLossImages[c] += o.ClassLossImages[c]
	}
	a.MIoUSum += o.MIoUSum
	a.MIoUImages += o.MIoUImages
	if err := a.Counts.Merge(&o.Counts); err != nil {
		return err
	}
	return a.Histogram.Merge(o.Histogram)
}
