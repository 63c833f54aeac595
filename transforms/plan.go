package transforms

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

// Counters of the planning step, in the "segeval" namespace.
var (
	planRequests = beam.NewCounter("segeval", "plan_requests")
	planBytes    = beam.NewCounter("segeval", "plan_bytes")
)

func init() {
	beam.RegisterType(reflect.TypeOf((*indexShardFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*findDuplicatesFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*chunkPlanFn)(nil)).Elem())
	beam.RegisterFunction(addPlanCounts)
	register.Emitter2[string, ShardPlan]()
	register.Emitter2[int, KeyBatch]()
	register.Emitter2[string, int64]()
	register.Emitter1[PlanCount]()
	register.Emitter1[ShardPlan]()
	register.Iter1[KeyBatch]()
	register.Iter1[ShardPlan]()
	register.Iter1[int64]()
}

// ShardPlan is the work of evaluating one shard, or a piece of it: its
// samples in the order of their offsets, each to be evaluated exactly once.
type ShardPlan struct {
	Shard   results.Shard // with the generation every read is pinned to
	Samples []SampleSpan
}

// SampleSpan is where a sample lies in its shard.
type SampleSpan struct {
	Key    string
	Offset int64 // of the tar header of its first member
	Length int64 // through the padded data of its last member
}

// Bytes is the number of bytes the samples [start, end) span, from the
// first one's header to the last one's end.
func (p ShardPlan) Bytes(start, end int64) int64 {
	if start >= end {
		return 0
	}
	last := p.Samples[end-1]
	return last.Offset + last.Length - p.Samples[start].Offset
}

// KeyBatch is the keys of one shard that hash to one bucket, for finding
// keys that occur more than once: grouping the keys in batches by bucket,
// rather than one element per key, keeps the shuffle's per-element cost off
// millions of samples.
type KeyBatch struct {
	Shard   string
	Keys    []string
	Offsets []int64
	// Defective marks copies already rejected for a defect of their own.
	Defective []bool
}

// keyBuckets is the number of buckets keys are grouped in: at 5 million
// samples, about 20,000 keys for each of 256 workers to compare.
const keyBuckets = 256

func bucketOf(key string) int { return partOf(key, keyBuckets) }

// PlanCount is what the plan promises the last stage: the input files
// planned, and the samples in them, each of which ends up either evaluated
// or rejected (a shard broken mid-way counts its unreadable rest as one).
type PlanCount struct {
	Files   int64
	Samples int64
}

func addPlanCounts(a, b PlanCount) PlanCount {
	return PlanCount{Files: a.Files + b.Files, Samples: a.Samples + b.Samples}
}

// Plan is what PlanSamples produces.
type Plan struct {
	// Shards holds a ShardPlan per shard with samples to evaluate.
	Shards beam.PCollection
	// Rejected holds a results.Rejection per sample set aside before
	// evaluation: defects found in the headers and duplicated keys.
	Rejected beam.PCollection
	// Count is a single PlanCount for the whole input.
	Count beam.PCollection
}

// PlanSamples indexes every shard from its tar headers alone, settles
// duplicate keys, and returns the ShardPlans of the samples to evaluate, in
// pieces of about EvalConfig.RestrictionBytes.
//
// A key found more than once, in one shard or several, is rejected in every
// copy before anything is evaluated: which copy is right cannot be known.
// Only the small index travels: the keys, in batches, through one shuffle by
// bucket, and each shard's plan, with the few duplicates to drop, through a
// join by shard. Sample data is read once, by the evaluation.
func PlanSamples(s beam.Scope, cfg EvalConfig, shards beam.PCollection) Plan {
	s = s.Scope("transforms.PlanSamples")
	plans, keys, rejectedInShards, counts := beam.ParDo4(s, &indexShardFn{EvalConfig: cfg}, beam.Reshuffle(s, shards))
	drops, duplicates := beam.ParDo2(s, &findDuplicatesFn{Policy: cfg.Policy}, beam.GroupByKey(s, keys))
	return Plan{
		Shards:   beam.ParDo(s, &chunkPlanFn{RestrictionBytes: cfg.RestrictionBytes}, beam.CoGroupByKey(s, plans, drops)),
		Rejected: beam.Flatten(s, rejectedInShards, duplicates),
		Count:    beam.Combine(s, addPlanCounts, counts),
	}
}

// indexShardFn reads the tar headers of a shard, hopping from header to
// header, pinned to the generation matched.
type indexShardFn struct {
	EvalConfig
	store *storage.Store
}

func (f *indexShardFn) Setup() { f.store = storage.New(f.Storage) }

func (f *indexShardFn) Teardown() error { return f.store.Close() }

