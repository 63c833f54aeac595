package transforms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
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
	beam.RegisterType(reflect.TypeOf((*settleKeyFn)(nil)).Elem())
	beam.RegisterFunction(keyOfPlanned)
	beam.RegisterFunction(shardOfPlanned)
	beam.RegisterFunction(newShardPlan)
	beam.RegisterFunction(addPlanCounts)
	register.Emitter1[PlannedSample]()
	register.Emitter2[string, PlannedSample]()
	register.Emitter1[PlanCount]()
	register.Emitter1[ShardPlan]()
	register.Iter1[PlannedSample]()
}

// PlannedSample is a sample found in the tar headers of a shard: where it
// is, and why it cannot be evaluated if it cannot.
type PlannedSample struct {
	Shard  results.Shard // the shard, with the generation every read is pinned to
	Key    string
	Offset int64 // of the tar header of its first member
	Length int64 // through the padded data of its last member
	// Defect says why the sample cannot be evaluated (a field given twice,
	// a member over the size limit); "" when it can.
	Defect string
}

// ShardPlan is the work of evaluating one shard: its samples in the order
// of their offsets, each to be evaluated exactly once.
type ShardPlan struct {
	Shard   results.Shard
	Samples []SampleSpan
}

// SampleSpan is where a sample lies in its shard.
type SampleSpan struct {
	Key    string
	Offset int64
	Length int64
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
// duplicate keys, and groups what is left into one ShardPlan per shard.
//
// A key found more than once, in one shard or several, is rejected in every
// copy before anything is evaluated: which copy is right cannot be known.
// Only the small index travels through the two shuffles (by key, then by
// shard); sample data is read once, by the evaluation.
func PlanSamples(s beam.Scope, cfg EvalConfig, shards beam.PCollection) Plan {
	s = s.Scope("PlanSamples")
	planned, rejectedInShards, counts := beam.ParDo3(s, &indexShardFn{EvalConfig: cfg}, beam.Reshuffle(s, shards))
	byKey := beam.GroupByKey(s, beam.ParDo(s, keyOfPlanned, planned))
	kept, duplicates := beam.ParDo2(s, &settleKeyFn{Policy: cfg.Policy}, byKey)
	plans := beam.ParDo(s, newShardPlan, beam.GroupByKey(s, beam.ParDo(s, shardOfPlanned, kept)))
	return Plan{
		Shards:   plans,
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

func (f *indexShardFn) ProcessElement(ctx context.Context, sh results.Shard, emit func(PlannedSample),
	emitReject func(results.Rejection), emitCount func(PlanCount)) error {
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
	for _, e := range entries {
		p := PlannedSample{Shard: sh, Key: e.Key, Offset: e.Offset, Length: e.Length}
		if e.Err != nil {
			p.Defect = e.Err.Error()
		}
		emit(p)
	}
	count := PlanCount{Files: 1, Samples: int64(len(entries))}
	if broken != nil {
		// Nothing past a broken header can be located: the rest of the
		// shard is one rejection.
		if err := f.Policy.check(broken); err != nil {
			return err
		}
		rejected.Inc(ctx, 1)
		emitReject(results.Rejection{Shard: sh.Path, Reason: broken.Error()})
		count.Samples++
	}
	shardsRead.Inc(ctx, 1)
	progress.imagesTotal.Add(int64(len(entries)))
	emitCount(count)
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

func keyOfPlanned(p PlannedSample) (string, PlannedSample) { return p.Key, p }

func shardOfPlanned(p PlannedSample) (string, PlannedSample) { return p.Shard.Path, p }

// settleKeyFn passes on the one copy of a key, and rejects every copy of a
// key found more than once and every sample with a defect.
type settleKeyFn struct {
	Policy Policy
}

func (f *settleKeyFn) ProcessElement(ctx context.Context, key string, copies func(*PlannedSample) bool, emit func(PlannedSample), reject func(results.Rejection)) error {
	var all []PlannedSample
	var p PlannedSample
	for copies(&p) {
		all = append(all, p)
	}
	if len(all) == 1 && all[0].Defect == "" {
		emit(all[0])
		return nil
	}
	slices.SortFunc(all, func(a, b PlannedSample) int {
		if c := strings.Compare(a.Shard.Path, b.Shard.Path); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	for i, p := range all {
		reason := p.Defect
		if reason == "" {
			reason = duplicateReason(key, all, i)
		}
		if f.Policy.MaxRejected == 0 {
			if p.Defect != "" {
				return errors.New(p.Defect) // names shard and member
			}
			return fmt.Errorf("shard %s: %s", p.Shard.Path, reason)
		}
		rejected.Inc(ctx, 1)
		reject(results.Rejection{Key: key, Shard: p.Shard.Path, Reason: reason})
	}
	return nil
}

// duplicateReason names the other copies of all[i]'s key.
func duplicateReason(key string, all []PlannedSample, i int) string {
	var others []string
	for j, o := range all {
		switch {
		case j == i:
		case o.Shard.Path == all[i].Shard.Path:
			others = append(others, fmt.Sprintf("this shard at offset %d", o.Offset))
		default:
			others = append(others, o.Shard.Path)
		}
	}
	return fmt.Sprintf("duplicate key: sample %s is also in %s", key, strings.Join(others, ", "))
}

// newShardPlan orders a shard's samples by offset.
func newShardPlan(path string, samples func(*PlannedSample) bool, emit func(ShardPlan)) {
	var plan ShardPlan
	var p PlannedSample
	for samples(&p) {
		plan.Shard = p.Shard
		plan.Samples = append(plan.Samples, SampleSpan{Key: p.Key, Offset: p.Offset, Length: p.Length})
	}
	slices.SortFunc(plan.Samples, func(a, b SampleSpan) int { return cmp.Compare(a.Offset, b.Offset) })
	emit(plan)
}
