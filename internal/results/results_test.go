package results

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
)

func TestSummarizeNoImages(t *testing.T) {
	m, err := Summarize(Run{}, Settings{Mode: evaluate.Multiclass}, "r", Provenance{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalMetrics(m)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back["images"] != 0.0 || back["miou"] != nil || back["schema_version"] != float64(SchemaVersion) {
		t.Errorf("empty run: %s", data)
	}
	if _, ok := back["classes"].([]any); !ok {
		t.Errorf("classes should be an empty list, got %v", back["classes"])
	}
}

func TestSummarizeUndefinedIsNull(t *testing.T) {
	// Two classes out of three are seen; class 2 has an empty union.
	acc, err := evaluate.NewAccumulator(3, lovasz.DefaultBinsPerOctave, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := lovasz.CountPredictions([]int32{0, 1, 1, 0}, []int32{0, 1, 0, 0}, 2, 2, lovasz.Options{}, &acc.Tally.Counts); err != nil {
		t.Fatal(err)
	}
	acc.Tally.Images = 1
	m, err := Summarize(Run{Acc: acc}, Settings{Mode: evaluate.Multiclass, ClassNames: []string{"road", "car"}}, "r", Provenance{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Classes[2].IoU != nil || m.Classes[2].Accuracy != nil || m.Classes[2].Dice != nil {
		t.Errorf("class 2 has values despite an empty union: %+v", m.Classes[2])
	}
	if m.Classes[0].Name != "road" || m.Classes[2].Name != "2" {
		t.Errorf("names %q %q", m.Classes[0].Name, m.Classes[2].Name)
	}
	// Class 0: I=2 U=3; class 1: I=1 U=2.
	if m.MIoU == nil || math.Abs(*m.MIoU-(2.0/3+0.5)/2) > 1e-15 {
		t.Errorf("miou %v", *m.MIoU)
	}
	if m.LovaszSoftmax == nil || m.LovaszSoftmax.PerImageMean != nil || m.LovaszSoftmax.Dataset != nil {
		t.Errorf("loss of a run without probabilities: %+v", m.LovaszSoftmax)
	}
	csv, err := MarshalClassCSV(m)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 4 || lines[3] != "r,2,2,,0,0,0,0,,," {
		t.Errorf("per_class.csv:\n%s", csv)
	}
}

func TestRows(t *testing.T) {
	nan := evaluate.Result{Key: "b", Shard: "s1", Loss: 0.25, MIoU: 0.5, PixelAccuracy: 1}
	rows := []ImageRow{
		NewImageRow("r", evaluate.Binary, nan),
		NewImageRow("r", evaluate.Binary, evaluate.Result{Key: "a", Shard: "s2", Loss: nanValue(), MIoU: nanValue(), PixelAccuracy: nanValue()}),
	}
	want := []string{
		`{"run_id":"r","key":"b","shard":"s1","valid_pixels":0,"lovasz_hinge":0.25,"miou":0.5,"pixel_accuracy":1}`,
		`{"run_id":"r","key":"a","shard":"s2","valid_pixels":0,"lovasz_hinge":null,"miou":null,"pixel_accuracy":null}`,
	}
	for i, r := range rows {
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != want[i] {
			t.Errorf("per_image.jsonl row:\n%s\nwant:\n%s", data, want[i])
		}
	}
}

func nanValue() float64 { return math.NaN() }
