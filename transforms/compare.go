package transforms

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*resolveBaselineFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*readRowRangeFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*readPartRowsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*pairRowsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*pairedRunsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*locatePlanFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*locatePairFn)(nil)).Elem())
	beam.RegisterFunction(finishCompare)
	// The join's accumulator and result cross the shuffle as gob: the
	// schema coder's handling of nested pointers and NaN-holding lists is
	// not what this package wants to depend on, and they are a few KB.
	beam.RegisterCoder(reflect.TypeOf((*evaluate.PairedRuns)(nil)), encodePairedRuns, decodePairedRuns)
	beam.RegisterCoder(reflect.TypeOf((*ComparedRuns)(nil)).Elem(), encodeComparedRuns, decodeComparedRuns)
	register.Emitter1[RowRange]()
	register.Emitter1[BaselineRef]()
	register.Emitter2[string, RowValues]()
	register.Emitter1[PairOutcome]()
	register.Emitter1[ComparedRuns]()
	register.Emitter1[[]evaluate.Result]()
	register.Iter1[RowValues]()
	register.Iter1[BaselineRef]()
	register.Iter1[*evaluate.PairedRuns]()
	register.Iter1[ComparedRuns]()
}

// CompareK is the number of images the comparison lists by each measure
// (per-image loss, per-image mIoU) and direction: most_regressed and
// most_improved hold at most 2 x CompareK images each.
const CompareK = 5

// compareRangeBytes is the size of the pieces the baseline's
// per_image.jsonl is read in, by as many workers: about 200,000 rows.
const compareRangeBytes = 32 << 20

// RowRange is a byte range of a per-image file, pinned to the version
// matched. It holds the rows that start in it.
type RowRange struct {
	Path             string
	Generation, Size int64
	Offset, Length   int64
}

// BaselineRef names the baseline a run was compared with, as resolved once
// for the whole run (--baseline=latest is read from LATEST when the join
// starts, and the last stage uses the same run).
type BaselineRef struct {
	Metrics string // the baseline's metrics.json
	RunID   string
}

// RowValues are what the join takes from a per-image row: its loss and
// mIoU, NaN where null.
type RowValues struct {
	Loss, MIoU float64
}

// PairOutcome is one key of the join: in which runs it is, with its
// values in each.
type PairOutcome struct {
	Key                     string
	InCandidate, InBaseline bool
	Candidate, Baseline     RowValues
}

// ComparedRuns is the join's result, for the last stage: the baseline it
// was made against and the join's statistics.
type ComparedRuns struct {
	Baseline BaselineRef
	Paired   *evaluate.PairedRuns
}

// CompareInputs are the collections a comparison reads.
type CompareInputs struct {
	// Parts are the evaluation's results.Part values; those of
	// per_image.jsonl are read.
	Parts beam.PCollection
	// Plans holds the ShardPlans of tar inputs, Pairs the Pairs of paired
	// files (the other is the zero PCollection): where the images to show
	// are found again.
	Plans, Pairs beam.PCollection
}

// Compared is what Compare returns.
type Compared struct {
	// Runs holds one ComparedRuns when the run has a baseline, none
	// otherwise.
	Runs beam.PCollection
	// Images holds []evaluate.Result values of one image each: the most
	// regressed and most improved images, located in their shards for
	// Thumbnails. Only their keys and locations are set.
	Images beam.PCollection
}

