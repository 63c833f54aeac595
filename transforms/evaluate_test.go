package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
)

const testClasses = 4

func testConfig() EvalConfig {
	return EvalConfig{
		Eval: evaluate.Options{
			Mode: evaluate.Multiclass, ClassSet: lovasz.ClassSet{Mode: lovasz.Present},
			Ignore: 255, HasIgnore: true, BinsPerOctave: lovasz.DefaultBinsPerOctave, Bootstrap: 10,
		},
		Decode: sample.Options{Limits: sample.Limits{MaxPixels: 1 << 20, MaxClasses: 64, MaxMemberBytes: 1 << 20}},
		Policy: Policy{MaxRejected: 0},
	}
}

// writeShard writes n synthetic samples into one local tar shard and
// returns it as MatchShards would.
func writeShard(t *testing.T, n int) results.Shard {
	t.Helper()
	opt := synth.Options{Classes: testClasses, Height: 8, Width: 12, Regions: 3, Ignore: 255, Confidence: 2}
	var b bytes.Buffer
	sw := synth.NewShardWriter(&b)
	for i := range n {
		im := synth.NewImage(fmt.Sprintf("k%03d", i), opt, uint64(i+1))
		im.RoundToFloat16()
		if err := sw.Write(im); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shard.tar")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return matchOne(t, path)
}

func matchOne(t *testing.T, path string) results.Shard {
	t.Helper()
	objs, err := storage.New(storage.Options{}).Match(context.Background(), path)
	if err != nil || len(objs) != 1 {
		t.Fatalf("match %s: %v %v", path, objs, err)
	}
	return results.Shard{Path: objs[0].Path, Size: objs[0].Size, Generation: objs[0].Generation}
}

// planOf indexes a shard with the planning DoFn.
func planOf(t *testing.T, cfg EvalConfig, sh results.Shard) ShardPlan {
	t.Helper()
	fn := &indexShardFn{EvalConfig: cfg}
	fn.Setup()
	defer fn.Teardown()
	var plan ShardPlan
	var keys int
	err := fn.ProcessElement(context.Background(), sh, func(_ string, p ShardPlan) { plan = p },
		func(_ int, b KeyBatch) { keys += len(b.Keys) }, func(r results.Rejection) { t.Errorf("rejected %v", r) }, func(PlanCount) {})
	if keys != len(plan.Samples) {
		t.Errorf("%d keys sent to the duplicate search, %d samples planned", keys, len(plan.Samples))
	}
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestSplitPlan(t *testing.T) {
	plan := ShardPlan{}
	// Samples of 100 bytes, with a 50-byte gap (a sample left out) after
	// the third.
	offset := int64(0)
	for i := range 8 {
		plan.Samples = append(plan.Samples, SampleSpan{Key: fmt.Sprint(i), Offset: offset, Length: 100})
		offset += 100
		if i == 2 {
			offset += 50
		}
	}
	r := func(start, end int64) offsetrange.Restriction { return offsetrange.Restriction{Start: start, End: end} }
	for _, tc := range []struct {
		name               string
		rest               offsetrange.Restriction
		maxBytes, maxCount int64
		want               []offsetrange.Restriction
	}{
		{"one piece", r(0, 8), 1 << 20, 100, []offsetrange.Restriction{r(0, 8)}},
		{"by bytes", r(0, 8), 300, 100, []offsetrange.Restriction{r(0, 3), r(3, 6), r(6, 8)}},
		{"the gap counts", r(0, 8), 420, 100, []offsetrange.Restriction{r(0, 4), r(4, 8)}},
		{"by samples", r(0, 8), 1 << 20, 3, []offsetrange.Restriction{r(0, 3), r(3, 6), r(6, 8)}},
		{"a sample each", r(2, 5), 1, 100, []offsetrange.Restriction{r(2, 3), r(3, 4), r(4, 5)}},
		{"empty", r(4, 4), 1, 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := splitPlan(plan, tc.rest, tc.maxBytes, tc.maxCount)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			var total float64
			for _, g := range got {
				total += (&evaluateSamplesFn{}).RestrictionSize(plan, g)
			}
			if want := float64(plan.Bytes(tc.rest.Start, tc.rest.End)); len(got) > 0 && total < want-150 {
				t.Errorf("pieces size %v, the whole %v", total, want)
			}
		})
	}
}

// splittingTracker splits its restriction once, after a number of claims,
// as a runner's dynamic rebalancing would while the DoFn runs.
type splittingTracker struct {
	*offsetrange.Tracker
	after    int
	claims   int
	fraction float64
	residual any
}

func (s *splittingTracker) TryClaim(pos any) bool {
	ok := s.Tracker.TryClaim(pos)
	if s.claims++; ok && s.claims == s.after {
		_, s.residual, _ = s.Tracker.TrySplit(s.fraction)
	}
	return ok
}

// bundleRun runs the evaluation DoFn over restrictions of one plan as one
// bundle, and returns the keys it emitted and its merged accumulator.
func bundleRun(t *testing.T, fn *evaluateSamplesFn, plan ShardPlan, trackers ...sdf.RTracker) ([]string, *evaluate.Accumulator, error) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	var acc *evaluate.Accumulator
	candidate := func(evaluate.Result) {}
	partial := func(a *evaluate.Accumulator) {
		if acc != nil {
			t.Fatal("a bundle emitted two accumulators")
		}
		acc = a
	}
	slice := func(string, *evaluate.Tally) {}
	reject := func(r results.Rejection) { t.Errorf("rejected %v", r) }
	// The keys evaluated are those of the rows in the parts written.
	part := func(p results.Part) {
		data, err := os.ReadFile(p.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var row struct{ Key string }
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, row.Key)
		}
		if int64(len(strings.Split(strings.TrimSpace(string(data)), "\n"))) != p.Lines {
			t.Errorf("part %s says %d lines", p.Path, p.Lines)
		}
	}
	fn.StartBundle(ctx, candidate, partial, slice, reject, part)
	for _, rt := range trackers {
		if err := fn.ProcessElement(ctx, sdf.NewLockRTracker(rt), plan, candidate, partial, slice, reject, part); err != nil {
			return keys, acc, err
		}
	}
	err := fn.FinishBundle(ctx, candidate, partial, slice, reject, part)
	return keys, acc, err
}

