package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
	"github.com/segeval/segeval/transforms"
)

// writeModel writes the images of keys, in two shards, as a model of the
// given quality predicts them. The labels depend on the key only, so two
// models written for the same keys are evaluated on the same images.
func writeModel(t *testing.T, keys []string, confidence, wrong float64) string {
	t.Helper()
	dir := t.TempDir()
	opt := synth.Options{Classes: classes, Height: 20, Width: 24, Regions: 6, Ignore: 255, Confidence: confidence, WrongRegions: wrong}
	for s, half := range [][]string{keys[:len(keys)/2], keys[len(keys)/2:]} {
		var b bytes.Buffer
		sw := synth.NewShardWriter(&b)
		for _, k := range half {
			var seed uint64
			fmt.Sscanf(k, "img%d", &seed)
			im := synth.NewImage(k, opt, seed+1)
			im.RoundToFloat16()
			if err := sw.Write(im); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%d.tar", s)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func imageKeys(from, to int) []string {
	var keys []string
	for i := from; i < to; i++ {
		keys = append(keys, fmt.Sprintf("img%03d", i))
	}
	return keys
}

// compareRun evaluates the shards in dir into a new output, compared with
// baseline (a metrics.json path, or "" for none).
func compareRun(t *testing.T, dir, runID, baseline string, th gate.Thresholds) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), runID)
	cfg := config([]string{filepath.Join(dir, "*.tar")}, out)
	cfg.RunID = runID
	cfg.Eval.Bootstrap = 100
	cfg.Gate = transforms.GateSpec{Baseline: baseline, Thresholds: th}
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatalf("run %s: %v", runID, err)
	}
	return out
}

// runFiles are the outputs of a run the comparison is checked against.
type runFiles struct {
	metrics results.Metrics
	rows    map[string]results.ImageRow // by key
}

