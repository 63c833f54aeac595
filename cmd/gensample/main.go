// Command gensample writes synthetic WebDataset shards for trying and
// benchmarking segeval: PNG labels with ignore pixels on region boundaries,
// float16 class probabilities and JSON metadata.
//
// The sample dataset bundled in testdata/sample was made with
//
//	go run ./cmd/gensample --out testdata/sample
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/segeval/segeval/internal/synth"
)

var (
	out        = flag.String("out", "testdata/sample", "directory the shards are written to")
	shards     = flag.Int("shards", 2, "number of shards")
	perShard   = flag.Int("images_per_shard", 6, "images in each shard")
	classes    = flag.Int("classes", 6, "number of classes")
	height     = flag.Int("height", 80, "image height")
	width      = flag.Int("width", 120, "image width")
	regions    = flag.Int("regions", 12, "regions per image")
	confidence = flag.Float64("confidence", 3, "logit added to the predicted class")
	wrong      = flag.Float64("wrong_regions", 0.15, "fraction of regions predicted as a wrong class")
	seed       = flag.Uint64("seed", 1, "random seed")
)

func main() {
	flag.Parse()
	if err := generate(); err != nil {
		fmt.Fprintln(os.Stderr, "gensample:", err)
		os.Exit(1)
	}
}

func generate() error {
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	opt := synth.Options{Classes: *classes, Height: *height, Width: *width, Regions: *regions,
		Ignore: 255, Confidence: *confidence, WrongRegions: *wrong}
	for s := range *shards {
		path := filepath.Join(*out, fmt.Sprintf("shard-%05d.tar", s))
		if err := writeShard(path, s, opt); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Println(path)
	}
	return nil
}

func writeShard(path string, shard int, opt synth.Options) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	sw := synth.NewShardWriter(buf)
	for i := range *perShard {
		n := shard**perShard + i
		im := synth.NewImage(fmt.Sprintf("img%06d", n), opt, *seed*1_000_003+uint64(n))
		if err := sw.Write(im); err != nil {
			f.Close()
			return err
		}
	}
	if err := sw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := buf.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
