package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/report"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*writeOutputsFn)(nil)).Elem())
	register.Iter1[*evaluate.Accumulator]()
	register.Iter2[string, *evaluate.Tally]()
	register.Iter1[evaluate.Result]()
	register.Iter1[results.Rejection]()
	register.Iter1[results.Shard]()
	register.Iter1[PlanCount]()
}

// ReportFile is the HTML report's name under the output prefix.
const ReportFile = "report.html"

// OutputSpec says where and how a run's outputs are written.
type OutputSpec struct {
	// Path is the output prefix, local or gs://.
	Path       string
	RunID      string
	Date       string // the run's date, for the history
	Settings   results.Settings
	Provenance results.Provenance // shards are filled in from the run
	Storage    storage.Options
	Policy     Policy
	// WorstK is the number of worst images listed in metrics.json.
	WorstK  int
	Gate    GateSpec
	History HistorySpec
}

// GateSpec configures the baseline gate.
type GateSpec struct {
	// Baseline is a metrics.json path, gate.Latest, or "" for no baseline.
	Baseline   string
	Thresholds gate.Thresholds
	// FailJob fails the job itself when the gate fails, so that runners
	// whose exit code nobody sees (a scheduled Dataflow job) show FAILED.
	FailJob bool
}

// Enabled reports whether the run is gated.
func (g GateSpec) Enabled() bool { return g.Baseline != "" || g.Thresholds.Any() }

// HistorySpec says where a model's run history is kept ("" for nowhere).
type HistorySpec struct {
	Prefix string
	Model  string
}

// Dir is the history folder of the model.
func (h HistorySpec) Dir() string { return storage.Join(h.Prefix, h.Model) }

// WriteOutputs is the run's last stage. Once every image is evaluated it
// writes metrics.json, per_image.jsonl, per_class.csv, rejected.jsonl and
// report.html under spec.Path, applies the gate (validation.json and a
// BLESSED or NOT_BLESSED marker), records the run in the model's history,
// and writes _SUCCESS last. When more samples were rejected than the policy
// allows it writes only rejected.jsonl and fails the run.
//
// Files are first written under a temporary prefix and moved into place:
// readers that wait for _SUCCESS never see half a result, and a retried
// bundle rewrites the same content (and records the run in the history
// once). The stage runs once, on an impulse, with
// everything else as side inputs, so that it also runs (and says zero
// images) when the shards hold no sample.
func WriteOutputs(s beam.Scope, spec OutputSpec, accumulator, slices beam.PCollection, ev Evaluated, shards, planned, thumbnails beam.PCollection) {
	s = s.Scope("WriteOutputs")
	beam.ParDo0(s, &writeOutputsFn{Spec: spec}, beam.Impulse(s),
		beam.SideInput{Input: accumulator}, beam.SideInput{Input: slices}, beam.SideInput{Input: ev.Images},
		beam.SideInput{Input: ev.Rejected}, beam.SideInput{Input: shards}, beam.SideInput{Input: planned},
		beam.SideInput{Input: thumbnails})
}

// sideInputs are the final stage's inputs, as Beam iterates them.
type sideInputs struct {
	Accumulators func(**evaluate.Accumulator) bool
	Slices       func(*string, **evaluate.Tally) bool
	Images       func(*evaluate.Result) bool
	Rejected     func(*results.Rejection) bool
	Shards       func(*results.Shard) bool
	Planned      func(*PlanCount) bool
	Thumbnails   func(*Thumbnail) bool
}

type writeOutputsFn struct {
	Spec OutputSpec
}

func (f *writeOutputsFn) ProcessElement(ctx context.Context, _ []byte, accs func(**evaluate.Accumulator) bool,
	sliceTallies func(*string, **evaluate.Tally) bool, images func(*evaluate.Result) bool, rejects func(*results.Rejection) bool,
	shardList func(*results.Shard) bool, planned func(*PlanCount) bool, thumbs func(*Thumbnail) bool) error {
	return f.write(ctx, sideInputs{accs, sliceTallies, images, rejects, shardList, planned, thumbs})
}