func readRun(t *testing.T, out string) runFiles {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, results.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	rf := runFiles{rows: map[string]results.ImageRow{}}
	if err := json.Unmarshal(data, &rf.metrics); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(filepath.Join(out, results.PerImageFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var row struct {
			Key  string   `json:"key"`
			Loss *float64 `json:"lovasz_softmax"`
			MIoU *float64 `json:"miou"`
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		rf.rows[row.Key] = results.ImageRow{Key: row.Key, Loss: row.Loss, MIoU: row.MIoU}
	}
	return rf
}

func contains(d results.Delta) bool {
	return d.Value != nil && d.CI95 != nil && d.CI95[0] <= *d.Value && *d.Value <= d.CI95[1]
}

// TestCompareSameKeys evaluates a baseline and a worse candidate on the
// same images, and checks the comparison against the two runs' own files.
func TestCompareSameKeys(t *testing.T) {
	keys := imageKeys(0, 24)
	base := compareRun(t, writeModel(t, keys, 2.5, 0.2), "base", "", gate.Thresholds{})
	candOut := compareRun(t, writeModel(t, keys, 1.0, 0.2), "cand", filepath.Join(base, results.MetricsFile), gate.Thresholds{})
	b, c := readRun(t, base), readRun(t, candOut)
	cmp := c.metrics.Comparison
	if cmp == nil {
		t.Fatal("metrics.json has no comparison")
	}
	if cmp.BaselineRunID != "base" || cmp.ImagesPaired != int64(len(keys)) || cmp.ImagesOnlyCandidate != 0 || cmp.ImagesOnlyBaseline != 0 {
		t.Errorf("comparison with %s: %d paired, %d and %d in one run; want base, %d, 0, 0",
			cmp.BaselineRunID, cmp.ImagesPaired, cmp.ImagesOnlyCandidate, cmp.ImagesOnlyBaseline, len(keys))
	}
	if cmp.MIoUDelta.Value == nil || *cmp.MIoUDelta.Value != *c.metrics.MIoU-*b.metrics.MIoU {
		t.Errorf("miou_delta %v, want %v - %v", cmp.MIoUDelta.Value, *c.metrics.MIoU, *b.metrics.MIoU)
	}
	if !contains(cmp.MIoUDelta) || !contains(cmp.PerImageLossDelta) {
		t.Errorf("an interval misses its value: miou %+v, loss %+v", cmp.MIoUDelta, cmp.PerImageLossDelta)
	}
	if !cmp.MIoUDelta.Significant() || cmp.MIoUDelta.CI95[1] >= 0 {
		t.Errorf("a much worse model's mIoU drop is not significant: %v %v", *cmp.MIoUDelta.Value, *cmp.MIoUDelta.CI95)
	}
	// Paired intervals are narrower than either run's own.
	if own := *b.metrics.Intervals.MIoU.High - *b.metrics.Intervals.MIoU.Low; cmp.MIoUDelta.CI95[1]-cmp.MIoUDelta.CI95[0] >= 2*own {
		t.Errorf("paired mIoU interval %v no narrower than the unpaired sum of widths %v", *cmp.MIoUDelta.CI95, 2*own)
	}
	if len(cmp.Classes) != classes {
		t.Fatalf("%d class deltas, want %d", len(cmp.Classes), classes)
	}
	for i, cl := range cmp.Classes {
		want := *c.metrics.Classes[i].IoU - *b.metrics.Classes[i].IoU
		if cl.ID != i || cl.IoUDelta.Value == nil || *cl.IoUDelta.Value != want || !contains(cl.IoUDelta) {
			t.Errorf("class %d: %+v, want value %v inside its interval", i, cl, want)
		}
	}

	// The per-image loss delta and the lists, from the per-image rows.
	var sum float64
	var n int
	maxUp, maxDown := math.Inf(-1), math.Inf(1)
	for k, cr := range c.rows {
		br, ok := b.rows[k]
		if !ok {
			t.Fatalf("image %s only in the candidate", k)
		}
		if cr.Loss != nil && br.Loss != nil {
			d := *cr.Loss - *br.Loss
			sum += d
			n++
			maxUp, maxDown = max(maxUp, d), min(maxDown, d)
		}
	}
	if v := cmp.PerImageLossDelta.Value; v == nil || math.Abs(*v-sum/float64(n)) > 1e-12 {
		t.Errorf("per_image_loss_delta %v, want the mean of the rows' differences %v", v, sum/float64(n))
	}
	checkList := func(name string, list []results.ImageChange, regressed bool, extreme float64) {
		t.Helper()
		if len(list) == 0 || len(list) > 2*transforms.CompareK {
			t.Fatalf("%s lists %d images", name, len(list))
		}
		for _, img := range list {
			cr, okC := c.rows[img.Key]
			br, okB := b.rows[img.Key]
			if !okC || !okB {
				t.Fatalf("%s lists %q, not an image of both runs", name, img.Key)
			}
			if img.LossDelta == nil || *img.LossDelta != *cr.Loss-*br.Loss || img.MIoUDelta == nil || *img.MIoUDelta != *cr.MIoU-*br.MIoU {
				t.Errorf("%s: %s with deltas %v %v, want %v %v", name, img.Key, img.LossDelta, img.MIoUDelta, *cr.Loss-*br.Loss, *cr.MIoU-*br.MIoU)
			}
			worse, better := *img.LossDelta > 0 || *img.MIoUDelta < 0, *img.LossDelta < 0 || *img.MIoUDelta > 0
			if regressed && !worse || !regressed && !better {
				t.Errorf("%s lists %s, which changed the other way: %v %v", name, img.Key, *img.LossDelta, *img.MIoUDelta)
			}
		}
		if *list[0].LossDelta != extreme {
			t.Errorf("%s starts with a loss change of %v, the largest is %v", name, *list[0].LossDelta, extreme)
		}
	}
	checkList("most_regressed", cmp.MostRegressed, true, maxUp)
	if maxDown < 0 {
		checkList("most_improved", cmp.MostImproved, false, maxDown)
	}

	for _, out := range []string{base, candOut} {
		if _, err := os.Stat(filepath.Join(out, results.ReplicatesFile)); err != nil {
			t.Errorf("no replicates sidecar: %v", err)
		}
	}
	page, err := os.ReadFile(filepath.Join(candOut, transforms.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	section := string(page)
	if i := strings.Index(section, `id="comparison"`); i < 0 {
		t.Fatal("report.html has no comparison section")
	} else {
		section = section[i:]
		section = section[:strings.Index(section, "</section>")]
	}
	if !strings.Contains(section, cmp.MostRegressed[0].Key) || !strings.Contains(section, "data:image/png;base64,") {
		t.Errorf("the report's comparison does not show %s with its thumbnails", cmp.MostRegressed[0].Key)
	}
}

// TestCompareDifferentKeys counts the images of one run only, and pairs
// the rest.
func TestCompareDifferentKeys(t *testing.T) {
	base := compareRun(t, writeModel(t, imageKeys(0, 20), 2.5, 0.2), "base", "", gate.Thresholds{})
	out := compareRun(t, writeModel(t, imageKeys(3, 25), 2.5, 0.2), "cand", filepath.Join(base, results.MetricsFile), gate.Thresholds{})
	cmp := readRun(t, out).metrics.Comparison
	if cmp == nil {
		t.Fatal("no comparison")
	}
	if cmp.ImagesPaired != 17 || cmp.ImagesOnlyCandidate != 5 || cmp.ImagesOnlyBaseline != 3 {
		t.Errorf("%d paired, %d only in the candidate, %d only in the baseline; want 17, 5, 3",
			cmp.ImagesPaired, cmp.ImagesOnlyCandidate, cmp.ImagesOnlyBaseline)
	}
	// The same model on the images both saw: no per-image change at all.
	if v := cmp.PerImageLossDelta; v.Value == nil || *v.Value != 0 || v.CI95 == nil || *v.CI95 != [2]float64{0, 0} {
		t.Errorf("per_image_loss_delta %+v, want 0 in [0, 0]", v)
	}
	if len(cmp.MostRegressed) != 0 || len(cmp.MostImproved) != 0 {
		t.Errorf("unchanged images listed: %+v %+v", cmp.MostRegressed, cmp.MostImproved)
	}
	if !contains(cmp.MIoUDelta) {
		t.Errorf("miou_delta %+v", cmp.MIoUDelta)
	}
}

// TestGateOnSignificance holds the same limit to the point change and to
// its paired interval: a run identical to its baseline misses a limit that
// demands an improvement by its point change, but not significantly; a
// much worse model fails significantly.
func TestGateOnSignificance(t *testing.T) {
	keys := imageKeys(0, 24)
	good := writeModel(t, keys, 2.5, 0.2)
	base := filepath.Join(compareRun(t, good, "base", "", gate.Thresholds{}), results.MetricsFile)
	check := func(dir, runID string, basis gate.Basis, limit float64) gate.Check {
		t.Helper()
		out := compareRun(t, dir, runID, base, gate.Thresholds{MaxMIoUDrop: f64(limit), Basis: basis})
		var v gate.Validation
		data, err := os.ReadFile(filepath.Join(out, gate.ValidationFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if len(v.Checks) != 1 || v.OK != v.Checks[0].OK {
			t.Fatalf("validation %+v", v)
		}
		return v.Checks[0]
	}
	if c := check(good, "same-point", gate.Point, -0.001); c.OK || c.Basis != gate.Point {
		t.Errorf("point basis: %+v, want a failure", c)
	}
	if c := check(good, "same-significant", "", -0.001); !c.OK || c.Basis != gate.Significant || c.CI95 == nil || *c.CI95 != [2]float64{0, 0} {
		t.Errorf("default (significant) basis: %+v, want a pass on the interval [0, 0]", c)
	}
	if c := check(writeModel(t, keys, 1.0, 0.2), "worse", gate.Significant, 0.01); c.OK || c.CI95 == nil || c.CI95[1] >= 0 {
		t.Errorf("a much worse model: %+v, want a significant failure", c)
	}
}

// TestComparePairedFiles compares a candidate laid out as paired files with
// a baseline in tar shards: the images pair by key whatever the layout, and
// the listed images are found again among the files for their thumbnails.
func TestComparePairedFiles(t *testing.T) {
	keys := imageKeys(0, 12)
	base := compareRun(t, writeModel(t, keys, 2.5, 0.2), "base", "", gate.Thresholds{})
	labels, preds := t.TempDir(), t.TempDir()
	opt := synth.Options{Classes: classes, Height: 20, Width: 24, Regions: 6, Ignore: 255, Confidence: 1.0, WrongRegions: 0.2}
	for i, k := range keys {
		im := synth.NewImage(k, opt, uint64(i+1)) // as writeModel draws it
		im.RoundToFloat16()
		png, err := synth.EncodeLabelPNG(im.Labels, im.Height, im.Width)
		if err != nil {
			t.Fatal(err)
		}
		var probs bytes.Buffer
		if err := npy.Write(&probs, "<f2", []int{classes, im.Height, im.Width}, im.Probs); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(labels, k+".label.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(preds, k+".probs.npy"), probs.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config(nil, filepath.Join(t.TempDir(), "cand"))
	cfg.RunID = "cand"
	cfg.Eval.Bootstrap = 50
	cfg.Paired = transforms.PairedInputs{Predictions: filepath.Join(preds, "*.probs.npy"), Labels: filepath.Join(labels, "*.label.png")}
	cfg.Gate = transforms.GateSpec{Baseline: filepath.Join(base, results.MetricsFile)}
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	cmp := readRun(t, cfg.Output).metrics.Comparison
	if cmp == nil || cmp.ImagesPaired != int64(len(keys)) || len(cmp.MostRegressed) == 0 || !cmp.MIoUDelta.Significant() {
		t.Fatalf("comparison %+v", cmp)
	}
	page, err := os.ReadFile(filepath.Join(cfg.Output, transforms.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	section := string(page)[strings.Index(string(page), `id="comparison"`):]
	if !strings.Contains(section[:strings.Index(section, "</section>")], `alt="prediction"`) {
		t.Error("the paired files' regressed images have no thumbnails")
	}
}

// TestCompareLatestOverGCS runs two nights into gs:// under a history: the
// second is compared with the first through --baseline=latest, reading the
// first night's rows and replicates over the GCS API.
func TestCompareLatestOverGCS(t *testing.T) {
	srv := startFakeGCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	keys := imageKeys(0, 16)
	for n, dir := range []string{writeModel(t, keys, 2.5, 0.2), writeModel(t, keys, 1.0, 0.2)} {
		cfg := config([]string{filepath.Join(dir, "*.tar")}, fmt.Sprintf("gs://evals/runs/night-%d", n+1))
		cfg.RunID = fmt.Sprintf("night-%d", n+1)
		cfg.Date = fmt.Sprintf("2026-11-2%d", n+1)
		cfg.Provenance.StartedAt = cfg.Date + "T03:00:00Z"
		cfg.Eval.Bootstrap = 60
		cfg.History = transforms.HistorySpec{Prefix: "gs://evals/history", Model: "segformer"}
		cfg.Gate = transforms.GateSpec{Baseline: gate.Latest}
		if _, err := runPipeline(t, cfg); err != nil {
			t.Fatalf("night %d: %v", n+1, err)
		}
	}
	store := storage.New(storage.Options{})
	defer store.Close()
	read := func(run string) results.Metrics {
		data, err := store.ReadFile(t.Context(), "gs://evals/runs/"+run+"/"+results.MetricsFile)
		if err != nil {
			t.Fatal(err)
		}
		var m results.Metrics
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if first := read("night-1"); first.Comparison != nil {
		t.Errorf("the first night has no baseline, yet a comparison: %+v", first.Comparison)
	}
	second, first := read("night-2"), read("night-1")
	c := second.Comparison
	if c == nil || c.BaselineRunID != "night-1" || c.ImagesPaired != int64(len(keys)) {
		t.Fatalf("second night's comparison %+v, want night-1 on %d images", c, len(keys))
	}
	if *c.MIoUDelta.Value != *second.MIoU-*first.MIoU || !contains(c.MIoUDelta) || !contains(c.PerImageLossDelta) {
		t.Errorf("miou_delta %+v, per_image_loss_delta %+v", c.MIoUDelta, c.PerImageLossDelta)
	}
}
