// Command benchpipe measures the pipeline's throughput against the rate of
// decoding and evaluating in process, for the README. For each dataset size
// it writes synthetic float16 shards, times one goroutine decoding and
// evaluating one shard held in memory, then times cmd/run on all the shards
// as a child process and records its peak RSS, which should stay flat as the
// number of images grows.
//
// Run it from the repository root:
//
//	go run ./cmd/benchpipe --sizes=8,32
//
// Sizes are in MB of 10^6 bytes. The in-process rate uses a single goroutine
// (the garbage collector may still use other cores); the ratio compares the
// pipeline with --cores times that rate, the best the machine could do.
//
// With --shard_mb it measures memory instead: for each size it writes a
// single shard of about that many MB, generating one image at a time, runs
// cmd/run's core evaluation on it (--worst_k=0 --bootstrap=0) and reports
// the child's peak RSS against the size of one image. A worker holds one
// image of a shard at a time, so the peak should not grow with the shard:
//
//	go run ./cmd/benchpipe --shard_mb=1000,4000
//
// Each shard is deleted after its run unless --keep is set.
//
// With --layouts it writes the same --images images as 1, 8, ... shards and
// reports, per layout, the cores the run kept busy (CPU time over wall
// time), its peak RSS, the partial accumulators that left the evaluation
// (bytes per shard and per image) and whether the metrics equal the first
// layout's:
//
//	go run ./cmd/benchpipe --layouts=1,8 --images=40 --height=512 --width=1024
//	go run ./cmd/benchpipe --layouts=200 --images=200 --classes=150 --height=16 --width=16
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/pipeline"
)

var (
	images     = flag.Int("images", 8, "number of images (ignored when --sizes is set)")
	sizes      = flag.String("sizes", "", "comma-separated numbers of images to benchmark in turn, such as 8,32")
	shards     = flag.Int("shards", 4, "number of shards (at most one per image)")
	classes    = flag.Int("classes", 19, "number of classes")
	height     = flag.Int("height", 1024, "image height")
	width      = flag.Int("width", 2048, "image width")
	cores      = flag.Int("cores", runtime.NumCPU(), "cores the pipeline may use, the multiple of the in-process rate it is compared with")
	dir        = flag.String("dir", "", "work directory, kept, where each size gets a new nN subdirectory; default a new temporary directory, removed at the end")
	keep       = flag.Bool("keep", false, "keep the temporary work directory, and with --shard_mb each shard")
	shardMB    = flag.String("shard_mb", "", "comma-separated shard sizes in MB, such as 1000,4000: measure the peak RSS of evaluating one shard of each size instead of throughput")
	runnerArgs = flag.String("runner_args", "", "extra space-separated arguments for the pipeline, such as --runner=prism")
	layouts    = flag.String("layouts", "", "comma-separated numbers of shards, such as 1,8,200: write the same --images images in each layout and measure cores used, peak RSS and accumulator bytes instead of throughput")
)

const (
	minWork = 3 * time.Second // the least the in-process measurement runs
	mb      = 1e6
)

// limits are the pipeline's defaults.
var limits = sample.Limits{MaxPixels: pipeline.DefaultMaxPixels, MaxClasses: pipeline.DefaultMaxClasses, MaxMemberBytes: pipeline.DefaultMaxMemberBytes}

// row is the measurement of one dataset size.
type row struct {
	images, shards int
	shardBytes     int64
	inProcess      float64 // images/s on one goroutine
	pipeline       float64 // images/s
	peakRSS        int64   // bytes
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchpipe:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	ns, err := sizesFromFlags()
	if err != nil {
		return err
	}
	var mbs []int
	if *shardMB != "" {
		if mbs, err = positiveInts("--shard_mb", *shardMB); err != nil {
			return err
		}
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "benchpipe-"); err != nil {
			return err
		}
		defer cleanUp(work, &err)
	}
	bin := filepath.Join(work, "segeval-run")
	if err := buildRun(bin); err != nil {
		return err
	}
	fmt.Printf("%d classes, %dx%d (HxW), work dir %s\n", *classes, *height, *width, work)
	if mbs != nil {
		return measureMemory(work, bin, mbs)
	}
	if *layouts != "" {
		counts, err := positiveInts("--layouts", *layouts)
		if err != nil {
			return err
		}
		return measureLayouts(work, bin, counts)
	}
	var rows []row
	for _, n := range ns {
		r, err := measure(filepath.Join(work, fmt.Sprintf("n%d", n)), bin, n)
		if err != nil {
			return fmt.Errorf("%d images: %w", n, err)
		}
		rows = append(rows, r)
	}
	printTable(rows)
	return nil
}

