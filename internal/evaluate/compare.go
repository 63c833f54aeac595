package evaluate

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/segeval/segeval/internal/exact"
)

// ImageDelta is the change of one image between a baseline run and a
// candidate run that both evaluated it: candidate minus baseline, of its
// per-image loss and of its per-image mIoU, NaN where either run has no
// value (an image without valid pixels, argmax-map predictions without a
// loss).
type ImageDelta struct {
	Key       string
	LossDelta float64
	MIoUDelta float64
}

// PairedRuns accumulates the join of two runs' per-image rows by key, the
// candidate's (this run's) and a baseline's: how many images are in both
// and in one only, the mean over the images in both of the per-image loss
// difference with its Poisson bootstrap replicates, and the images that
// changed most. It merges like the other accumulators, in any order, to
// the same value bit for bit: counts are integers, sums exact.Sums, and the
// lists keep the first K under a total order.
//
// Replicate r of the mean loss difference weighs each image in both runs
// by Weight(key, r), the weight the image has in replicate r of either
// run's Bootstrap: it is the paired bootstrap of a mean of per-image
// differences, over exactly the images the mean is over. Images in one run
// only take no part in it.
//
// Fields are exported because Beam encodes combine accumulators with a
// schema coder that drops unexported fields.
type PairedRuns struct {
	Replicates int
	// K is the number of images each list keeps.
	K                           int
	Paired                      int64
	OnlyCandidate, OnlyBaseline int64
	LossImages                  int64 // paired images with a loss in both runs
	LossDeltaSum                exact.Sum
	ReplicateLossDelta          []exact.Sum // weighted sums of loss differences, per replicate
	ReplicateWeight             []int64     // their weights
	LossUp, LossDown            []ImageDelta
	MIoUDown, MIoUUp            []ImageDelta
}

// NewPairedRuns returns an empty join of replicates bootstrap replicates,
// keeping the k images that changed most by each measure and direction.
func NewPairedRuns(replicates, k int) *PairedRuns {
	return &PairedRuns{
		Replicates: replicates, K: k,
		ReplicateLossDelta: make([]exact.Sum, replicates), ReplicateWeight: make([]int64, replicates),
	}
}

// AddOnly counts an image that only one run evaluated.
func (p *PairedRuns) AddOnly(candidate bool) {
	if candidate {
		p.OnlyCandidate++
	} else {
		p.OnlyBaseline++
	}
}

// AddPaired adds an image both runs evaluated, with its per-image loss and
// mIoU in each (NaN where undefined).
func (p *PairedRuns) AddPaired(key string, candLoss, baseLoss, candMIoU, baseMIoU float64) {
	p.Paired++
	d := ImageDelta{Key: key, LossDelta: candLoss - baseLoss, MIoUDelta: candMIoU - baseMIoU}
	if !math.IsNaN(d.LossDelta) {
		p.LossImages++
		p.LossDeltaSum.Add(d.LossDelta)
		h := keyHash(key)
		for r := range p.Replicates {
			if w := weightOf(h, r); w > 0 {
				p.ReplicateLossDelta[r].Add(float64(w) * d.LossDelta)
				p.ReplicateWeight[r] += w
			}
		}
		if d.LossDelta > 0 {
			p.LossUp = keepFirst(p.LossUp, []ImageDelta{d}, p.K, lossUp)
		} else if d.LossDelta < 0 {
			p.LossDown = keepFirst(p.LossDown, []ImageDelta{d}, p.K, lossDown)
		}
	}
	if d.MIoUDelta < 0 {
		p.MIoUDown = keepFirst(p.MIoUDown, []ImageDelta{d}, p.K, miouDown)
	} else if d.MIoUDelta > 0 {
		p.MIoUUp = keepFirst(p.MIoUUp, []ImageDelta{d}, p.K, miouUp)
	}
}

