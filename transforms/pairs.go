package transforms

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*keyFileFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*pairFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*evaluatePairFn)(nil)).Elem())
	register.Emitter2[string, results.Shard]()
	register.Emitter1[Pair]()
	register.Iter1[results.Shard]()
}

// PairedInputs names the two globs of a paired layout: label files and
// prediction files, paired by key (see sample.KeyOf).
type PairedInputs struct {
	Predictions string
	Labels      string
	KeyRegex    string
}

// Pair is a sample whose label and prediction are two files.
type Pair struct {
	Key        string
	Prediction results.Shard
	Label      results.Shard
}

// PairFiles matches the prediction and label files and pairs them by key
// with a CoGroupByKey over small file references (never a listing held by
// the launcher). A file without a partner, or sharing its key with another
// file on its side, is rejected by name. It returns the pairs, the
// rejections and receipts, and every file matched (for provenance).
func PairFiles(s beam.Scope, in PairedInputs, cfg EvalConfig) (pairs, rejected, receipts, files beam.PCollection) {
	s = s.Scope("PairFiles")
	preds := MatchShards(s.Scope("Predictions"), []string{in.Predictions}, cfg.Storage)
	labels := MatchShards(s.Scope("Labels"), []string{in.Labels}, cfg.Storage)
	keyedPreds, rejectP, receiptP := beam.ParDo3(s, &keyFileFn{KeyRegex: in.KeyRegex, Side: "prediction"}, preds)
	keyedLabels, rejectL, receiptL := beam.ParDo3(s, &keyFileFn{KeyRegex: in.KeyRegex, Side: "label"}, labels)
	pairs, rejectPair, receiptPair := beam.ParDo3(s, &pairFn{}, beam.CoGroupByKey(s, keyedPreds, keyedLabels))
	return pairs, beam.Flatten(s, rejectP, rejectL, rejectPair), beam.Flatten(s, receiptP, receiptL, receiptPair), beam.Flatten(s, preds, labels)
}

type keyFileFn struct {
	KeyRegex string
	Side     string
}

func (f *keyFileFn) ProcessElement(file results.Shard, emit func(string, results.Shard), reject func(results.Rejection), receipt func(Receipt)) error {
	re, err := sample.CompileKeyRegex(f.KeyRegex)
	if err != nil {
		return err
	}
	key, ok := sample.KeyOf(file.Path, re)
	if !ok {
		reject(results.Rejection{Shard: file.Path, Reason: fmt.Sprintf("%s file name does not match the key regex %q", f.Side, f.KeyRegex)})
		receipt(Receipt{Shard: file.Path, Kind: FirstPass})
		return nil
	}
	emit(key, file)
	return nil
}

type pairFn struct{}

func (pairFn) ProcessElement(key string, predIter, labelIter func(*results.Shard) bool, emit func(Pair), reject func(results.Rejection), receipt func(Receipt)) {
	collect := func(iter func(*results.Shard) bool) []results.Shard {
		var out []results.Shard
		var f results.Shard
		for iter(&f) {
			out = append(out, f)
		}
		return out
	}
	preds, labels := collect(predIter), collect(labelIter)
	if len(preds) == 1 && len(labels) == 1 {
		emit(Pair{Key: key, Prediction: preds[0], Label: labels[0]})
		return
	}
	reason := pairingDefect(key, preds, labels)
	for _, f := range append(preds, labels...) {
		reject(results.Rejection{Key: key, Shard: f.Path, Reason: reason})
		receipt(Receipt{Shard: f.Path, Kind: FirstPass})
	}
}

// pairingDefect says why a key's files do not make one pair.
func pairingDefect(key string, preds, labels []results.Shard) string {
	paths := func(fs []results.Shard) string {
		var p []string
		for _, f := range fs {
			p = append(p, f.Path)
		}
		return strings.Join(p, ", ")
	}
	switch {
	case len(labels) == 0:
		return fmt.Sprintf("no label file for key %s (prediction %s)", key, paths(preds))
	case len(preds) == 0:
		return fmt.Sprintf("no prediction file for key %s (label %s)", key, paths(labels))
	}
	return fmt.Sprintf("key %s has %d prediction files (%s) and %d label files (%s), want one of each",
		key, len(preds), paths(preds), len(labels), paths(labels))
}