// cleanUp removes the temporary work directory unless --keep is set or the
// run failed, when its logs may tell why.
func cleanUp(work string, err *error) {
	if *keep || *err != nil {
		fmt.Fprintln(os.Stderr, "benchpipe: work dir kept:", work)
		return
	}
	if rmErr := os.RemoveAll(work); rmErr != nil {
		*err = fmt.Errorf("remove work dir: %w", rmErr)
	}
}

// sizesFromFlags checks the flags and returns the numbers of images to
// benchmark.
func sizesFromFlags() ([]int, error) {
	if *images < 1 || *shards < 1 || *classes < 2 || *height < 1 || *width < 1 || *cores < 1 {
		return nil, errors.New("want --images, --shards, --height, --width and --cores of at least 1 and --classes of at least 2")
	}
	if *sizes == "" {
		return []int{*images}, nil
	}
	return positiveInts("--sizes", *sizes)
}

// positiveInts parses the value of flag name, a comma-separated list of
// positive integers.
func positiveInts(name, list string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%s: want a comma-separated list of positive integers", name, list)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// buildRun builds cmd/run of the module the working directory is in.
func buildRun(bin string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("finding the module root (run from the segeval repository): go env GOMOD: %q, %v", gomod, err)
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/run")
	build.Dir = filepath.Dir(gomod)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/run: %w", err)
	}
	return nil
}

// measure benchmarks n images in the new directory sizeDir.
func measure(sizeDir, bin string, n int) (row, error) {
	r := row{images: n, shards: min(*shards, n)}
	shardDir := filepath.Join(sizeDir, "shards")
	if err := os.Mkdir(sizeDir, 0o755); err != nil {
		return r, fmt.Errorf("want a fresh directory: %w", err)
	}
	if err := os.Mkdir(shardDir, 0o755); err != nil {
		return r, err
	}
	start := time.Now()
	opt := synth.Options{Classes: *classes, Height: *height, Width: *width, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}
	for s := range r.shards {
		size, err := writeShard(filepath.Join(shardDir, fmt.Sprintf("shard-%05d.tar", s)), s*n/r.shards, (s+1)*n/r.shards, opt)
		if err != nil {
			return r, err
		}
		r.shardBytes += size
	}
	fmt.Printf("N=%d: wrote %d shards, %d bytes (%.1f MB), in %s\n",
		n, r.shards, r.shardBytes, float64(r.shardBytes)/mb, time.Since(start).Round(time.Millisecond))

	imgs, bytesDone, took, err := inProcess(filepath.Join(shardDir, "shard-00000.tar"))
	if err != nil {
		return r, err
	}
	r.inProcess = float64(imgs) / took.Seconds()
	fmt.Printf("N=%d: in process, 1 goroutine: %d images in %s: %.2f images/s, %.1f MB/s\n",
		n, imgs, took.Round(time.Millisecond), r.inProcess, float64(bytesDone)/mb/took.Seconds())

	debug.FreeOSMemory() // leave the machine's memory to the pipeline
	took, state, err := runPipeline(bin, sizeDir, shardDir)
	if err != nil {
		return r, err
	}
	if err := checkImages(filepath.Join(sizeDir, "out", results.MetricsFile), n); err != nil {
		return r, err
	}
	r.pipeline = float64(n) / took.Seconds()
	r.peakRSS = peakRSS(state)
	fmt.Printf("N=%d: pipeline: %d images in %s: %.2f images/s, %.1f MB/s, peak RSS %.0f MB, CPU %s user + %s system\n",
		n, n, took.Round(time.Millisecond), r.pipeline, float64(r.shardBytes)/mb/took.Seconds(), float64(r.peakRSS)/mb,
		state.UserTime().Round(time.Millisecond), state.SystemTime().Round(time.Millisecond))
	return r, nil
}