// Compare joins this run's per-image rows with the baseline's by key, in a
// CoGroupByKey: this run's rows are read from the parts the evaluation
// wrote, the baseline's from its per_image.jsonl, in byte ranges read by
// as many workers, so that no worker holds either run's rows. A combine
// then counts the images in both runs and in one only, sums the per-image
// loss differences of the images in both with their bootstrap replicates
// (weights from evaluate.Weight, the same in both runs), and keeps the
// images that changed most (evaluate.PairedRuns). The baseline is resolved
// once, here: --baseline=latest reads LATEST when the join starts.
//
// Without a baseline it adds nothing and returns empty collections.
func Compare(s beam.Scope, spec OutputSpec, replicates int, in CompareInputs) Compared {
	s = s.Scope("transforms.Compare")
	if spec.Gate.Baseline == "" {
		return Compared{Runs: beam.CreateList(s, []ComparedRuns{}), Images: beam.CreateList(s, [][]evaluate.Result{})}
	}
	ranges, ref := beam.ParDo2(s, &resolveBaselineFn{Spec: spec, RangeBytes: compareRangeBytes}, beam.Impulse(s))
	baseRows := beam.ParDo(s, &readRowRangeFn{Storage: spec.Storage}, beam.Reshuffle(s, ranges))
	candRows := beam.ParDo(s, &readPartRowsFn{Storage: spec.Storage}, beam.Reshuffle(s, in.Parts), beam.SideInput{Input: ref})
	outcomes := beam.ParDo(s, &pairRowsFn{}, beam.CoGroupByKey(s, candRows, baseRows))
	paired := beam.Combine(s, &pairedRunsFn{Replicates: replicates, K: CompareK}, outcomes)
	runs := beam.ParDo(s, finishCompare, beam.Impulse(s),
		beam.SideInput{Input: ref}, beam.SideInput{Input: paired})
	var images beam.PCollection
	if in.Pairs.IsValid() {
		images = beam.ParDo(s, &locatePairFn{}, in.Pairs, beam.SideInput{Input: runs})
	} else {
		images = beam.ParDo(s, &locatePlanFn{}, in.Plans, beam.SideInput{Input: runs})
	}
	return Compared{Runs: runs, Images: images}
}

// resolveBaselineFn reads the baseline's metrics.json (resolving latest),
// matches its per_image.jsonl, and cuts it into ranges.
type resolveBaselineFn struct {
	Spec       OutputSpec
	RangeBytes int64
}

func (f *resolveBaselineFn) ProcessElement(ctx context.Context, _ []byte, emitRange func(RowRange), emitRef func(BaselineRef)) error {
	store := storage.New(f.Spec.Storage)
	defer store.Close()
	m, path, err := readBaseline(ctx, store, f.Spec)
	if err != nil || m == nil {
		return err // none yet: the gate says missing_baseline
	}
	rows := storage.Join(dirOf(path), results.PerImageFile)
	// Match finds the file with its size and version; a path with glob
	// characters of its own is found by listing its folder instead.
	var objs []storage.Object
	if strings.ContainsAny(rows, "*?[") {
		objs, err = store.List(ctx, dirOf(rows))
	} else {
		objs, err = store.Match(ctx, rows)
	}
	if err != nil {
		return fmt.Errorf("baseline %s: %w", path, err)
	}
	i := slices.IndexFunc(objs, func(o storage.Object) bool { return o.Path == rows || o.Path == filepath.Clean(rows) })
	if i < 0 {
		return fmt.Errorf("baseline %s: no %s beside it, which the comparison pairs images from", path, results.PerImageFile)
	}
	o := objs[i]
	for off := int64(0); off < o.Size; off += f.RangeBytes {
		emitRange(RowRange{Path: o.Path, Generation: o.Generation, Size: o.Size, Offset: off, Length: min(f.RangeBytes, o.Size-off)})
	}
	emitRef(BaselineRef{Metrics: path, RunID: m.RunID})
	return nil
}

// dirOf is the folder of a local or gs:// path.
func dirOf(path string) string {
	if i := strings.LastIndex(path, "/"); i >= 0 {
		return path[:i]
	}
	return "."
}

// readRowRangeFn reads the rows that start in a range of the baseline's
// per_image.jsonl.
type readRowRangeFn struct {
	Storage storage.Options

	store *storage.Store
}

func (f *readRowRangeFn) Setup() { f.store = storage.New(f.Storage) }

func (f *readRowRangeFn) Teardown() error { return f.store.Close() }

