// Package evaluate turns decoded images into per-image results and a
// mergeable dataset accumulator, by way of internal/lovasz. It is the glue
// between decoding and the math, with no Beam and no I/O, so that the
// pipeline's DoFns stay thin and the whole evaluation is testable in process.
package evaluate

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/segeval/segeval/internal/labelmap"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
)

// Mode is the kind of model being evaluated.
type Mode string

const (
	// Multiclass models output C >= 2 class scores per pixel; the loss is
	// the Lovász-Softmax.
	Multiclass Mode = "multiclass"
	// Binary models output one logit per pixel; the loss is the Lovász
	// hinge and IoU is over classes 0 and 1 from logit > 0.
	Binary Mode = "binary"
)

// Options are the evaluation settings shared by every image of a run. Fields
// are exported so that they travel inside Beam DoFns.
type Options struct {
	Mode Mode
	// Classes is the number of classes; 0 takes it from the first image's
	// probabilities. Images of one shard must agree; shards that disagree
	// fail when their accumulators merge.
	Classes   int
	ClassSet  lovasz.ClassSet
	Ignore    int
	HasIgnore bool
	// BinsPerOctave is the dataset histogram's resolution.
	BinsPerOctave int
	// ProbTolerance bounds how far stored probabilities may stray from
	// [0, 1] and from summing to 1 per pixel; 0 turns the check off.
	ProbTolerance float64
	// Bootstrap is the number of bootstrap replicates for confidence
	// intervals; 0 turns them off.
	Bootstrap int
	// SliceBy lists slicings over the samples' JSON metadata: each is one
	// field, or several crossed.
	SliceBy [][]string
	// LabelMap (a labelmap JSON object) remaps label values before
	// evaluation; ReduceZeroLabel does ADE20K's shift instead (0 becomes
	// the ignore value, v becomes v-1). PredMap remaps stored class maps.
	LabelMap        []byte
	ReduceZeroLabel bool
	PredMap         []byte
}

// Maps parses the options' label and prediction maps; nil where unset.
func (o Options) Maps() (labels, preds *labelmap.Map, err error) {
	switch {
	case o.ReduceZeroLabel && len(o.LabelMap) > 0:
		return nil, nil, errors.New("a label map and reduce_zero_label exclude each other")
	case o.ReduceZeroLabel && !o.HasIgnore:
		return nil, nil, errors.New("reduce_zero_label needs an ignore value")
	case o.ReduceZeroLabel:
		labels = labelmap.ReduceZeroLabel(int32(o.Ignore))
	case len(o.LabelMap) > 0:
		if labels, err = labelmap.Parse(o.LabelMap); err != nil {
			return nil, nil, fmt.Errorf("label map: %w", err)
		}
	}
	if len(o.PredMap) > 0 {
		if preds, err = labelmap.Parse(o.PredMap); err != nil {
			return nil, nil, fmt.Errorf("prediction map: %w", err)
		}
	}
	return labels, preds, nil
}

func (o Options) lovasz() lovasz.Options {
	return lovasz.Options{Classes: o.ClassSet, Ignore: o.Ignore, HasIgnore: o.HasIgnore}
}

// Result is the small per-image record that travels on after evaluation.
// Undefined values are NaN.
type Result struct {
	Key   string
	Shard string // the tar shard, or the prediction file of a paired sample
	// LabelFile is the label file of a paired sample, "" for tar shards.
	LabelFile string
	// Offset and Length locate the sample in its tar shard, and Generation
	// is the version of the shard it was read from, so that it can be read
	// again, exactly, without scanning the shard.
	Offset        int64
	Length        int64
	Generation    int64
	ValidPixels   int64
	Loss          float64 // Lovász-Softmax (or hinge in binary mode); NaN for argmax maps and images without valid pixels
	LossBound     float64
	MIoU          float64 // over classes with a non-empty union in this image
	PixelAccuracy float64
}

