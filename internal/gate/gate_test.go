package gate

import (
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/results"
)

func f(v float64) *float64 { return &v }

func metrics(miou, loss float64, classIoU ...float64) results.Metrics {
	ignore := 255
	m := results.Metrics{RunID: "r", Mode: "multiclass", NumClasses: len(classIoU), ClassSet: "present", IgnoreIndex: &ignore,
		MIoU: f(miou), LovaszSoftmax: &results.SoftmaxLoss{PerImageMean: f(loss)}}
	for i, v := range classIoU {
		m.Classes = append(m.Classes, results.Class{ID: i, Name: "c", IoU: f(v)})
	}
	return m
}

func TestEvaluate(t *testing.T) {
	base := metrics(0.70, 0.30, 0.8, 0.6)
	// The same baseline with its classes listed in another order: classes
	// are matched by id, not by place.
	shuffled := metrics(0.70, 0.30, 0.8, 0.6)
	shuffled.Classes[0], shuffled.Classes[1] = shuffled.Classes[1], shuffled.Classes[0]
	tests := []struct {
		name     string
		cand     results.Metrics
		baseline *results.Metrics
		th       Thresholds
		ok       bool
		failing  string
	}{
		{"no thresholds pass", metrics(0.1, 0.9, 0.1, 0.1), &base, Thresholds{}, true, ""},
		{"small drop passes", metrics(0.695, 0.30, 0.8, 0.59), &base, Thresholds{MaxMIoUDrop: f(0.01)}, true, ""},
		{"large drop fails", metrics(0.68, 0.30, 0.8, 0.56), &base, Thresholds{MaxMIoUDrop: f(0.01)}, false, "max_miou_drop"},
		{"an improvement passes", metrics(0.75, 0.20, 0.9, 0.6), &base, Thresholds{MaxMIoUDrop: f(0), MaxLossIncrease: f(0)}, true, ""},
		{"loss up fails", metrics(0.70, 0.32, 0.8, 0.6), &base, Thresholds{MaxLossIncrease: f(0.01)}, false, "max_loss_increase"},
		{"one class drop fails", metrics(0.70, 0.30, 0.9, 0.5), &base, Thresholds{MaxClassIoUDrop: f(0.05)}, false, "max_class_iou_drop/1"},
		{"classes matched by id", metrics(0.70, 0.30, 0.8, 0.6), &shuffled, Thresholds{MaxClassIoUDrop: f(0.05)}, true, ""},
		{"a drop found by id", metrics(0.70, 0.30, 0.9, 0.5), &shuffled, Thresholds{MaxClassIoUDrop: f(0.05)}, false, "max_class_iou_drop/1"},
		{"floor", metrics(0.70, 0.30, 0.8, 0.6), nil, Thresholds{MinMIoU: f(0.75)}, false, "min_miou"},
		{"missing baseline: only floors", metrics(0.10, 0.9, 0.1, 0.1), nil, Thresholds{MaxMIoUDrop: f(0), MinMIoU: f(0.05)}, true, ""},
	}
	for _, tt := range tests {
		v, err := Evaluate(tt.cand, tt.baseline, tt.th)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if v.OK != tt.ok || v.MissingBaseline != (tt.baseline == nil) {
			t.Errorf("%s: ok %v missing %v, want %v %v: %+v", tt.name, v.OK, v.MissingBaseline, tt.ok, tt.baseline == nil, v.Checks)
		}
		for _, c := range v.Checks {
			if !c.OK && !strings.HasPrefix(c.Name, tt.failing) {
				t.Errorf("%s: unexpected failing check %s", tt.name, c.Name)
			}
		}
	}
}

func TestEvaluateUndefinedCandidateFails(t *testing.T) {
	base := metrics(0.7, 0.3)
	cand := metrics(0, 0)
	cand.MIoU = nil
	v, err := Evaluate(cand, &base, Thresholds{MaxMIoUDrop: f(1), MinMIoU: f(0)})
	if err != nil {
		t.Fatal(err)
	}
	if v.OK {
		t.Errorf("a run without mIoU passed: %+v", v.Checks)
	}
}

func TestIncompatibleBaseline(t *testing.T) {
	base := metrics(0.7, 0.3, 0.5, 0.5)
	other := metrics(0.7, 0.3, 0.5, 0.5, 0.5)
	other.IgnoreIndex = nil
	other.ClassSet = "all"
	_, err := Evaluate(other, &base, Thresholds{})
	if err == nil {
		t.Fatal("runs with other classes, ignore value and class set compared")
	}
	for _, w := range []string{"3 classes", "ignore index none", "class set all"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q does not mention %q", err, w)
		}
	}
}
