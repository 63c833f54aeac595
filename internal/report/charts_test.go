package report

import (
	"math"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
)

// binsAt are loss bins holding n images in each of the given bins.
func binsAt(n int64, at ...int) []int64 {
	bins := make([]int64, evaluate.LossBinCount)
	for _, i := range at {
		bins[i] += n
	}
	return bins
}

// span lists the bins from lo up to but not including hi.
func span(lo, hi int) []int {
	var s []int
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestLossBars(t *testing.T) {
	over := evaluate.LossBinCount - 1
	tests := []struct {
		name  string
		bins  []int64
		step  int // bar width in bins
		first int // the bin the first bar starts at
		bars  int // bars below 1
		over  bool
	}{
		{"no image", binsAt(0), 10, 0, 0, false},
		{"one image", binsAt(1, 25), 1, 25, 1, false},
		{"many images in one bin", binsAt(10_000, 25), 1, 25, 1, false},
		{"one image in every bin: 10 bars", binsAt(1, span(0, 100)...), 10, 0, 10, false},
		{"10,000 images over [0, 1): 50 bars", binsAt(100, span(0, 100)...), 2, 0, 50, false},
		// sqrt(400) = 20 bars at most; 16 bins fit.
		{"400 images over [0.20, 0.36)", binsAt(25, span(20, 36)...), 1, 20, 16, false},
		// sqrt(900) = 30 bars at most: not 90 of 1 bin nor 46 of 2, but
		// 23 of 4 bins, from 0.04, where 0.05 falls.
		{"900 images over [0.05, 0.95)", binsAt(10, span(5, 95)...), 4, 4, 23, false},
		// sqrt(1,600) = 40 bars at most: the 40 bins fit.
		{"1,600 images over [0.02, 0.41)", binsAt(40, span(2, 42)...), 1, 2, 40, false},
		{"empty bins inside the range", binsAt(1, 10, 90), 10, 10, 9, false},
		{"only 1 or more", binsAt(7, over), 10, 0, 0, true},
		// Losses of 1 or more stretch the range to 1.
		{"low losses and 1 or more", binsAt(3, 3, over), 10, 0, 10, true},
		{"100 images over [0.50, 0.60) and 1 or more", binsAt(10, append(span(50, 60), over)...), 5, 50, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb := newLossBars(tt.bins)
			var withLoss int64
			for _, n := range tt.bins {
				withLoss += n
			}
			var drawn float64
			for _, b := range lb.bars {
				drawn += b.Weight
			}
			if drawn != float64(withLoss) {
				t.Errorf("the bars hold %v images, want %d", drawn, withLoss)
			}
			regular := lb.bars
			if lb.over {
				regular = regular[:len(regular)-1]
			}
			if lb.step != tt.step || len(regular) != tt.bars || lb.over != tt.over {
				t.Errorf("%d bars %d bins wide, over %v; want %d bars %d bins wide, over %v",
					len(regular), lb.step, lb.over, tt.bars, tt.step, tt.over)
			}
			// The bars are contiguous, of step bins each, and each holds
			// the bins it covers.
			w := float64(lb.step) / 100
			for i, b := range regular {
				start := tt.first + i*lb.step
				var n int64
				for _, c := range tt.bins[start : start+lb.step] {
					n += c
				}
				if b.Min != float64(start)/100 || math.Abs(b.Max-b.Min-w) > 1e-12 || b.Weight != float64(n) {
					t.Errorf("bar %d is [%v, %v) of %v images, want [%v, %v) of %d",
						i, b.Min, b.Max, b.Weight, float64(start)/100, float64(start+lb.step)/100, n)
				}
			}
			if lb.over {
				b := lb.bars[len(lb.bars)-1]
				if b.Weight != float64(tt.bins[over]) || b.Min < 1 || math.Abs(b.Max-b.Min-w) > 1e-12 ||
					math.Abs(lb.overX-(b.Min+b.Max)/2) > 1e-12 {
					t.Errorf("the last bar is [%v, %v) of %v images, marked at %v; want %d images past 1",
						b.Min, b.Max, b.Weight, lb.overX, tt.bins[over])
				}
				if len(regular) > 0 && regular[len(regular)-1].Max != 1 {
					t.Errorf("the bars below 1 end at %v", regular[len(regular)-1].Max)
				}
			}
		})
	}
}

func TestLossHistogram(t *testing.T) {
	over := evaluate.LossBinCount - 1
	tests := []struct {
		name   string
		bins   []int64
		mean   *float64
		want   []string
		absent []string
	}{
		{"softmax", lossBins(200), ptr(0.25), []string{"mean 0.2500"}, []string{"≥ 1"}},
		{"no mean", lossBins(200), nil, nil, []string{"mean", "≥ 1"}},
		{"hinge of 1 or more", binsAt(5, 30, 70, over), ptr(0.9), []string{"mean 0.9000", ">≥ 1</text>"}, nil},
		{"mean of 1 or more", binsAt(5, 30, over), ptr(1.3), []string{"mean 1.3000", ">≥ 1</text>"}, nil},
		{"all 1 or more", binsAt(2, over), ptr(4), []string{"mean 4.0000", ">≥ 1</text>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svg, err := lossHistogram(tt.bins, tt.mean, "per-image loss")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.want {
				if !strings.Contains(string(svg), s) {
					t.Errorf("chart lacks %q", s)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(string(svg), s) {
					t.Errorf("chart holds %q", s)
				}
			}
		})
	}
}

// TestHeatPaletteComplete checks that every value of [0, 1] has a color:
// a nil one draws nothing, a white cell in a heat map.
func TestHeatPaletteComplete(t *testing.T) {
	pal, err := heatPalette()
	if err != nil {
		t.Fatal(err)
	}
	colors := pal.Colors()
	if len(colors) != 101 {
		t.Fatalf("%d colors, want 101", len(colors))
	}
	for i, c := range colors {
		if c == nil {
			t.Errorf("no color for %d%%", i)
		}
	}
}