func (f *writeOutputsFn) write(ctx context.Context, in sideInputs) error {
	var shards []results.Shard
	var sh results.Shard
	for in.Shards(&sh) {
		shards = append(shards, sh)
	}
	store := storage.New(f.Spec.Storage)
	defer store.Close()

	var rejected []results.Rejection
	var rej results.Rejection
	for in.Rejected(&rej) {
		rejected = append(rejected, rej)
	}
	rejectedJSONL, err := results.MarshalRejections(rejected)
	if err != nil {
		return err
	}
	if len(rejected) > f.Spec.Policy.MaxRejected {
		if err := commit(ctx, store, f.Spec, map[string][]byte{results.RejectedFile: rejectedJSONL}); err != nil {
			return err
		}
		return fmt.Errorf("%d samples rejected, more than --max_rejected=%d allows; the first: shard %s, sample %s: %s (all in %s)",
			len(rejected), f.Spec.Policy.MaxRejected, rejected[0].Shard, rejected[0].Key, rejected[0].Reason,
			storage.Join(f.Spec.Path, results.RejectedFile))
	}

	run, err := gather(in, f.Spec)
	if err != nil {
		return err
	}
	var images int64
	if run.Acc != nil {
		images = run.Acc.Tally.Images
	}
	if err := complete(len(shards), images, int64(len(rejected)), in.Planned); err != nil {
		return err
	}
	run.Rejected = int64(len(rejected))
	prov := f.Spec.Provenance
	prov.Shards = shards
	slices.SortFunc(prov.Shards, func(a, b results.Shard) int { return strings.Compare(a.Path, b.Path) })
	m, err := results.Summarize(run, f.Spec.Settings, f.Spec.RunID, prov)
	if err != nil {
		return err
	}
	if int64(len(run.Rows)) != m.Images {
		return fmt.Errorf("internal error: %d per-image rows but %d images accumulated", len(run.Rows), m.Images)
	}

	var baseline *results.Metrics
	var validation *gate.Validation
	if f.Spec.Gate.Enabled() {
		var baselinePath string
		if baseline, baselinePath, err = readBaseline(ctx, store, f.Spec); err != nil {
			return err
		}
		v, err := gate.Evaluate(m, baseline, f.Spec.Gate.Thresholds)
		if err != nil {
			return fmt.Errorf("baseline %s: %w", baselinePath, err)
		}
		v.Baseline = baselinePath
		validation = &v
	}

	files, err := render(m, run.Rows, baseline, validation, thumbnails(in.Thumbnails))
	if err != nil {
		return err
	}
	files[results.RejectedFile] = rejectedJSONL
	if err := clearPrevious(ctx, store, f.Spec.Path); err != nil {
		return err
	}
	if err := commit(ctx, store, f.Spec, files); err != nil {
		return err
	}
	blessed := validation == nil || validation.OK
	if err := recordHistory(ctx, store, f.Spec, m, blessed); err != nil {
		return err
	}
	if err := store.WriteFile(ctx, storage.Join(f.Spec.Path, results.SuccessFile), []byte(f.Spec.RunID+"\n")); err != nil {
		return err
	}
	if !blessed && f.Spec.Gate.FailJob {
		return fmt.Errorf("regression gate failed: %s", failedChecks(validation))
	}
	return nil
}

// complete checks that the evaluation accounts for everything planned:
// every input file planned, and every planned sample evaluated or rejected.
// When a stage fails, some runners (prism among them) may still run the
// stages after it with incomplete side inputs, and those must not publish a
// partial result as if it were whole.
func complete(files int, images, rejected int64, planned func(*PlanCount) bool) error {
	var plan PlanCount
	planned(&plan) // a single value; none when nothing was planned
	switch {
	case files == 0:
		return errors.New("no input file reached the last stage: an earlier stage failed")
	case plan.Files != int64(files):
		return fmt.Errorf("%d of %d input files were planned: an earlier stage failed", plan.Files, files)
	case images+rejected != plan.Samples:
		return fmt.Errorf("%d samples evaluated and %d rejected, but %d planned: an earlier stage failed", images, rejected, plan.Samples)
	}
	return nil
}

// gather reads the evaluation's side inputs into a results.Run.
func gather(in sideInputs, spec OutputSpec) (results.Run, error) {
	run := results.Run{Slices: map[string]*evaluate.Tally{}, WorstK: spec.WorstK}
	var a *evaluate.Accumulator
	for in.Accumulators(&a) {
		if run.Acc == nil {
			run.Acc = a
		} else if err := run.Acc.Merge(a); err != nil {
			return run, err
		}
	}
	var key string
	var tally *evaluate.Tally
	for in.Slices(&key, &tally) {
		run.Slices[key] = tally
	}
	var r evaluate.Result
	for in.Images(&r) {
		run.Rows = append(run.Rows, results.NewImageRow(spec.RunID, spec.Settings.Mode, r))
	}
	return run, nil
}

