package lovasz

import (
	"fmt"
	"math"
)

// Counts is the confusion of predicted against true classes over valid
// pixels, the source of every IoU-style metric. Counts of disjoint pixel sets
// merge by addition. Fields are exported so that Counts can travel in a Beam
// accumulator; use NewCounts to make one.
type Counts struct {
	Classes int
	// Confusion[t*Classes+p] counts valid pixels labeled t and predicted p.
	Confusion []int64
	// UnknownPred[t] counts valid pixels labeled t whose prediction lies
	// outside [0, Classes): they count toward the label total only.
	UnknownPred []int64
}

// NewCounts returns zero counts for the given number of classes.
func NewCounts(classes int) *Counts {
	return &Counts{Classes: classes, Confusion: make([]int64, classes*classes), UnknownPred: make([]int64, classes)}
}

// Reset sets every count to zero.
func (c *Counts) Reset() {
	clear(c.Confusion)
	clear(c.UnknownPred)
}

// ValidPixels is the number of pixels counted.
func (c *Counts) ValidPixels() int64 {
	var n int64
	for _, v := range c.Confusion {
		n += v
	}
	for _, v := range c.UnknownPred {
		n += v
	}
	return n
}

// Merge adds o into c.
func (c *Counts) Merge(o *Counts) error {
	if c.Classes != o.Classes {
		return fmt.Errorf("cannot merge counts of %d and %d classes", c.Classes, o.Classes)
	}
	for i, v := range o.Confusion {
		c.Confusion[i] += v
	}
	for i, v := range o.UnknownPred {
		c.UnknownPred[i] += v
	}
	return nil
}

// CountArgmax adds to dst the confusion of labels against the argmax of
// scores[c*P+i] (probabilities or logits: the argmax is the same). Ties go to
// the lowest class index, as in numpy and torch.
func (ev *Evaluator) CountArgmax(scores []float32, labels []int32, height, width int, opt Options, dst *Counts) error {
	if err := checkShape(scores, labels, dst.Classes, height, width); err != nil {
		return err
	}
	pred, err := ev.Argmax(scores, dst.Classes, width)
	if err != nil {
		return err
	}
	return countPairs(pred, labels, width, opt, dst)
}

// Argmax returns the class of the highest score at every pixel of
// scores[c*P+i], ties to the lowest class index. The slice is valid until the
// Evaluator's next call.
func (ev *Evaluator) Argmax(scores []float32, classes, width int) ([]int32, error) {
	if classes < 1 || len(scores)%classes != 0 {
		return nil, badInput("%d scores do not split into %d classes", len(scores), classes)
	}
	p := len(scores) / classes
	ev.best = resize(ev.best, p)
	ev.arg = resize(ev.arg, p)
	copy(ev.best, scores[:p])
	clear(ev.arg)
	nan := hasNaN(scores[:p])
	for c := 1; c < classes; c++ {
		nan = argmaxInto(ev.best, ev.arg, scores[c*p:(c+1)*p], int32(c)) || nan
	}
	if nan {
		for i, v := range scores {
			if v != v {
				return nil, badInput("score NaN of class %d at pixel %s", i/p, pixelAt(i%p, width))
			}
		}
	}
	return ev.arg, nil
}

// argmaxInto updates the running argmax with class c's plane and reports
// whether the plane holds a NaN, which never wins a comparison and so would
// otherwise go unnoticed.
func argmaxInto(best []float32, arg []int32, plane []float32, c int32) (nan bool) {
	for i, x := range plane {
		nan = nan || x != x
		if x > best[i] {
			best[i] = x
			arg[i] = c
		}
	}
	return nan
}

func hasNaN(plane []float32) bool {
	for _, x := range plane {
		if x != x {
			return true
		}
	}
	return false
}

// CountPredictions adds to dst the confusion of labels against a stored class
// map pred[i]. Predicted values outside [0, Classes) are counted as wrong.
func CountPredictions(pred, labels []int32, height, width int, opt Options, dst *Counts) error {
	if height <= 0 || width <= 0 || len(labels) != height*width || len(pred) != height*width {
		return badInput("prediction holds %d values and labels %d, want %d (%dx%d)", len(pred), len(labels), height*width, height, width)
	}
	return countPairs(pred, labels, width, opt, dst)
}

