package transforms

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
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
	beam.RegisterType(reflect.TypeOf((*publishFn)(nil)).Elem())
	register.Iter1[*evaluate.Accumulator]()
	register.Iter2[string, *evaluate.Tally]()
	register.Iter1[[]evaluate.Result]()
	register.Iter1[results.Part]()
	register.Iter1[results.Shard]()
	register.Iter1[PlanCount]()
	register.Iter1[ComparedRuns]()
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
	WorstK int
	// Parts is the number of pieces rejected.jsonl is written in, by as
	// many workers, before they are merged.
	Parts   int
	Gate    GateSpec
	History HistorySpec
}

// TempDir is the temporary prefix of the run's outputs. Its name is fixed
// by the run id, so that a retried stage finds what an earlier attempt left
// there, and the last stage removes it whole.
func (spec OutputSpec) TempDir() string { return storage.Join(spec.Path, ".tmp-"+spec.RunID) }

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

// Outputs is what the last stage publishes from.
type Outputs struct {
	// Accumulator is the merged accumulator (none when no image was
	// evaluated), Slices the merged tallies by slice key.
	Accumulator, Slices beam.PCollection
	// HighestLoss and LowestMIoU are single []evaluate.Result values: the
	// worst images by each measure (see WorstImages).
	HighestLoss, LowestMIoU beam.PCollection
	// Parts are the pieces of per_image.jsonl and rejected.jsonl.
	Parts beam.PCollection
	// Shards are the input files, for provenance; Planned the plan's count.
	Shards, Planned beam.PCollection
	Thumbnails      beam.PCollection
	// Compared is Compare's result: one ComparedRuns when the run has a
	// baseline. The zero PCollection stands for none: the run is then
	// gated without a comparison.
	Compared beam.PCollection
}

// Publish is the run's last stage. It checks that the evaluation accounts
// for everything planned, writes metrics.json, per_class.csv, report.html,
// and per_image.jsonl and rejected.jsonl merged from their parts, applies
// the gate (validation.json and a BLESSED or NOT_BLESSED marker), writes
// _SUCCESS, and records the run in the model's history. When more samples
// were rejected than the policy allows it writes only rejected.jsonl and
// fails the run.
//
// Its inputs are small side inputs: accumulators, worst-image lists and the
// list of parts, never the per-image rows, which stream from their parts
// into the output files. It runs once, on an impulse, so that it also runs
// (and says zero images) when the shards hold no sample.
//
// Every step is safe to repeat, because runners retry a failed stage
// (Dataflow four times): files are written under a temporary prefix named
// by the run id and moved into place; _SUCCESS, written last, holds the run
// id, and a retry that finds it skips to the history, whose updates add a
// run once and only move LATEST forward; a gate that fails the job fails it
// again from the verdict already written.
func Publish(s beam.Scope, spec OutputSpec, in Outputs) {
	s = s.Scope("transforms.Publish")
	if !in.Compared.IsValid() {
		in.Compared = beam.CreateList(s, []ComparedRuns{})
	}
	beam.ParDo0(s, &publishFn{Spec: spec}, beam.Impulse(s),
		beam.SideInput{Input: in.Accumulator}, beam.SideInput{Input: in.Slices},
		beam.SideInput{Input: in.HighestLoss}, beam.SideInput{Input: in.LowestMIoU},
		beam.SideInput{Input: in.Parts}, beam.SideInput{Input: in.Shards},
		beam.SideInput{Input: in.Planned}, beam.SideInput{Input: in.Thumbnails},
		beam.SideInput{Input: in.Compared})
}

type publishFn struct {
	Spec OutputSpec
}

// sideInputs are the last stage's inputs, read into memory: all small.
type sideInputs struct {
	acc        *evaluate.Accumulator
	slices     map[string]*evaluate.Tally
	worst      []evaluate.Result // the candidates of both lists
	parts      []results.Part
	shards     []results.Shard
	planned    PlanCount
	thumbnails map[string]report.Thumbnail
	compared   *ComparedRuns // nil without a baseline
}

