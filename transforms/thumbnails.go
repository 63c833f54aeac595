package transforms

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/report"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	beam.RegisterFunction(worstRefs)
	beam.RegisterType(reflect.TypeOf((*thumbnailFn)(nil)).Elem())
	register.Emitter1[results.ImageRef]()
	register.Emitter1[Thumbnail]()
	register.Iter1[Thumbnail]()
}

// thumbnailSide is the longer side of a report thumbnail, in pixels.
const thumbnailSide = 256

// Thumbnail is a worst image's panels, PNG files for the report (see
// report.NewThumbnail): its input picture when the sample has one, its
// label and prediction (over the picture) and its error map. Note says
// why a sample's input image is not shown.
type Thumbnail struct {
	Key        string
	Image      []byte // PNG, nil without an input image
	Label      []byte // PNG
	Prediction []byte // PNG
	Errors     []byte // PNG
	Note       string
}

// Thumbnails renders the panels of the worst images (the
// single []evaluate.Result values of WorstImages). Only those few samples
// are read again, by their byte ranges, once the worst are known, in
// parallel.
func Thumbnails(s beam.Scope, cfg EvalConfig, highestLoss, lowestMIoU beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.Thumbnails")
	refs := beam.ParDo(s, worstRefs, beam.Impulse(s), beam.SideInput{Input: highestLoss}, beam.SideInput{Input: lowestMIoU})
	return beam.ParDo(s, &thumbnailFn{EvalConfig: cfg}, beam.Reshuffle(s, refs))
}

// worstRefs emits each image of the worst lists once.
func worstRefs(_ []byte, highestLoss, lowestMIoU func(*[]evaluate.Result) bool, emit func(results.ImageRef)) {
	seen := map[results.ImageRef]bool{}
	var list []evaluate.Result
	for _, lists := range []func(*[]evaluate.Result) bool{highestLoss, lowestMIoU} {
		for lists(&list) {
			for _, r := range list {
				ref := results.ImageRef{Key: r.Key, Shard: r.Shard, LabelFile: r.LabelFile, Offset: r.Offset, Length: r.Length, Generation: r.Generation}
				if !seen[ref] {
					seen[ref] = true
					emit(ref)
				}
			}
		}
	}
}

// thumbnailFn renders thumbnails on the worker's cores while it reads the
// next sample, as the evaluation does (see inflight): prism runs the few
// worst images as one bundle, which would otherwise use one core.
type thumbnailFn struct {
	EvalConfig

	store    *storage.Store
	pool     *inflight[*renderer, rendered]
	firstErr error
}

// renderer holds one goroutine's prediction buffers.
type renderer struct {
	eval *evaluate.Evaluator
}

// rendered is the outcome of one thumbnail.
type rendered struct {
	thumb Thumbnail
	err   error
}

func (f *thumbnailFn) Setup() {
	f.store = storage.New(f.Storage)
	f.pool = newInflight[*renderer, rendered](func() *renderer {
		return &renderer{eval: evaluate.NewEvaluator(f.Eval)}
	})
}

func (f *thumbnailFn) Teardown() error { return f.store.Close() }

func (f *thumbnailFn) ProcessElement(ctx context.Context, ref results.ImageRef, emit func(Thumbnail)) error {
	receive := func(r rendered) { f.receive(r, emit) }
	// The sample counts against the samples a process holds, as the
	// evaluation's do.
	if err := f.pool.hold(ctx, samplesHeld, receive); err != nil {
		f.pool.wait(receive)
		return err
	}
	smp, m, release, err := f.find(ctx, ref)
	if err != nil {
		unhold()
		f.pool.wait(receive)
		return fmt.Errorf("thumbnail of shard %s, sample %s: %w", ref.Shard, ref.Key, err)
	}
	render := func(r *renderer) rendered {
		var thumb Thumbnail
		draw := func() (err error) {
			thumb, err = r.render(ctx, smp, ref, f.EvalConfig)
			return err
		}
		err := m.Guard(draw)
		if m != nil && errors.Is(err, storage.ErrChanged) {
			// The shard was cut short under the drawing, leaving the
			// evaluator's scratch half written: a new one starts clean.
			r.eval = evaluate.NewEvaluator(f.Eval)
		}
		release()
		unhold()
		if err != nil {
			err = fmt.Errorf("thumbnail of shard %s, sample %s: %w", ref.Shard, ref.Key, err)
		}
		return rendered{thumb: thumb, err: err}
	}
	if err := f.pool.start(ctx, render, receive); err != nil {
		release()
		unhold()
		f.pool.wait(receive)
		return err
	}
	return f.firstErr
}