// writeShard writes images [first, last) into a new shard at path, one
// image in memory at a time, and returns the shard's size.
func writeShard(path string, first, last int, opt synth.Options) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := bufio.NewWriterSize(f, 1<<20)
	sw := synth.NewShardWriter(buf)
	for i := first; i < last; i++ {
		if err := sw.Write(synth.NewImage(fmt.Sprintf("img%06d", i), opt, uint64(i)+1)); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := errors.Join(sw.Close(), buf.Flush()); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

// inProcess decodes and evaluates every sample of the shard at path, held in
// memory, over and over for at least minWork, and returns how many images
// and shard bytes it went through and how long that took.
func inProcess(path string) (imgs int, shardBytes int64, took time.Duration, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	dec := sample.Decoder{Float16Bits: true}
	// The same work as cmd/run with its default flags, which check the
	// probabilities and draw 200 bootstrap replicates.
	ev := evaluate.NewEvaluator(evaluate.Options{Mode: evaluate.Multiclass, Classes: *classes, ClassSet: lovasz.ClassSet{Mode: lovasz.Present},
		Ignore: 255, HasIgnore: true, BinsPerOctave: lovasz.DefaultBinsPerOctave, ProbTolerance: 0.01, Bootstrap: 200})
	start := time.Now()
	for took < minWork {
		n, err := evaluateShard(data, path, &dec, ev)
		if err != nil {
			return 0, 0, 0, err
		}
		imgs += n
		shardBytes += int64(len(data))
		took = time.Since(start)
	}
	return imgs, shardBytes, took, nil
}

// evaluateShard does what the pipeline does with one shard, minus storage:
// decode and evaluate each sample, and take the shard's accumulator.
func evaluateShard(data []byte, name string, dec *sample.Decoder, ev *evaluate.Evaluator) (int, error) {
	r := shard.NewReader(bytes.NewReader(data), name, shard.Limits{MaxMemberBytes: limits.MaxMemberBytes})
	n := 0
	for {
		s, err := r.Next()
		if err == io.EOF {
			_, _, err := ev.Take()
			return n, err
		}
		if err != nil {
			return n, err
		}
		img, err := dec.Decode(s, name, sample.Options{Limits: limits})
		if err != nil {
			return n, err
		}
		if _, err := ev.Evaluate(img, name); err != nil {
			return n, err
		}
		n++
	}
}

// runPipeline runs cmd/run on the shards, with the extra arguments before
// --runner_args, writing into sizeDir/out and its log into sizeDir/run.log,
// and returns its wall time and process state.
func runPipeline(bin, sizeDir, shardDir string, extra ...string) (time.Duration, *os.ProcessState, error) {
	logPath := filepath.Join(sizeDir, "run.log")
	log, err := os.Create(logPath)
	if err != nil {
		return 0, nil, err
	}
	defer log.Close()
	args := append([]string{"--input=" + filepath.Join(shardDir, "*.tar"), "--output=" + filepath.Join(sizeDir, "out"),
		"--num_classes=" + strconv.Itoa(*classes)}, extra...)
	args = append(args, strings.Fields(*runnerArgs)...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, nil, fmt.Errorf("pipeline: %w (log in %s)", err, logPath)
	}
	return time.Since(start), cmd.ProcessState, log.Close()
}

// peakRSS returns the largest resident set of the finished process, in
// bytes.
func peakRSS(state *os.ProcessState) int64 {
	ru, ok := state.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss // bytes on macOS, KiB elsewhere
	}
	return ru.Maxrss * 1024
}

// checkImages checks that the run's metrics.json counts n images.
func checkImages(metricsPath string, n int) error {
	data, err := os.ReadFile(metricsPath)
	if err != nil {
		return err
	}
	var m results.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", metricsPath, err)
	}
	if m.Images != int64(n) {
		return fmt.Errorf("%s: %d images, want %d", metricsPath, m.Images, n)
	}
	return nil
}

// printTable prints the rows as a markdown table for the README.
func printTable(rows []row) {
	fmt.Printf("\n| N | shards | shard MB | in-process img/s (1 core) | pipeline img/s | ratio vs %dx in-process | peak RSS MB |\n", *cores)
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %d | %.0f | %.2f | %.2f | %.2f | %.0f |\n", r.images, r.shards, float64(r.shardBytes)/mb,
			r.inProcess, r.pipeline, r.pipeline/(float64(*cores)*r.inProcess), float64(r.peakRSS)/mb)
	}
}
