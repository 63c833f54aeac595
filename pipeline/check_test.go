package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
)

// sampleShards is the bundled sample's glob, from this package's folder.
var sampleShards = filepath.Join("..", "testdata", "sample", "*.tar")

// TestMatchInputs checks the inputs before launch: every pattern must match,
// locally and on GCS, and a file matched twice counts once.
func TestMatchInputs(t *testing.T) {
	srv := startFakeGCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL())
	store := storage.New(storage.Options{})
	defer store.Close()
	if err := store.WriteFile(t.Context(), "gs://evals/night/a.tar", []byte("tar")); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join("..", "testdata", "sample", "shard-00000.tar")
	tests := []struct {
		name     string
		patterns []string
		paired   pipeline.PairedInputs
		noMatch  string // the pattern reported, "" for success
		shards   int
	}{
		{name: "local", patterns: []string{sampleShards, first}, shards: 2},
		{name: "gcs", patterns: []string{"gs://evals/night/*.tar"}, shards: 1},
		{name: "local typo", patterns: []string{sampleShards, "../testdata/sampel/*.tar"}, noMatch: "../testdata/sampel/*.tar"},
		{name: "gcs typo", patterns: []string{"gs://evals/nihgt/*.tar"}, noMatch: "gs://evals/nihgt/*.tar"},
		{name: "gcs bucket typo", patterns: []string{"gs://evasl/night/*.tar"}, noMatch: "gs://evasl/night/*.tar"},
		{name: "paired labels", paired: pipeline.PairedInputs{Predictions: sampleShards, Labels: "../testdata/*.png"}, noMatch: "../testdata/*.png"},
	}
	for _, tt := range tests {
		cfg := config(tt.patterns, t.TempDir())
		cfg.Paired = tt.paired
		in, err := pipeline.MatchInputs(t.Context(), cfg)
		var none *pipeline.NoMatchError
		switch {
		case tt.noMatch == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.noMatch != "" && (!errors.As(err, &none) || none.Pattern != tt.noMatch):
			t.Errorf("%s: error %v, want %s matching nothing", tt.name, err, tt.noMatch)
		case tt.noMatch == "" && (len(in.Shards) != tt.shards || in.Bytes() == 0):
			t.Errorf("%s: %d shards of %d bytes, want %d", tt.name, len(in.Shards), in.Bytes(), tt.shards)
		}
	}
}

// TestCheckBaseline checks a baseline before launch: it must exist and have
// been computed as this run will be.
func TestCheckBaseline(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	same := write("same.json", `{"mode":"multiclass","num_classes":6,"class_set":"present","ignore_index":255}`)
	other := write("other.json", `{"mode":"multiclass","num_classes":6,"class_set":"all","ignore_index":0}`)
	tests := []struct {
		name     string
		baseline string
		classes  int
		want     []string // in the error; none for no error
	}{
		{"none", "", 0, nil},
		{"compatible", same, 0, nil},
		{"compatible with --num_classes", same, 6, nil},
		{"missing", filepath.Join(dir, "nope.json"), 0, []string{"nope.json does not exist"}},
		{"other classes", same, 7, []string{"7 classes against the baseline's 6"}},
		{"other settings", other, 0, []string{"class set present against the baseline's all", "ignore index 255 against the baseline's 0"}},
		{"latest without history yet", gate.Latest, 0, nil},
	}
	for _, tt := range tests {
		cfg := config([]string{sampleShards}, t.TempDir())
		cfg.Gate.Baseline = tt.baseline
		cfg.History = pipeline.HistorySpec{Prefix: t.TempDir(), Model: "m"}
		cfg.Eval.Classes = tt.classes
		err := pipeline.CheckBaseline(t.Context(), cfg)
		if (err != nil) != (len(tt.want) > 0) {
			t.Errorf("%s: error %v, want one: %v", tt.name, err, len(tt.want) > 0)
			continue
		}
		for _, want := range tt.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", tt.name, err, want)
			}
		}
	}
}

// TestInspect reads the first sample of the bundled sample, as --check does.
func TestInspect(t *testing.T) {
	cfg := config([]string{sampleShards}, t.TempDir())
	ins, err := pipeline.Inspect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	img := ins.Image
	if len(ins.Inputs.Shards) != 2 || ins.Key != "img000000" || !strings.HasSuffix(ins.File, "shard-00000.tar") {
		t.Errorf("sample %s of %s, %d shards", ins.Key, ins.File, len(ins.Inputs.Shards))
	}
	if !slices.Equal(ins.Fields, []string{"json", "label.png", "probs.npy"}) || ins.Prediction != "probs.npy" || ins.Label != "label.png" {
		t.Errorf("fields %v, prediction %s, label %s", ins.Fields, ins.Prediction, ins.Label)
	}
	if ins.PredictionType != "<f2" || !slices.Equal(ins.PredictionShape, []int{6, img.Height, img.Width}) || img.Prediction != sample.Probs || img.Classes != 6 {
		t.Errorf("prediction %s %v of %d classes", ins.PredictionType, ins.PredictionShape, img.Classes)
	}
	pixels := 0
	for _, v := range ins.LabelValues {
		pixels += v.Pixels
	}
	if pixels != img.Height*img.Width || ins.LabelValues[len(ins.LabelValues)-1].Value != 255 {
		t.Errorf("label values %v over %d pixels of %dx%d", ins.LabelValues, pixels, img.Height, img.Width)
	}
	if !slices.Equal(ins.MetaFields, []string{"city", "weather"}) {
		t.Errorf("metadata fields %v", ins.MetaFields)
	}

	cfg.Eval.Mode = "nonsense"
	if _, err := pipeline.Inspect(t.Context(), cfg); err == nil {
		t.Error("Inspect accepted an invalid configuration")
	}
}