func newEvaluateFn(t *testing.T, cfg EvalConfig) *evaluateSamplesFn {
	cfg.Rows = RowSpec{Dir: t.TempDir(), RunID: "r", Mode: evaluate.Multiclass, WorstK: 2}
	fn := &evaluateSamplesFn{EvalConfig: cfg}
	fn.Setup()
	return fn
}

// TestSplitMidRestriction splits a running restriction at several points
// and fractions: the primary and the residual, each run as its own bundle,
// must evaluate every sample exactly once between them.
func TestSplitMidRestriction(t *testing.T) {
	cfg := testConfig()
	sh := writeShard(t, 9)
	plan := planOf(t, cfg, sh)
	if len(plan.Samples) != 9 {
		t.Fatalf("planned %d samples, want 9", len(plan.Samples))
	}
	want := make([]string, 9)
	for i := range want {
		want[i] = fmt.Sprintf("k%03d", i)
	}
	for _, tc := range []struct {
		after    int
		fraction float64
	}{{1, 0}, {1, 0.5}, {3, 0.5}, {5, 0.1}, {8, 0.9}, {9, 0.5}} {
		t.Run(fmt.Sprintf("after %d at %v", tc.after, tc.fraction), func(t *testing.T) {
			fn := newEvaluateFn(t, cfg)
			defer fn.Teardown()
			rt := &splittingTracker{Tracker: offsetrange.NewTracker(offsetrange.Restriction{Start: 0, End: 9}), after: tc.after, fraction: tc.fraction}
			primary, primaryAcc, err := bundleRun(t, fn, plan, rt)
			if err != nil {
				t.Fatal(err)
			}
			keys := primary
			images := primaryAcc.Tally.Images
			if rt.residual != nil {
				res := rt.residual.(offsetrange.Restriction)
				residual, residualAcc, err := bundleRun(t, fn, plan, offsetrange.NewTracker(res))
				if err != nil {
					t.Fatal(err)
				}
				if residualAcc == nil || int64(len(residual)) != res.End-res.Start {
					t.Fatalf("residual %v evaluated %v", res, residual)
				}
				keys = append(keys, residual...)
				images += residualAcc.Tally.Images
			}
			slices.Sort(keys)
			if !slices.Equal(keys, want) {
				t.Errorf("evaluated %v, want each of %v once", keys, want)
			}
			if images != 9 {
				t.Errorf("accumulators hold %d images, want 9", images)
			}
		})
	}
}

// TestBundleAccumulatesAcrossRestrictions checks that a bundle of several
// restrictions emits one accumulator holding all of them.
func TestBundleAccumulatesAcrossRestrictions(t *testing.T) {
	cfg := testConfig()
	plan := planOf(t, cfg, writeShard(t, 6))
	fn := newEvaluateFn(t, cfg)
	defer fn.Teardown()
	var trackers []sdf.RTracker
	for _, r := range splitPlan(plan, offsetrange.Restriction{Start: 0, End: 6}, 1, 100) {
		trackers = append(trackers, offsetrange.NewTracker(r))
	}
	keys, acc, err := bundleRun(t, fn, plan, trackers...)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 || acc == nil || acc.Tally.Images != 6 {
		t.Fatalf("keys %v, accumulator %+v", keys, acc)
	}
	// A second bundle on the same DoFn instance starts empty.
	keys, acc, err = bundleRun(t, fn, plan, offsetrange.NewTracker(offsetrange.Restriction{Start: 0, End: 2}))
	if err != nil || len(keys) != 2 || acc.Tally.Images != 2 {
		t.Fatalf("second bundle: keys %v, images %d, %v", keys, acc.Tally.Images, err)
	}
}

// TestShardChangedAfterMatch rewrites a shard between matching and
// reading: planning and evaluation both refuse it, naming it.
func TestShardChangedAfterMatch(t *testing.T) {
	cfg := testConfig()
	sh := writeShard(t, 3)
	plan := planOf(t, cfg, sh)
	rewrite := func() {
		data, err := os.ReadFile(sh.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sh.Path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		later := time.Unix(0, sh.Generation).Add(time.Hour)
		if err := os.Chtimes(sh.Path, later, later); err != nil {
			t.Fatal(err)
		}
	}
	rewrite()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrChanged) || !strings.Contains(err.Error(), sh.Path) {
			t.Errorf("%s of a rewritten shard: %v, want storage.ErrChanged naming %s", what, err, sh.Path)
		}
	}

	fn := newEvaluateFn(t, cfg)
	defer fn.Teardown()
	_, _, err := bundleRun(t, fn, plan, offsetrange.NewTracker(offsetrange.Restriction{Start: 0, End: 3}))
	check("evaluation", err)

	index := &indexShardFn{EvalConfig: cfg}
	index.Setup()
	defer index.Teardown()
	err = index.ProcessElement(context.Background(), sh, func(string, ShardPlan) {}, func(int, KeyBatch) {}, func(results.Rejection) {}, func(PlanCount) {})
	check("planning", err)
}