func thumbnails(iter func(*Thumbnail) bool) map[string]report.Thumbnail {
	out := map[string]report.Thumbnail{}
	var t Thumbnail
	for iter(&t) {
		out[t.Key] = report.Thumbnail{Label: t.Label, Prediction: t.Prediction}
	}
	return out
}

// render produces the content of every output file but rejected.jsonl.
func render(m results.Metrics, rows []results.ImageRow, baseline *results.Metrics, v *gate.Validation, thumbs map[string]report.Thumbnail) (map[string][]byte, error) {
	metrics, err := results.MarshalMetrics(m)
	if err != nil {
		return nil, err
	}
	perImage, err := results.MarshalRows(rows)
	if err != nil {
		return nil, err
	}
	perClass, err := results.MarshalClassCSV(m)
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := report.Render(&page, report.Input{Metrics: m, Rows: rows, Baseline: baseline, Thumbnails: thumbs}); err != nil {
		return nil, err
	}
	files := map[string][]byte{
		results.MetricsFile:  metrics,
		results.PerImageFile: perImage,
		results.PerClassFile: perClass,
		ReportFile:           page.Bytes(),
	}
	if v != nil {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		files[gate.ValidationFile] = append(data, '\n')
		marker := gate.NotBlessedFile
		if v.OK {
			marker = gate.BlessedFile
		}
		files[marker] = nil
	}
	return files, nil
}

// readBaseline loads the gate's baseline: a metrics.json path, or the
// model's LATEST blessed run. It returns nil without error only for latest
// when the model has no blessed run yet, or when LATEST already names this
// run (a retried publish must not compare the run with itself).
func readBaseline(ctx context.Context, store *storage.Store, spec OutputSpec) (*results.Metrics, string, error) {
	path := spec.Gate.Baseline
	if path == "" {
		return nil, "", nil
	}
	if path == gate.Latest {
		latest, ok, err := gate.ReadLatest(ctx, store, spec.History.Dir())
		if err != nil || !ok || latest.RunID == spec.RunID {
			return nil, "", err
		}
		path = storage.Join(latest.Output, results.MetricsFile)
	}
	data, err := store.ReadFile(ctx, path)
	if err != nil {
		return nil, path, fmt.Errorf("baseline: %w", err)
	}
	var m results.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, path, fmt.Errorf("baseline %s: %w", path, err)
	}
	return &m, path, nil
}

// recordHistory records the run in the model's history and, for a blessed
// run, moves LATEST forward to it, so that a regression never becomes the
// next night's baseline. Both are safe to repeat: a retried publish adds
// no second line and moves nothing back.
func recordHistory(ctx context.Context, store *storage.Store, spec OutputSpec, m results.Metrics, blessed bool) error {
	if spec.History.Prefix == "" {
		return nil
	}
	dir := spec.History.Dir()
	if err := gate.RecordRun(ctx, store, dir, gate.NewHistoryLine(m, spec.Date, spec.Path, blessed)); err != nil {
		return err
	}
	if !blessed {
		return nil
	}
	started, err := time.Parse(time.RFC3339Nano, m.Provenance.StartedAt)
	if err != nil {
		return fmt.Errorf("run start time %q: %w", m.Provenance.StartedAt, err)
	}
	return gate.AdvanceLatest(ctx, store, dir, gate.LatestRun{Output: spec.Path, StartedAt: started, RunID: m.RunID})
}

func failedChecks(v *gate.Validation) string {
	var names []string
	for _, c := range v.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}

// clearPrevious removes what an earlier run into the same prefix (with
// --overwrite) would leave misleading: its _SUCCESS first, so that readers
// wait for this run, and its gate verdict, which this run may not replace.
func clearPrevious(ctx context.Context, store *storage.Store, prefix string) error {
	for _, name := range []string{results.SuccessFile, gate.ValidationFile, gate.BlessedFile, gate.NotBlessedFile} {
		if err := store.Delete(ctx, storage.Join(prefix, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// commit writes files under a temporary prefix and moves them into place.
func commit(ctx context.Context, store *storage.Store, spec OutputSpec, files map[string][]byte) error {
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
		return store.Delete(ctx, tmp)
	}
	return nil
}
