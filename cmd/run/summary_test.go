package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segeval/segeval/internal/results"
)

// TestSummaryIntervalCaution checks that the summary cautions that the
// intervals are too narrow when fewer than results.FewImagesForIntervals
// images were evaluated, and only then.
func TestSummaryIntervalCaution(t *testing.T) {
	const caution = "the intervals are too narrow"
	miou, low, high := 0.71, 0.69, 0.73
	tests := []struct {
		name      string
		images    int64
		intervals bool
		want      bool
	}{
		{"15 images", 15, true, true},
		{"just below the threshold", results.FewImagesForIntervals - 1, true, true},
		{"at the threshold", results.FewImagesForIntervals, true, false},
		{"no intervals", 15, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := results.Metrics{Images: tt.images, MIoU: &miou}
			if tt.intervals {
				m.Intervals = &results.Intervals{Replicates: 200, Level: 0.95, MIoU: results.Interval{Low: &low, High: &high}}
			}
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := printSummary(&out, data, time.Second); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(out.String(), caution); got != tt.want {
				t.Errorf("caution shown %v, want %v; summary:\n%s", got, tt.want, out.String())
			}
			if tt.want && !strings.Contains(out.String(), "cover less than 95% of the time") {
				t.Errorf("the caution does not name the level; summary:\n%s", out.String())
			}
			for _, line := range strings.Split(out.String(), "\n") {
				if n := len([]rune(line)); n > 100 {
					t.Errorf("line of %d columns, want at most 100: %q", n, line)
				}
			}
		})
	}
}