func (f *publishFn) ProcessElement(ctx context.Context, _ []byte, accs func(**evaluate.Accumulator) bool,
	sliceTallies func(*string, **evaluate.Tally) bool, highestLoss, lowestMIoU func(*[]evaluate.Result) bool,
	parts func(*results.Part) bool, shards func(*results.Shard) bool, planned func(*PlanCount) bool, thumbs func(*Thumbnail) bool,
	compared func(*ComparedRuns) bool) error {
	in := sideInputs{slices: map[string]*evaluate.Tally{}, thumbnails: map[string]report.Thumbnail{}}
	var a *evaluate.Accumulator
	for accs(&a) {
		if in.acc == nil {
			in.acc = a
		} else if err := in.acc.Merge(a); err != nil {
			return err
		}
	}
	var key string
	var t *evaluate.Tally
	for sliceTallies(&key, &t) {
		in.slices[key] = t
	}
	// An image may be in both lists: keep one row of it, or it would take
	// two places in each.
	var list []evaluate.Result
	for _, lists := range []func(*[]evaluate.Result) bool{highestLoss, lowestMIoU} {
		for lists(&list) {
			for _, r := range list {
				if !slices.ContainsFunc(in.worst, func(w evaluate.Result) bool { return byKey(w, r) == 0 }) {
					in.worst = append(in.worst, r)
				}
			}
		}
	}
	var part results.Part
	for parts(&part) {
		in.parts = append(in.parts, part)
	}
	var sh results.Shard
	for shards(&sh) {
		in.shards = append(in.shards, sh)
	}
	planned(&in.planned) // a single value; none when nothing was planned
	var th Thumbnail
	for thumbs(&th) {
		in.thumbnails[th.Key] = report.Thumbnail{Image: th.Image, Label: th.Label, Prediction: th.Prediction, Errors: th.Errors, Note: th.Note}
	}
	var c ComparedRuns
	if compared(&c) {
		in.compared = &c
	}
	store := storage.New(f.Spec.Storage)
	defer store.Close()
	p := &publisher{spec: f.Spec, store: store}
	defer func(start time.Time) { publishMillis.Inc(ctx, time.Since(start).Milliseconds()) }(time.Now())
	return p.publish(ctx, in)
}

// publishMillis is the wall time of the last stage: reading its side
// inputs is not in it, merging the parts and writing the outputs are.
var publishMillis = beam.NewCounter("segeval", "publish_millis")

// publisher publishes one run's outputs.
type publisher struct {
	spec  OutputSpec
	store *storage.Store
}

func (p *publisher) publish(ctx context.Context, in sideInputs) error {
	if done, err := p.published(ctx); err != nil || done {
		if err != nil {
			return err
		}
		return p.afterSuccess(ctx)
	}
	rejected := linesOf(in.parts, results.RejectedFile)
	if rejected > int64(p.spec.Policy.MaxRejected) {
		return p.tooManyRejected(ctx, in.parts, rejected)
	}
	var images int64
	if in.acc != nil {
		images = in.acc.Tally.Images
	}
	if err := complete(len(in.shards), images, rejected, in.planned); err != nil {
		return err
	}
	if rows := linesOf(in.parts, results.PerImageFile); rows != images {
		return fmt.Errorf("internal error: %d per-image rows written but %d images accumulated", rows, images)
	}
	m, err := p.summarize(in, rejected)
	if err != nil {
		return err
	}
	baseline, validation, err := p.judge(ctx, &m, in)
	if err != nil {
		return err
	}
	history, err := p.trend(ctx, m, baseline, validation)
	if err != nil {
		return err
	}
	files, err := render(m, in.acc, baseline, validation, in.thumbnails, history)
	if err != nil {
		return err
	}
	if err := p.clearPrevious(ctx); err != nil {
		return err
	}
	if err := p.commit(ctx, files, in.parts); err != nil {
		return err
	}
	if err := p.store.WriteFile(ctx, storage.Join(p.spec.Path, results.SuccessFile), []byte(p.spec.RunID+"\n")); err != nil {
		return err
	}
	return p.afterSuccess(ctx)
}

