package pipeline_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/labelpng"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/transforms"
)

// producerScript is the example producer for Python users.
var producerScript = filepath.Join("..", "examples", "python", "write_shards.py")

// pythonWithNumPy returns a Python 3 interpreter that has numpy, or skips
// the test saying how to get one. Debian's python3-numpy installs into
// /usr/bin/python3, which comes first: a python3 earlier on PATH (pyenv,
// a virtualenv) may lack numpy.
func pythonWithNumPy(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import numpy").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 with numpy (Debian: apt-get install python3-numpy): skipping the producer script's test")
	return ""
}

// TestProducerScript packs the same arrays twice: with the example Python
// script (labels as PNG, then as .npy; input images as arrays and as an
// encoded JPEG), and by hand with archive/tar and the project's npy
// writer. Every way must evaluate to the same metrics.json, slices and
// intervals included, and the same per-image rows; the images the script
// wrote must show in the report's thumbnails.
func TestProducerScript(t *testing.T) {
	python := pythonWithNumPy(t)

	// The arrays, as an eval loop would hold them: probabilities already
	// at float16 precision (so that the script's cast to float16 and
	// Go's agree bit for bit), labels with ignored boundaries, metadata.
	opt := synth.Options{Classes: classes, Height: 20, Width: 28, Regions: 5, Ignore: 255, Confidence: 2, WrongRegions: 0.3}
	var images []synth.Image
	for i, key := range []string{"p1", "p2", "p3", "p4", "p5"} {
		im := synth.NewImage(key, opt, uint64(100+i))
		im.RoundToFloat16()
		images = append(images, im)
	}
	arrays := t.TempDir()
	save := func(name, descr string, shape []int, data any) {
		t.Helper()
		var b bytes.Buffer
		if err := npy.Write(&b, descr, shape, data); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(arrays, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	picture := func(im synth.Image) *image.NRGBA {
		pic := image.NewNRGBA(image.Rect(0, 0, im.Width, im.Height))
		for i, l := range im.Labels {
			pic.SetNRGBA(i%im.Width, i/im.Width, color.NRGBA{uint8(40 * (l % 6)), uint8(i % 251), 90, 255})
		}
		return pic
	}
	for i, im := range images {
		save(im.Key+".probs.npy", "<f4", []int{im.Classes, im.Height, im.Width}, im.Probs)
		save(im.Key+".label.npy", "<i4", []int{im.Height, im.Width}, im.Labels)
		meta, err := json.Marshal(im.Meta)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(arrays, im.Key+".json"), meta, 0o644); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0, 1: // an [H,W,3] array, which the script writes as KEY.png
			pic := picture(im)
			rgb := make([]uint8, 0, 3*im.Height*im.Width)
			for p := 0; p < len(pic.Pix); p += 4 {
				rgb = append(rgb, pic.Pix[p:p+3]...)
			}
			save(im.Key+".image.npy", "|u1", []int{im.Height, im.Width, 3}, rgb)
		case 2: // an encoded file, which it copies as KEY.jpg
			var b bytes.Buffer
			if err := jpeg.Encode(&b, picture(im), nil); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(arrays, im.Key+".jpg"), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	byHand := t.TempDir()
	var shard bytes.Buffer
	sw := synth.NewShardWriter(&shard) // archive/tar, npy.Write and label PNGs
	for _, im := range images {
		if err := sw.Write(im); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(byHand, "hand.tar"), shard.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	evaluate := func(name, dir string) (results.Metrics, string) {
		t.Helper()
		cfg := config([]string{filepath.Join(dir, "*.tar")}, filepath.Join(t.TempDir(), name))
		cfg.Eval.Bootstrap = 30
		cfg.Eval.SliceBy = [][]string{{"city"}}
		cfg.WorstK = len(images)
		if _, err := runPipeline(t, cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return readOutput(t, storage.New(storage.Options{}), cfg.Output).metrics, cfg.Output
	}
	want, wantOut := evaluate("by-hand", byHand)
	if want.Intervals == nil || len(want.Slices) == 0 || want.MIoU == nil {
		t.Fatal("the reference run has no intervals, slices or mIoU: the comparison would miss them")
	}
	wantRows := perImageRows(t, wantOut)

	for _, format := range []string{"png", "npy"} {
		t.Run(format+" labels", func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command(python, producerScript, "--arrays", arrays, "--out", filepath.Join(out, "val-%06d.tar"),
				"--maxcount", "2", "--label-format", format)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			written, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", producerScript, err, stderr.String())
			}
			if shards := strings.Fields(string(written)); len(shards) != 3 {
				t.Errorf("the script wrote %q, want 3 shards of at most 2 samples", shards)
			}
			got, gotOut := evaluate("script-"+format, out)
			if got.Images != int64(len(images)) || got.ImagesRejected != 0 {
				t.Fatalf("%d images evaluated, %d rejected; want %d and 0", got.Images, got.ImagesRejected, len(images))
			}
			if a, b := comparable(got), comparable(want); !reflect.DeepEqual(a, b) {
				ja, _ := json.MarshalIndent(a, "", " ")
				jb, _ := json.MarshalIndent(b, "", " ")
				t.Errorf("the script's shards evaluate to\n%s\nwant, as packed by hand,\n%s", ja, jb)
			}
			if rows := perImageRows(t, gotOut); !reflect.DeepEqual(rows, wantRows) {
				t.Errorf("per-image rows differ:\n%v\nwant\n%v", rows, wantRows)
			}
			page, err := os.ReadFile(filepath.Join(gotOut, transforms.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			// p1, p2 (PNG from arrays) and p3 (JPEG) show their picture.
			if n := strings.Count(string(page), `alt="image"`); n < 3 {
				t.Errorf("report shows %d input images, want those of p1, p2 and p3", n)
			}
			if strings.Contains(string(page), "Input image not shown") {
				t.Error("an input image the script wrote does not decode")
			}
		})
	}
}

// comparable is m without what depends on where and when it ran: run id,
// provenance and the worst images' shard paths and offsets (their keys
// and numbers stay).
func comparable(m results.Metrics) results.Metrics {
	m.RunID, m.Provenance = "", results.Provenance{}
	if m.Worst != nil {
		w := *m.Worst
		for _, list := range []*[]results.ImageRef{&w.HighestLoss, &w.LowestMIoU} {
			*list = slices.Clone(*list)
			for i := range *list {
				(*list)[i].Shard, (*list)[i].Offset = "", 0
			}
		}
		m.Worst = &w
	}
	return m
}

// perImageRows reads per_image.jsonl as rows by key, without the fields
// that name the run and the shard.
func perImageRows(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, results.PerImageFile))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		row := map[string]any{}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		key, _ := row["key"].(string)
		for _, f := range []string{"run_id", "shard", "offset"} {
			delete(row, f)
		}
		rows[key] = row
	}
	return rows
}

// TestProducerPNG checks the script's own PNG encoder, written with zlib
// and struct: 8-bit and 16-bit labels must decode to the same ids with the
// project's label reader, and an RGB image to the same pixels with Go's.
func TestProducerPNG(t *testing.T) {
	python := pythonWithNumPy(t)
	dir := t.TempDir()
	script := `
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from write_shards import label_png_bytes, png_bytes
out = sys.argv[2]
open(out + "/gray8.png", "wb").write(label_png_bytes(np.array([[0, 1, 2], [255, 7, 3]], dtype=np.int64)))
open(out + "/gray16.png", "wb").write(label_png_bytes(np.array([[0, 300, 2], [65535, 256, 3]], dtype=np.int32)))
open(out + "/rgb.png", "wb").write(png_bytes(np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 10))
`
	cmd := exec.Command(python, "-c", script, filepath.Dir(producerScript), dir)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1") // no __pycache__ in examples/
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tests := []struct {
		file string
		want []int32
	}{
		{"gray8.png", []int32{0, 1, 2, 255, 7, 3}},
		{"gray16.png", []int32{0, 300, 2, 65535, 256, 3}},
	}
	for _, tt := range tests {
		data, err := os.ReadFile(filepath.Join(dir, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		ids, h, w, err := labelpng.Decode(data, 100, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if h != 2 || w != 3 || !slices.Equal(ids, tt.want) {
			t.Errorf("%s: %dx%d %v, want 2x3 %v", tt.file, h, w, ids, tt.want)
		}
	}
	f, err := os.Open(filepath.Join(dir, "rgb.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		x, y := i%3, i/3
		want := color.NRGBA{uint8(30 * i), uint8(30*i + 10), uint8(30*i + 20), 255}
		if got := color.NRGBAModel.Convert(img.At(x, y)); got != want {
			t.Errorf("rgb.png at (%d,%d) = %v, want %v", x, y, got, want)
		}
	}
}
