package gate

import (
	"testing"

	"github.com/segeval/segeval/internal/results"
)

// compared is a candidate whose mIoU and class 0 changed by delta from
// base's, with the paired interval ci, compared with base.
func compared(base results.Metrics, delta float64, ci [2]float64) results.Metrics {
	c := metrics(*base.MIoU+delta, *base.LovaszSoftmax.PerImageMean-delta, *base.Classes[0].IoU+delta)
	c.RunID = "cand"
	c.Comparison = &results.Comparison{
		BaselineRunID: base.RunID,
		MIoUDelta:     results.Delta{Value: f(delta), CI95: &ci},
		// The loss moves the other way: a drop of mIoU is a rise of loss.
		PerImageLossDelta: results.Delta{Value: f(-delta), CI95: &[2]float64{-ci[1], -ci[0]}},
		Classes:           []results.ClassDelta{{ID: 0, IoUDelta: results.Delta{Value: f(delta), CI95: &ci}}},
	}
	return c
}

func TestGateBasis(t *testing.T) {
	base := metrics(0.70, 0.30, 0.8)
	base.RunID = "base"
	limit := 0.01
	tests := []struct {
		name     string
		delta    float64
		ci       [2]float64
		basis    Basis
		ok       bool
		basisOut Basis
	}{
		// A drop of 0.02, past the limit of 0.01.
		{"noisy drop, point", -0.02, [2]float64{-0.05, 0.01}, Point, false, Point},
		{"noisy drop, significant", -0.02, [2]float64{-0.05, 0.01}, Significant, true, Significant},
		{"noisy drop, default is significant", -0.02, [2]float64{-0.05, 0.01}, "", true, Significant},
		{"significant drop", -0.02, [2]float64{-0.03, -0.012}, Significant, false, Significant},
		{"significant drop, bound", -0.02, [2]float64{-0.03, -0.012}, Bound, false, Bound},
		// A drop within the limit.
		{"small drop, significant", -0.005, [2]float64{-0.008, -0.002}, Significant, true, Significant},
		{"small drop, point", -0.005, [2]float64{-0.008, -0.002}, Point, true, Point},
		{"small but uncertain drop, bound", -0.005, [2]float64{-0.03, 0.01}, Bound, false, Bound},
		{"small and certain drop, bound", -0.005, [2]float64{-0.009, -0.001}, Bound, true, Bound},
		{"improvement, bound", 0.02, [2]float64{0.005, 0.03}, Bound, true, Bound},
	}
	for _, tt := range tests {
		cand := compared(base, tt.delta, tt.ci)
		th := Thresholds{MaxMIoUDrop: f(limit), MaxLossIncrease: f(limit), MaxClassIoUDrop: f(limit), Basis: tt.basis}
		v, err := Evaluate(cand, &base, th)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if v.OK != tt.ok || len(v.Checks) != 3 {
			t.Errorf("%s: ok %v, want %v: %+v", tt.name, v.OK, tt.ok, v.Checks)
		}
		for _, c := range v.Checks {
			if c.Basis != tt.basisOut || c.OK != tt.ok || c.CI95 == nil {
				t.Errorf("%s: check %s held to %s (interval %v), ok %v; want %s, %v", tt.name, c.Name, c.Basis, c.CI95, c.OK, tt.basisOut, tt.ok)
			}
		}
	}
}

func TestGateBasisWithoutInterval(t *testing.T) {
	base := metrics(0.70, 0.30, 0.8)
	base.RunID = "base"
	cand := compared(base, -0.02, [2]float64{-0.05, 0.01})
	// A comparison with another baseline is not this one's.
	cand.Comparison.BaselineRunID = "older"
	v, err := Evaluate(cand, &base, Thresholds{MaxMIoUDrop: f(0.01)})
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.Checks[0].Basis != Point || v.Checks[0].CI95 != nil {
		t.Errorf("without this baseline's interval the point applies: %+v", v.Checks)
	}
	if _, err := Evaluate(cand, &base, Thresholds{MaxMIoUDrop: f(0.01), Basis: "likely"}); err == nil {
		t.Error("an unknown basis was accepted")
	}
	if Basis("").Validate() != nil || Basis("bound").Validate() != nil || Basis("x").Validate() == nil {
		t.Error("Validate")
	}
}
