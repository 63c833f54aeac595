package evaluate

import (
	"errors"
	"hash/fnv"
	"math"
	"slices"

	"github.com/segeval/segeval/internal/exact"
	"github.com/segeval/segeval/internal/lovasz"
)

// Bootstrap holds Poisson bootstrap replicates of the dataset statistics,
// built in the same single pass as everything else: each image enters
// replicate r with a weight drawn from Poisson(1), deterministically from a
// hash of its key and r, so that every runner, retry and merge order gives
// the same replicates. A replicate keeps, per class, the weighted
// intersection, label and prediction counts, plus the weighted loss sum:
// enough for intervals on mIoU, per-class IoU and the per-image loss mean.
// Weights are integers, so weighted counts are integers too, and the loss
// sums are exact.Sums: replicates merged in any order are the same bit for
// bit.
type Bootstrap struct {
	Replicates int
	Classes    int
	// Class[(r*Classes+c)*3 + k] for k = 0, 1, 2: intersection, label and
	// prediction pixels of class c in replicate r, weighted.
	Class []int64
	// LossSum[r] and LossWeight[r]: weighted per-image losses and the
	// weights of images with a loss.
	LossSum    []exact.Sum
	LossWeight []int64
}

func newBootstrap(classes, replicates int) Bootstrap {
	return Bootstrap{
		Replicates: replicates,
		Classes:    classes,
		Class:      make([]int64, replicates*classes*3),
		LossSum:    make([]exact.Sum, replicates),
		LossWeight: make([]int64, replicates),
	}
}

// poissonCDF[k] is P(X <= k) for X ~ Poisson(1), up to k = 9, beyond which
// the probability is below 1e-7.
var poissonCDF = func() []float64 {
	cdf := make([]float64, 10)
	p, sum := math.Exp(-1), 0.0
	for k := range cdf {
		sum += p
		cdf[k] = sum
		p /= float64(k + 1)
	}
	return cdf
}()

// weight is the Poisson(1) weight of image key in replicate r.
func weight(key string, r int) int64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64() ^ uint64(r+1)*0x9e3779b97f4a7c15
	// splitmix64 finalizer: fnv's low bits alone are poorly mixed.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	u := float64(x>>11) / (1 << 53)
	k, _ := slices.BinarySearch(poissonCDF, u)
	return int64(k)
}

// add enters one image with its per-image counts.
func (b *Bootstrap) add(key string, loss float64, counts *lovasz.Counts) {
	if b.Replicates == 0 {
		return
	}
	c := b.Classes
	var inter, label, pred []int64
	for r := range b.Replicates {
		w := weight(key, r)
		if w == 0 {
			continue
		}
		if inter == nil {
			inter, label, pred = make([]int64, c), make([]int64, c), make([]int64, c)
			for t := range c {
				s := counts.Class(t)
				inter[t], label[t], pred[t] = s.Intersection, s.LabelPixels, s.PredPixels
			}
		}
		row := b.Class[r*c*3 : (r+1)*c*3]
		for t := range c {
			row[3*t] += w * inter[t]
			row[3*t+1] += w * label[t]
			row[3*t+2] += w * pred[t]
		}
		if !math.IsNaN(loss) {
			b.LossSum[r].Add(float64(w) * loss)
			b.LossWeight[r] += w
		}
	}
}

func (b *Bootstrap) merge(o *Bootstrap) error {
	if b.Replicates != o.Replicates || b.Classes != o.Classes {
		return errors.New("cannot merge bootstrap replicates of different shapes")
	}
	for i, v := range o.Class {
		b.Class[i] += v
	}
	for r := range b.LossSum {
		b.LossSum[r].Merge(o.LossSum[r])
		b.LossWeight[r] += o.LossWeight[r]
	}
	return nil
}

// Interval is a two-sided percentile interval; NaN bounds are undefined.
type Interval struct{ Low, High float64 }

// Intervals are the bootstrap percentile intervals at one confidence level.
type Intervals struct {
	MIoU, PerImageLoss Interval
	ClassIoU           []Interval
}

// Intervals returns percentile intervals at the given level (0.95 for 95%).
func (b *Bootstrap) Intervals(level float64) Intervals {
	c := b.Classes
	miou := make([]float64, 0, b.Replicates)
	loss := make([]float64, 0, b.Replicates)
	classIoU := make([][]float64, c)
	for r := range b.Replicates {
		row := b.Class[r*c*3 : (r+1)*c*3]
		var sum float64
		var n int
		for t := range c {
			inter, union := row[3*t], row[3*t+1]+row[3*t+2]-row[3*t]
			if union > 0 {
				iou := float64(inter) / float64(union)
				classIoU[t] = append(classIoU[t], iou)
				sum += iou
				n++
			}
		}
		if n > 0 {
			miou = append(miou, sum/float64(n))
		}
		if b.LossWeight[r] > 0 {
			loss = append(loss, b.LossSum[r].Float64()/float64(b.LossWeight[r]))
		}
	}
	iv := Intervals{MIoU: percentiles(miou, level), PerImageLoss: percentiles(loss, level), ClassIoU: make([]Interval, c)}
	for t := range c {
		iv.ClassIoU[t] = percentiles(classIoU[t], level)
	}
	return iv
}

// percentiles returns the central interval holding the given fraction of
// values, interpolating between order statistics.
func percentiles(values []float64, level float64) Interval {
	if len(values) == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	slices.Sort(values)
	at := func(q float64) float64 {
		pos := q * float64(len(values)-1)
		i := int(pos)
		if i+1 >= len(values) {
			return values[len(values)-1]
		}
		return values[i] + (pos-float64(i))*(values[i+1]-values[i])
	}
	return Interval{at((1 - level) / 2), at((1 + level) / 2)}
}
