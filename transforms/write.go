package transforms

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	register.DoFn7x1[context.Context, []byte, func(**evaluate.Accumulator) bool, func(*string, **evaluate.Tally) bool, func(*evaluate.Result) bool, func(*results.Rejection) bool, func(*results.Shard) bool, error](&writeOutputsFn{})
	register.Iter2[string, *evaluate.Tally]()
	register.Iter1[*evaluate.Accumulator]()
	register.Iter1[evaluate.Result]()
	register.Iter1[results.Rejection]()
	register.Iter1[results.Shard]()
}

// OutputSpec says where and how a run's outputs are written.
type OutputSpec struct {
	// Path is the output prefix, local or gs://.
	Path       string
	RunID      string
	Settings   results.Settings
	Provenance results.Provenance // shards are filled in from the run
	Storage    storage.Options
	Policy     Policy
	// WorstK is the number of worst images listed in metrics.json.
	WorstK int
}

// WriteOutputs writes metrics.json, per_image.jsonl, per_class.csv and
// rejected.jsonl under spec.Path once every image is evaluated, or only
// rejected.jsonl, and fails the run, when more samples were rejected than the
// policy allows. The files are first written under
// a temporary prefix and moved into place, then _SUCCESS is written last:
// readers that wait for _SUCCESS never see half a result, and a retried
// bundle rewrites the same content.
//
// The stage runs once, on an impulse, with everything else as side inputs, so
// that it also runs (and says zero images) when the shards hold no sample.
func WriteOutputs(s beam.Scope, spec OutputSpec, accumulator, slices beam.PCollection, ev Evaluated, shards beam.PCollection) {
	s = s.Scope("WriteOutputs")
	beam.ParDo0(s, &writeOutputsFn{Spec: spec}, beam.Impulse(s), beam.SideInput{Input: accumulator}, beam.SideInput{Input: slices},
		beam.SideInput{Input: ev.Images}, beam.SideInput{Input: ev.Rejected}, beam.SideInput{Input: shards})
}

type writeOutputsFn struct {
	Spec OutputSpec
}

func (f *writeOutputsFn) ProcessElement(ctx context.Context, _ []byte, accs func(**evaluate.Accumulator) bool, sliceTallies func(*string, **evaluate.Tally) bool,
	images func(*evaluate.Result) bool, rejects func(*results.Rejection) bool, shards func(*results.Shard) bool) error {
	var acc *evaluate.Accumulator
	var a *evaluate.Accumulator
	for accs(&a) {
		if acc == nil {
			acc = a
		} else if err := acc.Merge(a); err != nil {
			return err
		}
	}
	sliceByKey := map[string]*evaluate.Tally{}
	var key string
	var tally *evaluate.Tally
	for sliceTallies(&key, &tally) {
		sliceByKey[key] = tally
	}
	var rows []results.ImageRow
	var r evaluate.Result
	for images(&r) {
		rows = append(rows, results.NewImageRow(f.Spec.RunID, f.Spec.Settings.Mode, r))
	}
	var rejected []results.Rejection
	var rej results.Rejection
	for rejects(&rej) {
		rejected = append(rejected, rej)
	}
	rejectedJSONL, err := results.MarshalRejections(rejected)
	if err != nil {
		return err
	}
	if len(rejected) > f.Spec.Policy.MaxRejected {
		if err := commit(ctx, f.Spec, map[string][]byte{results.RejectedFile: rejectedJSONL}, false); err != nil {
			return err
		}
		return fmt.Errorf("%d samples rejected, more than --max_rejected=%d allows; the first: shard %s, sample %s: %s (all in %s)",
			len(rejected), f.Spec.Policy.MaxRejected, rejected[0].Shard, rejected[0].Key, rejected[0].Reason,
			storage.Join(f.Spec.Path, results.RejectedFile))
	}
	prov := f.Spec.Provenance
	var sh results.Shard
	for shards(&sh) {
		prov.Shards = append(prov.Shards, sh)
	}
	slices.SortFunc(prov.Shards, func(a, b results.Shard) int { return strings.Compare(a.Path, b.Path) })

	m, err := results.Summarize(results.Run{Acc: acc, Slices: sliceByKey, Rows: rows, Rejected: int64(len(rejected)), WorstK: f.Spec.WorstK},
		f.Spec.Settings, f.Spec.RunID, prov)
	if err != nil {
		return err
	}
	if int64(len(rows)) != m.Images {
		return fmt.Errorf("internal error: %d per-image rows but %d images accumulated", len(rows), m.Images)
	}
	metrics, err := results.MarshalMetrics(m)
	if err != nil {
		return err
	}
	perImage, err := results.MarshalRows(rows)
	if err != nil {
		return err
	}
	perClass, err := results.MarshalClassCSV(m)
	if err != nil {
		return err
	}
	return commit(ctx, f.Spec, map[string][]byte{
		results.MetricsFile:  metrics,
		results.PerImageFile: perImage,
		results.PerClassFile: perClass,
		results.RejectedFile: rejectedJSONL,
	}, true)
}

// commit writes files under a temporary prefix, moves them into place and,
// for a complete result, writes _SUCCESS last.
func commit(ctx context.Context, spec OutputSpec, files map[string][]byte, complete bool) error {
	store := storage.New(spec.Storage)
	defer store.Close()
	tmp := storage.Join(spec.Path, ".tmp-"+spec.RunID)
	for name, data := range files {
		if err := store.WriteFile(ctx, storage.Join(tmp, name), data); err != nil {
			return err
		}
	}
	for name := range files {
		if err := store.Rename(ctx, storage.Join(tmp, name), storage.Join(spec.Path, name)); err != nil {
			return err
		}
	}
	if !storage.IsGCS(tmp) {
		if err := store.Delete(ctx, tmp); err != nil {
			return err
		}
	}
	if !complete {
		return nil
	}
	return store.WriteFile(ctx, storage.Join(spec.Path, results.SuccessFile), []byte(spec.RunID+"\n"))
}
