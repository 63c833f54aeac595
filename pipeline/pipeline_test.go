package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/pipeline"
)

// TestMain makes prism, Beam's portable local runner, the runner of every
// pipeline in these tests: it lifts combines and encodes elements between
// stages, as distributed runners do.
func TestMain(m *testing.M) { ptest.Main(m) }

const classes = 5

// dataset is a set of shards written to disk, with the probabilities each
// image is evaluated on, as a reader decodes them.
type dataset struct {
	dir    string
	images []synth.Image // probabilities after float16 rounding or softmax
	shards map[string]string
}

// writeDataset writes three shards: float16 probabilities, one image whose
// pixels are all ignored, and one image given as float32 logits of shape
// [1,C,H,W].
func writeDataset(t *testing.T) dataset {
	t.Helper()
	d := dataset{dir: t.TempDir(), shards: map[string]string{}}
	opt := synth.Options{Classes: classes, Height: 24, Width: 32, Regions: 6, Ignore: 255, Confidence: 2.5, WrongRegions: 0.2}
	var seed uint64
	next := func(key string) synth.Image {
		seed++
		im := synth.NewImage(key, opt, seed)
		im.RoundToFloat16()
		return im
	}
	write := func(name string, add func(sw *synth.ShardWriter)) {
		var b bytes.Buffer
		sw := synth.NewShardWriter(&b)
		add(sw)
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(d.dir, name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		d.shards[name] = path
	}
	write("a.tar", func(sw *synth.ShardWriter) {
		for _, k := range []string{"a1", "a2", "a3"} {
			im := next(k)
			d.add(t, sw, im)
		}
	})
	write("b.tar", func(sw *synth.ShardWriter) {
		d.add(t, sw, next("b1"))
		blank := next("b2")
		for i := range blank.Labels {
			blank.Labels[i] = 255
		}
		d.add(t, sw, blank)
	})
	write("c.tar", func(sw *synth.ShardWriter) {
		im := next("c1")
		logits := make([]float32, len(im.Probs))
		for i, p := range im.Probs {
			logits[i] = float32(math.Log(max(float64(p), 1e-6)))
		}
		png, err := synth.EncodeLabelPNG(im.Labels, im.Height, im.Width)
		if err != nil {
			t.Fatal(err)
		}
		var npyBuf bytes.Buffer
		if err := npy.Write(&npyBuf, "<f4", []int{1, classes, im.Height, im.Width}, logits); err != nil {
			t.Fatal(err)
		}
		if err := sw.Member("c1.label.png", png); err != nil {
			t.Fatal(err)
		}
		if err := sw.Member("c1.logits.npy", npyBuf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if im.Probs, err = lovasz.NewEvaluator().Softmax(logits, classes, nil); err != nil {
			t.Fatal(err)
		}
		d.images = append(d.images, im)
	})
	return d
}

// startFakeGCS starts a real GCS JSON API in process, with a bucket
// "evals", stopped when the test ends.
func startFakeGCS(t *testing.T) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "evals"})
	return srv
}

// upload copies the dataset's shards under prefix and returns their bytes.
func (d *dataset) upload(t *testing.T, store *storage.Store, prefix string) int64 {
	t.Helper()
	var n int64
	for name, path := range d.shards {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.WriteFile(t.Context(), prefix+name, data); err != nil {
			t.Fatal(err)
		}
		n += int64(len(data))
	}
	return n
}

func (d *dataset) add(t *testing.T, sw *synth.ShardWriter, im synth.Image) {
	t.Helper()
	if err := sw.Write(im); err != nil {
		t.Fatal(err)
	}
	d.images = append(d.images, im)
}

func config(inputs []string, output string) pipeline.Config {
	return pipeline.Config{
		Inputs: inputs,
		Output: output,
		RunID:  "test-run",
		Eval: evaluate.Options{
			Mode: evaluate.Multiclass, ClassSet: lovasz.ClassSet{Mode: lovasz.Present},
			Ignore: 255, HasIgnore: true, BinsPerOctave: lovasz.DefaultBinsPerOctave,
		},
		Decode: sample.Options{Limits: sample.Limits{MaxPixels: pipeline.DefaultMaxPixels, MaxClasses: pipeline.DefaultMaxClasses, MaxMemberBytes: pipeline.DefaultMaxMemberBytes}},
	}
}

// runPipeline builds and runs the evaluation on prism and returns its
// result.
func runPipeline(t *testing.T, cfg pipeline.Config) (beam.PipelineResult, error) {
	t.Helper()
	p, s := beam.NewPipelineWithRoot()
	if err := pipeline.Build(s, cfg); err != nil {
		t.Fatal(err)
	}
	return ptest.RunWithMetrics(p)
}