// published reports whether _SUCCESS already names this run: a retry of a
// publish that got that far.
func (p *publisher) published(ctx context.Context) (bool, error) {
	data, err := p.store.ReadFile(ctx, storage.Join(p.spec.Path, results.SuccessFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(data)) == p.spec.RunID, nil
}

// afterSuccess does what follows _SUCCESS, all of it safe to repeat: it
// records the run in the model's history, removes the temporary prefix, and
// fails the job on a failed gate when asked to. It reads the run's metrics
// and verdict back, so that a retry needs nothing else.
func (p *publisher) afterSuccess(ctx context.Context) error {
	data, err := p.store.ReadFile(ctx, storage.Join(p.spec.Path, results.MetricsFile))
	if err != nil {
		return err
	}
	var m results.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", storage.Join(p.spec.Path, results.MetricsFile), err)
	}
	var validation *gate.Validation
	if p.spec.Gate.Enabled() {
		data, err := p.store.ReadFile(ctx, storage.Join(p.spec.Path, gate.ValidationFile))
		if err != nil {
			return err
		}
		validation = new(gate.Validation)
		if err := json.Unmarshal(data, validation); err != nil {
			return fmt.Errorf("%s: %w", storage.Join(p.spec.Path, gate.ValidationFile), err)
		}
	}
	blessed := validation == nil || validation.OK
	if err := recordHistory(ctx, p.store, p.spec, m, blessed); err != nil {
		return err
	}
	if err := p.removeTemporary(ctx); err != nil {
		return err
	}
	if !blessed && p.spec.Gate.FailJob {
		return fmt.Errorf("regression gate failed: %s", failedChecks(validation))
	}
	return nil
}

// tooManyRejected publishes rejected.jsonl alone and fails the run.
func (p *publisher) tooManyRejected(ctx context.Context, parts []results.Part, rejected int64) error {
	path := storage.Join(p.spec.Path, results.RejectedFile)
	err := p.merge(ctx, results.RejectedFile, parts, path)
	if errors.Is(err, fs.ErrNotExist) {
		// A retry after the parts were merged and removed: the merged
		// file is what it would write again.
		if done, _ := p.store.Exists(ctx, path); done {
			err = nil
		}
	}
	if err != nil {
		return err
	}
	first, err := p.firstRejection(ctx, path)
	if err != nil {
		return err
	}
	if err := p.removeTemporary(ctx); err != nil {
		return err
	}
	return fmt.Errorf("%d samples rejected, more than --max_rejected=%d allows; the first: shard %s, sample %s: %s (all in %s)",
		rejected, p.spec.Policy.MaxRejected, first.Shard, first.Key, first.Reason, path)
}