func (f *indexShardFn) ProcessElement(ctx context.Context, sh results.Shard, emitPlan func(string, ShardPlan),
	emitKeys func(int, KeyBatch), emitReject func(results.Rejection), emitCount func(PlanCount)) error {
	r, err := f.store.OpenSeeker(ctx, sh.Path, sh.Generation, sh.Size)
	if err != nil {
		return err
	}
	defer r.Close()
	entries, broken := shard.Index(r, sh.Path, shard.Limits{MaxMemberBytes: f.memberLimit(sh)})
	requests, n := r.Stats()
	planRequests.Inc(ctx, requests)
	planBytes.Inc(ctx, n)
	if broken != nil && !evaluate.IsBadInput(broken) {
		return broken // storage failed: let the runner retry
	}
	plan := ShardPlan{Shard: sh}
	batches := map[int]*KeyBatch{}
	for _, e := range entries {
		bucket := bucketOf(e.Key)
		b := batches[bucket]
		if b == nil {
			b = &KeyBatch{Shard: sh.Path}
			batches[bucket] = b
		}
		b.Keys, b.Offsets, b.Defective = append(b.Keys, e.Key), append(b.Offsets, e.Offset), append(b.Defective, e.Err != nil)
		if e.Err != nil {
			if err := f.reject(ctx, e.Key, sh.Path, e.Err, emitReject); err != nil {
				return err
			}
			continue
		}
		plan.Samples = append(plan.Samples, SampleSpan{Key: e.Key, Offset: e.Offset, Length: e.Length})
	}
	count := PlanCount{Files: 1, Samples: int64(len(entries))}
	if broken != nil {
		// Nothing past a broken header can be located: the rest of the
		// shard is one rejection.
		if err := f.reject(ctx, "", sh.Path, broken, emitReject); err != nil {
			return err
		}
		count.Samples++
	}
	emitPlan(sh.Path, plan)
	for bucket, b := range batches {
		emitKeys(bucket, *b)
	}
	shardsRead.Inc(ctx, 1)
	progress.imagesTotal.Add(int64(len(entries)))
	emitCount(count)
	return nil
}

// reject sets a sample aside, or returns err when the run must fail for it.
func (f *indexShardFn) reject(ctx context.Context, key, shardName string, err error, emit func(results.Rejection)) error {
	if err := f.Policy.check(err); err != nil {
		return err
	}
	rejected.Inc(ctx, 1)
	emit(results.Rejection{Key: key, Shard: shardName, Reason: err.Error()})
	return nil
}

// memberLimit is the largest member the shard can hold: a header claiming
// more is caught before anything is allocated.
func (f *indexShardFn) memberLimit(sh results.Shard) int64 {
	limit := f.Decode.Limits.MaxMemberBytes
	if sh.Size > 0 {
		limit = min(limit, sh.Size)
	}
	return limit
}

// findDuplicatesFn finds the keys of a bucket that occur more than once,
// rejects each copy (but those already rejected for a defect of their own),
// and tells each copy's shard to drop it, by offset.
type findDuplicatesFn struct {
	Policy Policy
}

// keyCopy is one occurrence of a key.
type keyCopy struct {
	shard     string
	offset    int64
	defective bool
}

func (f *findDuplicatesFn) ProcessElement(ctx context.Context, _ int, batches func(*KeyBatch) bool,
	drop func(string, int64), reject func(results.Rejection)) error {
	copies := map[string][]keyCopy{}
	var b KeyBatch
	for batches(&b) {
		for i, key := range b.Keys {
			copies[key] = append(copies[key], keyCopy{shard: b.Shard, offset: b.Offsets[i], defective: b.Defective[i]})
		}
	}
	for _, key := range slices.Sorted(maps.Keys(copies)) {
		all := copies[key]
		if len(all) < 2 {
			continue
		}
		slices.SortFunc(all, func(a, b keyCopy) int {
			if c := strings.Compare(a.shard, b.shard); c != 0 {
				return c
			}
			return cmp.Compare(a.offset, b.offset)
		})
		for i, c := range all {
			if c.defective {
				continue // rejected for its own defect already
			}
			reason := duplicateReason(key, all, i)
			if f.Policy.MaxRejected == 0 {
				return fmt.Errorf("shard %s: %s", c.shard, reason)
			}
			rejected.Inc(ctx, 1)
			reject(results.Rejection{Key: key, Shard: c.shard, Reason: reason})
			drop(c.shard, c.offset)
		}
	}
	return nil
}

// duplicateReason names the other copies of all[i]'s key.
func duplicateReason(key string, all []keyCopy, i int) string {
	var others []string
	for j, o := range all {
		switch {
		case j == i:
		case o.shard == all[i].shard:
			others = append(others, fmt.Sprintf("this shard at offset %d", o.offset))
		default:
			others = append(others, o.shard)
		}
	}
	return fmt.Sprintf("duplicate key: sample %s is also in %s", key, strings.Join(others, ", "))
}

// chunkPlanFn removes from a shard's plan the samples found duplicated, and
// emits what is left in chunks of about RestrictionBytes: the initial split,
// done here rather than by the evaluation's SplitRestriction so that each
// piece travels alone (a runner copies a splittable element whole into
// every restriction of it) and a runner can spread the pieces of one large
// shard over its workers.
type chunkPlanFn struct {
	RestrictionBytes int64
}

func (f *chunkPlanFn) ProcessElement(_ string, plans func(*ShardPlan) bool, drops func(*int64) bool, emit func(ShardPlan)) {
	dropped := map[int64]bool{}
	var offset int64
	for drops(&offset) {
		dropped[offset] = true
	}
	var plan ShardPlan
	for plans(&plan) {
		plan.Samples = slices.DeleteFunc(plan.Samples, func(sp SampleSpan) bool { return dropped[sp.Offset] })
		all := offsetrange.Restriction{Start: 0, End: int64(len(plan.Samples))}
		for _, r := range splitPlan(plan, all, restrictionBytes(f.RestrictionBytes), restrictionSamples) {
			emit(ShardPlan{Shard: plan.Shard, Samples: plan.Samples[r.Start:r.End]})
		}
	}
}
