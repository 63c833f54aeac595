// Command run evaluates a segmentation model's predictions against labels,
// stored in tar shards or as paired files: the Lovász-Softmax loss and mIoU, per class and per
// image, on Apache Beam (prism embedded by default; Dataflow or Flink through
// Beam's --runner flags).
//
// With no flags it evaluates the sample dataset bundled in testdata/sample
// into a new folder under segeval-runs/ and prints where.
//
// --help lists segeval's own flags by group, then Beam's runner flags.
// --check reads the first sample and prints what a run would do, without
// running it.
//
// Exit codes: 0 success, 1 the run failed (bad input or an infrastructure
// error, see the message), 2 bad flags or configuration, found before any
// job starts, 3 the regression gate failed. A failure prints its root cause
// in a few lines; the embedded runner's logs go to a file the message
// names, or to stderr with --verbose.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
)

// version is the tool's version, set at build time with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, documented in README.md.
const (
	exitOK         = 0
	exitFailed     = 1
	exitUsage      = 2
	exitRegression = 3
)

func main() {
	mergeFlags(flag.CommandLine)
	flag.CommandLine.Usage = func() { usage(flag.CommandLine.Output()) }
	flag.Parse()
	if embedded() {
		// The embedded runner logs every job state at INFO; a user wants
		// the summary, and warnings (which run hides in a log file unless
		// --verbose). Remote runners keep INFO: the Dataflow runner prints
		// a dry run's job there. beam.Init installs the logger at this
		// level.
		beamlog.LogLevel = "warn"
	}
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
	if *check {
		return runCheck(ctx, stdout, stderr, cfg)
	}
	if code := checkBeforeLaunch(ctx, cfg, stderr); code != exitOK {
		return code
	}
	store := storage.New(cfg.Storage)
	defer store.Close()
	useOwnWorkerBinary()

	p, s := beam.NewPipelineWithRoot()
	if err := pipeline.Build(s, cfg); err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "segeval %s: run %s, output %s\n", version, cfg.RunID, cfg.Output)
	var runLog *runnerLog
	if embedded() && !*verbose {
		runLog = hideRunnerLogs(cfg)
		defer runLog.Close()
	}
	start := time.Now()
	stop := make(chan struct{})
	var progressDone <-chan struct{}
	if embedded() {
		progressDone = showProgress(os.Stderr, stop)
	}
	pr, err := beamx.RunWithMetrics(ctx, p)
	close(stop)
	if progressDone != nil {
		<-progressDone
	}
	if err != nil {
		removeTemporary(ctx, store, cfg, stderr)
		if cfg.Gate.FailJob {
			// The gate failed the job on purpose: a regression, whose
			// verdict says more than the runner's error.
			if code := gateOutcome(ctx, store, cfg.Output, stdout, stderr); code == exitRegression {
				return code
			}
		}
		reportFailure(stderr, err, runLog)
		return exitFailed
	}
	if submitOnly() {
		// The runner returned once the job was submitted (or its template
		// written): there is nothing to read yet, and its result carries no
		// metrics.
		fmt.Fprintf(stdout, "job submitted; results will appear under %s\n", cfg.Output)
		return exitOK
	}
	data, err := store.ReadFile(ctx, storage.Join(cfg.Output, results.MetricsFile))
	if err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitFailed
	}
	if err := printSummary(stdout, data, time.Since(start)); err != nil {
		fmt.Fprintln(stderr, "segeval:", err)
		return exitFailed
	}
	printWork(stdout, pr.Metrics())
	return gateOutcome(ctx, store, cfg.Output, stdout, stderr)
}

// checkBeforeLaunch checks on the launching machine what it can before a
// job starts (the output, the inputs, the baseline), and returns the exit
// code of the first mistake, or exitOK.
func checkBeforeLaunch(ctx context.Context, cfg pipeline.Config, stderr io.Writer) int {
	store := storage.New(cfg.Storage)
	defer store.Close()
	if done, err := store.Exists(ctx, storage.Join(cfg.Output, results.SuccessFile)); err != nil {
		fmt.Fprintln(stderr, "segeval: --output:", err)
		return exitFailed
	} else if done && !*overwrite {
		fmt.Fprintf(stderr, "segeval: %s already holds a run; pass --overwrite to replace it\n", cfg.Output)
		return exitUsage
	}
	var unreachable *pipeline.UnreachableError
	if _, err := pipeline.MatchInputs(ctx, cfg); errors.As(err, &unreachable) {
		fmt.Fprintf(stderr, "segeval: warning: %v; the run will try from its workers\n", err)
	} else if err != nil {
		fmt.Fprintln(stderr, "segeval:", inputHint(err, cfg))
		return exitUsage
	}
	if err := pipeline.CheckBaseline(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "segeval: --baseline:", err)
		return exitUsage
	}
	return exitOK
}

// embedded reports whether the pipeline runs inside this process (prism,
// the default runner), where its progress can be watched.
func embedded() bool {
	r := flag.Lookup("runner")
	return r == nil || r.Value.String() == "" || strings.EqualFold(r.Value.String(), "prism")
}

// submitOnly reports whether the runner returns without running the job
// to its end: Dataflow with --async (--execute_async), writing a template
// (--template_location, as under the Flex Template launcher), or a dry run.
func submitOnly() bool {
	if embedded() {
		return false
	}
	for _, name := range []string{"async", "execute_async", "dry_run"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() == "true" {
			return true
		}
	}
	f := flag.Lookup("template_location")
	return f != nil && f.Value.String() != ""
}

// useOwnWorkerBinary passes this executable as the worker binary to remote
// runners, so that a launcher (a Dataflow Flex Template, a Flink submit job)
// never cross-compiles the program at submit time, which needs its source
// and a Go toolchain. It must be built for linux/amd64 without -ldflags=-s.
func useOwnWorkerBinary() {
	runner, binary := flag.Lookup("runner"), flag.Lookup("worker_binary")
	if runner == nil || binary == nil || binary.Value.String() != "" || runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return
	}
	switch strings.ToLower(runner.Value.String()) {
	case "", "prism", "direct":
		return
	}
	if exe, err := os.Executable(); err == nil {
		flag.Set("worker_binary", exe) // flag.Set, so that the pipeline options record it
	}
}

// removeTemporary deletes what a failed run left under its temporary
// prefix (parts of per_image.jsonl, files not yet moved into place). The
// pipeline keeps it when it fails, so that a runner's retry can reuse it;
// once the run has failed for good, it is of no use.
func removeTemporary(ctx context.Context, store *storage.Store, cfg pipeline.Config, stderr io.Writer) {
	tmp := storage.Join(cfg.Output, ".tmp-"+cfg.RunID)
	objs, err := store.List(ctx, tmp)
	if err == nil {
		for _, o := range objs {
			if err = store.Delete(ctx, o.Path); err != nil {
				break
			}
		}
	}
	if err == nil && !storage.IsGCS(tmp) {
		err = os.RemoveAll(tmp)
	}
	if err != nil {
		fmt.Fprintf(stderr, "segeval: could not remove the temporary files under %s: %v\n", tmp, err)
	}
}
