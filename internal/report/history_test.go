package report

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/results"
)

// nights is a history of runs on the given dates: mIoU drifting down 0.01
// a night, every third run not blessed, with intervals and class IoUs
// unless old (a row of the first format).
func nights(dates []string, old map[int]bool) []gate.HistoryLine {
	var rows []gate.HistoryLine
	for i, d := range dates {
		miou, loss := 0.70-0.01*float64(i), 0.30+0.005*float64(i)
		h := gate.HistoryLine{Date: d, RunID: fmt.Sprintf("run-%d", i), Output: "gs://runs/" + d,
			MIoU: ptr(miou), Loss: ptr(loss), Blessed: i%3 != 2}
		if !old[i] {
			h.MIoUInterval = &results.Interval{Low: ptr(miou - 0.02), High: ptr(miou + 0.02)}
			h.LossInterval = &results.Interval{Low: ptr(loss - 0.01), High: ptr(loss + 0.01)}
			for c := range 19 {
				h.Classes = append(h.Classes, gate.ClassIoU{ID: c, IoU: ptr(0.3 + 0.03*float64(c) - 0.01*float64(i))})
			}
			h.Classes[16].IoU = nil
		}
		rows = append(rows, h)
	}
	return rows
}

// svgTexts returns the text of the <text> elements of an SVG.
func svgTexts(svg string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<text[^>]*>([^<]*)</text>`).FindAllStringSubmatch(svg, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestHistorySection(t *testing.T) {
	m := fixture("run-now", 1, cityscapesNames)
	tests := []struct {
		name      string
		history   *History
		section   bool     // whether the page has the history section
		chart     bool     // and a trend chart in it
		strip     bool     // and a heat strip
		notes     []string // in the section's note
		chartText []string // text drawn in the chart
	}{{
		name: "no history",
	}, {
		name:      "one night",
		history:   &History{Runs: nights([]string{"2026-11-20"}, nil)},
		section:   true,
		chart:     true,
		strip:     true,
		notes:     []string{"The last 1 runs, 2026-11-20 to 2026-11-20, one or more every night."},
		chartText: []string{"this run", "11-20", "mIoU", "per-image loss"},
	}, {
		name: "gaps, an old row, a rerun and a baseline",
		history: &History{
			Runs:          nights([]string{"2026-11-20", "2026-11-21", "2026-11-24", "2026-11-25", "2026-11-25"}, map[int]bool{0: true}),
			BaselineRunID: "run-1",
		},
		section:   true,
		chart:     true,
		strip:     true,
		notes:     []string{"The last 5 runs, 2026-11-20 to 2026-11-25; 2 nights without a run."},
		chartText: []string{"this run", "baseline", "11-22", "11-23"},
	}, {
		name:    "undated runs",
		history: &History{Runs: nights([]string{"", "yesterday"}, nil)},
		section: true,
		notes:   []string{"No run of this model has a date yet."},
	}, {
		name:    "some undated",
		history: &History{Runs: nights([]string{"", "2026-11-21", "2026-11-22"}, nil)},
		section: true,
		chart:   true,
		strip:   true,
		notes:   []string{"The last 2 runs", "1 runs without a date are not shown."},
	}}
	sectionRe := regexp.MustCompile(`(?s)<section id="history">(.*?)</section>`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, Input{Metrics: m, History: tt.history}); err != nil {
				t.Fatal(err)
			}
			sec := sectionRe.FindStringSubmatch(buf.String())
			if (sec != nil) != tt.section {
				t.Fatalf("history section present = %v, want %v", sec != nil, tt.section)
			}
			if sec == nil {
				return
			}
			body := sec[1]
			svgs := regexp.MustCompile(`(?s)<svg class="chart" role="img" aria-label="([^"]*)".*?</svg>`).FindAllStringSubmatch(body, -1)
			var chart, strip string
			for _, s := range svgs {
				switch s[1] {
				case "trend of mIoU and per-image loss over recent runs":
					chart = s[0]
				case "per-class IoU of recent runs":
					strip = s[0]
				}
			}
			if (chart != "") != tt.chart || (strip != "") != tt.strip {
				t.Errorf("chart %v, strip %v; want %v, %v", chart != "", strip != "", tt.chart, tt.strip)
			}
			for _, n := range tt.notes {
				if !strings.Contains(body, n) {
					t.Errorf("section does not say %q:\n%s", n, body[:min(len(body), 600)])
				}
			}
			texts := strings.Join(svgTexts(chart), "|")
			for _, want := range tt.chartText {
				if !strings.Contains(texts, want) {
					t.Errorf("chart has no text %q: %s", want, texts)
				}
			}
			if strip != "" {
				stripTexts := strings.Join(svgTexts(strip), "|")
				for _, want := range []string{"road", "bicycle", "this run"} {
					if !strings.Contains(stripTexts, want) {
						t.Errorf("strip has no text %q", want)
					}
				}
			}
		})
	}
}

// TestTrendGaps checks the days the chart shades: those between the first
// and last run without one, however the rows are ordered.
func TestTrendGaps(t *testing.T) {
	tests := []struct {
		dates []string
		note  string
		bands int // grey bands per panel: consecutive missed nights are one
	}{
		{[]string{"2026-11-20", "2026-11-21", "2026-11-22"}, "one or more every night", 0},
		{[]string{"2026-11-20", "2026-11-22"}, "one night without a run", 1},
		{[]string{"2026-11-22", "2026-11-20"}, "2026-11-20 to 2026-11-22; one night without a run", 1}, // backfilled
		{[]string{"2026-11-28", "2026-12-03"}, "4 nights without a run", 1},                            // across a month
		{[]string{"2026-11-20", "2026-11-22", "2026-11-25"}, "3 nights without a run", 2},
	}
	for _, tt := range tests {
		s, err := newHistorySection(&History{Runs: nights(tt.dates, nil)}, &results.Metrics{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.Note, tt.note) {
			t.Errorf("%v: note %q does not say %q", tt.dates, s.Note, tt.note)
		}
		// Two panels, mIoU and loss.
		if got := strings.Count(strings.ToLower(string(s.Chart)), "fill:"+hexColor(gapColor)); got != 2*tt.bands {
			t.Errorf("%v: %d grey bands, want %d in each of 2 panels", tt.dates, got, tt.bands)
		}
	}
}
