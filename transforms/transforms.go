// Package transforms holds segeval's Beam transforms: matching input shards,
// evaluating the samples of each shard, setting aside samples that cannot be
// evaluated, merging the evaluation accumulators and writing the outputs. The
// transforms only move data; decoding, math and output formats live in
// internal packages that know nothing of Beam.
//
// Every DoFn, function and combiner is registered in init(), so that runners
// that do not keep the binary's symbol table (and prism in tests) can find
// them. DoFns and functions are registered by type (beam.RegisterType,
// beam.RegisterFunction) rather than with the generic register.DoFnNxM:
// they run once per shard or per image, where the generic wrappers' faster
// calls do not show, and their instantiations made this package take two
// minutes and 4.8 GB of memory to compile. Emitters and iterators keep the
// generic registration, which compiles cheaply.
package transforms

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

// Counters reported by a run, in the "segeval" namespace.
var (
	shardsRead  = beam.NewCounter("segeval", "shards")
	imagesRead  = beam.NewCounter("segeval", "images")
	rejected    = beam.NewCounter("segeval", "rejected")
	validPixels = beam.NewCounter("segeval", "valid_pixels")
	bytesRead   = beam.NewCounter("segeval", "bytes_read")
)

func init() {
	beam.RegisterType(reflect.TypeOf((*matchShardsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*evaluateShardFn)(nil)).Elem())
	register.Emitter1[Receipt]()
	register.Emitter1[results.Shard]()
	register.Emitter1[evaluate.Result]()
	register.Emitter2[string, *evaluate.Accumulator]()
	register.Emitter2[string, SliceTally]()
	register.Emitter2[string, *evaluate.Tally]()
	register.Emitter1[results.Rejection]()
	beam.RegisterFunction(bySlice)
	beam.RegisterType(reflect.TypeOf((*mergeAccumulatorsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mergeTalliesFn)(nil)).Elem())
}

// MatchShards expands the glob patterns into the shards they match, each
// once, sorted by path. A pattern that matches nothing fails the run: a typo
// in a nightly job must not pass as an empty evaluation.
func MatchShards(s beam.Scope, patterns []string, opt storage.Options) beam.PCollection {
	s = s.Scope("MatchShards")
	return beam.ParDo(s, &matchShardsFn{Patterns: patterns, Storage: opt}, beam.Impulse(s))
}

type matchShardsFn struct {
	Patterns []string
	Storage  storage.Options
}

func (f *matchShardsFn) ProcessElement(_ []byte, emit func(results.Shard)) error {
	ctx := context.Background()
	store := storage.New(f.Storage)
	defer store.Close()
	seen := map[string]results.Shard{}
	for _, p := range f.Patterns {
		objs, err := store.Match(ctx, p)
		if err != nil {
			return fmt.Errorf("match %s: %w", p, err)
		}
		if len(objs) == 0 {
			return fmt.Errorf("input pattern %s matches no file", p)
		}
		for _, o := range objs {
			seen[o.Path] = results.Shard{Path: o.Path, Size: o.Size, Generation: o.Generation}
		}
	}
	paths := make([]string, 0, len(seen))
	for p := range seen {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		progress.shardsTotal.Add(1)
		progress.bytesTotal.Add(seen[p].Size)
		emit(seen[p])
	}
	return nil
}

// Policy says how a run treats samples it cannot evaluate.
type Policy struct {
	// MaxRejected is the number of defective samples a run tolerates. At 0
	// the first defect fails the run with its message; above 0 defective
	// samples are set aside in rejected.jsonl and the run fails only past
	// MaxRejected of them.
	MaxRejected int
}

// Evaluated is what EvaluateShards produces.
type Evaluated struct {
	// Images holds an evaluate.Result per image evaluated.
	Images beam.PCollection
	// Partials holds KV<string, *evaluate.Accumulator>: for tar shards one
	// per shard with evaluated images, keyed by its path (paired inputs emit
	// one per bundle).
	Partials beam.PCollection
	// Slices holds KV<string, SliceTally>: per shard (keyed by its path),
	// one tally per slice of its images.
	Slices beam.PCollection
	// Rejected holds a results.Rejection per sample set aside.
	Rejected beam.PCollection
	// Receipts holds a Receipt per shard evaluated (and re-evaluated).
	Receipts beam.PCollection
}

// Receipt says that a stage finished with a shard. The final stage checks
// that every shard has its receipts before it writes anything: when a stage
// fails, some runners (prism among them) may still run the stages after it
// with incomplete side inputs, and those must not write a partial result as
// if it were whole.
type Receipt struct {
	Shard string
	Kind  ReceiptKind
}

