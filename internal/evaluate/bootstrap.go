package evaluate

import (
	"errors"
	"fmt"
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
//
// Since an image's weights depend on its key and the replicate alone, two
// runs that evaluated the same image gave it the same weight in each
// replicate: the difference of their replicates, replicate by replicate,
// is the paired bootstrap of the difference of their statistics
// (PairedDeltas). A run keeps its replicates beside metrics.json
// (MarshalSidecar) for the runs that will be compared with it.
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

// WeightScheme names the function of key and replicate that draws the
// bootstrap weights (FNV-1a of the key, mixed with the replicate by
// splitmix64, through the Poisson(1) quantiles). It is recorded in the
// replicates sidecar, because two runs' replicates pair only when their
// weights were drawn by the same function; changing weight means a new
// scheme number.
const WeightScheme = 1

// weight is the Poisson(1) weight of image key in replicate r.
func weight(key string, r int) int64 { return weightOf(keyHash(key), r) }

// Weight is the Poisson(1) weight of image key in replicate r: the same in
// every run, which is what pairs two runs' replicates over their common
// images.
func Weight(key string, r int) int64 { return weight(key, r) }

// keyHash is the part of an image's weights that depends on its key alone,
// computed once per image rather than once per replicate.
func keyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// weightOf is the weight in replicate r of the image whose key hashes to h.
func weightOf(h uint64, r int) int64 {
	x := h ^ uint64(r+1)*0x9e3779b97f4a7c15
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
	h := keyHash(key)
	for r := range b.Replicates {
		w := weightOf(h, r)
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
	row := make([]float64, c)
	for r := range b.Replicates {
		m, l := b.replicate(r, row)
		for t, iou := range row {
			if !math.IsNaN(iou) {
				classIoU[t] = append(classIoU[t], iou)
			}
		}
		if !math.IsNaN(m) {
			miou = append(miou, m)
		}
		if !math.IsNaN(l) {
			loss = append(loss, l)
		}
	}
	iv := Intervals{MIoU: percentiles(miou, level), PerImageLoss: percentiles(loss, level), ClassIoU: make([]Interval, c)}
	for t := range c {
		iv.ClassIoU[t] = percentiles(classIoU[t], level)
	}
	return iv
}

// replicate computes replicate r's statistics: each class's IoU into
// classIoU (of length Classes; NaN where the class's weighted union is
// empty), and returns its mIoU (over the classes with a union) and its
// per-image loss mean, NaN when undefined.
func (b *Bootstrap) replicate(r int, classIoU []float64) (miou, loss float64) {
	c := b.Classes
	row := b.Class[r*c*3 : (r+1)*c*3]
	var sum float64
	var n int
	for t := range c {
		inter, union := row[3*t], row[3*t+1]+row[3*t+2]-row[3*t]
		classIoU[t] = math.NaN()
		if union > 0 {
			classIoU[t] = float64(inter) / float64(union)
			sum += classIoU[t]
			n++
		}
	}
	miou, loss = math.NaN(), math.NaN()
	if n > 0 {
		miou = sum / float64(n)
	}
	if b.LossWeight[r] > 0 {
		loss = b.LossSum[r].Float64() / float64(b.LossWeight[r])
	}
	return miou, loss
}

// DeltaIntervals are percentile intervals of the differences, candidate
// minus baseline, of two runs' statistics.
type DeltaIntervals struct {
	// Replicates is the number of replicates the two runs share.
	Replicates         int
	MIoU, PerImageLoss Interval
	ClassIoU           []Interval
}

// PairedDeltas returns the paired bootstrap intervals of the candidate's
// minus the baseline's mIoU, per-image loss mean and per-class IoU, at the
// given level: replicate r of the difference is the candidate's replicate r
// minus the baseline's replicate r, over the replicates both runs have.
//
// Both runs weigh an image by Weight(key, r), so an image evaluated in
// both enters replicate r of each with the same weight: its resampling is
// shared, and what the two runs have in common cancels in the difference
// (the paired bootstrap). An image in one run only enters its run's
// replicates alone, independently of the other run's images, so the
// intervals are those of the difference of the two runs' full-dataset
// statistics over the union of their images: exactly the paired interval
// when both runs saw the same images, and one that also carries the
// sampling noise of the images that differ when they did not. A replicate
// where either side is undefined (no class with a union, no loss) is left
// out of that statistic's interval.
func PairedDeltas(cand, base *Bootstrap, level float64) (DeltaIntervals, error) {
	if cand.Classes != base.Classes {
		return DeltaIntervals{}, errors.New("cannot pair bootstrap replicates of different numbers of classes")
	}
	c, n := cand.Classes, min(cand.Replicates, base.Replicates)
	if err := errors.Join(cand.checkShape(), base.checkShape()); err != nil {
		return DeltaIntervals{}, err
	}
	miou := make([]float64, 0, n)
	loss := make([]float64, 0, n)
	classIoU := make([][]float64, c)
	rowC, rowB := make([]float64, c), make([]float64, c)
	for r := range n {
		mc, lc := cand.replicate(r, rowC)
		mb, lb := base.replicate(r, rowB)
		for t := range c {
			if d := rowC[t] - rowB[t]; !math.IsNaN(d) {
				classIoU[t] = append(classIoU[t], d)
			}
		}
		if d := mc - mb; !math.IsNaN(d) {
			miou = append(miou, d)
		}
		if d := lc - lb; !math.IsNaN(d) {
			loss = append(loss, d)
		}
	}
	iv := DeltaIntervals{Replicates: n, MIoU: percentiles(miou, level), PerImageLoss: percentiles(loss, level), ClassIoU: make([]Interval, c)}
	for t := range c {
		iv.ClassIoU[t] = percentiles(classIoU[t], level)
	}
	return iv, nil
}

// checkShape reports slices whose lengths do not match Replicates and
// Classes.
func (b *Bootstrap) checkShape() error {
	if b.Replicates < 0 || b.Classes < 0 {
		return fmt.Errorf("bootstrap of %d replicates and %d classes", b.Replicates, b.Classes)
	}
	return errors.Join(wantLen("bootstrap Class", b.Class, b.Replicates*b.Classes*3),
		wantLen("bootstrap LossSum", b.LossSum, b.Replicates), wantLen("bootstrap LossWeight", b.LossWeight, b.Replicates))
}

// Percentiles returns the central interval holding the given fraction of
// values (0.95 for 95%), interpolating between order statistics, as the
// bootstrap intervals are computed; NaN bounds when values is empty. It
// sorts values.
func Percentiles(values []float64, level float64) Interval { return percentiles(values, level) }

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
