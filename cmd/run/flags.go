package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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
)

// A flagGroup is a titled group of segeval's own flags. Each group is a
// FlagSet of its own, so that a flag's group is chosen where it is
// registered: --help lists segeval's flags group by group, provenance
// records every flag of the groups that shape a run, and main merges them
// all into flag.CommandLine, beside Beam's runner flags, before parsing.
// Register segeval's flags here, never on flag.CommandLine (a test checks).
type flagGroup struct {
	*flag.FlagSet
	title string
	// recorded says whether the group's flags go into each run's
	// provenance: false only for flags that change what the program
	// prints, not what a run computes.
	recorded bool
}

func newGroup(title string, recorded bool) *flagGroup {
	return &flagGroup{FlagSet: flag.NewFlagSet(title, flag.ContinueOnError), title: title, recorded: recorded}
}

// The groups, in the order --help lists them.
var (
	inputFlags   = newGroup("Inputs", true)
	metricFlags  = newGroup("Metrics", true)
	outputFlags  = newGroup("Outputs and report", true)
	gateFlags    = newGroup("Gate and history", true)
	limitFlags   = newGroup("Limits", true)
	programFlags = newGroup("This program", false)

	flagGroups = []*flagGroup{inputFlags, metricFlags, outputFlags, gateFlags, limitFlags, programFlags}
)

// The tool's own flags. Beam's runner flags (--runner, --endpoint, ...) are
// defined by the SDK; no name here may repeat one of them.
var (
	input          = inputFlags.String("input", "testdata/sample/*.tar", "comma-separated glob patterns of tar shards, local or gs:// (* and ? stay within a path segment, ** crosses segments)")
	predictionGlob = inputFlags.String("prediction_glob", "", "paired layout: glob of prediction files (KEY.probs.npy, KEY.logits.npz, KEY.pred.png, ...) instead of tar shards")
	labelGlob      = inputFlags.String("label_glob", "", "paired layout: glob of label files (.png or .npy)")
	keyRegex       = inputFlags.String("key_regex", "", "paired layout: regular expression with one capture group giving a file's key from its base name (default: the base name up to its first '.'); Cityscapes: ^([a-z]+_[0-9]+_[0-9]+)_")
	layout         = inputFlags.String("layout", string(sample.CHW), "memory layout of probabilities and logits: chw (classes first) or hwc (channels last); never guessed from shapes")
	npzKey         = inputFlags.String("npz_key", "", "array to read from .npz predictions holding several")
	labelMapFile   = inputFlags.String("label_map", "", "JSON file mapping raw label values to class ids or the ignore value (e.g. examples/cityscapes_labelids_to_trainids.json)")
	predMapFile    = inputFlags.String("pred_map", "", "JSON file mapping stored predicted values to class ids, for argmax-map predictions")
	reduceZero     = inputFlags.Bool("reduce_zero_label", false, "ADE20K convention: label 0 becomes the ignore value, 1..N become 0..N-1")
	billing        = inputFlags.String("billing_project", "", "project billed for reading requester-pays buckets")

	mode          = metricFlags.String("mode", string(evaluate.Multiclass), "multiclass (probabilities, logits or argmax maps) or binary (one logit per pixel)")
	numClasses    = metricFlags.Int("num_classes", 0, "number of classes; 0 takes it from the probabilities (required for argmax-map predictions)")
	ignoreIndex   = metricFlags.String("ignore_index", "255", "label value excluded from every statistic, or none")
	classes       = metricFlags.String("classes", "present", "classes the Lovász-Softmax averages over: present, all, or a list such as 0,3,7")
	probTolerance = metricFlags.Float64("prob_tolerance", 0.01, "how far stored probabilities may stray from [0, 1] and from summing to 1 per pixel; 0 turns the check off")
	sliceBy       = metricFlags.String("slice_by", "", "metadata fields (from each sample's KEY.json) to slice metrics by: a,b slices by a and by b separately, a+b by both crossed")
	bootstrap     = metricFlags.Int("bootstrap", 200, "bootstrap replicates for 95% confidence intervals, computed in the same pass; 0 turns them off")
	binsPerOctave = metricFlags.Int("histogram_bins_per_octave", lovasz.DefaultBinsPerOctave, "resolution of the dataset-level loss histogram (power of two, 1 to 256)")

	output         = outputFlags.String("output", "segeval-runs/{date}-{run_id}", "output prefix, local or gs://; {date} and {run_id} are expanded")
	overwrite      = outputFlags.Bool("overwrite", false, "write into an output prefix that already holds a run")
	classNamesFile = outputFlags.String("class_names", "", "file with one class name per line, in class id order")
	worstK         = outputFlags.Int("worst_k", 20, "number of worst images (highest loss, lowest mIoU) listed in metrics.json")
	outputParts    = outputFlags.Int("output_parts", pipeline.DefaultOutputParts, "number of sorted parts rejected.jsonl is written in, by as many workers, before they are merged (per_image.jsonl is written in a part per evaluation bundle)")

	baseline  = gateFlags.String("baseline", "", "metrics.json of the run to compare with (local or gs://), or latest: the model's last blessed run under --history")
	failJob   = gateFlags.Bool("fail_job_on_regression", false, "fail the pipeline itself when the gate fails, so that schedulers and Dataflow show the job as failed")
	history   = gateFlags.String("history", "", "prefix under which each model's history.jsonl and LATEST are kept")
	modelName = gateFlags.String("model_name", "", "model whose history the run joins")
	// Gate thresholds, in the units of metrics.json (fractions: 0.01 is one
	// point). None applies unless given.
	maxMIoUDrop     = optionalFloat(gateFlags, "max_miou_drop", "largest drop of miou below the baseline")
	maxLossIncrease = optionalFloat(gateFlags, "max_loss_increase", "largest rise of lovasz_softmax.per_image_mean above the baseline")
	maxClassIoUDrop = optionalFloat(gateFlags, "max_class_iou_drop", "largest drop of any class's IoU below the baseline")
	minMIoU         = optionalFloat(gateFlags, "min_miou", "floor on miou, applied with or without a baseline")
	gateBasis       = gateFlags.String("gate_basis", string(gate.DefaultBasis), "what the three max_* limits hold: significant (a change past the limit fails only if its paired 95% interval excludes 0), point (the change alone) or bound (the interval's worse end)")

	maxRejected    = limitFlags.Int("max_rejected", 0, "defective samples tolerated: 0 fails the run on the first, with its message; N > 0 lists them in rejected.jsonl and fails only past N")
	maxPixels      = limitFlags.Int64("max_pixels", pipeline.DefaultMaxPixels, "largest image accepted, in pixels")
	maxClasses     = limitFlags.Int("max_classes", pipeline.DefaultMaxClasses, "largest number of classes accepted")
	maxMemberBytes = limitFlags.Int64("max_member_bytes", pipeline.DefaultMaxMemberBytes, "largest tar member accepted, in bytes")
	restrictionMB  = limitFlags.Int64("restriction_mb", pipeline.DefaultRestrictionBytes>>20, "size in MiB of the pieces each shard is first split into for evaluation (runners that do not rebalance, such as Flink, get their parallelism from these)")

	check       = programFlags.Bool("check", false, "match the inputs, read the first sample, print what a run would do, and exit without running")
	verbose     = programFlags.Bool("verbose", false, "show the embedded runner's logs on stderr (by default they go to a log file that a failure names)")
	showVersion = programFlags.Bool("version", false, "print the version and exit")
)

