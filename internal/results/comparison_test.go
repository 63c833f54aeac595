package results

import (
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
)

func f64(v float64) *float64 { return &v }

func TestCompareValuesAndSchema(t *testing.T) {
	cand := Metrics{RunID: "c", MIoU: f64(0.61), Classes: []Class{{ID: 0, IoU: f64(0.9)}, {ID: 1, IoU: f64(0.32)}, {ID: 2}}}
	base := Metrics{RunID: "b", MIoU: f64(0.64), Classes: []Class{{ID: 1, IoU: f64(0.4)}, {ID: 0, IoU: f64(0.8)}}}
	p := evaluate.NewPairedRuns(0, 2)
	p.AddPaired("x", 0.4, 0.3, 0.5, 0.7)
	p.AddPaired("y", 0.2, 0.3, 0.9, 0.8)
	p.AddOnly(true)
	c, err := Compare(CompareInput{Candidate: cand, Baseline: base, Paired: p})
	if err != nil {
		t.Fatal(err)
	}
	if c.BaselineRunID != "b" || c.ImagesPaired != 2 || c.ImagesOnlyCandidate != 1 || c.ImagesOnlyBaseline != 0 {
		t.Errorf("counts %+v", c)
	}
	if *c.MIoUDelta.Value != *cand.MIoU-*base.MIoU || c.MIoUDelta.CI95 != nil {
		t.Errorf("miou delta %+v: want the difference, no interval without replicates", c.MIoUDelta)
	}
	if v := *c.PerImageLossDelta.Value; math.Abs(v-0) > 1e-15 {
		t.Errorf("loss delta %v, want the mean of +0.1 and -0.1", v)
	}
	// Classes by id; a class the baseline lacks, or null in a run, has no
	// delta.
	if *c.Classes[0].IoUDelta.Value != *cand.Classes[0].IoU-*base.Classes[1].IoU ||
		*c.Classes[1].IoUDelta.Value != *cand.Classes[1].IoU-*base.Classes[0].IoU || c.Classes[2].IoUDelta.Value != nil {
		t.Errorf("class deltas %+v", c.Classes)
	}
	if len(c.MostRegressed) != 1 || c.MostRegressed[0].Key != "x" || len(c.MostImproved) != 1 || c.MostImproved[0].Key != "y" {
		t.Errorf("lists %+v %+v", c.MostRegressed, c.MostImproved)
	}

	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	want := []string{"baseline_run_id", "classes", "images_only_baseline", "images_only_candidate", "images_paired",
		"miou_delta", "most_improved", "most_regressed", "per_image_loss_delta"}
	var got []string
	for k := range fields {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("comparison fields %v, want %v", got, want)
	}
	var reg []map[string]any
	json.Unmarshal(fields["most_regressed"], &reg)
	if len(reg) != 1 || len(reg[0]) != 3 || reg[0]["key"] != "x" || reg[0]["loss_delta"] == nil || reg[0]["miou_delta"] == nil {
		t.Errorf("most_regressed entries %v, want {key, loss_delta, miou_delta}", reg)
	}
}

func TestDeltaIntervalHoldsItsValue(t *testing.T) {
	d := newDelta(0.05, evaluate.Interval{Low: 0.1, High: 0.2})
	if *d.CI95 != [2]float64{0.05, 0.2} {
		t.Errorf("a skewed interval: %v, want it stretched to the value", *d.CI95)
	}
	d = newDelta(0.15, evaluate.Interval{Low: 0.1, High: 0.2})
	if *d.CI95 != [2]float64{0.1, 0.2} || d.Significant() != true {
		t.Errorf("%v", *d.CI95)
	}
	if d := newDelta(0.1, evaluate.Interval{Low: -0.1, High: 0.2}); d.Significant() {
		t.Error("an interval around 0 is significant")
	}
	data, _ := json.Marshal(newDelta(math.NaN(), evaluate.Interval{Low: 0, High: 1}))
	if string(data) != `{"value":null,"ci95":null}` {
		t.Errorf("undefined delta: %s", data)
	}
	data, _ = json.Marshal(newDelta(0.5, evaluate.Interval{Low: 0.25, High: 0.75}))
	if string(data) != `{"value":0.5,"ci95":[0.25,0.75]}` {
		t.Errorf("delta: %s", data)
	}
}