// Evaluator evaluates images one at a time and accumulates them. It reuses
// its buffers from image to image; use one per goroutine.
type Evaluator struct {
	opt      Options
	*buffers                   // taken on first use, handed back by Release
	counts   *lovasz.Counts    // this image's
	hist     *lovasz.Histogram // this image's, merged into acc once the image is accepted (but see flush)
	acc      *Accumulator
	flushErr error             // from flush, for Take
	slices   map[string]*Tally // by SliceKey

	maps              sync.Once
	labelMap, predMap *labelmap.Map
	mapsErr           error
}

// NewEvaluator returns an Evaluator with an empty accumulator.
func NewEvaluator(opt Options) *Evaluator {
	return &Evaluator{opt: opt}
}

// buffers are an Evaluator's buffers sized for the images it saw: scratch
// of the math, probabilities made from logits, a prediction map.
type buffers struct {
	ev    *lovasz.Evaluator
	fused *lovasz.Fused // made on first use
	probs []float32
	pred  []int32
}

// idleBuffers holds the buffers of released Evaluators for the next
// Evaluator of the process to use: a pipeline makes and releases an
// Evaluator's worth of work per bundle, and without reuse each bundle
// would allocate (and the kernel zero) a Cityscapes image's 8 MB buffers
// again. It holds at most one set per core, as many as can be in use.
var idleBuffers = make(chan *buffers, runtime.GOMAXPROCS(0))

// take gives e buffers, released ones when there are any.
func (e *Evaluator) take() {
	if e.buffers != nil {
		return
	}
	select {
	case e.buffers = <-idleBuffers:
	default:
		e.buffers = &buffers{ev: lovasz.NewEvaluator()}
	}
}

// Release hands the buffers sized for the images seen so far to the next
// Evaluator of the process that needs them, so that an idle Evaluator holds
// no image-sized memory. The errors they hold back for small float16 images
// go to the accumulator first (see flush). Slices returned by PredictionAt
// are invalid after.
func (e *Evaluator) Release() {
	if e.buffers == nil {
		return
	}
	e.flush()
	select {
	case idleBuffers <- e.buffers:
	default:
	}
	e.buffers = nil
}

// Take returns what has been accumulated since the last Take, for the whole
// and by slice; the accumulator is nil when no image was evaluated. The
// error is flush's, which a correct Evaluator never has: then nothing is
// returned, as the accumulator lacks some images' errors.
func (e *Evaluator) Take() (*Accumulator, map[string]*Tally, error) {
	e.flush()
	acc, slices, err := e.acc, e.slices, e.flushErr
	e.acc, e.slices, e.flushErr = nil, nil, nil
	if err != nil {
		return nil, nil, err
	}
	return acc, slices, nil
}

// flush adds to the accumulator the errors that the fused path holds back
// for small float16 images (see lovasz.Fused.Half), before the accumulator
// is handed out or the buffers holding them are. It keeps the first error,
// for Take: there can be none, as every image had the accumulator's
// number of classes (classesOf).
func (e *Evaluator) flush() {
	if e.buffers == nil || e.fused == nil || e.acc == nil {
		return
	}
	if err := e.fused.Flush(e.acc.Histogram); err != nil && e.flushErr == nil {
		e.flushErr = err
	}
}

// Evaluate scores one image, adds it to the accumulator and returns its
// result. Errors name the image; bad input wraps lovasz.ErrBadInput.
func (e *Evaluator) Evaluate(img *sample.Image, shard string) (Result, error) {
	res, err := e.evaluate(img, shard)
	if err != nil {
		return Result{}, fmt.Errorf("shard %s, sample %s: %w", shard, img.Key, err)
	}
	return res, nil
}

// remap applies the label and prediction maps to img in place.
func (e *Evaluator) remap(img *sample.Image) error {
	e.maps.Do(func() { e.labelMap, e.predMap, e.mapsErr = e.opt.Maps() })
	if e.mapsErr != nil {
		return e.mapsErr
	}
	if e.labelMap != nil {
		if err := e.labelMap.Apply(img.Labels); err != nil {
			return badInput("labels: %v", err)
		}
	}
	if e.predMap != nil && img.Prediction == sample.ArgmaxMap {
		if err := e.predMap.Apply(img.Pred); err != nil {
			return badInput("prediction: %v", err)
		}
	}
	return nil
}