func (f *thumbnailFn) FinishBundle(emit func(Thumbnail)) error {
	f.pool.wait(func(r rendered) { f.receive(r, emit) })
	for _, r := range f.pool.workers() {
		r.eval.Release() // for the next bundle's renderers or evaluation
	}
	f.pool.forget()
	err := f.firstErr
	f.firstErr = nil
	return err
}

func (f *thumbnailFn) receive(r rendered, emit func(Thumbnail)) {
	switch {
	case r.err != nil && f.firstErr == nil:
		f.firstErr = r.err
	case r.err == nil:
		emit(r.thumb)
	}
}

// render draws a sample's thumbnail. The input image is for display
// only: when it cannot be shown (it does not decode, or is not the label's
// shape) the thumbnail goes without it, and its note, shown in the report
// and logged, names the sample and member and says why; the run goes on.
func (r *renderer) render(ctx context.Context, smp *shard.Sample, ref results.ImageRef, cfg EvalConfig) (Thumbnail, error) {
	dec := decoders.get()
	defer decoders.put(dec)
	img, err := dec.Decode(smp, ref.Shard, cfg.Decode)
	if err != nil {
		return Thumbnail{}, err
	}
	// The prediction is taken only at the pixels the panels show.
	grid, err := report.NewGrid(img.Height, img.Width, thumbnailSide)
	if err != nil {
		return Thumbnail{}, err
	}
	pred, classes, err := r.eval.PredictionAt(img, grid.Pixels)
	if err != nil {
		return Thumbnail{}, err
	}
	src := report.ThumbnailSource{
		Height: img.Height, Width: img.Width, Labels: grid.At(img.Labels), Pred: pred, Classes: classes,
		Ignore: int32(cfg.Eval.Ignore), HasIgnore: cfg.Eval.HasIgnore,
	}
	var note string
	picture, err := sample.DecodeInputImage(smp, ref.Shard, cfg.Decode.Limits)
	if err == nil && picture != nil {
		if err = report.CheckPicture(picture.Bounds(), img.Height, img.Width); err != nil {
			err = &sample.Error{Shard: ref.Shard, Key: ref.Key, Member: inputMember(smp), Err: err}
		}
	}
	if err != nil {
		note = "Input image not shown: " + err.Error()
		log.Warnf(ctx, "thumbnail: %s", note)
	} else {
		src.Picture = picture
	}
	th, err := report.NewThumbnail(src, thumbnailSide)
	if err != nil {
		return Thumbnail{}, err
	}
	return Thumbnail{Key: ref.Key, Image: th.Image, Label: th.Label, Prediction: th.Prediction, Errors: th.Errors, Note: note}, nil
}

// inputMember names the member of smp that holds its input image.
func inputMember(smp *shard.Sample) string {
	field, _ := sample.InputImageField(smp)
	return smp.Key + "." + field
}

// find reads the sample ref names again: from its two files, or from its
// byte range in its shard, pinned to the generation evaluated, mapped into
// memory when the shard is a local file and the sample large (see
// mapSamples). Its fields are
// then touched only inside the Guard of the mapping returned, which is nil
// otherwise. Calling release once the sample is no longer used hands its
// member buffers to the readers of the process (see
// shard.SampleReader.Release), or unmaps them.
func (f *thumbnailFn) find(ctx context.Context, ref results.ImageRef) (smp *shard.Sample, m *storage.Mapping, release func(), err error) {
	if ref.LabelFile != "" {
		smp, err := readPair(ctx, f.store, f.Decode.Limits.MaxMemberBytes, Pair{Key: ref.Key, Prediction: results.Shard{Path: ref.Shard}, Label: results.Shard{Path: ref.LabelFile}})
		return smp, nil, func() {}, err
	}
	sr := shard.NewSampleReader(ref.Shard, shard.Limits{MaxMemberBytes: f.Decode.Limits.MaxMemberBytes})
	e := shard.Entry{Key: ref.Key, Offset: ref.Offset, Length: ref.Length}
	if mapSamples(ref.Shard, ref.Length) {
		smp, m, err := mapSample(ctx, f.store, sr, ref.Shard, ref.Generation, e)
		if err != nil {
			return nil, nil, nil, err
		}
		return smp, m, func() { sr.Release(smp); m.Close() }, nil
	}
	r, err := f.store.OpenRange(ctx, ref.Shard, ref.Generation, ref.Offset, ref.Length)
	if err != nil {
		return nil, nil, nil, err
	}
	defer r.Close()
	if smp, err = sr.Read(r, e); err != nil {
		return nil, nil, nil, err
	}
	return smp, nil, func() { sr.Release(smp) }, nil
}
