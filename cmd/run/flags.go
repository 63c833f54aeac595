package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
	"github.com/segeval/segeval/transforms"
)

// The tool's own flags. Beam's runner flags (--runner, --endpoint, ...) are
// defined by the SDK; no name here may repeat one of them.
var (
	input          = flag.String("input", "testdata/sample/*.tar", "comma-separated glob patterns of tar shards, local or gs:// (* and ? stay within a path segment, ** crosses segments)")
	output         = flag.String("output", "segeval-runs/{date}-{run_id}", "output prefix, local or gs://; {date} and {run_id} are expanded")
	overwrite      = flag.Bool("overwrite", false, "write into an output prefix that already holds a run")
	numClasses     = flag.Int("num_classes", 0, "number of classes; 0 takes it from the probabilities (required for argmax-map predictions)")
	ignoreIndex    = flag.String("ignore_index", "255", "label value excluded from every statistic, or none")
	classes        = flag.String("classes", "present", "classes the Lovász-Softmax averages over: present, all, or a list such as 0,3,7")
	classNamesFile = flag.String("class_names", "", "file with one class name per line, in class id order")
	mode           = flag.String("mode", string(evaluate.Multiclass), "multiclass (probabilities, logits or argmax maps) or binary (one logit per pixel)")
	billing        = flag.String("billing_project", "", "project billed for reading requester-pays buckets")
	maxPixels      = flag.Int64("max_pixels", pipeline.DefaultMaxPixels, "largest image accepted, in pixels")
	maxClasses     = flag.Int("max_classes", pipeline.DefaultMaxClasses, "largest number of classes accepted")
	maxMemberBytes = flag.Int64("max_member_bytes", pipeline.DefaultMaxMemberBytes, "largest tar member accepted, in bytes")
	maxRejected    = flag.Int("max_rejected", 0, "defective samples tolerated: 0 fails the run on the first, with its message; N > 0 lists them in rejected.jsonl and fails only past N")
	probTolerance  = flag.Float64("prob_tolerance", 0.01, "how far stored probabilities may stray from [0, 1] and from summing to 1 per pixel; 0 turns the check off")
	sliceBy        = flag.String("slice_by", "", "metadata fields (from each sample's KEY.json) to slice metrics by: a,b slices by a and by b separately, a+b by both crossed")
	bootstrap      = flag.Int("bootstrap", 200, "bootstrap replicates for 95% confidence intervals, computed in the same pass; 0 turns them off")
	worstK         = flag.Int("worst_k", 20, "number of worst images (highest loss, lowest mIoU) listed in metrics.json")
	outputParts    = flag.Int("output_parts", transforms.DefaultParts, "number of sorted parts rejected.jsonl is written in, by as many workers, before they are merged (per_image.jsonl is written in a part per evaluation bundle)")
	restrictionMB  = flag.Int64("restriction_mb", transforms.DefaultRestrictionBytes>>20, "size in MiB of the pieces each shard is first split into for evaluation (runners that do not rebalance, such as Flink, get their parallelism from these)")
	binsPerOctave  = flag.Int("histogram_bins_per_octave", lovasz.DefaultBinsPerOctave, "resolution of the dataset-level loss histogram (power of two, 1 to 256)")
	predictionGlob = flag.String("prediction_glob", "", "paired layout: glob of prediction files (KEY.probs.npy, KEY.logits.npz, KEY.pred.png, ...) instead of tar shards")
	labelGlob      = flag.String("label_glob", "", "paired layout: glob of label files (.png or .npy)")
	keyRegex       = flag.String("key_regex", "", "paired layout: regular expression with one capture group giving a file's key from its base name (default: the base name up to its first '.'); Cityscapes: ^([a-z]+_[0-9]+_[0-9]+)_")
	layout         = flag.String("layout", string(sample.CHW), "memory layout of probabilities and logits: chw (classes first) or hwc (channels last); never guessed from shapes")
	npzKey         = flag.String("npz_key", "", "array to read from .npz predictions holding several")
	labelMapFile   = flag.String("label_map", "", "JSON file mapping raw label values to class ids or the ignore value (e.g. examples/cityscapes_labelids_to_trainids.json)")
	predMapFile    = flag.String("pred_map", "", "JSON file mapping stored predicted values to class ids, for argmax-map predictions")
	reduceZero     = flag.Bool("reduce_zero_label", false, "ADE20K convention: label 0 becomes the ignore value, 1..N become 0..N-1")
	baseline       = flag.String("baseline", "", "metrics.json of the run to compare with (local or gs://), or latest: the model's last blessed run under --history")
	failJob        = flag.Bool("fail_job_on_regression", false, "fail the pipeline itself when the gate fails, so that schedulers and Dataflow show the job as failed")
	history        = flag.String("history", "", "prefix under which each model's history.jsonl and LATEST are kept")
	modelName      = flag.String("model_name", "", "model whose history the run joins")
	showVersion    = flag.Bool("version", false, "print the version and exit")

	// Gate thresholds, in the units of metrics.json (fractions: 0.01 is one
	// point). None applies unless given.
	maxMIoUDrop     = optionalFloat("max_miou_drop", "largest drop of miou below the baseline")
	maxLossIncrease = optionalFloat("max_loss_increase", "largest rise of lovasz_softmax.per_image_mean above the baseline")
	maxClassIoUDrop = optionalFloat("max_class_iou_drop", "largest drop of any class's IoU below the baseline")
	minMIoU         = optionalFloat("min_miou", "floor on miou, applied with or without a baseline")
)

