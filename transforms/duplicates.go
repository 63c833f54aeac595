package transforms

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
)

func init() {
	beam.RegisterFunction(keyOfImage)
	beam.RegisterType(reflect.TypeOf((*findDuplicatesFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*rejectDuplicatesFn)(nil)).Elem())
	beam.RegisterFunction(keysOf)
	beam.RegisterFunction(shardsOf)
	beam.RegisterFunction(distinctKey)
	beam.RegisterType(reflect.TypeOf((*dropImagesFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*dropPartialsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*dropSlicesFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*keepShardsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*reevaluateShardFn)(nil)).Elem())
	register.Emitter1[DuplicateKey]()
	register.Emitter1[string]()
	register.Emitter2[string, int]()
	register.Iter1[string]()
	register.Iter1[int]()
}

// DuplicateKey is a sample key found in more than one shard.
type DuplicateKey struct {
	Key    string
	Shards []string
}

// DropDuplicateKeys sets aside every copy of a key that occurs in more than
// one shard: which copy is right cannot be known, so none is counted, and
// each copy is listed as rejected.
//
// Duplicates are found from the small per-image results after evaluation.
// Shards that hold a duplicate are then evaluated again without the
// duplicated keys, and their first partial accumulators are dropped; shards
// without duplicates (normally all of them) are read once.
func DropDuplicateKeys(s beam.Scope, cfg EvalConfig, ev Evaluated, shards beam.PCollection) Evaluated {
	s = s.Scope("DropDuplicateKeys")
	byKey := beam.GroupByKey(s, beam.ParDo(s, keyOfImage, ev.Images))
	dups := beam.ParDo(s, &findDuplicatesFn{}, byKey)

	dupKeys := beam.ParDo(s, keysOf, dups)
	dupShards := beam.ParDo(s, distinctKey, beam.GroupByKey(s, beam.ParDo(s, shardsOf, dups)))

	images := beam.ParDo(s, &dropImagesFn{}, ev.Images, beam.SideInput{Input: dupKeys})
	kept := beam.ParDo(s, &dropPartialsFn{}, ev.Partials, beam.SideInput{Input: dupShards})
	keptSlices := beam.ParDo(s, &dropSlicesFn{}, ev.Slices, beam.SideInput{Input: dupShards})
	again, needsRedo := beam.ParDo2(s, &keepShardsFn{}, shards, beam.SideInput{Input: dupShards})
	redone, redoneSlices, redoneReceipts := beam.ParDo3(s, &reevaluateShardFn{shardEvaluator{EvalConfig: cfg}}, again, beam.SideInput{Input: dupKeys})
	return Evaluated{
		Images:   images,
		Partials: beam.Flatten(s, kept, redone),
		Slices:   beam.Flatten(s, keptSlices, redoneSlices),
		Rejected: beam.Flatten(s, ev.Rejected, beam.ParDo(s, &rejectDuplicatesFn{}, dups)),
		Receipts: beam.Flatten(s, ev.Receipts, needsRedo, redoneReceipts),
	}
}

func keyOfImage(r evaluate.Result) (string, string) { return r.Key, r.Shard }

type findDuplicatesFn struct{}

func (findDuplicatesFn) ProcessElement(key string, shards func(*string) bool, emit func(DuplicateKey)) {
	var all []string
	var sh string
	for shards(&sh) {
		all = append(all, sh)
	}
	if len(all) > 1 {
		slices.Sort(all)
		emit(DuplicateKey{Key: key, Shards: all})
	}
}

type rejectDuplicatesFn struct{}

func (rejectDuplicatesFn) ProcessElement(d DuplicateKey, emit func(results.Rejection)) {
	for i, sh := range d.Shards {
		others := slices.Delete(slices.Clone(d.Shards), i, i+1)
		emit(results.Rejection{Key: d.Key, Shard: sh, Reason: fmt.Sprintf("duplicate key: sample %s is also in %s", d.Key, strings.Join(others, ", "))})
	}
}

func keysOf(d DuplicateKey, emit func(string)) { emit(d.Key) }

func shardsOf(d DuplicateKey, emit func(string, int)) {
	for _, sh := range d.Shards {
		emit(sh, 1)
	}
}

func distinctKey(key string, _ func(*int) bool, emit func(string)) { emit(key) }

// set reads a side input of strings into a set.
func set(iter func(*string) bool) map[string]bool {
	m := map[string]bool{}
	var v string
	for iter(&v) {
		m[v] = true
	}
	return m
}

// dropImagesFn and the filters below read their side input into a set once
// per DoFn instance: in the global window of a batch job it cannot change.
type dropImagesFn struct{ dups map[string]bool }

func (f *dropImagesFn) ProcessElement(r evaluate.Result, dupKeys func(*string) bool, emit func(evaluate.Result)) {
	if f.dups == nil {
		f.dups = set(dupKeys)
	}
	if !f.dups[r.Key] {
		emit(r)
	}
}

type dropPartialsFn struct{ dups map[string]bool }

func (f *dropPartialsFn) ProcessElement(shard string, acc *evaluate.Accumulator, dupShards func(*string) bool, emit func(string, *evaluate.Accumulator)) {
	if f.dups == nil {
		f.dups = set(dupShards)
	}
	if !f.dups[shard] {
		emit(shard, acc)
	}
}

type dropSlicesFn struct{ dups map[string]bool }

func (f *dropSlicesFn) ProcessElement(shard string, st SliceTally, dupShards func(*string) bool, emit func(string, SliceTally)) {
	if f.dups == nil {
		f.dups = set(dupShards)
	}
	if !f.dups[shard] {
		emit(shard, st)
	}
}

type keepShardsFn struct{}

func (keepShardsFn) ProcessElement(sh results.Shard, dupShards func(*string) bool, emit func(results.Shard), emitReceipt func(Receipt)) {
	if set(dupShards)[sh.Path] {
		emit(sh)
		emitReceipt(Receipt{Shard: sh.Path, Kind: NeedsRedo})
	}
}

// reevaluateShardFn evaluates a shard again without its duplicated keys. Its
// per-image results and rejections repeat the first pass's and are dropped.
type reevaluateShardFn struct {
	shardEvaluator
}

func (f *reevaluateShardFn) ProcessElement(ctx context.Context, sh results.Shard, dupKeys func(*string) bool,
	emitPartial func(string, *evaluate.Accumulator), emitSlice func(string, SliceTally), emitReceipt func(Receipt)) error {
	if _, err := f.evaluate(ctx, sh, set(dupKeys), func(evaluate.Result) {}, emitPartial, emitSlice, func(results.Rejection) {}); err != nil {
		return err
	}
	emitReceipt(Receipt{Shard: sh.Path, Kind: Reevaluated})
	return nil
}