// Merge adds o into p; both must have the same replicates and K.
func (p *PairedRuns) Merge(o *PairedRuns) error {
	if p.Replicates != o.Replicates || p.K != o.K ||
		len(p.ReplicateLossDelta) != p.Replicates || len(o.ReplicateLossDelta) != o.Replicates ||
		len(p.ReplicateWeight) != p.Replicates || len(o.ReplicateWeight) != o.Replicates {
		return fmt.Errorf("cannot merge paired runs of %d and %d replicates, %d and %d images kept",
			p.Replicates, o.Replicates, p.K, o.K)
	}
	p.Paired += o.Paired
	p.OnlyCandidate += o.OnlyCandidate
	p.OnlyBaseline += o.OnlyBaseline
	p.LossImages += o.LossImages
	p.LossDeltaSum.Merge(o.LossDeltaSum)
	for r := range p.ReplicateLossDelta {
		p.ReplicateLossDelta[r].Merge(o.ReplicateLossDelta[r])
		p.ReplicateWeight[r] += o.ReplicateWeight[r]
	}
	p.LossUp = keepFirst(p.LossUp, o.LossUp, p.K, lossUp)
	p.LossDown = keepFirst(p.LossDown, o.LossDown, p.K, lossDown)
	p.MIoUDown = keepFirst(p.MIoUDown, o.MIoUDown, p.K, miouDown)
	p.MIoUUp = keepFirst(p.MIoUUp, o.MIoUUp, p.K, miouUp)
	return nil
}

// LossDelta returns the mean over the paired images with a loss in both
// runs of the candidate's minus the baseline's per-image loss (NaN when
// there is none), and the percentile interval of its bootstrap replicates
// at the given level (NaN bounds without replicates).
func (p *PairedRuns) LossDelta(level float64) (float64, Interval) {
	if p.LossImages == 0 {
		return math.NaN(), Interval{math.NaN(), math.NaN()}
	}
	mean := p.LossDeltaSum.Float64() / float64(p.LossImages)
	reps := make([]float64, 0, len(p.ReplicateWeight))
	for r, w := range p.ReplicateWeight {
		if w > 0 {
			reps = append(reps, p.ReplicateLossDelta[r].Float64()/float64(w))
		}
	}
	return mean, percentiles(reps, level)
}

// MostRegressed returns the images whose loss rose most and those whose
// mIoU fell most (at most K of each, each image once), ordered by loss
// rise, largest first, then, for images without a loss difference, by mIoU
// fall.
func (p *PairedRuns) MostRegressed() []ImageDelta {
	return union(p.LossUp, p.MIoUDown, func(a, b ImageDelta) int {
		return byDelta(a, b, func(d ImageDelta) float64 { return -d.LossDelta }, func(d ImageDelta) float64 { return d.MIoUDelta })
	})
}

// MostImproved returns the images whose loss fell most and those whose mIoU
// rose most, ordered as MostRegressed but the other way.
func (p *PairedRuns) MostImproved() []ImageDelta {
	return union(p.LossDown, p.MIoUUp, func(a, b ImageDelta) int {
		return byDelta(a, b, func(d ImageDelta) float64 { return d.LossDelta }, func(d ImageDelta) float64 { return -d.MIoUDelta })
	})
}

// union merges two lists, each image once, in the given order.
func union(a, b []ImageDelta, order func(a, b ImageDelta) int) []ImageDelta {
	out := slices.Clone(a)
	for _, d := range b {
		if !slices.ContainsFunc(out, func(o ImageDelta) bool { return o.Key == d.Key }) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, order)
	return out
}

// byDelta orders by first (ascending, NaN last), then by second (likewise),
// then by key.
func byDelta(a, b ImageDelta, first, second func(ImageDelta) float64) int {
	for _, f := range []func(ImageDelta) float64{first, second} {
		x, y := f(a), f(b)
		switch {
		case math.IsNaN(x) && math.IsNaN(y):
		case math.IsNaN(x):
			return 1
		case math.IsNaN(y):
			return -1
		case x != y:
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(a.Key, b.Key)
}

// The orders of the four lists: the largest change first, ties to the
// smaller key, so that the images kept do not depend on the merge order.
func lossUp(a, b ImageDelta) int   { return cmpThenKey(b.LossDelta, a.LossDelta, a, b) }
func lossDown(a, b ImageDelta) int { return cmpThenKey(a.LossDelta, b.LossDelta, a, b) }
func miouDown(a, b ImageDelta) int { return cmpThenKey(a.MIoUDelta, b.MIoUDelta, a, b) }
func miouUp(a, b ImageDelta) int   { return cmpThenKey(b.MIoUDelta, a.MIoUDelta, a, b) }

func cmpThenKey(x, y float64, a, b ImageDelta) int {
	if c := cmp.Compare(x, y); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

// keepFirst returns the first k of list and more under order. list is
// reused.
func keepFirst(list, more []ImageDelta, k int, order func(a, b ImageDelta) int) []ImageDelta {
	if k <= 0 {
		return nil
	}
	list = append(list, more...)
	slices.SortFunc(list, order)
	return slices.Clip(list[:min(k, len(list))])
}