// ownFlags are recorded in the provenance of every run.
var ownFlags = []string{"input", "output", "overwrite", "num_classes", "ignore_index", "classes", "class_names", "mode",
	"billing_project", "max_pixels", "max_classes", "max_member_bytes", "max_rejected", "prob_tolerance", "slice_by", "bootstrap", "worst_k", "output_parts", "restriction_mb", "histogram_bins_per_octave",
	"prediction_glob", "label_glob", "key_regex", "layout", "npz_key", "label_map", "pred_map", "reduce_zero_label", "baseline", "fail_job_on_regression", "history", "model_name",
	"max_miou_drop", "max_loss_increase", "max_class_iou_drop", "min_miou"}

// isSet reports whether the flag was given on the command line.
func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// floatFlag is a float flag that knows whether it was given.
type floatFlag struct{ v *float64 }

func (f *floatFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return strconv.FormatFloat(*f.v, 'g', -1, 64)
}

func (f *floatFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	f.v = &v
	return nil
}

func optionalFloat(name, usage string) *floatFlag {
	f := &floatFlag{}
	flag.Var(f, name, usage+" (unset: not checked)")
	return f
}

// configFromFlags builds and validates the run's configuration.
func configFromFlags(ctx context.Context) (pipeline.Config, error) {
	runID := uuid.NewString()
	now := time.Now().UTC()
	cfg := pipeline.Config{
		Output: strings.NewReplacer("{date}", now.Format("2006-01-02"), "{run_id}", runID).Replace(*output),
		RunID:  runID,
		Eval: evaluate.Options{
			Mode:          evaluate.Mode(*mode),
			Classes:       *numClasses,
			BinsPerOctave: *binsPerOctave,
			ProbTolerance: *probTolerance,
			Bootstrap:     *bootstrap,
			SliceBy:       parseSliceBy(*sliceBy),
		},
		WorstK:           *worstK,
		Policy:           transforms.Policy{MaxRejected: *maxRejected},
		RestrictionBytes: *restrictionMB << 20,
		OutputParts:      *outputParts,
		Decode: sample.Options{
			Limits: sample.Limits{MaxPixels: *maxPixels, MaxClasses: *maxClasses, MaxMemberBytes: *maxMemberBytes},
			Layout: sample.Layout(*layout),
			NPZKey: *npzKey,
		},
		Storage: storage.Options{BillingProject: *billing},
		Date:    now.Format("2006-01-02"),
		Gate: transforms.GateSpec{
			Baseline: *baseline,
			FailJob:  *failJob,
			Thresholds: gate.Thresholds{
				MaxMIoUDrop: maxMIoUDrop.v, MaxLossIncrease: maxLossIncrease.v,
				MaxClassIoUDrop: maxClassIoUDrop.v, MinMIoU: minMIoU.v,
			},
		},
		History: transforms.HistorySpec{Prefix: *history, Model: *modelName},
		Provenance: results.Provenance{
			Tool: "segeval", Version: version, StartedAt: now.UTC().Format(time.RFC3339Nano), Flags: map[string]string{},
		},
	}
	cfg.Paired = transforms.PairedInputs{Predictions: *predictionGlob, Labels: *labelGlob, KeyRegex: *keyRegex}
	if cfg.Paired == (transforms.PairedInputs{}) || isSet("input") {
		for _, in := range strings.Split(*input, ",") {
			cfg.Inputs = append(cfg.Inputs, strings.TrimSpace(in))
		}
	}
	switch evaluate.Mode(*mode) {
	case evaluate.Multiclass, evaluate.Binary:
	default:
		return cfg, fmt.Errorf("--mode=%s: want multiclass or binary", *mode)
	}
	var err error
	if cfg.Eval.ClassSet, err = parseClassSet(*classes); err != nil {
		return cfg, err
	}
	if cfg.Eval.Ignore, cfg.Eval.HasIgnore, err = parseIgnore(*ignoreIndex); err != nil {
		return cfg, err
	}
	store := storage.New(cfg.Storage)
	defer store.Close()
	if *classNamesFile != "" {
		if cfg.ClassNames, err = readClassNames(ctx, store, *classNamesFile); err != nil {
			return cfg, err
		}
	}
	cfg.Eval.ReduceZeroLabel = *reduceZero
	if cfg.Eval.LabelMap, err = readOptional(ctx, store, "label_map", *labelMapFile); err != nil {
		return cfg, err
	}
	if cfg.Eval.PredMap, err = readOptional(ctx, store, "pred_map", *predMapFile); err != nil {
		return cfg, err
	}
	for _, name := range ownFlags {
		cfg.Provenance.Flags[name] = flag.Lookup(name).Value.String()
	}
	return cfg, cfg.Validate()
}

