package evaluate

import (
	"fmt"
	"math"

	"github.com/segeval/segeval/internal/exact"
	"github.com/segeval/segeval/internal/lovasz"
)

// Tally is the mergeable state of a group of images that every group keeps:
// the whole dataset and each slice. Tallies of disjoint image sets merge by
// addition, in any order: counts are integers and sums exact.Sums, so the
// merged tally is the same bit for bit whatever the order images were added
// and tallies merged in. Fields are exported because Beam encodes
// accumulators with a schema coder that drops unexported fields.
type Tally struct {
	Classes int
	// Images counts every image evaluated, including those without valid
	// pixels, which are also counted in ImagesWithoutValidPixels and left
	// out of every mean.
	Images                   int64
	ImagesWithoutValidPixels int64
	ValidPixels              int64
	// Sums over images with valid pixels and a loss.
	ImagesWithLoss int64
	LossSum        exact.Sum
	LossBoundSum   exact.Sum
	// LossBins is the distribution of the losses of the ImagesWithLoss
	// images, of length LossBinCount (see LossBin), so that the report can
	// draw it from merged tallies without gathering per-image rows: bin
	// i < LossBinCount-1 counts the images whose loss lies in
	// [i/100, (i+1)/100), the last bin those whose loss is 1 or more (the
	// Lovász hinge has no upper bound; the Lovász-Softmax is at most 1).
	// Images without a loss are not counted, so the bins sum to
	// ImagesWithLoss.
	LossBins []int64
	// Per class: the sum of the class's per-image loss over the images where
	// it counted, and the number of those images.
	ClassLossSum    []exact.Sum
	ClassLossImages []int64
	// Per-image mIoU (torchmetrics MeanIoU style) summed over images where
	// it is defined.
	MIoUSum    exact.Sum
	MIoUImages int64
	Counts     lovasz.Counts
}

// LossBinCount is the number of Tally.LossBins: 100 bins 0.01 wide over
// [0, 1) and one for losses of 1 or more.
const LossBinCount = 101

// LossBin returns the index in Tally.LossBins of the bin that counts an
// image of the given defined (not NaN) loss. The bins' edges are the
// doubles float64(i)/100, nearest i/100, so that a loss that prints as 0.29
// is in bin 29, although that double lies a little below 0.29.
// Losses below 0, which neither loss takes but which are harmless to
// count, are in bin 0; losses of 1 or more, +Inf included, in the last.
func LossBin(loss float64) int {
	const last = LossBinCount - 1
	switch {
	case loss >= 1:
		return last
	case !(loss > 0): // 0, -0, negative
		return 0
	}
	// loss*100 is within half an ulp of the exact product, so the
	// truncation is at most one bin off; the comparisons settle it.
	i := min(int(loss*100), last-1)
	if i > 0 && loss < float64(i)/100 {
		i--
	} else if i < last-1 && loss >= float64(i+1)/100 {
		i++
	}
	return i
}

// NewTally returns an empty tally for the given number of classes.
func NewTally(classes int) *Tally {
	return &Tally{
		Classes:         classes,
		ClassLossSum:    make([]exact.Sum, classes),
		ClassLossImages: make([]int64, classes),
		LossBins:        make([]int64, LossBinCount),
		Counts:          *lovasz.NewCounts(classes),
	}
}

// add folds one image into the tally. perClass holds the image's per-class
// losses (NaN where a class did not count), or nil.
func (t *Tally) add(res Result, perClass []float64, counts *lovasz.Counts) error {
	t.Images++
	t.ValidPixels += res.ValidPixels
	if res.ValidPixels == 0 {
		t.ImagesWithoutValidPixels++
	}
	if !math.IsNaN(res.Loss) {
		t.ImagesWithLoss++
		t.LossSum.Add(res.Loss)
		t.LossBoundSum.Add(res.LossBound)
		t.LossBins[LossBin(res.Loss)]++
	}
	for c, l := range perClass {
		if !math.IsNaN(l) {
			t.ClassLossSum[c].Add(l)
			t.ClassLossImages[c]++
		}
	}
	if !math.IsNaN(res.MIoU) {
		t.MIoUSum.Add(res.MIoU)
		t.MIoUImages++
	}
	return t.Counts.Merge(counts)
}

// Merge adds o into t. Both must have been made by NewTally (or decoded);
// a tally whose slices have other lengths is an error, before anything is
// added.
func (t *Tally) Merge(o *Tally) error {
	if t.Classes != o.Classes {
		return fmt.Errorf("%w: images disagree on the number of classes: %d and %d", lovasz.ErrBadInput, t.Classes, o.Classes)
	}
	if len(t.LossBins) != LossBinCount || len(o.LossBins) != LossBinCount {
		return fmt.Errorf("merging tallies of %d and %d loss bins, want %d: tallies are made by NewTally",
			len(t.LossBins), len(o.LossBins), LossBinCount)
	}
	t.Images += o.Images
	t.ImagesWithoutValidPixels += o.ImagesWithoutValidPixels
	t.ValidPixels += o.ValidPixels
	t.ImagesWithLoss += o.ImagesWithLoss
	t.LossSum.Merge(o.LossSum)
	t.LossBoundSum.Merge(o.LossBoundSum)
	for i, n := range o.LossBins {
		t.LossBins[i] += n
	}
	for c := range t.ClassLossSum {
		t.ClassLossSum[c].Merge(o.ClassLossSum[c])
		t.ClassLossImages[c] += o.ClassLossImages[c]
	}
	t.MIoUSum.Merge(o.MIoUSum)
	t.MIoUImages += o.MIoUImages
	return t.Counts.Merge(&o.Counts)
}

// Accumulator holds everything about the whole set of images that merges
// across workers: the tally, the dataset-level error histogram and the
// bootstrap replicates.
//
// Its size at the default resolution and 200 replicates: about 0.86 MB at
// C=19 and 6.9 MB at C=150 (histogram 6.0 MB, confusion 0.18 MB, replicates
// 0.72 MB); sums are 16-byte exact.Sums, so that merging is exact and the
// result the same in any order. MarshalBinary, for shuffling, skips the
// zeros and writes integers and sums as varints: 0.09 MB at C=19 after one
// 512x512 image, 0.38 MB at C=150 after one 64x64 image and 0.64 MB after
// 16 (TestAccumulatorEncodedSize); it grows as images fill the histogram's
// bins and the replicates' classes.
type Accumulator struct {
	Tally     Tally
	Histogram *lovasz.Histogram
	Bootstrap Bootstrap
}

// NewAccumulator returns an empty accumulator for the given number of
// classes, histogram resolution and bootstrap replicates (0 for none).
func NewAccumulator(classes, binsPerOctave, replicates int) (*Accumulator, error) {
	hist, err := lovasz.NewHistogram(classes, binsPerOctave)
	if err != nil {
		return nil, err
	}
	return &Accumulator{Tally: *NewTally(classes), Histogram: hist, Bootstrap: newBootstrap(classes, replicates)}, nil
}

// Classes is the number of classes of the accumulated images.
func (a *Accumulator) Classes() int { return a.Tally.Classes }

// Merge adds o into a. A nil o is a no-op.
func (a *Accumulator) Merge(o *Accumulator) error {
	if o == nil {
		return nil
	}
	if err := a.Tally.Merge(&o.Tally); err != nil {
		return err
	}
	if err := a.Bootstrap.merge(&o.Bootstrap); err != nil {
		return err
	}
	return a.Histogram.Merge(o.Histogram)
}