// ReceiptKind is what a receipt attests.
type ReceiptKind string

const (
	FirstPass   ReceiptKind = "first-pass"  // the first pass read the shard
	NeedsRedo   ReceiptKind = "needs-redo"  // the shard holds a duplicated key
	Reevaluated ReceiptKind = "reevaluated" // the shard was read again without its duplicates
)

// EvaluateShards reads every sample of every shard and evaluates it. A
// shard is decoded and evaluated inside one DoFn, so only small results leave
// it; the shards are reshuffled first so that a runner spreads them over its
// workers instead of fusing them to the matching step.
func EvaluateShards(s beam.Scope, cfg EvalConfig, shards beam.PCollection) Evaluated {
	s = s.Scope("EvaluateShards")
	shards = beam.Reshuffle(s, shards)
	fn := &evaluateShardFn{shardEvaluator{EvalConfig: cfg}}
	images, partials, slices, rejects, receipts := beam.ParDo5(s, fn, shards)
	return Evaluated{Images: images, Partials: partials, Slices: slices, Rejected: rejects, Receipts: receipts}
}

// EvalConfig configures the evaluation of shards.
type EvalConfig struct {
	Eval    evaluate.Options
	Decode  sample.Options
	Storage storage.Options
	Policy  Policy
}

// evaluationSlots bounds the shards (or pairs, or thumbnails) a worker
// process evaluates at once. A runner may split a bundle into as many
// concurrent pieces as it likes (prism does, with no regard for cores), and
// each holds a decoded image and its buffers: without the bound, peak memory
// would grow with the number of shards instead of the number of cores.
var evaluationSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// acquireSlot waits for an evaluation slot and returns its release.
func acquireSlot(ctx context.Context) (release func(), err error) {
	select {
	case evaluationSlots <- struct{}{}:
		return func() { <-evaluationSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// shardEvaluator evaluates the samples of one shard at a time. Its exported
// configuration travels with the DoFn; the rest is per-worker state.
type shardEvaluator struct {
	EvalConfig

	store *storage.Store
	dec   sample.Decoder
	eval  *evaluate.Evaluator
}

func (f *shardEvaluator) Setup() {
	f.store = storage.New(f.Storage)
	f.eval = evaluate.NewEvaluator(f.Eval)
}

func (f *shardEvaluator) Teardown() error {
	return f.store.Close()
}

// evaluate reads shard sh and evaluates its samples, skipping the keys in
// skip, and returns the number of bytes read. Defective samples are rejected
// or fail the shard as the policy says; failures to read storage are
// returned, so that the runner retries.
func (f *shardEvaluator) evaluate(ctx context.Context, sh results.Shard, skip map[string]bool, emitImage func(evaluate.Result),
	emitPartial func(string, *evaluate.Accumulator), emitSlice func(string, SliceTally), emitReject func(results.Rejection)) (int64, error) {
	release, err := acquireSlot(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	r, err := f.store.Open(ctx, sh.Path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	counted := &countingReader{r: r}
	decode := f.Decode
	if sh.Size > 0 {
		// A member cannot be larger than its shard: a header that says
		// otherwise is caught before anything is allocated.
		decode.Limits.MaxMemberBytes = min(decode.Limits.MaxMemberBytes, sh.Size)
	}
	samples := shard.NewReader(counted, sh.Path, shard.Limits{MaxMemberBytes: decode.Limits.MaxMemberBytes})
	f.eval.Take() // a retried bundle must not carry a failed attempt's partial sums
	reject := func(key string, err error) error { return f.reject(key, sh.Path, err, emitReject) }
	for {
		smp, err := samples.Next()
		if err == io.EOF {
			// Read past the archive's end blocks to the end of the
			// object, so that the storage reader checks its checksum.
			if _, err := io.Copy(io.Discard, counted); err != nil {
				return counted.n, fmt.Errorf("read %s: %w", sh.Path, err)
			}
			break
		}
		if counted.err != nil {
			return counted.n, fmt.Errorf("read %s: %w", sh.Path, counted.err)
		}
		if err != nil {
			// The tar stream itself is broken: nothing after this point
			// can be trusted, so the rest of the shard is one rejection.
			if err := reject("", err); err != nil {
				return counted.n, err
			}
			break
		}
		if skip[smp.Key] {
			continue
		}
		res, err := f.evaluateSample(smp, sh.Path, decode)
		samples.Release(smp) // decoded: its bytes can hold the next sample
		if err != nil {
			if err := reject(smp.Key, err); err != nil {
				return counted.n, err
			}
			continue
		}
		emitImage(res)
	}
	f.flush(sh.Path, emitPartial, emitSlice)
	// The buffers fit the largest image seen; an idle DoFn instance
	// (runners keep several) must not hold on to them.
	f.dec = sample.Decoder{}
	f.eval.Release()
	return counted.n, nil
}

// evaluateSample decodes and evaluates one sample.
func (f *shardEvaluator) evaluateSample(smp *shard.Sample, shardName string, decode sample.Options) (evaluate.Result, error) {
	img, err := f.dec.Decode(smp, shardName, decode)
	if err != nil {
		return evaluate.Result{}, err
	}
	res, err := f.eval.Evaluate(img, shardName)
	res.Offset = smp.Offset
	return res, err
}

// reject sets a defective sample aside when the policy allows, and returns
// err when the run must fail instead: by policy, or because err is not
// about the input (a storage failure is retried, never rejected).
func (f *shardEvaluator) reject(key, shardName string, err error, emitReject func(results.Rejection)) error {
	if f.Policy.MaxRejected == 0 || !evaluate.IsBadInput(err) {
		return err
	}
	emitReject(results.Rejection{Key: key, Shard: shardName, Reason: err.Error()})
	return nil
}

// flush emits what has been accumulated, keyed by key.
func (f *shardEvaluator) flush(key string, emitPartial func(string, *evaluate.Accumulator), emitSlice func(string, SliceTally)) {
	acc, slices := f.eval.Take()
	if acc != nil {
		emitPartial(key, acc)
	}
	for slice, t := range slices {
		emitSlice(key, SliceTally{Slice: slice, Tally: t})
	}
}

type evaluateShardFn struct {
	shardEvaluator
}

func (f *evaluateShardFn) ProcessElement(ctx context.Context, sh results.Shard, emitImage func(evaluate.Result),
	emitPartial func(string, *evaluate.Accumulator), emitSlice func(string, SliceTally), emitReject func(results.Rejection),
	emitReceipt func(Receipt)) error {
	n, err := f.evaluate(ctx, sh, nil, func(res evaluate.Result) {
		progress.images.Add(1)
		imagesRead.Inc(ctx, 1)
		validPixels.Inc(ctx, res.ValidPixels)
		emitImage(res)
	}, emitPartial, emitSlice, func(r results.Rejection) {
		rejected.Inc(ctx, 1)
		emitReject(r)
	})
	bytesRead.Inc(ctx, n)
	if err != nil {
		return err
	}
	shardsRead.Inc(ctx, 1)
	progress.shards.Add(1)
	emitReceipt(Receipt{Shard: sh.Path, Kind: FirstPass})
	return nil
}

// countingReader counts the bytes read through it and keeps the first read
// error, so that a storage failure is told apart from a broken shard.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	progress.bytes.Add(int64(n))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// MergeAccumulators merges the per-shard partial accumulators (KV<string,
// *evaluate.Accumulator>) into one. An input without images yields an empty
// PCollection.
func MergeAccumulators(s beam.Scope, partials beam.PCollection) beam.PCollection {
	s = s.Scope("MergeAccumulators")
	return beam.Combine(s, &mergeAccumulatorsFn{}, beam.DropKey(s, partials))
}

// SliceTally is the tally of one slice's images in one shard.
type SliceTally struct {
	Slice string // evaluate.SliceKey
	Tally *evaluate.Tally
}

// MergeSlices merges the per-shard slice tallies (KV<string, SliceTally>)
// into one KV<string, *evaluate.Tally> per slice, with a keyed combine.
func MergeSlices(s beam.Scope, slices beam.PCollection) beam.PCollection {
	s = s.Scope("MergeSlices")
	return beam.CombinePerKey(s, &mergeTalliesFn{}, beam.ParDo(s, bySlice, slices))
}

func bySlice(_ string, st SliceTally, emit func(string, *evaluate.Tally)) { emit(st.Slice, st.Tally) }

type mergeTalliesFn struct{}

func (mergeTalliesFn) MergeAccumulators(a, b *evaluate.Tally) (*evaluate.Tally, error) {
	if err := a.Merge(b); err != nil {
		return nil, err
	}
	return a, nil
}

type mergeAccumulatorsFn struct{}

func (mergeAccumulatorsFn) MergeAccumulators(a, b *evaluate.Accumulator) (*evaluate.Accumulator, error) {
	if err := a.Merge(b); err != nil {
		return nil, err
	}
	return a, nil
}