func countPairs(pred, labels []int32, width int, opt Options, dst *Counts) error {
	classes := dst.Classes
	for i, l := range labels {
		if opt.HasIgnore && int(l) == opt.Ignore {
			continue
		}
		if l < 0 || int(l) >= classes {
			return badInput("label %d at pixel %s is outside [0, %d) and is not the ignore value%s", l, pixelAt(i, width), classes, ignoreNote(opt))
		}
		p := pred[i]
		if p < 0 || int(p) >= classes {
			dst.UnknownPred[l]++
			continue
		}
		dst.Confusion[int(l)*classes+int(p)]++
	}
	return nil
}

// ClassStats are the IoU-style statistics of one class. Ratios are NaN when
// their denominator is zero: undefined, never 0 or 1.
type ClassStats struct {
	Intersection, Union, LabelPixels, PredPixels int64
	IoU, Accuracy, Dice                          float64
}

// Metrics are the dataset-level segmentation metrics of a Counts, with the
// definitions of mmsegmentation and cityscapesScripts: counts are summed over
// images first, then divided. Means skip undefined (NaN) classes; a mean over
// no class is NaN.
type Metrics struct {
	ValidPixels          int64
	MIoU                 float64
	PixelAccuracy        float64
	MeanAccuracy         float64
	MeanDice             float64
	FrequencyWeightedIoU float64
	Classes              []ClassStats
}

// Class returns the statistics of class t.
func (c *Counts) Class(t int) ClassStats {
	var s ClassStats
	s.Intersection = c.Confusion[t*c.Classes+t]
	s.LabelPixels = c.UnknownPred[t]
	for p := range c.Classes {
		s.LabelPixels += c.Confusion[t*c.Classes+p]
		s.PredPixels += c.Confusion[p*c.Classes+t]
	}
	s.Union = s.LabelPixels + s.PredPixels - s.Intersection
	s.IoU = ratio(s.Intersection, s.Union)
	s.Accuracy = ratio(s.Intersection, s.LabelPixels)
	s.Dice = ratio(2*s.Intersection, s.LabelPixels+s.PredPixels)
	return s
}

// MeanIoU is the mean IoU over classes with a non-empty union, NaN when there
// is none. On one image's counts it is that image's mIoU.
func (c *Counts) MeanIoU() float64 {
	var m mean
	for t := range c.Classes {
		m.add(c.Class(t).IoU)
	}
	return m.value()
}

// PixelAccuracy is the fraction of valid pixels predicted right, NaN without
// valid pixels.
func (c *Counts) PixelAccuracy() float64 {
	var right, all int64
	for t := range c.Classes {
		s := c.Class(t)
		right += s.Intersection
		all += s.LabelPixels
	}
	return ratio(right, all)
}

// Metrics computes every dataset-level metric.
func (c *Counts) Metrics() Metrics {
	m := Metrics{Classes: make([]ClassStats, c.Classes)}
	var iou, acc, dice mean
	var right int64
	for t := range c.Classes {
		s := c.Class(t)
		m.Classes[t] = s
		m.ValidPixels += s.LabelPixels
		right += s.Intersection
		iou.add(s.IoU)
		acc.add(s.Accuracy)
		dice.add(s.Dice)
	}
	m.MIoU, m.MeanAccuracy, m.MeanDice = iou.value(), acc.value(), dice.value()
	m.PixelAccuracy = ratio(right, m.ValidPixels)
	m.FrequencyWeightedIoU = math.NaN()
	if m.ValidPixels > 0 {
		m.FrequencyWeightedIoU = 0
		for _, s := range m.Classes {
			if !math.IsNaN(s.IoU) {
				m.FrequencyWeightedIoU += float64(s.LabelPixels) / float64(m.ValidPixels) * s.IoU
			}
		}
	}
	return m
}

func ratio(num, den int64) float64 {
	if den == 0 {
		return math.NaN()
	}
	return float64(num) / float64(den)
}

// mean averages the values that are not NaN.
type mean struct {
	sum float64
	n   int
}

func (m *mean) add(v float64) {
	if !math.IsNaN(v) {
		m.sum += v
		m.n++
	}
}

func (m *mean) value() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.sum / float64(m.n)
}
