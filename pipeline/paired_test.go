package pipeline_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/transforms"
)

// cityscapesKey is the --key_regex README documents for Cityscapes names.
const cityscapesKey = `^([a-z]+_[0-9]+_[0-9]+)_`

// TestPairedCityscapesLayout lays out labels and predictions as Cityscapes
// and a model dump do (two folders, different suffixes), pairs them by the
// documented regex, and checks the result against the same images packed in
// a tar shard.
func TestPairedCityscapesLayout(t *testing.T) {
	root := t.TempDir()
	gt := filepath.Join(root, "gtFine", "val", "frankfurt")
	preds := filepath.Join(root, "preds")
	for _, d := range []string{gt, preds} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opt := synth.Options{Classes: classes, Height: 16, Width: 32, Regions: 5, Ignore: 255, Confidence: 2}
	var tarBuf bytes.Buffer
	sw := synth.NewShardWriter(&tarBuf)
	keys := []string{"frankfurt_000000_000294", "frankfurt_000000_000576", "frankfurt_000001_007973"}
	for i, key := range keys {
		im := synth.NewImage(key, opt, uint64(i+1))
		im.RoundToFloat16()
		if err := sw.Write(im); err != nil {
			t.Fatal(err)
		}
		png, err := synth.EncodeLabelPNG(im.Labels, im.Height, im.Width)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(gt, key+"_gtFine_labelTrainIds.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		var probs bytes.Buffer
		if err := npy.Write(&probs, "<f2", []int{classes, im.Height, im.Width}, im.Probs); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(preds, key+"_leftImg8bit.probs.npy"), probs.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sw.Close()
	tarDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tarDir, "all.tar"), tarBuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	paired := config(nil, filepath.Join(t.TempDir(), "out"))
	paired.Paired = transforms.PairedInputs{
		Predictions: filepath.Join(preds, "*.probs.npy"),
		Labels:      filepath.Join(root, "gtFine", "**", "*_labelTrainIds.png"),
		KeyRegex:    cityscapesKey,
	}
	paired.WorstK = 2
	if _, err := runPipeline(t, paired); err != nil {
		t.Fatal(err)
	}
	packed := config([]string{filepath.Join(tarDir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	if _, err := runPipeline(t, packed); err != nil {
		t.Fatal(err)
	}
	store := storage.New(storage.Options{})
	got, want := readOutput(t, store, paired.Output), readOutput(t, store, packed.Output)
	if got.metrics.Images != 3 || *got.metrics.MIoU != *want.metrics.MIoU ||
		math.Abs(*got.metrics.LovaszSoftmax.PerImageMean-*want.metrics.LovaszSoftmax.PerImageMean) > 1e-12 {
		t.Errorf("paired run: %d images, miou %v, loss %v; packed: miou %v loss %v", got.metrics.Images,
			*got.metrics.MIoU, *got.metrics.LovaszSoftmax.PerImageMean, *want.metrics.MIoU, *want.metrics.LovaszSoftmax.PerImageMean)
	}
	for i, row := range got.rows {
		if row["key"] != keys[i] || !strings.HasSuffix(row["shard"].(string), keys[i]+"_leftImg8bit.probs.npy") ||
			!strings.HasSuffix(row["label_file"].(string), keys[i]+"_gtFine_labelTrainIds.png") {
			t.Errorf("row %d: %v", i, row)
		}
	}
	if n := len(got.metrics.Provenance.Shards); n != 6 {
		t.Errorf("provenance lists %d files, want 6", n)
	}
	if _, err := os.Stat(filepath.Join(paired.Output, transforms.ReportFile)); err != nil {
		t.Errorf("no report: %v", err)
	}
}

func TestUnpairedFilesAreNamed(t *testing.T) {
	root := t.TempDir()
	opt := synth.Options{Classes: classes, Height: 8, Width: 8, Regions: 2, Ignore: 255, Confidence: 2}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, key := range []string{"a", "b"} {
		im := synth.NewImage(key, opt, uint64(i))
		png, _ := synth.EncodeLabelPNG(im.Labels, 8, 8)
		write(key+".png", png)
		if key == "a" {
			var probs bytes.Buffer
			npy.Write(&probs, "<f4", []int{classes, 8, 8}, im.Probs)
			write(key+".probs.npy", probs.Bytes())
		}
	}
	cfg := config(nil, filepath.Join(t.TempDir(), "out"))
	cfg.Paired = transforms.PairedInputs{Predictions: filepath.Join(root, "*.npy"), Labels: filepath.Join(root, "*.png")}
	_, err := runPipeline(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "no prediction file for key b") {
		t.Fatalf("got %v, want an error naming the unpaired label", err)
	}
	cfg.Output = filepath.Join(t.TempDir(), "out")
	cfg.Policy = transforms.Policy{MaxRejected: 1}
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(cfg.Output, results.RejectedFile))
	if err != nil {
		t.Fatal(err)
	}
	var r results.Rejection
	if err := json.Unmarshal(bytes.TrimSpace(data), &r); err != nil || r.Key != "b" {
		t.Errorf("rejected.jsonl: %s (%v)", data, err)
	}
	out := readOutput(t, storage.New(storage.Options{}), cfg.Output)
	if out.metrics.Images != 1 || out.metrics.ImagesRejected != 1 || out.metrics.ImagesRead != 2 {
		t.Errorf("images %d rejected %d read %d", out.metrics.Images, out.metrics.ImagesRejected, out.metrics.ImagesRead)
	}
}