func (e *Evaluator) evaluate(img *sample.Image, shard string) (Result, error) {
	e.take()
	if err := e.remap(img); err != nil {
		return Result{}, err
	}
	classes, err := e.classesOf(img)
	if err != nil {
		return Result{}, err
	}
	if e.opt.HasIgnore && e.opt.Ignore >= 0 && e.opt.Ignore < classes {
		return Result{}, badInput("the ignore index %d is a class id of this %d-class prediction", e.opt.Ignore, classes)
	}
	if e.acc == nil {
		if e.acc, err = NewAccumulator(classes, e.opt.BinsPerOctave, e.opt.Bootstrap); err != nil {
			return Result{}, err
		}
	}
	if e.counts == nil || e.counts.Classes != classes {
		e.counts = lovasz.NewCounts(classes)
		if e.hist, err = lovasz.NewHistogram(classes, e.opt.BinsPerOctave); err != nil {
			return Result{}, err
		}
	}
	e.counts.Reset()
	e.hist.Reset()
	res := Result{Key: img.Key, Shard: shard, Loss: math.NaN(), LossBound: math.NaN()}
	opt := e.opt.lovasz()
	h, w := img.Height, img.Width
	var perClass []float64

	switch {
	case e.opt.Mode == Binary:
		loss, err := e.ev.LovaszHinge(img.Scores, img.Labels, h, w, opt)
		if err != nil {
			return Result{}, err
		}
		res.ValidPixels = loss.ValidPixels
		if loss.ValidPixels > 0 {
			res.Loss, res.LossBound = loss.Loss, 0
		}
		e.pred = lovasz.BinaryPrediction(img.Scores, e.pred)
		if err := lovasz.CountPredictions(e.pred, img.Labels, h, w, opt, e.counts); err != nil {
			return Result{}, err
		}
	case img.Prediction == sample.ArgmaxMap:
		if err := lovasz.CountPredictions(img.Pred, img.Labels, h, w, opt, e.counts); err != nil {
			return Result{}, err
		}
		res.ValidPixels = e.counts.ValidPixels()
	default:
		loss, err := e.softmaxLoss(img, classes, opt)
		if err != nil {
			return Result{}, err
		}
		res.ValidPixels = loss.ValidPixels
		if loss.ValidPixels > 0 {
			res.Loss, res.LossBound = loss.Loss, loss.Bound
			perClass = loss.PerClass
		}
	}
	res.MIoU = e.counts.MeanIoU()
	res.PixelAccuracy = e.counts.PixelAccuracy()
	// From here on the image is accepted: a small float16 image's errors
	// are already held back for the accumulator (see flush), and the
	// additions below fail only for another number of classes, which
	// classesOf rejected.
	if err := e.acc.Tally.add(res, perClass, e.counts); err != nil {
		return Result{}, err
	}
	if err := e.acc.Histogram.Merge(e.hist); err != nil {
		return Result{}, err
	}
	e.acc.Bootstrap.add(img.Key, res.Loss, e.counts)
	for _, fields := range e.opt.SliceBy {
		key := SliceKey(fields, img.Meta)
		if e.slices == nil {
			e.slices = map[string]*Tally{}
		}
		if e.slices[key] == nil {
			e.slices[key] = NewTally(classes)
		}
		if err := e.slices[key].add(res, perClass, e.counts); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// PredictionAt returns the classes an image's metrics are computed from
// (the argmax of its scores, the stored map, or logit > 0 in binary mode)
// at the listed pixel indices (row*Width + column), pred[k] at pixels[k],
// and the number of classes. Only the listed pixels' scores are read: a
// report thumbnail shows about one pixel in 64 of a Cityscapes image. A NaN
// score is an error only at a listed pixel. The slice is valid until the
// Evaluator's next call.
//
// It applies the label and prediction maps to img first, as Evaluate does.
func (e *Evaluator) PredictionAt(img *sample.Image, pixels []int) (pred []int32, classes int, err error) {
	e.take()
	if err = e.remap(img); err != nil {
		return nil, 0, err
	}
	if classes, err = e.classesOf(img); err != nil {
		return nil, 0, err
	}
	switch {
	case e.opt.Mode == Binary:
		e.pred, err = lovasz.BinaryPredictionAt(img.Scores, pixels, e.pred)
	case img.Prediction == sample.ArgmaxMap:
		e.pred = slices.Grow(e.pred[:0], len(pixels))
		for _, i := range pixels {
			if i < 0 || i >= len(img.Pred) {
				return nil, 0, fmt.Errorf("pixel index %d is outside the %dx%d class map", i, img.Height, img.Width)
			}
			e.pred = append(e.pred, img.Pred[i])
		}
	case img.Half != nil:
		e.pred, err = lovasz.ArgmaxHalfAt(img.Half, classes, img.Width, pixels, e.pred)
	default:
		e.pred, err = lovasz.ArgmaxAt(img.Scores, classes, img.Width, pixels, e.pred)
	}
	if err != nil {
		return nil, 0, err
	}
	return e.pred, classes, nil
}

// softmaxLoss checks img's probabilities, or makes them from its logits,
// adds the confusion of its argmax to e.counts and its errors to e.hist, and
// returns its Lovász-Softmax loss, by way of lovasz.Fused: one blocked pass
// for the check (or softmax), the argmax and the confusion, and for float16
// bits an exact loss without a float32 copy. The argmax of logits is taken
// on the logits, as numpy's, not on probabilities rounded to float32, where
// two classes can tie.
func (e *Evaluator) softmaxLoss(img *sample.Image, classes int, opt lovasz.Options) (loss lovasz.ImageLoss, err error) {
	h, w := img.Height, img.Width
	if e.fused == nil {
		e.fused = lovasz.NewFused()
	}
	switch {
	case img.Prediction == sample.Logits:
		loss, e.probs, err = e.fused.Logits(img.Scores, img.Labels, classes, h, w, opt, e.hist, e.counts, e.probs)
		return loss, err
	case img.Half != nil:
		return e.fused.Half(img.Half, img.Labels, classes, h, w, opt, e.opt.ProbTolerance, e.hist, e.counts)
	}
	return e.fused.Probs(img.Scores, img.Labels, classes, h, w, opt, e.opt.ProbTolerance, e.hist, e.counts)
}

// classesOf checks the image's prediction against the mode and the
// configured number of classes, and returns the number of classes.
func (e *Evaluator) classesOf(img *sample.Image) (int, error) {
	if e.opt.Mode == Binary {
		if img.Prediction != sample.Logits || img.Classes != 1 {
			return 0, badInput("binary mode needs logits of shape [H,W] or [1,H,W], got %s", describe(img))
		}
		return 2, nil
	}
	if img.Prediction == sample.ArgmaxMap {
		if e.opt.Classes == 0 {
			return 0, badInput("the prediction is a class map, which does not say how many classes there are: the number must be given")
		}
		return e.opt.Classes, nil
	}
	if img.Classes < 2 {
		return 0, badInput("multiclass mode needs at least 2 classes of scores, got %s (a binary model has one logit per pixel)", describe(img))
	}
	want := e.opt.Classes
	if want == 0 && e.acc != nil {
		want = e.acc.Classes()
	}
	if want != 0 && img.Classes != want {
		return 0, badInput("the prediction has %d classes, expected %d", img.Classes, want)
	}
	return img.Classes, nil
}

func describe(img *sample.Image) string {
	switch img.Prediction {
	case sample.ArgmaxMap:
		return "a class map"
	case sample.Logits:
		return fmt.Sprintf("%d-class logits", img.Classes)
	}
	return fmt.Sprintf("%d-class probabilities", img.Classes)
}

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", lovasz.ErrBadInput, fmt.Sprintf(format, args...))
}

// IsBadInput reports whether err is about the input data rather than the
// system: a defect in a sample, not a failure to retry.
func IsBadInput(err error) bool {
	var se *sample.Error
	var he *shard.Error
	return errors.Is(err, lovasz.ErrBadInput) || errors.As(err, &se) || errors.As(err, &he)
}
