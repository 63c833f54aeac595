// Package transforms holds segeval's Beam transforms: matching input shards,
// evaluating the samples of each shard, merging the evaluation accumulators
// and writing the outputs. The transforms only move data; decoding, math and
// output formats live in internal packages that know nothing of Beam.
//
// Every DoFn and combiner is registered in init(), so that runners that do not
// keep the binary's symbol table (and prism in tests) can find them.
package transforms

import (
	"context"
	"fmt"
	"io"
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
	validPixels = beam.NewCounter("segeval", "valid_pixels")
	bytesRead   = beam.NewCounter("segeval", "bytes_read")
)

func init() {
	register.DoFn2x1[[]byte, func(results.Shard), error](&matchShardsFn{})
	register.DoFn4x1[context.Context, results.Shard, func(evaluate.Result), func(*evaluate.Accumulator), error](&evaluateShardFn{})
	register.Emitter1[results.Shard]()
	register.Emitter1[evaluate.Result]()
	register.Emitter1[*evaluate.Accumulator]()
	register.Combiner1[*evaluate.Accumulator](&mergeAccumulatorsFn{})
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
		emit(seen[p])
	}
	return nil
}

// EvaluateShards reads every sample of every shard, evaluates it, and
// returns the per-image results and one partial accumulator per shard. A
// shard is decoded and evaluated inside one DoFn, so only small results
// leave it; the shards are reshuffled first so that a runner spreads them
// over its workers instead of fusing them to the matching step.
func EvaluateShards(s beam.Scope, opt evaluate.Options, limits sample.Limits, store storage.Options, shards beam.PCollection) (images, partials beam.PCollection) {
	s = s.Scope("EvaluateShards")
	shards = beam.Reshuffle(s, shards)
	return beam.ParDo2(s, &evaluateShardFn{Eval: opt, Limits: limits, Storage: store}, shards)
}

type evaluateShardFn struct {
	Eval    evaluate.Options
	Limits  sample.Limits
	Storage storage.Options

	store *storage.Store
	dec   sample.Decoder
	eval  *evaluate.Evaluator
}

func (f *evaluateShardFn) Setup() {
	f.store = storage.New(f.Storage)
	f.eval = evaluate.NewEvaluator(f.Eval)
}

func (f *evaluateShardFn) Teardown() error {
	return f.store.Close()
}

func (f *evaluateShardFn) ProcessElement(ctx context.Context, sh results.Shard, emitImage func(evaluate.Result), emitPartial func(*evaluate.Accumulator)) error {
	r, err := f.store.Open(ctx, sh.Path)
	if err != nil {
		return err
	}
	defer r.Close()
	counted := &countingReader{r: r}
	samples := shard.NewReader(counted, sh.Path, shard.Limits{MaxMemberBytes: f.Limits.MaxMemberBytes})
	f.eval.Take() // a retried bundle must not carry a failed attempt's partial sums
	for {
		smp, err := samples.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		img, err := f.dec.Decode(smp, sh.Path, f.Limits)
		if err != nil {
			return err
		}
		res, err := f.eval.Evaluate(img, sh.Path)
		if err != nil {
			return err
		}
		imagesRead.Inc(ctx, 1)
		validPixels.Inc(ctx, res.ValidPixels)
		emitImage(res)
	}
	if acc := f.eval.Take(); acc != nil {
		emitPartial(acc)
	}
	shardsRead.Inc(ctx, 1)
	bytesRead.Inc(ctx, counted.n)
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// MergeAccumulators merges the partial accumulators into one. An input
// without images yields an empty PCollection.
func MergeAccumulators(s beam.Scope, partials beam.PCollection) beam.PCollection {
	return beam.Combine(s.Scope("MergeAccumulators"), &mergeAccumulatorsFn{}, partials)
}

type mergeAccumulatorsFn struct{}

func (mergeAccumulatorsFn) MergeAccumulators(a, b *evaluate.Accumulator) (*evaluate.Accumulator, error) {
	if err := a.Merge(b); err != nil {
		return nil, err
	}
	return a, nil
}
