package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/synth"
)

// memRow is the memory measurement of one shard size.
type memRow struct {
	images     int
	shardBytes int64
	pipeline   float64 // images/s
	peakRSS    int64   // bytes
}

// imageBytes is the average size of one sample in the shard.
func (r memRow) imageBytes() float64 { return float64(r.shardBytes) / float64(r.images) }

// measureMemory runs the memory benchmark for each shard size in MB and
// prints its table.
func measureMemory(work, bin string, mbs []int) error {
	var rows []memRow
	for _, m := range mbs {
		r, err := measureShard(filepath.Join(work, fmt.Sprintf("mb%d", m)), bin, int64(m)*mb)
		if err != nil {
			return fmt.Errorf("%d MB shard: %w", m, err)
		}
		rows = append(rows, r)
	}
	printMemTable(rows)
	return nil
}

// measureShard writes one shard of about target bytes in the new directory
// sizeDir, runs the core evaluation on it and records the child's peak
// RSS. The shard is deleted afterwards, even when the run fails, unless
// --keep is set.
func measureShard(sizeDir, bin string, target int64) (r memRow, err error) {
	shardDir := filepath.Join(sizeDir, "shards")
	if err := os.Mkdir(sizeDir, 0o755); err != nil {
		return r, fmt.Errorf("want a fresh directory: %w", err)
	}
	if err := os.Mkdir(shardDir, 0o755); err != nil {
		return r, err
	}
	path := filepath.Join(shardDir, "shard-00000.tar")
	if !*keep {
		defer func() {
			if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
				err = rmErr
			}
		}()
	}
	start := time.Now()
	opt := synth.Options{Classes: *classes, Height: *height, Width: *width, Regions: 20, Ignore: 255, Confidence: 3, WrongRegions: 0.1}
	if r.images, r.shardBytes, err = writeSizedShard(path, target, opt); err != nil {
		return r, err
	}
	fmt.Printf("%.0f MB: wrote 1 shard of %d images, %d bytes (%.1f MB, %.1f MB an image), in %s\n",
		float64(target)/mb, r.images, r.shardBytes, float64(r.shardBytes)/mb, r.imageBytes()/mb, time.Since(start).Round(time.Millisecond))

	debug.FreeOSMemory() // leave the machine's memory to the pipeline
	took, state, err := runPipeline(bin, sizeDir, shardDir, "--worst_k=0", "--bootstrap=0")
	if err != nil {
		return r, err
	}
	if err := checkImages(filepath.Join(sizeDir, "out", results.MetricsFile), r.images); err != nil {
		return r, err
	}
	r.pipeline = float64(r.images) / took.Seconds()
	r.peakRSS = peakRSS(state)
	fmt.Printf("%.0f MB: pipeline: %d images in %s: %.2f images/s, %.1f MB/s, peak RSS %.0f MB, CPU %s user + %s system\n",
		float64(target)/mb, r.images, took.Round(time.Millisecond), r.pipeline, float64(r.shardBytes)/mb/took.Seconds(),
		float64(r.peakRSS)/mb, state.UserTime().Round(time.Millisecond), state.SystemTime().Round(time.Millisecond))
	return r, nil
}

// writeSizedShard writes a new shard at path of as many images as fit in
// target bytes, at least one, generating and writing one image at a time
// so that only one is ever in memory. It returns the number of images and
// the shard's size.
func writeSizedShard(path string, target int64, opt synth.Options) (images int, size int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	buf := bufio.NewWriterSize(f, 1<<20)
	cw := &countingWriter{w: buf}
	sw := synth.NewShardWriter(cw)
	// Each image adds its members' bytes, so the loop ends after at most
	// target divided by the size of the smallest image.
	for {
		before := cw.n
		im := synth.NewImage(fmt.Sprintf("img%06d", images), opt, uint64(images)+1)
		if err := sw.Write(im); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		images++
		if cw.n+(cw.n-before) > target {
			break
		}
	}
	if err := errors.Join(sw.Close(), buf.Flush()); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return images, st.Size(), f.Close()
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// printMemTable prints the memory rows as a markdown table for the README.
func printMemTable(rows []memRow) {
	fmt.Println("\n| shard MB | images | image MB | pipeline img/s | peak RSS MB | RSS / image MB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %.0f | %d | %.1f | %.2f | %.0f | %.1f |\n", float64(r.shardBytes)/mb, r.images, r.imageBytes()/mb,
			r.pipeline, float64(r.peakRSS)/mb, float64(r.peakRSS)/r.imageBytes())
	}
	fmt.Println("\nimage MB is one stored sample (float16 probabilities, PNG label, JSON); decoded, its probabilities take twice that.")
}