// EvaluatePairs evaluates paired samples. Per-image results leave at once;
// the accumulator gathers a whole bundle and leaves in FinishBundle, so that
// its size is paid per bundle, not per image.
func EvaluatePairs(s beam.Scope, cfg EvalConfig, pairs beam.PCollection) Evaluated {
	s = s.Scope("EvaluatePairs")
	images, partials, slices, rejects, receipts := beam.ParDo5(s, &evaluatePairFn{shardEvaluator{EvalConfig: cfg}}, beam.Reshuffle(s, pairs))
	return Evaluated{Images: images, Partials: partials, Slices: slices, Rejected: rejects, Receipts: receipts}
}

type evaluatePairFn struct {
	shardEvaluator
}

func (f *evaluatePairFn) StartBundle(context.Context, func(evaluate.Result), func(string, *evaluate.Accumulator),
	func(string, SliceTally), func(results.Rejection), func(Receipt)) {
	f.eval.Take() // a retried bundle must not carry a failed attempt's partial sums
}

func (f *evaluatePairFn) ProcessElement(ctx context.Context, p Pair, emitImage func(evaluate.Result), _ func(string, *evaluate.Accumulator),
	_ func(string, SliceTally), emitReject func(results.Rejection), emitReceipt func(Receipt)) error {
	res, err := f.evaluatePair(ctx, p)
	switch {
	case err == nil:
		progress.images.Add(1)
		imagesRead.Inc(ctx, 1)
		validPixels.Inc(ctx, res.ValidPixels)
		emitImage(res)
	case evaluate.IsBadInput(err):
		if err := f.reject(p.Key, p.Prediction.Path, err, func(r results.Rejection) {
			rejected.Inc(ctx, 1)
			emitReject(r)
		}); err != nil {
			return err
		}
	default:
		return err
	}
	emitReceipt(Receipt{Shard: p.Prediction.Path, Kind: FirstPass})
	emitReceipt(Receipt{Shard: p.Label.Path, Kind: FirstPass})
	progress.shards.Add(2)
	return nil
}

func (f *evaluatePairFn) FinishBundle(_ context.Context, _ func(evaluate.Result), emitPartial func(string, *evaluate.Accumulator),
	emitSlice func(string, SliceTally), _ func(results.Rejection), _ func(Receipt)) {
	f.flush("pairs", emitPartial, emitSlice)
}

// evaluatePair reads a pair's two files and evaluates the sample they make.
func (f *shardEvaluator) evaluatePair(ctx context.Context, p Pair) (evaluate.Result, error) {
	release, err := acquireSlot(ctx)
	if err != nil {
		return evaluate.Result{}, err
	}
	defer release()
	smp, err := f.readPair(ctx, p)
	if err != nil {
		return evaluate.Result{}, err
	}
	res, err := f.evaluateSample(smp, p.Prediction.Path, f.Decode)
	res.LabelFile = p.Label.Path
	return res, err
}

// readPair reads a pair's files into one sample, refusing files larger than
// a member may be.
func (f *shardEvaluator) readPair(ctx context.Context, p Pair) (*shard.Sample, error) {
	var data [2][]byte
	for i, file := range []results.Shard{p.Label, p.Prediction} {
		if limit := f.Decode.Limits.MaxMemberBytes; file.Size > limit {
			return nil, &sample.Error{Shard: p.Prediction.Path, Key: p.Key, Member: file.Path,
				Err: fmt.Errorf("file of %d bytes is larger than --max_member_bytes=%d", file.Size, limit)}
		}
		var err error
		if data[i], err = f.store.ReadFile(ctx, file.Path); err != nil {
			return nil, err
		}
		bytesRead.Inc(ctx, int64(len(data[i])))
		progress.bytes.Add(int64(len(data[i])))
	}
	return sample.PairedSample(p.Key, p.Label.Path, data[0], p.Prediction.Path, data[1]), nil
}
