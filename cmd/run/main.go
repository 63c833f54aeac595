// Command run evaluates a segmentation model's predictions against labels
// stored in tar shards: the Lovász-Softmax loss and mIoU, per class and per
// image, on Apache Beam (prism embedded by default; Dataflow or Flink through
// Beam's --runner flags).
//
// With no flags it evaluates the sample dataset bundled in testdata/sample
// into a new folder under segeval-runs/ and prints where.
//
// Exit codes: 0 success, 1 the run failed (bad input or an infrastructure
// error, see the message), 2 bad flags or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"
	"github.com/google/uuid"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
	"github.com/segeval/segeval/transforms"
)

// version is the tool's version, set at build time with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
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
	binsPerOctave  = flag.Int("histogram_bins_per_octave", lovasz.DefaultBinsPerOctave, "resolution of the dataset-level loss histogram (power of two, 1 to 256)")
	showVersion    = flag.Bool("version", false, "print the version and exit")
)

// ownFlags are recorded in the provenance of every run.
var ownFlags = []string{"input", "output", "overwrite", "num_classes", "ignore_index", "classes", "class_names", "mode",
	"billing_project", "max_pixels", "max_classes", "max_member_bytes", "max_rejected", "prob_tolerance", "slice_by", "bootstrap", "worst_k", "histogram_bins_per_octave"}

func main() {
	flag.Parse()
	beam.Init() // on a worker this takes over and never returns: validate flags after it
	os.Exit(run(context.Background(), os.Stdout, os.Stderr))
}

func run(ctx context.Context, stdout, stderr io.Writer) int {
	if *showVersion {
		fmt.Fprintln(stdout, "segeval", version)
		return exitOK
	}
	cfg, err := configFromFlags(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitUsage
	}
	store := storage.New(cfg.Storage)
	defer store.Close()
	if done, err := store.Exists(ctx, storage.Join(cfg.Output, results.SuccessFile)); err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitFailed
	} else if done && !*overwrite {
		fmt.Fprintf(stderr, "segeval: %s already holds a run; pass --overwrite to replace it\n", cfg.Output)
		return exitUsage
	}

	p, s := beam.NewPipelineWithRoot()
	if err := pipeline.Build(s, cfg); err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "segeval %s: run %s, output %s\n", version, cfg.RunID, cfg.Output)
	start := time.Now()
	if _, err := beamx.RunWithMetrics(ctx, p); err != nil {
		fmt.Fprintln(stderr, "segeval: run failed:", err)
		return exitFailed
	}
	data, err := store.ReadFile(ctx, storage.Join(cfg.Output, results.MetricsFile))
	if errors.Is(err, os.ErrNotExist) {
		// Runners that only submit (templates, async jobs) end here.
		fmt.Fprintf(stdout, "job submitted; results will appear under %s\n", cfg.Output)
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitFailed
	}
	if err := printSummary(stdout, data, time.Since(start)); err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitFailed
	}
	return exitOK
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
		WorstK:  *worstK,
		Policy:  transforms.Policy{MaxRejected: *maxRejected},
		Limits:  sample.Limits{MaxPixels: *maxPixels, MaxClasses: *maxClasses, MaxMemberBytes: *maxMemberBytes},
		Storage: storage.Options{BillingProject: *billing},
		Provenance: results.Provenance{
			Tool: "segeval", Version: version, StartedAt: now.Format(time.RFC3339), Flags: map[string]string{},
		},
	}
	for _, in := range strings.Split(*input, ",") {
		cfg.Inputs = append(cfg.Inputs, strings.TrimSpace(in))
	}
	var err error
	if cfg.Eval.ClassSet, err = parseClassSet(*classes); err != nil {
		return cfg, err
	}
	if cfg.Eval.Ignore, cfg.Eval.HasIgnore, err = parseIgnore(*ignoreIndex); err != nil {
		return cfg, err
	}
	if *classNamesFile != "" {
		if cfg.ClassNames, err = readClassNames(ctx, *classNamesFile, cfg.Storage); err != nil {
			return cfg, err
		}
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

func readClassNames(ctx context.Context, path string, opt storage.Options) ([]string, error) {
	store := storage.New(opt)
	defer store.Close()
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