// firstRejection reads the first line of rejected.jsonl.
func (p *publisher) firstRejection(ctx context.Context, path string) (results.Rejection, error) {
	var r results.Rejection
	rc, err := p.store.Open(ctx, path)
	if err != nil {
		return r, err
	}
	defer rc.Close()
	line, err := bufio.NewReader(rc).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return r, err
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// summarize builds metrics.json's content.
func (p *publisher) summarize(in sideInputs, rejected int64) (results.Metrics, error) {
	run := results.Run{Acc: in.acc, Slices: in.slices, Rejected: rejected, WorstK: p.spec.WorstK}
	for _, r := range in.worst {
		run.Rows = append(run.Rows, results.NewImageRow(p.spec.RunID, p.spec.Settings.Mode, r))
	}
	prov := p.spec.Provenance
	prov.Shards = in.shards
	slices.SortFunc(prov.Shards, func(a, b results.Shard) int { return strings.Compare(a.Path, b.Path) })
	return results.Summarize(run, p.spec.Settings, p.spec.RunID, prov)
}

// judge applies the gate, when there is one, after comparing the run with
// its baseline (m.Comparison, whose paired intervals the gate uses).
func (p *publisher) judge(ctx context.Context, m *results.Metrics, in sideInputs) (*results.Metrics, *gate.Validation, error) {
	if !p.spec.Gate.Enabled() {
		return nil, nil, nil
	}
	baseline, path, err := p.baseline(ctx, in.compared)
	if err != nil {
		return nil, nil, err
	}
	if baseline != nil && in.compared != nil {
		if err := gate.Compatible(*m, *baseline); err != nil {
			return nil, nil, fmt.Errorf("baseline %s: %w", path, err)
		}
		if m.Comparison, err = p.compare(ctx, *m, in, baseline, path); err != nil {
			return nil, nil, err
		}
	}
	v, err := gate.Evaluate(*m, baseline, p.spec.Gate.Thresholds)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	v.Baseline = path
	return baseline, &v, nil
}

// baseline reads the baseline the join was made against (Compare resolves
// --baseline=latest once, for both): none when the join found no latest
// run. A baseline path the join did not see (Publish given no Compare
// result) is read as it is, and the run is gated on point values alone.
func (p *publisher) baseline(ctx context.Context, compared *ComparedRuns) (*results.Metrics, string, error) {
	spec := p.spec
	switch {
	case spec.Gate.Baseline == "":
		return nil, "", nil
	case compared == nil && spec.Gate.Baseline == gate.Latest:
		return nil, "", nil // no blessed run yet, or this very run
	case compared == nil:
		return readBaseline(ctx, p.store, spec)
	}
	spec.Gate.Baseline = compared.Baseline.Metrics
	m, path, err := readBaseline(ctx, p.store, spec)
	if err == nil && m.RunID != compared.Baseline.RunID {
		err = fmt.Errorf("baseline %s: now holds run %s, but run %s was joined with this run's images", path, m.RunID, compared.Baseline.RunID)
	}
	return m, path, err
}

// compare builds the run's comparison with its baseline: the deltas from
// the two runs' metrics, the mIoU and class intervals from the two runs'
// bootstrap replicates (the baseline's sidecar beside its metrics.json;
// without one, as for a baseline written before sidecars, those intervals
// are null), and the images from the join.
func (p *publisher) compare(ctx context.Context, m results.Metrics, in sideInputs, baseline *results.Metrics, path string) (*results.Comparison, error) {
	input := results.CompareInput{Candidate: m, Baseline: *baseline, Paired: in.compared.Paired}
	if in.acc != nil {
		input.CandidateReplicates = &in.acc.Bootstrap
	}
	sidecar := storage.Join(dirOf(path), results.ReplicatesFile)
	data, err := p.store.ReadFile(ctx, sidecar)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("baseline replicates: %w", err)
	default:
		reps, err := evaluate.UnmarshalSidecar(data)
		if err != nil {
			return nil, fmt.Errorf("baseline replicates %s: %w", sidecar, err)
		}
		if reps.RunID != baseline.RunID {
			return nil, fmt.Errorf("baseline replicates %s: of run %s, but %s is of run %s", sidecar, reps.RunID, path, baseline.RunID)
		}
		input.BaselineReplicates = &reps.Bootstrap
	}
	return results.Compare(input)
}

