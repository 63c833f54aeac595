package transforms

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*keyFileFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*pairFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*evaluatePairFn)(nil)).Elem())
	register.Emitter2[string, results.Shard]()
	register.Emitter1[PlanCount]()
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
// rejections, the plan's count and every file matched (for provenance).
func PairFiles(s beam.Scope, in PairedInputs, cfg EvalConfig) (pairs, rejected, count, files beam.PCollection) {
	s = s.Scope("transforms.PairFiles")
	preds := MatchShards(s.Scope("Predictions"), []string{in.Predictions}, cfg.Storage)
	labels := MatchShards(s.Scope("Labels"), []string{in.Labels}, cfg.Storage)
	keyedPreds, rejectP, countP := beam.ParDo3(s, &keyFileFn{KeyRegex: in.KeyRegex, Side: "prediction"}, preds)
	keyedLabels, rejectL, countL := beam.ParDo3(s, &keyFileFn{KeyRegex: in.KeyRegex, Side: "label"}, labels)
	pairs, rejectPair, countPair := beam.ParDo3(s, &pairFn{}, beam.CoGroupByKey(s, keyedPreds, keyedLabels))
	count = beam.Combine(s, addPlanCounts, beam.Flatten(s, countP, countL, countPair))
	return pairs, beam.Flatten(s, rejectP, rejectL, rejectPair), count, beam.Flatten(s, preds, labels)
}

type keyFileFn struct {
	KeyRegex string
	Side     string

	re *regexp.Regexp
}

func (f *keyFileFn) Setup() error {
	var err error
	f.re, err = sample.CompileKeyRegex(f.KeyRegex)
	return err
}

func (f *keyFileFn) ProcessElement(ctx context.Context, file results.Shard, emit func(string, results.Shard), reject func(results.Rejection), count func(PlanCount)) {
	key, ok := sample.KeyOf(file.Path, f.re)
	if !ok {
		rejected.Inc(ctx, 1)
		reject(results.Rejection{Shard: file.Path, Reason: fmt.Sprintf("%s file name does not match the key regex %q", f.Side, f.KeyRegex)})
		count(PlanCount{Files: 1, Samples: 1})
		return
	}
	emit(key, file)
	count(PlanCount{Files: 1})
}

type pairFn struct{}

func (pairFn) ProcessElement(ctx context.Context, key string, predIter, labelIter func(*results.Shard) bool, emit func(Pair), reject func(results.Rejection), count func(PlanCount)) {
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
		progress.imagesTotal.Add(1)
		emit(Pair{Key: key, Prediction: preds[0], Label: labels[0]})
		count(PlanCount{Samples: 1})
		return
	}
	reason := pairingDefect(key, preds, labels)
	for _, f := range append(preds, labels...) {
		rejected.Inc(ctx, 1)
		reject(results.Rejection{Key: key, Shard: f.Path, Reason: reason})
		count(PlanCount{Samples: 1})
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

// EvaluatePairs evaluates paired samples. Per-image results leave as they
// are evaluated; the accumulator gathers a whole bundle and leaves when it
// finishes, so that its size is paid per bundle, not per image.
func EvaluatePairs(s beam.Scope, cfg EvalConfig, pairs beam.PCollection) Evaluated {
	s = s.Scope("transforms.EvaluatePairs")
	candidates, partials, slices, rejects, parts := beam.ParDo5(s, &evaluatePairFn{EvalConfig: cfg}, beam.Reshuffle(s, pairs))
	return Evaluated{Candidates: candidates, Partials: partials, Slices: slices, Rejected: rejects, Parts: parts}
}

type evaluatePairFn struct {
	EvalConfig

	store   *storage.Store
	overlap *overlap
}

func (f *evaluatePairFn) Setup() {
	f.store = storage.New(f.Storage)
	f.overlap = newOverlap(f.EvalConfig)
}

func (f *evaluatePairFn) Teardown() error { return f.store.Close() }

func (f *evaluatePairFn) StartBundle(context.Context, func(evaluate.Result), func(*evaluate.Accumulator),
	func(string, *evaluate.Tally), func(results.Rejection), func(results.Part)) {
	f.overlap.reset() // a retried bundle must not carry a failed attempt's partial sums
}

func (f *evaluatePairFn) ProcessElement(ctx context.Context, p Pair, _ func(evaluate.Result), _ func(*evaluate.Accumulator),
	_ func(string, *evaluate.Tally), emitReject func(results.Rejection), emitPart func(results.Part)) error {
	out := f.overlap.emitters(ctx, f.store, emitReject, emitPart)
	smp, err := readPair(ctx, f.store, f.Decode.Limits.MaxMemberBytes, p)
	if err != nil {
		if err := out.reject(p.Key, p.Prediction.Path, err); err != nil {
			f.overlap.wait(out)
			return err
		}
		return out.err
	}
	j := job{sample: smp, shard: p.Prediction.Path, labelFile: p.Label.Path, decode: f.Decode, done: func(*shard.Sample) {}}
	if err := f.overlap.submit(ctx, j, out); err != nil {
		f.overlap.wait(out)
		return err
	}
	return nil
}

func (f *evaluatePairFn) FinishBundle(ctx context.Context, emitCandidate func(evaluate.Result), emitPartial func(*evaluate.Accumulator),
	emitSlice func(string, *evaluate.Tally), emitReject func(results.Rejection), emitPart func(results.Part)) error {
	out := f.overlap.emitters(ctx, f.store, emitReject, emitPart)
	if err := f.overlap.finish(out, emitCandidate, emitPartial, emitSlice); err != nil {
		return err
	}
	return out.err
}

// readPair reads a pair's files into one sample, refusing files larger than
// a member may be.
func readPair(ctx context.Context, store *storage.Store, maxMemberBytes int64, p Pair) (*shard.Sample, error) {
	var data [2][]byte
	for i, file := range []results.Shard{p.Label, p.Prediction} {
		if file.Size > maxMemberBytes {
			return nil, &sample.Error{Shard: p.Prediction.Path, Key: p.Key, Member: file.Path,
				Err: fmt.Errorf("file of %d bytes is larger than --max_member_bytes=%d", file.Size, maxMemberBytes)}
		}
		var err error
		if data[i], err = store.ReadFile(ctx, file.Path); err != nil {
			return nil, err
		}
		bytesRead.Inc(ctx, int64(len(data[i])))
		progress.bytes.Add(int64(len(data[i])))
	}
	return sample.PairedSample(p.Key, p.Label.Path, data[0], p.Prediction.Path, data[1]), nil
}