func (f *readRowRangeFn) ProcessElement(ctx context.Context, rr RowRange, emit func(string, RowValues)) error {
	start := max(rr.Offset-1, 0) // the byte before tells whether a row starts at Offset
	r, err := f.store.OpenRange(ctx, rr.Path, rr.Generation, start, rr.Size-start)
	if err != nil {
		return fmt.Errorf("baseline rows: %w", err)
	}
	defer r.Close()
	return rangeLines(r, start, rr.Offset, rr.Offset+rr.Length, func(line []byte, at int64) error {
		key, v, err := parseRow(line)
		if err != nil {
			return fmt.Errorf("%s, row at byte %d: %w", rr.Path, at, err)
		}
		emit(key, v)
		return nil
	})
}

// rangeLines calls fn with each line (without its newline) that starts in
// [offset, end) of a file, and its position, reading r, which starts at
// byte start of the file: offset-1, or 0 when offset is 0. Cutting a file
// into ranges this way gives each line to exactly one range, whichever
// range a line's bytes straddle. Empty lines are skipped.
func rangeLines(r io.Reader, start, offset, end int64, fn func(line []byte, at int64) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	pos := start
	if start < offset {
		// Skip to the first line starting at or after offset: the rest
		// of a line in progress belongs to the range before.
		skipped, err := br.ReadBytes('\n')
		pos += int64(len(skipped))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	for pos < end {
		line, err := br.ReadBytes('\n')
		at := pos
		pos += int64(len(line))
		if line = bytes.TrimSuffix(line, []byte("\n")); len(line) > 0 {
			if err := fn(line, at); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseRow reads the key, loss and mIoU of a per-image row.
func parseRow(line []byte) (string, RowValues, error) {
	var row struct {
		Key     string   `json:"key"`
		Softmax *float64 `json:"lovasz_softmax"`
		Hinge   *float64 `json:"lovasz_hinge"`
		MIoU    *float64 `json:"miou"`
	}
	if err := json.Unmarshal(line, &row); err != nil {
		return "", RowValues{}, fmt.Errorf("malformed per-image row %.80q: %w", line, err)
	}
	if row.Key == "" {
		return "", RowValues{}, fmt.Errorf("per-image row %.80q has no key", line)
	}
	v := RowValues{Loss: math.NaN(), MIoU: math.NaN()}
	switch {
	case row.Softmax != nil:
		v.Loss = *row.Softmax
	case row.Hinge != nil:
		v.Loss = *row.Hinge
	}
	if row.MIoU != nil {
		v.MIoU = *row.MIoU
	}
	return row.Key, v, nil
}

// readPartRowsFn reads this run's rows from a part of per_image.jsonl,
// when there is a baseline to join them with (--baseline=latest before the
// model's first blessed run has none).
type readPartRowsFn struct {
	Storage storage.Options

	store *storage.Store
}

func (f *readPartRowsFn) Setup() { f.store = storage.New(f.Storage) }

func (f *readPartRowsFn) Teardown() error { return f.store.Close() }

func (f *readPartRowsFn) ProcessElement(ctx context.Context, part results.Part, baseline func(*BaselineRef) bool, emit func(string, RowValues)) error {
	var ref BaselineRef
	if part.File != results.PerImageFile || !baseline(&ref) {
		return nil
	}
	r, err := f.store.Open(ctx, part.Path)
	if err != nil {
		return fmt.Errorf("part of %s: %w", results.PerImageFile, err)
	}
	defer r.Close()
	return rangeLines(r, 0, 0, math.MaxInt64, func(line []byte, at int64) error {
		key, v, err := parseRow(line)
		if err != nil {
			return fmt.Errorf("%s, row at byte %d: %w", part.Path, at, err)
		}
		emit(key, v)
		return nil
	})
}

// pairRowsFn sorts each key of the join into both runs or one.
type pairRowsFn struct{}

func (pairRowsFn) ProcessElement(key string, cand, base func(*RowValues) bool, emit func(PairOutcome)) error {
	o := PairOutcome{Key: key}
	var v RowValues
	for cand(&v) {
		if o.InCandidate {
			return fmt.Errorf("image %s has two per-image rows in this run", key)
		}
		o.InCandidate, o.Candidate = true, v
	}
	for base(&v) {
		if o.InBaseline {
			return fmt.Errorf("image %s has two rows in the baseline's %s", key, results.PerImageFile)
		}
		o.InBaseline, o.Baseline = true, v
	}
	emit(o)
	return nil
}

// pairedRunsFn combines the join's outcomes into an evaluate.PairedRuns.
type pairedRunsFn struct {
	Replicates int
	K          int
}

func (f *pairedRunsFn) CreateAccumulator() *evaluate.PairedRuns {
	return evaluate.NewPairedRuns(f.Replicates, f.K)
}

func (f *pairedRunsFn) AddInput(p *evaluate.PairedRuns, o PairOutcome) *evaluate.PairedRuns {
	switch {
	case o.InCandidate && o.InBaseline:
		p.AddPaired(o.Key, o.Candidate.Loss, o.Baseline.Loss, o.Candidate.MIoU, o.Baseline.MIoU)
	case o.InCandidate || o.InBaseline:
		p.AddOnly(o.InCandidate)
	}
	return p
}

func (f *pairedRunsFn) MergeAccumulators(a, b *evaluate.PairedRuns) (*evaluate.PairedRuns, error) {
	if err := a.Merge(b); err != nil {
		return nil, err
	}
	return a, nil
}

// finishCompare pairs the baseline resolved with the join's statistics;
// there are none when neither run has a row.
func finishCompare(_ []byte, refs func(*BaselineRef) bool, paired func(**evaluate.PairedRuns) bool, emit func(ComparedRuns)) {
	var ref BaselineRef
	if !refs(&ref) {
		return // no baseline yet
	}
	out := ComparedRuns{Baseline: ref}
	if !paired(&out.Paired) {
		out.Paired = evaluate.NewPairedRuns(0, CompareK)
	}
	emit(out)
}

// shownKeys are the keys of the images the comparison lists.
func shownKeys(runs func(*ComparedRuns) bool) map[string]bool {
	keys := map[string]bool{}
	var c ComparedRuns
	for runs(&c) {
		for _, list := range [][]evaluate.ImageDelta{c.Paired.MostRegressed(), c.Paired.MostImproved()} {
			for _, d := range list {
				keys[d.Key] = true
			}
		}
	}
	return keys
}

// locatePlanFn finds the listed images in the plan of tar shards.
type locatePlanFn struct{}

func (locatePlanFn) ProcessElement(plan ShardPlan, runs func(*ComparedRuns) bool, emit func([]evaluate.Result)) {
	keys := shownKeys(runs)
	for _, sp := range plan.Samples {
		if keys[sp.Key] {
			emit([]evaluate.Result{{Key: sp.Key, Shard: plan.Shard.Path, Offset: sp.Offset, Length: sp.Length, Generation: plan.Shard.Generation,
				Loss: math.NaN(), LossBound: math.NaN(), MIoU: math.NaN(), PixelAccuracy: math.NaN()}})
		}
	}
}

// locatePairFn finds the listed images among the paired files.
type locatePairFn struct{}

func (locatePairFn) ProcessElement(p Pair, runs func(*ComparedRuns) bool, emit func([]evaluate.Result)) {
	if shownKeys(runs)[p.Key] {
		emit([]evaluate.Result{{Key: p.Key, Shard: p.Prediction.Path, LabelFile: p.Label.Path,
			Loss: math.NaN(), LossBound: math.NaN(), MIoU: math.NaN(), PixelAccuracy: math.NaN()}})
	}
}

// The coders of the join's accumulator and result. Each is a named,
// non-generic function: the SDK finds coder functions by symbol name, which
// two instantiations of one generic function share.
func encodePairedRuns(p *evaluate.PairedRuns) ([]byte, error) { return encodeGob(p) }

func decodePairedRuns(data []byte) (*evaluate.PairedRuns, error) {
	p := new(evaluate.PairedRuns)
	return p, decodeGob(data, p)
}

func encodeComparedRuns(c ComparedRuns) ([]byte, error) { return encodeGob(c) }

func decodeComparedRuns(data []byte) (ComparedRuns, error) {
	var c ComparedRuns
	return c, decodeGob(data, &c)
}

func encodeGob(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return b.Bytes(), nil
}

func decodeGob(data []byte, v any) error {
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		return fmt.Errorf("decoding %T: %w", v, err)
	}
	return nil
}
