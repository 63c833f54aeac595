// Package pipeline composes segeval's Beam job from the transforms: match the
// input shards, plan their samples, evaluate every sample, merge the
// accumulators and write the outputs. It holds the run's configuration and its validation; the DoFns
// live in package transforms.
package pipeline

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/transforms"
)

// Default limits against broken or hostile inputs, checked before any
// allocation: generous for real data (a 4096x4096 image, ADE20K's 150
// classes, a Cityscapes float16 probability map is 80 MB).
const (
	DefaultMaxPixels      = 1 << 26 // 67 Mpixel
	DefaultMaxClasses     = 1024
	DefaultMaxMemberBytes = 4 << 30
)

// Config is everything a run needs. The CLI fills it from flags; tests build
// it directly.
type Config struct {
	// Inputs are glob patterns of tar shards, local or gs://. Paired
	// layouts name their two globs in Paired instead.
	Inputs []string
	Paired PairedInputs
	// Output is the output prefix, local or gs://, already expanded.
	Output string
	RunID  string

	Eval evaluate.Options
	// Decode holds the limits and layout of input files.
	Decode  sample.Options
	Storage storage.Options
	Policy  Policy
	// OutputParts is the number of pieces rejected.jsonl is written in
	// before they are merged; 0 means DefaultOutputParts.
	OutputParts int
	// RestrictionBytes is the size of the pieces a shard is first split
	// into for evaluation; 0 means DefaultRestrictionBytes.
	RestrictionBytes int64
	// WorstK is the number of worst images listed in metrics.json and
	// shown in the report.
	WorstK     int
	ClassNames []string
	Provenance results.Provenance
	Date       string // the run's date (YYYY-MM-DD), for the history
	Gate       GateSpec
	History    HistorySpec
}

