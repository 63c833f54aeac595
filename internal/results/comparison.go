package results

import (
	"fmt"
	"math"

	"github.com/segeval/segeval/internal/evaluate"
)

// ReplicatesFile is the replicates sidecar's name beside metrics.json: the
// run's bootstrap replicates (evaluate.Bootstrap.MarshalSidecar), which a
// later run compared with this one differences with its own.
const ReplicatesFile = "replicates.bin"

// Comparison is metrics.json's comparison of the run (the candidate) with
// its baseline: each delta is candidate minus baseline.
//
// MIoUDelta and each class's IoUDelta are the differences of the two
// metrics.json values, over each run's own images; their intervals are the
// paired bootstrap of that difference (evaluate.PairedDeltas): an image in
// both runs has the same weight in both runs' replicates, and an image in
// one run only is resampled with its run. PerImageLossDelta is the mean,
// over the images in both runs, of each image's loss difference, with the
// paired bootstrap of that mean. When the two runs saw the same images, the
// two coincide with the textbook paired bootstrap; when they did not, the
// mIoU and class deltas also carry the change of images, which
// ImagesOnlyCandidate and ImagesOnlyBaseline show.
type Comparison struct {
	BaselineRunID       string        `json:"baseline_run_id"`
	ImagesPaired        int64         `json:"images_paired"`
	ImagesOnlyCandidate int64         `json:"images_only_candidate"`
	ImagesOnlyBaseline  int64         `json:"images_only_baseline"`
	MIoUDelta           Delta         `json:"miou_delta"`
	PerImageLossDelta   Delta         `json:"per_image_loss_delta"`
	Classes             []ClassDelta  `json:"classes"`
	MostRegressed       []ImageChange `json:"most_regressed"`
	MostImproved        []ImageChange `json:"most_improved"`
}

// Delta is a change and its paired 95% bootstrap interval [low, high],
// which always contains Value. Value is nil when either run lacks the
// metric; CI95 is nil then, and when the runs have no replicates to pair
// (either ran without --bootstrap, or the baseline predates the replicates
// sidecar).
type Delta struct {
	Value *float64    `json:"value"`
	CI95  *[2]float64 `json:"ci95"`
}

// Significant reports whether the interval excludes zero.
func (d Delta) Significant() bool {
	return d.CI95 != nil && (d.CI95[0] > 0 || d.CI95[1] < 0)
}

// ClassDelta is one class's IoU change.
type ClassDelta struct {
	ID       int   `json:"id"`
	IoUDelta Delta `json:"iou_delta"`
}

// ImageChange is one image's change: candidate minus baseline per-image
// loss and per-image mIoU (nil where either run has none).
type ImageChange struct {
	Key       string   `json:"key"`
	LossDelta *float64 `json:"loss_delta"`
	MIoUDelta *float64 `json:"miou_delta"`
}

// CompareInput is what a comparison is built from.
type CompareInput struct {
	Candidate, Baseline Metrics
	// CandidateReplicates and BaselineReplicates are the runs' bootstrap
	// replicates; nil when a run has none, and then no mIoU or class
	// interval is given.
	CandidateReplicates, BaselineReplicates *evaluate.Bootstrap
	// Paired is the join of the two runs' per-image rows.
	Paired *evaluate.PairedRuns
}

// Compare builds the comparison of a candidate run with its baseline.
func Compare(in CompareInput) (*Comparison, error) {
	c, b, p := &in.Candidate, &in.Baseline, in.Paired
	if p == nil {
		p = evaluate.NewPairedRuns(0, 0)
	}
	cmp := &Comparison{
		BaselineRunID: b.RunID,
		ImagesPaired:  p.Paired, ImagesOnlyCandidate: p.OnlyCandidate, ImagesOnlyBaseline: p.OnlyBaseline,
		Classes: []ClassDelta{}, MostRegressed: changes(p.MostRegressed()), MostImproved: changes(p.MostImproved()),
	}
	var iv *evaluate.DeltaIntervals
	if cr, br := in.CandidateReplicates, in.BaselineReplicates; cr != nil && br != nil && cr.Replicates > 0 && br.Replicates > 0 {
		d, err := evaluate.PairedDeltas(cr, br, IntervalLevel)
		if err != nil {
			return nil, fmt.Errorf("comparison with baseline %s: %w", b.RunID, err)
		}
		iv = &d
	}
	nan := evaluate.Interval{Low: math.NaN(), High: math.NaN()}
	miouIV := nan
	if iv != nil {
		miouIV = iv.MIoU
	}
	cmp.MIoUDelta = newDelta(difference(c.MIoU, b.MIoU), miouIV)
	lossMean, lossIV := p.LossDelta(IntervalLevel)
	cmp.PerImageLossDelta = newDelta(lossMean, lossIV)

	base := map[int]Class{}
	for _, cl := range b.Classes {
		base[cl.ID] = cl
	}
	for i, cl := range c.Classes {
		classIV := nan
		if iv != nil && i < len(iv.ClassIoU) && cl.ID == i {
			classIV = iv.ClassIoU[i]
		}
		value := math.NaN()
		if bc, ok := base[cl.ID]; ok {
			value = difference(cl.IoU, bc.IoU)
		}
		cmp.Classes = append(cmp.Classes, ClassDelta{ID: cl.ID, IoUDelta: newDelta(value, classIV)})
	}
	return cmp, nil
}

// difference is a - b, NaN when either is undefined.
func difference(a, b *float64) float64 {
	if a == nil || b == nil {
		return math.NaN()
	}
	return *a - *b
}

// newDelta pairs a value with its interval. A percentile interval need not
// contain the point estimate: with few images the replicates' distribution
// can be skewed enough to leave it out. The interval is then stretched to
// the value, so that a reader (and the gate) never sees a change outside
// its own interval; the stretch only ever widens, never narrows.
func newDelta(value float64, iv evaluate.Interval) Delta {
	if math.IsNaN(value) {
		return Delta{}
	}
	d := Delta{Value: &value}
	if !math.IsNaN(iv.Low) && !math.IsNaN(iv.High) {
		d.CI95 = &[2]float64{min(iv.Low, value), max(iv.High, value)}
	}
	return d
}

func changes(ds []evaluate.ImageDelta) []ImageChange {
	out := []ImageChange{}
	for _, d := range ds {
		out = append(out, ImageChange{Key: d.Key, LossDelta: number(d.LossDelta), MIoUDelta: number(d.MIoUDelta)})
	}
	return out
}
