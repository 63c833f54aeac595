package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segeval/segeval/internal/results"
)

func TestSummaryComparison(t *testing.T) {
	v := func(x float64) *float64 { return &x }
	miou := 0.6
	m := results.Metrics{Images: 40, MIoU: &miou,
		Classes: []results.Class{{ID: 0, Name: "road", IoU: v(0.9)}, {ID: 1, Name: "sky", IoU: v(0.3)}},
		Comparison: &results.Comparison{
			BaselineRunID: "night-2", ImagesPaired: 38, ImagesOnlyCandidate: 2, ImagesOnlyBaseline: 1,
			MIoUDelta:         results.Delta{Value: v(-0.0312), CI95: &[2]float64{-0.05, -0.01}},
			PerImageLossDelta: results.Delta{Value: v(0.004), CI95: &[2]float64{-0.002, 0.01}},
			Classes: []results.ClassDelta{
				{ID: 0, IoUDelta: results.Delta{Value: v(0.001), CI95: &[2]float64{-0.01, 0.01}}},
				{ID: 1, IoUDelta: results.Delta{Value: v(-0.2), CI95: &[2]float64{-0.3, -0.1}}},
			},
			MostRegressed: []results.ImageChange{{Key: "img007", LossDelta: v(0.25), MIoUDelta: v(-0.4)},
				{Key: "img012", LossDelta: v(0.2), MIoUDelta: v(-0.1)},
				{Key: "aachen_000123_000019_leftImg8bit", LossDelta: v(0.1), MIoUDelta: nil}},
			MostImproved: []results.ImageChange{},
		}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := printSummary(&out, data, time.Second); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"run night-2: 38 images in both, 2 only in this run, 1 only in the baseline",
		"different images",
		"-0.0312 [-0.0500, -0.0100] significant",
		"+0.0040 [-0.0020, +0.0100] not significant",
		"1 sky -0.2000",
		"img007 (loss +0.2500, mIoU -0.4000)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "road +0.0010") || strings.Contains(s, "most improved") {
		t.Errorf("an insignificant class or an empty list shown:\n%s", s)
	}
	for _, line := range strings.Split(s, "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
}