// output holds the files of a finished run.
type output struct {
	metrics results.Metrics
	rows    []map[string]any
	csv     string
}

func readOutput(t *testing.T, store *storage.Store, prefix string) output {
	t.Helper()
	ctx := context.Background()
	read := func(name string) []byte {
		data, err := store.ReadFile(ctx, storage.Join(prefix, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	var out output
	if err := json.Unmarshal(read(results.MetricsFile), &out.metrics); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(read(results.PerImageFile))), "\n") {
		row := map[string]any{}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("per_image.jsonl line %q: %v", line, err)
		}
		out.rows = append(out.rows, row)
	}
	out.csv = string(read(results.PerClassFile))
	if got := string(read(results.SuccessFile)); got != "test-run\n" {
		t.Errorf("_SUCCESS holds %q", got)
	}
	return out
}

// expected evaluates the dataset's images directly with internal/lovasz,
// exactly (sorting) where the pipeline uses histograms.
type expected struct {
	loss        map[string]float64 // per image with valid pixels
	meanLoss    float64
	datasetLoss float64
	counts      *lovasz.Counts
	validPixels int64
}

func expect(t *testing.T, d dataset) expected {
	t.Helper()
	ev := lovasz.NewEvaluator()
	opt := lovasz.Options{Ignore: 255, HasIgnore: true, Tolerance: -1}
	e := expected{loss: map[string]float64{}, counts: lovasz.NewCounts(classes)}
	var allProbs [classes][]float32
	var allLabels []int32
	for _, im := range d.images {
		res, err := ev.LovaszSoftmax(im.Probs, im.Labels, classes, im.Height, im.Width, opt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ValidPixels > 0 {
			e.loss[im.Key] = res.Loss
			e.meanLoss += res.Loss
		}
		e.validPixels += res.ValidPixels
		if err := ev.CountArgmax(im.Probs, im.Labels, im.Height, im.Width, opt, e.counts); err != nil {
			t.Fatal(err)
		}
		p := im.Height * im.Width
		for c := range classes {
			allProbs[c] = append(allProbs[c], im.Probs[c*p:(c+1)*p]...)
		}
		allLabels = append(allLabels, im.Labels...)
	}
	e.meanLoss /= float64(len(e.loss))
	var flat []float32
	for c := range classes {
		flat = append(flat, allProbs[c]...)
	}
	all, err := ev.LovaszSoftmax(flat, allLabels, classes, 1, len(allLabels), opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.datasetLoss = all.Loss
	return e
}

func TestRunMatchesDirectEvaluation(t *testing.T) {
	d := writeDataset(t)
	out := filepath.Join(t.TempDir(), "out")
	cfg := config([]string{filepath.Join(d.dir, "*.tar")}, out)
	cfg.Eval.SliceBy = [][]string{{"weather"}}
	cfg.Eval.Bootstrap = 50
	cfg.WorstK = 3
	pr, err := runPipeline(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := readOutput(t, storage.New(storage.Options{}), out)
	want := expect(t, d)
	m := got.metrics

	if m.Images != int64(len(d.images)) || m.ImagesWithoutValidPixels != 1 || m.ValidPixels != want.validPixels {
		t.Errorf("images %d (%d without valid pixels), valid pixels %d; want %d (1), %d",
			m.Images, m.ImagesWithoutValidPixels, m.ValidPixels, len(d.images), want.validPixels)
	}
	if len(m.Provenance.Shards) != 3 {
		t.Errorf("provenance lists %d shards, want 3", len(m.Provenance.Shards))
	}
	l := m.LovaszSoftmax
	if l == nil || l.PerImageMean == nil || l.Dataset == nil || l.DatasetErrorBound == nil {
		t.Fatalf("lovasz_softmax incomplete: %+v", l)
	}
	if diff := math.Abs(*l.PerImageMean - want.meanLoss); diff > 1e-6 {
		t.Errorf("per-image mean loss %.12g, exact %.12g", *l.PerImageMean, want.meanLoss)
	}
	if diff := math.Abs(*l.Dataset - want.datasetLoss); diff > *l.DatasetErrorBound+1e-12 {
		t.Errorf("dataset loss %.12g ± %.3g, exact %.12g", *l.Dataset, *l.DatasetErrorBound, want.datasetLoss)
	}
	wm := want.counts.Metrics()
	if m.MIoU == nil || math.Abs(*m.MIoU-wm.MIoU) > 1e-12 {
		t.Errorf("miou %v, want %v", m.MIoU, wm.MIoU)
	}
	for c, cls := range m.Classes {
		ws := wm.Classes[c]
		if cls.Intersection != ws.Intersection || cls.Union != ws.Union || cls.LabelPixels != ws.LabelPixels || cls.PredPixels != ws.PredPixels {
			t.Errorf("class %d: %+v, want %+v", c, cls, ws)
		}
	}

	// Per-image rows: sorted by key, one per image, losses as evaluated.
	if len(got.rows) != len(d.images) {
		t.Fatalf("%d per-image rows, want %d", len(got.rows), len(d.images))
	}
	for i, row := range got.rows {
		key := row["key"].(string)
		if i > 0 && got.rows[i-1]["key"].(string) >= key {
			t.Errorf("rows not sorted by key at %q", key)
		}
		wantLoss, valid := want.loss[key]
		switch loss := row["lovasz_softmax"]; {
		case !valid && loss != nil:
			t.Errorf("%s has no valid pixel but loss %v", key, loss)
		case valid && (loss == nil || math.Abs(loss.(float64)-wantLoss) > 1e-6):
			t.Errorf("%s: loss %v, exact %v", key, loss, wantLoss)
		}
		if row["run_id"] != "test-run" {
			t.Errorf("%s: run_id %v", key, row["run_id"])
		}
	}
	// Slices partition the images; intervals hold the estimate; the worst
	// images are the highest losses.
	var sliced int64
	for _, sl := range m.Slices {
		if sl.Field != "weather" {
			t.Errorf("slice %+v", sl)
		}
		sliced += sl.Images
	}
	if sliced != m.Images || len(m.Slices) < 2 {
		t.Errorf("%d slices hold %d images, want %d", len(m.Slices), sliced, m.Images)
	}
	if iv := m.Intervals; iv == nil || iv.Replicates != 50 || *iv.MIoU.Low > *m.MIoU || *iv.MIoU.High < *m.MIoU {
		t.Errorf("intervals %+v around miou %v", iv, *m.MIoU)
	}
	if w := m.Worst; w == nil || len(w.HighestLoss) != 3 || len(w.LowestMIoU) != 3 {
		t.Errorf("worst images %+v", w)
	} else {
		var losses []float64
		for _, l := range want.loss {
			losses = append(losses, l)
		}
		slices.Sort(losses)
		if top := *w.HighestLoss[0].Loss; math.Abs(top-losses[len(losses)-1]) > 1e-6 || *w.HighestLoss[1].Loss > top {
			t.Errorf("worst losses %v, %v; highest is %v", top, *w.HighestLoss[1].Loss, losses[len(losses)-1])
		}
	}
	if w := m.Worst; w != nil {
		for _, list := range [][]results.ImageRef{w.HighestLoss, w.LowestMIoU} {
			seen := map[string]bool{}
			for _, r := range list {
				if seen[r.Key+r.Shard] {
					t.Errorf("worst images list %s twice", r.Key)
				}
				seen[r.Key+r.Shard] = true
			}
			if len(list) > len(d.images) {
				t.Errorf("%d worst images of %d", len(list), len(d.images))
			}
		}
	}
	if lines := strings.Count(got.csv, "\n"); lines != classes+1 {
		t.Errorf("per_class.csv has %d lines, want header + %d classes", lines, classes)
	}

	// Counters reconcile with the outputs.
	counters := map[string]int64{}
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace == "segeval" {
			counters[c.Key.Name] += c.Committed
		}
	}
	if counters["images"] != m.Images || counters["shards"] != 3 || counters["valid_pixels"] != m.ValidPixels {
		t.Errorf("counters %v disagree with metrics.json", counters)
	}
	var size int64
	for _, p := range d.shards {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	// Samples are read by their spans: everything but each shard's two
	// end-of-archive blocks, once.
	if want := size - 1024*int64(len(d.shards)); counters["bytes_read"] != want {
		t.Errorf("bytes_read %d, the shards' samples span %d", counters["bytes_read"], want)
	}
	// Planning reads the tar headers, and small members in passing: one
	// request per shard of these small samples.
	if counters["plan_requests"] != int64(len(d.shards)) || counters["plan_bytes"] <= 0 || counters["plan_bytes"] > size {
		t.Errorf("planning took %d requests and %d bytes for %d shards of %d bytes", counters["plan_requests"], counters["plan_bytes"], len(d.shards), size)
	}
	if _, err := os.Stat(filepath.Join(out, ".tmp-test-run")); !os.IsNotExist(err) {
		t.Errorf("temporary output left behind: %v", err)
	}
}

// TestGCSMatchesLocal runs the same shards from a real GCS JSON API
// (fake-gcs-server, in process) into a gs:// output, and from local disk: the
// outputs must agree.
func TestGCSMatchesLocal(t *testing.T) {
	d := writeDataset(t)
	srv := startFakeGCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL())
	store := storage.New(storage.Options{})
	defer store.Close()
	d.upload(t, store, "gs://evals/preds/night-1/")

	localOut := filepath.Join(t.TempDir(), "out")
	if _, err := runPipeline(t, config([]string{filepath.Join(d.dir, "*.tar")}, localOut)); err != nil {
		t.Fatal(err)
	}
	if _, err := runPipeline(t, config([]string{"gs://evals/preds/**/*.tar"}, "gs://evals/runs/1")); err != nil {
		t.Fatal(err)
	}
	local, remote := readOutput(t, store, localOut), readOutput(t, store, "gs://evals/runs/1")
	for _, sh := range remote.metrics.Provenance.Shards {
		if sh.Generation == 0 || !strings.HasPrefix(sh.Path, "gs://evals/preds/night-1/") {
			t.Errorf("GCS shard provenance %+v", sh)
		}
	}
	local.metrics.Provenance, remote.metrics.Provenance = results.Provenance{}, results.Provenance{}
	lj, _ := json.Marshal(local.metrics)
	rj, _ := json.Marshal(remote.metrics)
	if !bytes.Equal(lj, rj) {
		t.Errorf("metrics differ:\nlocal  %s\nremote %s", lj, rj)
	}
	if local.csv != remote.csv {
		t.Errorf("per_class.csv differs")
	}
	for i := range local.rows {
		delete(local.rows[i], "shard")
		delete(remote.rows[i], "shard")
		a, _ := json.Marshal(local.rows[i])
		b, _ := json.Marshal(remote.rows[i])
		if !bytes.Equal(a, b) {
			t.Errorf("row %d differs: %s vs %s", i, a, b)
		}
	}
}

func TestBadInputFailsTheRun(t *testing.T) {
	dir := t.TempDir()
	im := synth.NewImage("bad", synth.Options{Classes: classes, Height: 8, Width: 8, Regions: 2, Ignore: 255, Confidence: 2}, 1)
	im.Labels[5] = 7 // not a class, not the ignore value
	var b bytes.Buffer
	sw := synth.NewShardWriter(&b)
	if err := sw.Write(im); err != nil {
		t.Fatal(err)
	}
	sw.Close()
	shardPath := filepath.Join(dir, "broken.tar")
	if err := os.WriteFile(shardPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"label out of range", shardPath, []string{"broken.tar", "sample bad", "label 7"}},
		{"pattern matches nothing", filepath.Join(dir, "missing-*.tar"), []string{"matches no file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := runPipeline(t, config([]string{tt.input}, out))
			if err == nil {
				t.Fatal("run succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
			if _, err := os.Stat(filepath.Join(out, results.SuccessFile)); !os.IsNotExist(err) {
				t.Errorf("failed run wrote _SUCCESS")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*pipeline.Config)
		want   string
	}{
		{"no input", func(c *pipeline.Config) { c.Inputs = nil }, "no input"},
		{"no output", func(c *pipeline.Config) { c.Output = "" }, "no output"},
		{"bad mode", func(c *pipeline.Config) { c.Eval.Mode = "multi" }, "mode"},
		{"ignore is a class", func(c *pipeline.Config) { c.Eval.Classes, c.Eval.Ignore = 19, 3 }, "ignore index 3"},
		{"class list", func(c *pipeline.Config) {
			c.Eval.Classes, c.Eval.ClassSet = 4, lovasz.ClassSet{Mode: lovasz.List, IDs: []int{5}}
		}, "class 5"},
		{"repeated class", func(c *pipeline.Config) {
			c.Eval.ClassSet = lovasz.ClassSet{Mode: lovasz.List, IDs: []int{0, 0, 1}}
		}, "class 0 appears more than once"},
		{"repeated class, not adjacent", func(c *pipeline.Config) {
			c.Eval.Classes, c.Eval.ClassSet = 8, lovasz.ClassSet{Mode: lovasz.List, IDs: []int{3, 1, 7, 3}}
		}, "class 3 appears more than once"},
		{"names", func(c *pipeline.Config) { c.Eval.Classes, c.ClassNames = 3, []string{"a"} }, "1 class names"},
		{"binary classes", func(c *pipeline.Config) { c.Eval.Mode, c.Eval.Classes = evaluate.Binary, 3 }, "binary"},
		{"histogram resolution", func(c *pipeline.Config) { c.Eval.BinsPerOctave = 3 }, "bins per octave"},
		{"drop without a baseline", func(c *pipeline.Config) {
			drop := 0.01
			c.Gate.Thresholds.MaxMIoUDrop = &drop
		}, "give --baseline"},
	}
	for _, tt := range tests {
		cfg := config([]string{"x/*.tar"}, "out")
		if err := cfg.Validate(); err != nil {
			t.Fatalf("base config: %v", err)
		}
		tt.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error about %q", tt.name, err, tt.want)
		}
	}
}
