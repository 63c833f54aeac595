package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/synth"
)

// layoutRow is the measurement of one shard layout of the same images.
type layoutRow struct {
	shards       int
	wall         time.Duration
	cpu          time.Duration // user + system
	peakRSS      int64
	partials     int64 // partial accumulators that left the evaluation
	partialBytes int64 // their encoded size
	lastStage    time.Duration
	metrics      []byte
}

// cores is the CPU time over the wall time: how many cores the run kept
// busy on average.
func (r layoutRow) cores() float64 { return r.cpu.Seconds() / r.wall.Seconds() }

// measureLayouts writes the same --images images as 1, 8, ... shards (one
// layout per entry of counts), runs cmd/run on each and prints a table of
// cores used, peak RSS and the accumulator bytes that left the evaluation,
// and whether every layout gave the same metrics.
func measureLayouts(work, bin string, counts []int) error {
	opt := synth.Options{Classes: *classes, Height: *height, Width: *width, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}
	var rows []layoutRow
	for _, n := range counts {
		n = min(n, *images)
		dir := filepath.Join(work, fmt.Sprintf("layout%d", n))
		shardDir := filepath.Join(dir, "shards")
		if err := os.MkdirAll(shardDir, 0o755); err != nil {
			return err
		}
		for s := range n {
			if _, err := writeShard(filepath.Join(shardDir, fmt.Sprintf("shard-%05d.tar", s)), s**images/n, (s+1)**images/n, opt); err != nil {
				return err
			}
		}
		debug.FreeOSMemory()
		took, state, err := runPipeline(bin, dir, shardDir)
		if err != nil {
			return fmt.Errorf("%d shards: %w", n, err)
		}
		r := layoutRow{shards: n, wall: took, cpu: state.UserTime() + state.SystemTime(), peakRSS: peakRSS(state)}
		if r.partials, r.partialBytes, r.lastStage, err = workCounters(filepath.Join(dir, "run.log")); err != nil {
			return fmt.Errorf("%d shards: %w", n, err)
		}
		if r.metrics, err = comparableMetrics(filepath.Join(dir, "out", results.MetricsFile), *images); err != nil {
			return fmt.Errorf("%d shards: %w", n, err)
		}
		fmt.Printf("%d shards: %s wall, %s CPU (%.2f cores), peak RSS %.0f MB, %d partial accumulators, %d bytes\n",
			n, took.Round(time.Millisecond), r.cpu.Round(time.Millisecond), r.cores(), float64(r.peakRSS)/mb, r.partials, r.partialBytes)
		rows = append(rows, r)
		if !*keep {
			if err := os.RemoveAll(shardDir); err != nil {
				return err
			}
		}
	}
	printLayoutTable(rows)
	return nil
}

// workLine is cmd/run's summary line about how the work was split.
var workLine = regexp.MustCompile(`(\d+) partial accumulators \(([0-9.]+) (KB|MB)\); last stage ([0-9.]+) s`)

// workCounters reads the partial accumulators, their size and the last
// stage's time from a run's log. The size is printed rounded; it is precise
// to 3 digits.
func workCounters(logPath string) (n, size int64, lastStage time.Duration, err error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0, 0, err
	}
	m := workLine.FindSubmatch(data)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("%s: no work line", logPath)
	}
	n, _ = strconv.ParseInt(string(m[1]), 10, 64)
	v, _ := strconv.ParseFloat(string(m[2]), 64)
	unit := 1e3
	if string(m[3]) == "MB" {
		unit = 1e6
	}
	secs, _ := strconv.ParseFloat(string(m[4]), 64)
	return n, int64(v * unit), time.Duration(secs * float64(time.Second)), nil
}

// comparableMetrics returns metrics.json without what differs between runs
// of the same images (run id, provenance), after checking its image count.
func comparableMetrics(path string, n int) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m results.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Images != int64(n) {
		return nil, fmt.Errorf("%s: %d images, want %d", path, m.Images, n)
	}
	m.RunID, m.Provenance, m.Worst = "", results.Provenance{}, nil
	return json.Marshal(m)
}

// printLayoutTable prints the rows as a markdown table for the README.
func printLayoutTable(rows []layoutRow) {
	fmt.Printf("\n%d images, %d classes, %dx%d\n\n", *images, *classes, *height, *width)
	fmt.Println("| shards | wall s | ms per image | CPU s | cores used | peak RSS MB | last stage s | partial accumulators | KB per shard | KB per image | metrics as 1st layout |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		same := "yes"
		if !bytes.Equal(r.metrics, rows[0].metrics) {
			same = "NO"
		}
		fmt.Printf("| %d | %.1f | %.3f | %.1f | %.2f | %.0f | %.1f | %d | %.1f | %.2f | %s |\n", r.shards, r.wall.Seconds(),
			1000*r.wall.Seconds()/float64(*images), r.cpu.Seconds(), r.cores(), float64(r.peakRSS)/mb, r.lastStage.Seconds(),
			r.partials, float64(r.partialBytes)/1e3/float64(r.shards), float64(r.partialBytes)/1e3/float64(*images), same)
	}
}