// mergeFlags adds segeval's flags to fs (flag.CommandLine), where Beam's
// are, so that one Parse reads both and pipeline options record them.
func mergeFlags(fs *flag.FlagSet) {
	for _, g := range flagGroups {
		g.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	}
}

// recordFlags returns the values of every flag that shapes a run, for its
// provenance.
func recordFlags() map[string]string {
	m := map[string]string{}
	for _, g := range flagGroups {
		if g.recorded {
			g.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
		}
	}
	return m
}

// usage prints --help: segeval's flags by group, each with its default
// (flag.PrintDefaults leaves out zero defaults), then Beam's runner flags in
// a section of their own.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: segeval [flags]

segeval evaluates semantic-segmentation predictions against labels: the
Lovász-Softmax loss, mIoU and per-class metrics, per image and over the
dataset, with a report and a regression gate. Without flags it evaluates
the bundled sample on Beam's embedded runner.
`)
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		g.VisitAll(func(f *flag.Flag) {
			typ, text := flag.UnquoteUsage(f)
			def := f.DefValue
			if def == "" {
				def = "unset"
			}
			name := "-" + f.Name
			if typ != "" {
				name += " " + typ
			}
			fmt.Fprintf(w, "  %s (default %s)\n    \t%s\n", name, def, text)
		})
	}
	runner := flag.NewFlagSet("runner", flag.ContinueOnError)
	n := 0
	flag.VisitAll(func(f *flag.Flag) {
		if !ownFlag(f.Name) {
			runner.Var(f.Value, f.Name, f.Usage)
			n++
		}
	})
	fmt.Fprintf(w, "\nBeam's %d runner flags follow (-runner=dataflow, -project, -region, -endpoint, ...; by default the pipeline runs on prism, embedded in segeval).\n", n)
	fmt.Fprintf(w, "\n%s:\n", runnerTitle)
	runner.SetOutput(w)
	runner.PrintDefaults()
}

// runnerTitle heads the section of Beam's flags in --help.
const runnerTitle = "Runner flags (Beam)"

// ownFlag reports whether name is one of segeval's flags.
func ownFlag(name string) bool {
	for _, g := range flagGroups {
		if g.Lookup(name) != nil {
			return true
		}
	}
	return false
}

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

func optionalFloat(g *flagGroup, name, usage string) *floatFlag {
	f := &floatFlag{}
	g.Var(f, name, usage+" (a `fraction`; unset: not checked)")
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
		Policy:           pipeline.Policy{MaxRejected: *maxRejected},
		RestrictionBytes: *restrictionMB << 20,
		OutputParts:      *outputParts,
		Decode: sample.Options{
			Limits: sample.Limits{MaxPixels: *maxPixels, MaxClasses: *maxClasses, MaxMemberBytes: *maxMemberBytes},
			Layout: sample.Layout(*layout),
			NPZKey: *npzKey,
		},
		Storage: storage.Options{BillingProject: *billing},
		Date:    now.Format("2006-01-02"),
		Gate: pipeline.GateSpec{
			Baseline: *baseline,
			FailJob:  *failJob,
			Thresholds: gate.Thresholds{
				MaxMIoUDrop: maxMIoUDrop.v, MaxLossIncrease: maxLossIncrease.v,
				MaxClassIoUDrop: maxClassIoUDrop.v, MinMIoU: minMIoU.v,
				Basis: gate.Basis(*gateBasis),
			},
		},
		History: pipeline.HistorySpec{Prefix: *history, Model: *modelName},
		Provenance: results.Provenance{
			Tool: "segeval", Version: version, StartedAt: now.UTC().Format(time.RFC3339Nano), Flags: recordFlags(),
		},
	}
	cfg.Paired = pipeline.PairedInputs{Predictions: *predictionGlob, Labels: *labelGlob, KeyRegex: *keyRegex}
	if cfg.Paired == (pipeline.PairedInputs{}) || isSet("input") {
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