// clearPrevious removes what an earlier run into the same prefix (with
// --overwrite) would leave misleading: its _SUCCESS first, so that readers
// wait for this run, and its gate verdict and replicates sidecar, which
// this run may not replace.
func (p *publisher) clearPrevious(ctx context.Context) error {
	for _, name := range []string{results.SuccessFile, gate.ValidationFile, gate.BlessedFile, gate.NotBlessedFile, results.ReplicatesFile} {
		if err := p.store.Delete(ctx, storage.Join(p.spec.Path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// commit writes files and the merged parts under the temporary prefix and
// moves them into place.
func (p *publisher) commit(ctx context.Context, files map[string][]byte, parts []results.Part) error {
	tmp := p.spec.TempDir()
	for name, data := range files {
		if err := p.store.WriteFile(ctx, storage.Join(tmp, name), data); err != nil {
			return err
		}
	}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range []string{results.PerImageFile, results.RejectedFile} {
		if err := p.merge(ctx, name, parts, storage.Join(tmp, name)); err != nil {
			return err
		}
		names = append(names, name)
	}
	for _, name := range names {
		if err := p.store.Rename(ctx, storage.Join(tmp, name), storage.Join(p.spec.Path, name)); err != nil {
			return err
		}
	}
	return nil
}

// merge streams the parts of file, each sorted, into one sorted file at
// path.
func (p *publisher) merge(ctx context.Context, file string, parts []results.Part, path string) error {
	var readers []io.Reader
	for _, part := range parts {
		if part.File != file {
			continue
		}
		rc, err := p.store.Open(ctx, part.Path)
		if err != nil {
			return fmt.Errorf("part of %s: %w", file, err)
		}
		defer rc.Close()
		readers = append(readers, rc)
	}
	w, err := p.store.Create(ctx, path)
	if err != nil {
		return err
	}
	if _, err := results.MergeParts(w, file, readers); err != nil {
		w.Abort()
		return fmt.Errorf("merge %s: %w", file, err)
	}
	return w.Close()
}

// removeTemporary deletes the temporary prefix and what is left in it.
func (p *publisher) removeTemporary(ctx context.Context) error {
	objs, err := p.store.List(ctx, p.spec.TempDir())
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := p.store.Delete(ctx, o.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if !storage.IsGCS(p.spec.Path) {
		return removeEmptyDirs(p.spec.TempDir())
	}
	return nil
}

// linesOf counts the lines of file's parts.
func linesOf(parts []results.Part, file string) int64 {
	var n int64
	for _, p := range parts {
		if p.File == file {
			n += p.Lines
		}
	}
	return n
}

// complete checks that the evaluation accounts for everything planned:
// every input file planned, and every planned sample evaluated or rejected.
// When a stage fails, some runners (prism among them) may still run the
// stages after it with incomplete side inputs, and those must not publish a
// partial result as if it were whole.
func complete(files int, images, rejected int64, plan PlanCount) error {
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

// render produces the content of metrics.json, per_class.csv, report.html
// and the gate's files.
func render(m results.Metrics, acc *evaluate.Accumulator, baseline *results.Metrics, v *gate.Validation, thumbs map[string]report.Thumbnail, history *report.History) (map[string][]byte, error) {
	metrics, err := results.MarshalMetrics(m)
	if err != nil {
		return nil, err
	}
	perClass, err := results.MarshalClassCSV(m)
	if err != nil {
		return nil, err
	}
	var lossBins []int64
	if acc != nil {
		lossBins = acc.Tally.LossBins
	}
	var page bytes.Buffer
	if err := report.Render(&page, report.Input{Metrics: m, LossBins: lossBins, Baseline: baseline, Thumbnails: thumbs, History: history}); err != nil {
		return nil, err
	}
	files := map[string][]byte{
		results.MetricsFile:  metrics,
		results.PerClassFile: perClass,
		ReportFile:           page.Bytes(),
	}
	if acc != nil && acc.Bootstrap.Replicates > 0 {
		// The replicates sidecar, for later runs compared with this one.
		data, err := acc.Bootstrap.MarshalSidecar(m.RunID)
		if err != nil {
			return nil, err
		}
		files[results.ReplicatesFile] = data
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

// removeEmptyDirs removes the local directory dir and the empty directories
// under it that deleting its files left.
func removeEmptyDirs(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