// Validate checks the configuration before anything runs.
func (c *Config) Validate() error {
	var errs []error
	paired := c.Paired != (transforms.PairedInputs{})
	switch {
	case paired && len(c.Inputs) > 0:
		errs = append(errs, errors.New("tar shards and paired files are exclusive inputs"))
	case paired && (c.Paired.Predictions == "" || c.Paired.Labels == ""):
		errs = append(errs, errors.New("paired inputs need both a prediction glob and a label glob"))
	case !paired && len(c.Inputs) == 0:
		errs = append(errs, errors.New("no input pattern"))
	}
	if _, err := sample.CompileKeyRegex(c.Paired.KeyRegex); err != nil {
		errs = append(errs, err)
	}
	for _, in := range c.Inputs {
		if strings.TrimSpace(in) == "" {
			errs = append(errs, errors.New("an input pattern is empty"))
		}
	}
	if c.Output == "" {
		errs = append(errs, errors.New("no output path"))
	}
	if c.RunID == "" {
		errs = append(errs, errors.New("no run id"))
	}
	e := c.Eval
	switch e.Mode {
	case evaluate.Multiclass:
		if e.Classes == 1 {
			errs = append(errs, errors.New("multiclass mode needs at least 2 classes (use --mode=binary for one logit per pixel)"))
		}
	case evaluate.Binary:
		if e.Classes != 0 && e.Classes != 2 {
			errs = append(errs, fmt.Errorf("binary mode has 2 classes, not %d", e.Classes))
		}
		if e.ClassSet.Mode != lovasz.Present {
			errs = append(errs, errors.New("the class set applies to multiclass mode only"))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q is not multiclass or binary", e.Mode))
	}
	if e.Classes < 0 {
		errs = append(errs, fmt.Errorf("number of classes %d is negative", e.Classes))
	}
	if e.HasIgnore && e.Classes != 0 && e.Ignore >= 0 && e.Ignore < e.Classes {
		errs = append(errs, fmt.Errorf("ignore index %d is a class id: it must lie outside [0, %d)", e.Ignore, e.Classes))
	}
	if e.ClassSet.Mode == lovasz.List {
		// A repeated id would be averaged over once, silently: the list
		// would not mean what was typed.
		seen := make(map[int]bool, len(e.ClassSet.IDs))
		for _, id := range e.ClassSet.IDs {
			if id < 0 || e.Classes != 0 && id >= e.Classes {
				errs = append(errs, fmt.Errorf("--classes: class %d is outside [0, %d)", id, e.Classes))
			}
			if seen[id] {
				errs = append(errs, fmt.Errorf("--classes: class %d appears more than once", id))
			}
			seen[id] = true
		}
	}
	if e.Classes != 0 && len(c.ClassNames) != 0 && len(c.ClassNames) != e.Classes {
		errs = append(errs, fmt.Errorf("%d class names for %d classes", len(c.ClassNames), e.Classes))
	}
	if c.OutputParts < 0 {
		errs = append(errs, fmt.Errorf("output parts %d is negative", c.OutputParts))
	}
	if c.RestrictionBytes < 0 {
		errs = append(errs, fmt.Errorf("restriction size %d is negative", c.RestrictionBytes))
	}
	if c.Policy.MaxRejected < 0 {
		errs = append(errs, fmt.Errorf("max rejected %d is negative", c.Policy.MaxRejected))
	}
	if e.Bootstrap < 0 || c.WorstK < 0 {
		errs = append(errs, errors.New("bootstrap replicates and worst images must not be negative"))
	}
	for _, fields := range e.SliceBy {
		for _, f := range fields {
			if strings.TrimSpace(f) == "" {
				errs = append(errs, errors.New("a slicing names an empty metadata field"))
			}
		}
	}
	if c.Gate.Baseline == gate.Latest && (c.History.Prefix == "" || c.History.Model == "") {
		errs = append(errs, errors.New("--baseline=latest needs --history and --model_name"))
	}
	if c.History.Prefix != "" && c.History.Model == "" {
		errs = append(errs, errors.New("--history needs --model_name"))
	}
	if err := c.Gate.Thresholds.Basis.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--gate_basis: %w", err))
	}
	if th := c.Gate.Thresholds; c.Gate.Baseline == "" && (th.MaxMIoUDrop != nil || th.MaxLossIncrease != nil || th.MaxClassIoUDrop != nil) {
		errs = append(errs, errors.New("--max_miou_drop, --max_loss_increase and --max_class_iou_drop compare with a baseline: give --baseline"))
	}
	if _, err := lovasz.NewHistogram(1, e.BinsPerOctave); err != nil {
		errs = append(errs, err)
	}
	if c.Gate.FailJob && !c.Gate.Enabled() {
		errs = append(errs, errors.New("--fail_job_on_regression needs a baseline or a threshold"))
	}
	if e.ProbTolerance < 0 {
		errs = append(errs, fmt.Errorf("probability tolerance %v is negative", e.ProbTolerance))
	}
	if err := c.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := e.Maps(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Build adds the evaluation to the pipeline rooted at s.
func Build(s beam.Scope, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	prov := cfg.Provenance
	prov.Inputs = cfg.Inputs
	spec := transforms.OutputSpec{
		Path:  cfg.Output,
		RunID: cfg.RunID,
		Settings: results.Settings{
			Mode: cfg.Eval.Mode, ClassSet: cfg.Eval.ClassSet,
			Ignore: cfg.Eval.Ignore, HasIgnore: cfg.Eval.HasIgnore,
			ClassNames: cfg.ClassNames,
		},
		Storage: cfg.Storage,
		Policy:  cfg.Policy,
		WorstK:  cfg.WorstK,
		Parts:   cfg.OutputParts,
		Date:    cfg.Date,
		Gate:    cfg.Gate,
		History: cfg.History,
	}
	eval := transforms.EvalConfig{
		Eval: cfg.Eval, Decode: cfg.Decode, Storage: cfg.Storage, Policy: cfg.Policy, RestrictionBytes: cfg.RestrictionBytes,
		Rows: transforms.RowSpec{Dir: spec.TempDir(), RunID: cfg.RunID, Mode: cfg.Eval.Mode, WorstK: cfg.WorstK},
	}
	var evaluated transforms.Evaluated
	var shards beam.PCollection  // every input file, for provenance
	var planned beam.PCollection // the plan's count, for the completeness check
	// located is where Compare finds the images it lists again.
	var located transforms.CompareInputs
	if cfg.Paired != (transforms.PairedInputs{}) {
		pairs, rejected, count, files := transforms.PairFiles(s, cfg.Paired, eval)
		located.Pairs = pairs
		evaluated = transforms.EvaluatePairs(s, eval, pairs)
		evaluated.Rejected = beam.Flatten(s, evaluated.Rejected, rejected)
		shards, planned = files, count
		prov.Inputs = []string{cfg.Paired.Predictions, cfg.Paired.Labels}
	} else {
		shards = transforms.MatchShards(s, cfg.Inputs, cfg.Storage)
		plan := transforms.PlanSamples(s, eval, shards)
		evaluated = transforms.EvaluateSamples(s, eval, plan.Shards)
		located.Plans = plan.Shards
		evaluated.Rejected = beam.Flatten(s, evaluated.Rejected, plan.Rejected)
		planned = plan.Count
	}
	spec.Provenance = prov
	highestLoss, lowestMIoU := transforms.WorstImages(s, cfg.WorstK, evaluated.Candidates)
	located.Parts = evaluated.Parts
	compared := transforms.Compare(s, spec, cfg.Eval.Bootstrap, located)
	transforms.Publish(s, spec, transforms.Outputs{
		Accumulator: transforms.MergeAccumulators(s, evaluated.Partials),
		Slices:      transforms.MergeSlices(s, evaluated.Slices),
		HighestLoss: highestLoss,
		LowestMIoU:  lowestMIoU,
		Parts:       beam.Flatten(s, evaluated.Parts, transforms.WriteRejections(s, spec, evaluated.Rejected)),
		Shards:      shards,
		Planned:     planned,
		// The compared images join the worst for thumbnails (Thumbnails
		// reads every list its side inputs hold).
		Thumbnails: transforms.Thumbnails(s, eval, highestLoss, beam.Flatten(s, lowestMIoU, compared.Images)),
		Compared:   compared.Runs,
	})
	return nil
}
