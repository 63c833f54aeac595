// Package transforms holds segeval's Beam transforms: matching input shards,
// planning their samples from the tar headers, evaluating the samples,
// setting aside samples that cannot be evaluated, merging the evaluation
// accumulators and writing the outputs. The
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
	"reflect"
	"slices"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
)

// Counters reported by a run, in the "segeval" namespace.
var (
	shardsRead  = beam.NewCounter("segeval", "shards") // indexed
	imagesRead  = beam.NewCounter("segeval", "images")
	rejected    = beam.NewCounter("segeval", "rejected")
	validPixels = beam.NewCounter("segeval", "valid_pixels")
	bytesRead   = beam.NewCounter("segeval", "bytes_read")
)

func init() {
	beam.RegisterType(reflect.TypeOf((*matchShardsFn)(nil)).Elem())
	register.Emitter1[results.Shard]()
}

// MatchShards expands the glob patterns into the shards they match, each
// once, sorted by path. A pattern that matches nothing fails the run: a typo
// in a nightly job must not pass as an empty evaluation.
func MatchShards(s beam.Scope, patterns []string, opt storage.Options) beam.PCollection {
	s = s.Scope("transforms.MatchShards")
	return beam.ParDo(s, &matchShardsFn{Patterns: patterns, Storage: opt}, beam.Impulse(s))
}

type matchShardsFn struct {
	Patterns []string
	Storage  storage.Options
}

func (f *matchShardsFn) ProcessElement(ctx context.Context, _ []byte, emit func(results.Shard)) error {
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

// check returns err when the run must fail for it instead of setting its
// sample aside: by policy, or because err is not about the input (a storage
// failure is retried, never rejected).
func (p Policy) check(err error) error {
	if p.MaxRejected == 0 || !evaluate.IsBadInput(err) {
		return err
	}
	return nil
}

// EvalConfig configures the evaluation of samples.
type EvalConfig struct {
	Eval    evaluate.Options
	Decode  sample.Options
	Storage storage.Options
	Policy  Policy
	// RestrictionBytes is the size at which the initial split of a shard's
	// plan cuts it into restrictions; 0 means DefaultRestrictionBytes.
	RestrictionBytes int64
	// Rows says where the evaluation writes per-image rows.
	Rows RowSpec
}