func parseClassSet(v string) (lovasz.ClassSet, error) {
	switch v {
	case "present":
		return lovasz.ClassSet{Mode: lovasz.Present}, nil
	case "all":
		return lovasz.ClassSet{Mode: lovasz.All}, nil
	}
	set := lovasz.ClassSet{Mode: lovasz.List}
	for _, f := range strings.Split(v, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return set, fmt.Errorf("--classes=%s: want present, all or a comma-separated list of class ids", v)
		}
		set.IDs = append(set.IDs, id)
	}
	return set, nil
}

// parseSliceBy reads "a,b+c" as the slicings [a] and [b c].
func parseSliceBy(v string) [][]string {
	var out [][]string
	for _, slicing := range strings.Split(v, ",") {
		if slicing = strings.TrimSpace(slicing); slicing != "" {
			out = append(out, strings.Split(slicing, "+"))
		}
	}
	return out
}

func parseIgnore(v string) (int, bool, error) {
	if v == "none" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, fmt.Errorf("--ignore_index=%s: want an integer or none", v)
	}
	return n, true, nil
}

// readOptional reads the file a flag names, nil when the flag is empty.
func readOptional(ctx context.Context, store *storage.Store, name, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := store.ReadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return data, nil
}

func readClassNames(ctx context.Context, store *storage.Store, path string) ([]string, error) {
	data, err := store.ReadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--class_names: %w", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		names = append(names, strings.TrimSpace(line))
	}
	return names, nil
}
